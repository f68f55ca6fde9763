"""The serial line settings a monitor protocol uses (baud, parity, flow control).

Its own module: plain data that parsers and configurable line formats both name, depending on
nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Parity = Literal["N", "E", "O", "M", "S"]


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Serial line settings a protocol uses by default; configuration may override each one.

    The letters and numbers are pyserial's own (``parity="N"``, ``stopbits=1``), so the link can
    pass them straight through.
    """

    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1
    xonxoff: bool = False
    rtscts: bool = False
