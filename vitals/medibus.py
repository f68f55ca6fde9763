"""Dräger MEDIBUS / Medibus.X (Evita, Babylog, V500, Apollo) measured data → VitalSamples.

Medibus is command/response in plain ASCII, both sides able to command::

    command   ESC cmd [arguments] cs cs CR        (1B .. 0D)
    response  SOH cmd [data]      cs cs CR        (01 .. 0D), cmd echoes the command answered

``cs cs`` is the sum of every byte from ESC/SOH through the last data byte, modulo 256, as two
upper-case hex digits (request measured data: ``1B 24 33 46 0D``; initialise: ``1B 51 36 43 0D``).
The host initialises with ICC (0x51), then requests "current measured data, codepage 1" (0x24)
every second; the reply carries 6-character items, a 2-hex-digit code and a 4-character value.
The device also sends its own commands (ICC, NOP, "request device identification") and expects
each answered with a response echoing it; a device command may arrive in the middle of one of its
own responses and is then nested in it. DC1/DC3 (XON/XOFF) may appear anywhere and are not data;
bytes with the high bit set are realtime (waveform) data, which we never configure.

Sources (public; Dräger's MEDIBUS and Medibus.X specifications are the authority, none of this was
checked against a device):

- ``mdpnp/mdpnp:devices/draeger/src/main/java/org/mdpnp/devices/draeger/medibus/Medibus.java``
  (framing, nested command buffers, DC1/DC3 and high-bit bytes filtered from the stream, ASCII hex
  checksum written after ESC/SOH and the data, echo responses to device commands, the device
  identification reply) and ``.../types/command.map``, ``.../types/measured-data-cp1.map`` (codes
  and units);
- ``xeonfusion/VSCaptureDrgVent:Class1.cs`` (checksum = 8-bit sum shown as two hex digits,
  responses to the device's ICC, NOP and identification request, NAK for a corrupt frame, CP1
  parsing by 6-character items) and ``Class2.cs`` (codes missing from the OpenICE map: relative
  leak 0xB3, VTmand/VTimand, and codepage 2 VTe 0x21 / VTi 0x22);
- PROTOCOLS.md §4 (worked command bytes, serial settings per device).

What the sources leave open, and what this parser does about it: whether codepage-1 code 0x88
"TidalVolume" is inspiratory or expiratory is not stated; it is reported as VTE with source
"TidalVolume" because Dräger ventilators measure volume on the expiratory side (not verified).
Units are not given for 0xD6 (RR), 0xB8 (minute volume) and 0xB3 (leak): breaths/min, L/min and %
are assumed from the codes' names. What a device sends for a parameter it cannot measure is not
stated either: a value field that is blank or dashes is "no value"; any other non-number is
"malformed"; both give value None. The NOP keep-alive goes out when no other command has been sent
for ``keepalive_s``; at the default one-second data poll that does not happen, the poll itself
keeps the link alive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from vitals.parser import LinkSettings, MonitorParser
from vitals.sample import Parameter, VitalSample

SOH: Final = 0x01
ESC: Final = 0x1B
CR: Final = 0x0D
DC1: Final = 0x11
DC3: Final = 0x13

# Commands (command.map).
CORRUPT: Final = 0x15
REQ_MEASURED_CP1: Final = 0x24
REQ_DATE_TIME: Final = 0x28
REQ_MEASURED_CP2: Final = 0x2B
NOP: Final = 0x30
TIME_CHANGED: Final = 0x49
ICC: Final = 0x51
REQ_DEVICE_ID: Final = 0x52
STOP_COMM: Final = 0x55

ITEM_LEN: Final = 6  # 2 hex digits of code + 4 characters of value
DEFAULT_MAX_FRAME: Final = 2048  # OpenICE keeps 8000; a CP1 reply of every code is ~400
#: What we say when the device asks who we are: id, 'name', revision padded to 11 (Medibus.java).
DEVICE_ID: Final = b"0161'NEOFLIX'" + b"01.00".ljust(11)

_DELIMITERS: Final = re.compile(rb"([\x01\x1b\r])")
_FLOW_CONTROL: Final = bytes((DC1, DC3))
_REALTIME: Final = bytes(range(0x80, 0x100))
_NUMBER: Final = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_NO_VALUE_BYTES: Final = frozenset(b"-.")
# Every spelling of two hex digits (either case) → its value: the checksum and the item codes
# are read with one dict lookup instead of a match and an int().
_HEX2: Final[Mapping[bytes, int]] = {
    bytes((high, low)): int(bytes((high, low)), 16)
    for high in b"0123456789ABCDEFabcdef"
    for low in b"0123456789ABCDEFabcdef"
}
# One measured-data item, a hex code and its value field (the group), or six bytes that are not
# an item (for which findall gives an empty group).
_ITEM: Final = re.compile(rb"([0-9A-Fa-f]{2}....)|......", re.DOTALL)


def checksum(data: bytes) -> bytes:
    """Two upper-case hex digits of the 8-bit sum of ``data`` (from ESC/SOH on)."""
    return b"%02X" % (sum(data) & 0xFF)


def command(cmd: int, arguments: bytes = b"") -> bytes:
    """A command frame as it goes on the wire."""
    head = bytes((ESC, cmd)) + arguments
    return head + checksum(head) + b"\r"


def response(cmd: int, data: bytes = b"") -> bytes:
    """A response frame echoing ``cmd``."""
    head = bytes((SOH, cmd)) + data
    return head + checksum(head) + b"\r"


@dataclass(frozen=True, slots=True)
class Code:
    """What a measured-data code means to us."""

    name: str  # the code's name in the public maps; goes out as the sample's source
    parameter: Parameter
    unit: str
    low: float
    high: float
    rank: int = 0  # among codes for one parameter in one reply, the lowest rank is kept


# Airway pressures stay in mbar, the unit the ventilator displays (1 mbar = 1.02 cmH2O), so the
# overlay shows the number the team read on the ventilator.
_AIRWAY: Final = (-20.0, 150.0)
#: Codepage 1 (measured-data-cp1.map, VSCaptureDrgVent MeasurementCP1).
CP1_CODES: Final[Mapping[int, Code]] = {
    0xF0: Code("InspO2", Parameter.FIO2, "%", 0, 100),
    0xEF: Code("ExpO2", Parameter.ETO2, "%", 0, 100),
    0x7D: Code("PeakBreathingPressure", Parameter.PIP, "mbar", *_AIRWAY),
    0x78: Code("PEEPBreathingPressure", Parameter.PEEP, "mbar", *_AIRWAY),
    0x73: Code("MeanBreathingPressure", Parameter.MAP_AW, "mbar", *_AIRWAY),
    0xD6: Code("RespiratoryRate", Parameter.RR, "/min", 0, 200),  # unit not in the maps
    0x88: Code("TidalVolume", Parameter.VTE, "mL", 0, 3000),  # insp/exp not stated, see above
    0xB9: Code("RespiratoryMinuteVolumeFrac", Parameter.MV, "L/min", 0, 100),
    0xB8: Code("RespiratoryMinuteVolume", Parameter.MV, "L/min", 0, 100, rank=1),  # unit assumed
    0xB3: Code("LeakageRelPctleak", Parameter.LEAK, "%", 0, 100),  # VSCaptureDrgVent only
    0xEB: Code("OxygenSaturation", Parameter.SPO2, "%", 0, 100),
    0xE1: Code("PulseRateOximeter", Parameter.PR, "/min", 0, 350),
    0xE6: Code("EndTidalCO2mmHg", Parameter.ETCO2, "mmHg", 0, 150),
    0xE3: Code("EndTidalCO2kPa", Parameter.ETCO2, "kPa", 0, 20, rank=1),
    0xDB: Code("EndTidalCO2Percent", Parameter.ETCO2, "%", 0, 20, rank=2),
}
#: Codepage 2 (Medibus.X; VSCaptureDrgVent MeasurementCP2), requested only with ``codepage2``.
CP2_CODES: Final[Mapping[int, Code]] = {
    0x21: Code("VTe", Parameter.VTE, "mL", 0, 3000),
    0x22: Code("VTi", Parameter.VTI, "mL", 0, 3000),
}
_CODEPAGES: Final[Mapping[int, Mapping[int, Code]]] = {
    REQ_MEASURED_CP1: CP1_CODES,
    REQ_MEASURED_CP2: CP2_CODES,
}
# The same codepages keyed by every spelling of a code's two hex digits (either case), so a
# reply's items are looked up as they come, one dict lookup each, without int() first.
_CODEPAGES_BY_DIGITS: Final[Mapping[int, Mapping[bytes, Code]]] = {
    cmd: {digits: codes[code] for digits, code in _HEX2.items() if code in codes}
    for cmd, codes in _CODEPAGES.items()
}


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A 4-character value field read: ``value`` None unless ``status`` is "ok"."""

    value: float | None
    status: str  # "ok", "no_value" (blank or dashes) or "malformed"


def parse_value(raw: bytes) -> FieldValue:
    return FieldValue(*_read_value(raw))


def _read_value(raw: bytes) -> tuple[float | None, str]:
    """``parse_value`` as a plain tuple: (value, status)."""
    text = raw.strip(b" ")
    if _NUMBER.match(text):
        return float(text), "ok"
    if not text or set(text) <= _NO_VALUE_BYTES:
        return None, "no_value"
    return None, "malformed"


def parse_items(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(code, value field) pairs of a measured-data reply, and the count of bytes not understood
    (an item whose code is not two hex digits, a trailing partial item)."""
    items, ignored = _cut_items(data)
    return [(int(item[:2], 16), item[2:]) for item in items if item], ignored


def _cut_items(data: bytes) -> tuple[list[bytes], int]:
    """``parse_items`` with each item whole (code and value field), ``b""`` for a non-item.

    One findall cuts every item, rather than slicing and matching each one in Python: a reply is
    mostly items.
    """
    whole = len(data) - len(data) % ITEM_LEN
    items = _ITEM.findall(data, 0, whole)
    return items, len(data) - whole + ITEM_LEN * items.count(b"")


def measured_samples(
    codes: Mapping[int, Code], items: list[tuple[int, bytes]], host_ns: int, monitor: str
) -> list[VitalSample]:
    """One sample per known code, keeping for each parameter only the best-ranked code present."""
    known = [(spec, *_judge(spec, raw)) for code, raw in items if (spec := codes.get(code)) is not None]
    return _samples(_best_ranked(known), host_ns, monitor)


#: One item read: its code's meaning, then value, validity and flags as the sample carries them.
_Reading = tuple[Code, float | None, bool, frozenset[str]]

# Flags as shared constants: most samples carry none, and a frozenset per sample was measurable.
_NO_FLAGS: Final[frozenset[str]] = frozenset()
_STATUS_FLAGS: Final[Mapping[str, frozenset[str]]] = {
    "no_value": frozenset({"no_value"}),
    "malformed": frozenset({"malformed"}),
}
_OUT_OF_RANGE: Final = frozenset({"out_of_range"})


def _judge(spec: Code, raw: bytes) -> tuple[float | None, bool, frozenset[str]]:
    """Value, validity and flags of the value field ``raw`` of a ``spec`` item."""
    value, status = _read_value(raw)
    if status != "ok":
        return value, False, _STATUS_FLAGS[status]
    if value is not None and not spec.low <= value <= spec.high:
        return value, False, _OUT_OF_RANGE
    return value, True, _NO_FLAGS


# Cached: a ventilator sends a handful of values per code, the same six bytes reply after reply,
# so an item is read once (code looked up, value stripped, matched, converted, ranged) rather than
# in every reply; that was most of the cost of a reply. Bounded, since noise can bring any bytes.
@functools.lru_cache(maxsize=4096)
def _read_item(cmd: int, item: bytes) -> _Reading | None:
    """The item of a reply to ``cmd`` read; None when its code is not one we record."""
    spec = _CODEPAGES_BY_DIGITS[cmd].get(item[:2])
    return None if spec is None else (spec, *_judge(spec, item[2:]))


def _best_ranked(known: list[_Reading]) -> list[_Reading]:
    """The items to report, in reply order: per parameter, the first of the lowest rank."""
    if len({reading[0].parameter for reading in known}) == len(known):
        return known  # the usual reply: one code per parameter, nothing to choose
    best: dict[Parameter, int] = {}
    for spec, *_ in known:
        best[spec.parameter] = min(best.get(spec.parameter, spec.rank), spec.rank)
    chosen: list[_Reading] = []
    seen: set[Parameter] = set()
    for reading in known:
        spec = reading[0]
        if spec.rank == best[spec.parameter] and spec.parameter not in seen:
            seen.add(spec.parameter)
            chosen.append(reading)
    return chosen


# Builds a sample from a tuple of all ten fields, in order, as VitalSample._make does but without
# its Python frame and length check: calling VitalSample(...) runs a generated Python __new__ and
# took half as long again (three times as long with keywords); a reply is mostly samples.
_new_sample: Final = functools.partial(tuple.__new__, VitalSample)


def _samples(chosen: list[_Reading], host_ns: int, monitor: str) -> list[VitalSample]:
    # All ten fields in order (source is the code's name); see _new_sample.
    return [
        _new_sample(
            (spec.parameter, value, spec.unit, valid, host_ns, monitor, spec.name, flags, False, None)
        )
        for spec, value, valid, flags in chosen
    ]


class _Frame:
    """A frame being received: its start byte, body so far, first-byte arrival."""

    __slots__ = ("body", "host_ns", "kind", "overflow")

    def __init__(self, kind: int, host_ns: int) -> None:
        self.kind = kind
        self.body = bytearray()
        self.host_ns = host_ns
        self.overflow = False


@dataclass(slots=True)
class _Outstanding:
    cmd: int
    sent_ns: int | None  # None: sent as the greeting, timed from the first poll


class MedibusParser(MonitorParser):
    """Incremental Medibus host: parses frames, answers the device, polls measured data.

    Conversation, all driven by ``poll(now_ns)``: ICC until the device answers it; then a
    codepage-1 request every ``poll_interval_s`` (and codepage 2 after it with ``codepage2``), one
    command outstanding at a time, a command unanswered for ``reply_timeout_s`` given up; a NOP
    when nothing else was sent for ``keepalive_s``; back to ICC when the device has answered
    nothing for ``reinit_after_s``, the way back after a device restart or a stalled link. Responses
    to the device's own commands are queued by ``feed`` and handed out by the next ``poll``.

    Samples carry the arrival time of their frame's first byte.
    """

    protocol: ClassVar[str] = "medibus"
    # 9600 8E1 (the Apollo, per the OpenICE demo adapter). Other devices differ and configuration
    # overrides baud rate and parity: Evita 4 19200 8E1; Evita XL and V500 19200 8N1, one V500
    # seen at 38400 (OpenICE demo adapters); VSCaptureDrgVent defaults to 19200 8E1. XON/XOFF
    # bytes are dropped by the parser, so the port does no software flow control.
    link_settings: ClassVar[LinkSettings] = LinkSettings(baudrate=9600, parity="E")

    def __init__(
        self,
        monitor: str,
        *,
        poll_interval_s: float = 1.0,
        keepalive_s: float = 2.0,
        reply_timeout_s: float = 2.0,
        reinit_after_s: float = 5.0,
        codepage2: bool = False,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        super().__init__(monitor)
        self._poll_ns = int(poll_interval_s * 1e9)
        self._keepalive_ns = int(keepalive_s * 1e9)
        self._timeout_ns = int(reply_timeout_s * 1e9)
        self._reinit_ns = int(reinit_after_s * 1e9)
        self.codepage2 = codepage2
        self.max_frame = max_frame
        #: Conversation counters, for health reporting and tests.
        self.commands_sent = 0
        self.replies_missed = 0
        self.device_commands = 0
        self.reinits = 0
        self._open: list[_Frame] = []  # a device command may be nested in a response: depth ≤ 2
        self._replies = bytearray()
        self._initialised = False
        self._outstanding: _Outstanding | None = None
        self._due: list[int] = []
        self._next_poll_ns: int | None = None
        self._last_sent_ns: int | None = None
        self._last_answer_ns: int | None = None

    # -- conversation ----------------------------------------------------------------------------

    def reset(self) -> None:
        for open_frame in self._open:
            self.stats.garbage_bytes += 1 + len(open_frame.body)
        self._open.clear()
        self._replies.clear()
        self._initialised = False
        self._outstanding = None
        self._due.clear()
        self._next_poll_ns = None
        self._last_sent_ns = None
        self._last_answer_ns = None

    def greeting(self) -> bytes:
        self._outstanding = _Outstanding(ICC, None)
        self.commands_sent += 1
        return command(ICC)

    def poll(self, now_ns: int) -> bytes:
        out = bytes(self._replies)
        self._replies.clear()
        pending = self._outstanding
        if pending is not None and pending.sent_ns is None:
            pending.sent_ns = now_ns
            self._last_sent_ns = now_ns
        if self._last_answer_ns is None:
            self._last_answer_ns = now_ns
        if pending is not None and pending.sent_ns is not None:
            if now_ns - pending.sent_ns < self._timeout_ns:
                return out
            self._outstanding = None
            self.replies_missed += 1
        if self._initialised and now_ns - self._last_answer_ns >= self._reinit_ns:
            self._initialised = False
            self.reinits += 1
            self._due.clear()
        cmd = self._next_command(now_ns)
        if cmd is not None:
            self._outstanding = _Outstanding(cmd, now_ns)
            self._last_sent_ns = now_ns
            self.commands_sent += 1
            out += command(cmd)
        return out

    def _next_command(self, now_ns: int) -> int | None:
        if not self._initialised:
            return ICC
        if self._next_poll_ns is None or now_ns >= self._next_poll_ns:
            # Deadlines on a fixed grid, so the cadence does not drift with reply latency.
            base = now_ns if self._next_poll_ns is None else self._next_poll_ns
            self._next_poll_ns = max(base + self._poll_ns, now_ns)
            self._due = [REQ_MEASURED_CP1, REQ_MEASURED_CP2] if self.codepage2 else [REQ_MEASURED_CP1]
        if self._due:
            return self._due.pop(0)
        if self._last_sent_ns is None or now_ns - self._last_sent_ns >= self._keepalive_ns:
            return NOP
        return None

    # -- bytes -----------------------------------------------------------------------------------

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        try:
            return self._feed(bytes(data), host_ns)
        except Exception:
            # Unreachable by design; the contract is never to raise into the reader thread.
            self.stats.records_bad += 1
            self._open.clear()
            return []

    def _feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        self.stats.bytes_in += len(data)
        # XON/XOFF are the device's flow control, not noise: dropped without counting. Realtime
        # bytes are data we never configured: dropped and counted.
        text = data.translate(None, _FLOW_CONTROL)
        slow = text.translate(None, _REALTIME)
        self.stats.garbage_bytes += len(text) - len(slow)
        samples: list[VitalSample] = []
        # split() with the delimiter captured: text, delimiter, text, ..., text. Cheaper than a
        # match object and two slices per delimiter, and the text between frames is usually empty.
        parts = _DELIMITERS.split(slow)
        if parts[0]:
            self._text(parts[0])
        i = 1  # parts[i] is a delimiter, parts[i + 1] the text after it
        while i < len(parts):
            if (
                parts[i] != b"\r"
                and not self._open
                and i + 2 < len(parts)
                and parts[i + 2] == b"\r"
                and len(parts[i + 1]) <= self.max_frame
            ):
                # A whole frame in this chunk with nothing open, as nearly every frame arrives:
                # what _delimiter and _text would do with it, without building a _Frame.
                self._complete(parts[i][0], parts[i + 1], host_ns, samples)
                i += 2  # on to its CR, which the frame has used up, and the text after it
            else:
                self._delimiter(parts[i][0], host_ns, samples)
            if parts[i + 1]:
                self._text(parts[i + 1])
            i += 2
        return samples

    def _text(self, piece: bytes) -> None:
        if not piece:
            return
        if not self._open:
            self.stats.garbage_bytes += len(piece)
            return
        top = self._open[-1]
        if top.overflow:
            self.stats.garbage_bytes += len(piece)
            return
        top.body += piece
        if len(top.body) > self.max_frame:
            self.stats.garbage_bytes += 1 + len(top.body)
            top.body.clear()
            top.overflow = True

    def _drop(self, dropped: _Frame) -> None:
        """A frame that never got its CR (its start byte came again): bad, and its bytes garbage."""
        self.stats.records_bad += 1
        if not dropped.overflow:
            self.stats.garbage_bytes += 1 + len(dropped.body)

    def _delimiter(self, byte: int, host_ns: int, out: list[VitalSample]) -> None:
        if byte == SOH:
            # A response nests nothing and is nested in nothing: whatever is open was cut off.
            while self._open:
                self._drop(self._open.pop())
            self._open.append(_Frame(SOH, host_ns))
        elif byte == ESC:
            if self._open and self._open[-1].kind == ESC:
                self._drop(self._open.pop())
            self._open.append(_Frame(ESC, host_ns))
        elif not self._open:
            self.stats.garbage_bytes += 1  # a CR with nothing open
        else:
            done = self._open.pop()
            if done.overflow:
                self.stats.records_bad += 1
            else:
                self._complete(done.kind, bytes(done.body), done.host_ns, out)

    def _complete(self, kind: int, body: bytes, host_ns: int, out: list[VitalSample]) -> None:
        """A frame got its CR: ``kind`` is its start byte, ``body`` what came between."""
        payload, cs = body[:-2], _HEX2.get(body[-2:])
        if not payload or cs != (kind + sum(payload)) & 0xFF:
            self.stats.records_bad += 1
            self.stats.garbage_bytes += 1 + len(body)
            if kind == ESC:
                self._replies += response(CORRUPT)  # a NAK, as VSCaptureDrgVent answers
            return
        self.stats.records_ok += 1
        cmd, data = payload[0], payload[1:]
        if kind == ESC:
            self._device_command(cmd)
        else:
            self._response(cmd, data, host_ns, out)

    def _device_command(self, cmd: int) -> None:
        self.device_commands += 1
        if cmd == REQ_DEVICE_ID:
            self._replies += response(cmd, DEVICE_ID)
            return
        # ICC, NOP, stop, time changed and the rest: an echo, as Medibus.java answers them.
        self._replies += response(cmd)
        if cmd in (ICC, STOP_COMM):
            # The device (re)started its side of the session or ended it: a device that restarted
            # may have forgotten ours too, so initialise again; it costs one ICC exchange.
            self._initialised = False

    def _response(self, cmd: int, data: bytes, host_ns: int, out: list[VitalSample]) -> None:
        self._last_answer_ns = host_ns
        pending = self._outstanding
        if pending is not None and pending.cmd == cmd:
            self._outstanding = None
        if cmd == ICC:
            if not self._initialised:
                self._initialised = True
                self._next_poll_ns = None  # first data request at once
            return
        if cmd not in _CODEPAGES_BY_DIGITS:
            return
        items, ignored = _cut_items(data)
        self.stats.garbage_bytes += ignored
        known = [reading for item in items if item and (reading := _read_item(cmd, item)) is not None]
        out += _samples(_best_ranked(known), host_ns, self.monitor)
