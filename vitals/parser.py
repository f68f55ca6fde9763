"""The contract every monitor-family parser implements.

A parser turns the bytes one monitor sends into ``VitalSample``s. It owns no port and no thread:
``vitals.link.SerialLink`` reads the port and feeds it; tests feed it byte strings in any
chunking. Keeping I/O out of parsers is what lets every family be tested without hardware and
lets one link implementation serve all of them.

Families that must talk first (IntelliVue association, GE transmission request, Medibus polling)
hand the link the bytes to send through ``greeting()`` and ``poll()``; the link writes them and
never interprets them. Streaming families (Masimo, Nellcor, Nonin) leave both empty.

Threads: a parser instance is used by one thread at a time (its link's reader thread). It is not
locked; ``stats`` may be read from elsewhere only as a snapshot the link takes (``copy()``).

The families themselves are listed in ``vitals.families``. This module imports none of them:
every family imports it, so it must stay below them all.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import ClassVar

from vitals.link_settings import LinkSettings, Parity
from vitals.sample import VitalSample

__all__ = ["LinkSettings", "MonitorParser", "Parity", "ParserStats"]


@dataclass(slots=True)
class ParserStats:
    """Counters a parser keeps about what it was fed.

    ``records_ok`` counts records (lines, frames) that were understood, ``records_bad`` complete
    records that were rejected, ``garbage_bytes`` bytes that did not end up in any good record
    (noise, NULs, partial or overlong records, tokens that were not understood).
    """

    bytes_in: int = 0
    records_ok: int = 0
    records_bad: int = 0
    garbage_bytes: int = 0

    def copy(self) -> ParserStats:
        return replace(self)


class MonitorParser(abc.ABC):
    """Incremental parser for one monitor's byte stream: bytes in, samples out.

    Implementations must never raise from ``feed``, whatever the bytes, and must never turn a
    "no value" marker into a number. ``feed`` may be called with any chunking of the stream
    (one byte at a time, or a megabyte) and must yield the same samples either way.
    """

    #: Name of the protocol, as configuration and ``vitals.families.PARSERS`` spell it.
    protocol: ClassVar[str]
    #: Serial settings this protocol's devices use out of the box.
    link_settings: ClassVar[LinkSettings] = LinkSettings()

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.stats = ParserStats()

    @abc.abstractmethod
    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        """Consume ``data`` that arrived at ``host_ns``; return the samples it completed."""

    def reset(self) -> None:  # noqa: B027 - deliberately a no-op default
        """Forget buffered partial input and any session state; keep ``stats``.

        The link calls this on every (re)connect, so a half record from the old connection is
        never glued to bytes from the new one, and talk-first protocols start their handshake
        again.
        """

    def greeting(self) -> bytes:
        """Bytes to send right after the port opens (association, transmission request)."""
        return b""

    def poll(self, now_ns: int) -> bytes:
        """Bytes to send now (keep-alive, re-request), called often by the link; usually empty."""
        del now_ns
        return b""
