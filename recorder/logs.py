"""Logging: structlog, JSON lines under systemd (the journal), a readable console on a terminal.

Libraries that log through the standard library (PyAV's libav messages, pyserial) go through the
same processor chain, so the journal holds one format. Canonical lines: one per segment closed and
one per session, never one per frame.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import av.logging
import structlog

Format = Literal["auto", "json", "console"]


def configure_logging(fmt: Format = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = getattr(logging, level.upper())
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # PyAV hands libav's messages to the logger "libav" only once a level is set; info is chatty
    # (every stream it opens), warnings and errors matter (a corrupt packet, a device error).
    av.logging.set_level(av.logging.WARNING)
    logging.getLogger("libav").setLevel(logging.WARNING)
