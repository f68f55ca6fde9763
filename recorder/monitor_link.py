"""A configured monitor's serial link: its parser and port settings, built one way for everyone.

The daemon reads the monitor through this link and doctor tests it through the same one, so a
monitor that needs a line table, or parity, stop bits or flow control other than its protocol's
defaults, is read the same way by both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.models import MonitorConfig
from vitals.families import make_parser
from vitals.line_format import line_format_from_mapping
from vitals.link import SerialLink
from vitals.parser import MonitorParser
from vitals.sample import VitalSample

#: The port settings a monitor's config may override; unset ones keep the protocol's default.
PORT_OVERRIDES = ("baudrate", "bytesize", "parity", "stopbits", "rtscts", "xonxoff")


def parser_for(mon: MonitorConfig) -> MonitorParser:
    """The parser for ``mon``'s protocol (a ``line_format`` one reads its own line table)."""
    if mon.protocol == "line_format":
        assert mon.line_format is not None  # the config refuses it otherwise
        return make_parser(mon.protocol, mon.name, spec=line_format_from_mapping(mon.line_format))
    return make_parser(mon.protocol, mon.name)


def port_overrides(mon: MonitorConfig) -> dict[str, Any]:
    """The port settings ``mon`` sets, as ``SerialLink`` keyword arguments."""
    return {name: getattr(mon, name) for name in PORT_OVERRIDES if getattr(mon, name) is not None}


def link_for(
    mon: MonitorConfig,
    on_samples: Callable[[list[VitalSample]], None],
    *,
    silence_timeout_s: float | None = None,
) -> SerialLink:
    """A ``SerialLink`` reading ``mon`` as configured (``silence_timeout_s`` defaults to its own)."""
    return SerialLink(
        mon.name,
        mon.port,
        parser_for(mon),
        on_samples,
        silence_timeout_s=mon.silence_timeout_s if silence_timeout_s is None else silence_timeout_s,
        **port_overrides(mon),
    )


def port_words(mon: MonitorConfig, parser: MonitorParser) -> str:
    """The line settings ``mon`` is read with, as a technician writes them: "9600 baud 8E1"."""
    d = parser.link_settings
    baud = d.baudrate if mon.baudrate is None else mon.baudrate
    parity = d.parity if mon.parity is None else mon.parity
    stopbits = d.stopbits if mon.stopbits is None else mon.stopbits
    rtscts = d.rtscts if mon.rtscts is None else mon.rtscts
    bytesize = d.bytesize if mon.bytesize is None else mon.bytesize
    xonxoff = d.xonxoff if mon.xonxoff is None else mon.xonxoff
    flow = (" RTS/CTS" if rtscts else "") + (" XON/XOFF" if xonxoff else "")
    return f"{baud} baud {bytesize}{parity}{stopbits:g}{flow}"
