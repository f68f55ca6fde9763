"""Masimo "ASCII 1" serial output (Radical-7, Radical-5, Rad-8, Rad-87, Root) → VitalSamples.

The oximeter streams one text line per second, unasked::

    02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% ... ALARM=0000 EXC=000800

Field sets, widths and even the ``%`` suffix differ between models and firmware, so a line is
read by ``KEY=VALUE`` and never by position. Fields filled with dashes (``---%``, ``--.--%``,
``+--``) mean "no value" and never become numbers. ``EXC`` (exception) bits say when the monitor
itself does not trust its reading; ``ALARM`` bits say which limit is violated.

Bit meanings follow the ``alarmmessage()``/``exceptionmessage()`` tables of the MD PnP
``poxrad_discrete.h`` (Radical-5/7) and the Rad-8 manual quoted in ``nmenon/masimo-datacapture``;
neither was checked against a device. Where a bit's clinical effect is not documented the parser
is conservative, as commented at ``_EXC_INVALIDATING``. No public source gives the bits of
``EXC1`` (newer Radical-7 firmware) or Root's ``EXC2``/``ACSEXC``; they are kept in the record but
not interpreted. Root's module blocks (capnography, NIBP, temperature) become samples of their own
source; their ``capnoEXC``/``nibpEXC``/``tempEXC`` words are likewise kept but not interpreted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from vitals.parser import LinkSettings, MonitorParser
from vitals.sample import Parameter, VitalSample

# A line must open with "MM/DD/YY HH:MM:SS" followed by a blank or the end. This is what drops
# the partial first line after a port opens: a line whose beginning was missed cannot start
# with a whole timestamp. Matched on the latin-1 decoded line (one character per byte), which
# the fields are read from too, so a line is decoded once.
_HEADER: Final = re.compile(
    r"[ \t]*([0-9]{2})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?=[ \t]|\Z)"
)
# One whitespace-separated token of the decoded line: KEY=VALUE (groups 1 and 2, VALUE being
# everything after the first "=") or anything else (group 3), which is not a field. Root adds
# mixed-case keys (sysALARM, capnoEtCO2), so keys are not upper-case only. The separators are
# exactly those ``bytes.split()`` uses; ``str.split()`` would also split on latin-1 characters
# such as NBSP. One ``findall`` over the line replaces a split, a partition, two decodes and a key
# match per token, which were most of the cost of reading a line.
_TOKEN: Final = re.compile(r"([A-Za-z][A-Za-z0-9]*)=([^ \t\n\r\x0b\x0c]*)|([^ \t\n\r\x0b\x0c]+)", re.ASCII)
# A number with an optional "%" suffix (group 1: the number), so a value is read with one match.
_NUMBER: Final = re.compile(r"([+-]?[0-9]+(?:\.[0-9]+)?)%?\Z", re.ASCII)
_HEX: Final = re.compile(r"[0-9A-Fa-f]{1,8}\Z", re.ASCII)
_NO_VALUE_CHARS: Final = frozenset("-+.")

#: Default cap on one line. A Radical-7 line is ~150 bytes; Root lines with capnography, NIBP
#: and temperature blocks approach 1 KiB, hence twice that.
DEFAULT_MAX_LINE: Final = 2048


@dataclass(frozen=True, slots=True)
class _Field:
    parameter: Parameter
    unit: str
    low: float
    high: float
    # What measured it. The pleth's own fields follow the oximeter's EXC and ALARM words; a
    # Root module's (capnography, NIBP, temperature) do not, since those words describe the
    # pulse-oximetry sensor and say nothing about a CO2 line or a cuff.
    source: str = "pleth"


# Keys we turn into samples, in emission order. Ranges are the devices' display ranges; a value
# outside is a corrupted line, not physiology: SpO2 0–100 %, pulse rate 0–350 /min, and Masimo's
# specified display ranges PI 0–20 % and SpHb 0–25 g/dL.
#
# BPM is the pulse rate from the pleth. It is emitted as Parameter.HR with source "pleth" (not
# Parameter.PR) because at a resuscitation table it is the heart rate the team reads and the
# overlay's HR slot must show it; ``source`` keeps it distinguishable from an ECG heart rate,
# which matters because pleth rates under-read in newborns.
_FIELDS: Final[Mapping[str, _Field]] = {
    "SPO2": _Field(Parameter.SPO2, "%", 0, 100),
    "BPM": _Field(Parameter.HR, "/min", 0, 350),
    "PI": _Field(Parameter.PI, "%", 0, 20),
    "SPCO": _Field(Parameter.SPCO, "%", 0, 100),
    "SPMET": _Field(Parameter.SPMET, "%", 0, 100),
    "SPHB": _Field(Parameter.SPHB, "g/dL", 0, 25),
    "PVI": _Field(Parameter.PVI, "%", 0, 100),
    # Root's module blocks (key names from pymasimo's Root parser). No public source gives their
    # units; these are the Root's display defaults (etCO2 in mmHg, temperature in °C), to be
    # checked on the device. Ranges as for the same parameters from the other families.
    "capnoEtCO2": _Field(Parameter.ETCO2, "mmHg", 0, 150, "capnography"),
    "capnoRR": _Field(Parameter.RR, "/min", 0, 200, "capnography"),
    "nibpSYS": _Field(Parameter.NBP_SYS, "mmHg", 0, 300, "NIBP"),
    "nibpDIA": _Field(Parameter.NBP_DIA, "mmHg", 0, 300, "NIBP"),
    "nibpMAP": _Field(Parameter.NBP_MEAN, "mmHg", 0, 300, "NIBP"),
    "tempParam": _Field(Parameter.TEMP, "°C", 0, 50, "temperature"),
}
_PLETH: Final = "pleth"

# EXC bit → flag name. 0x000800 ("Masimo SET": the algorithm runs in full SET mode) is the
# normal state of a good signal, so it is decoded but never reported as a flag.
EXC_BITS: Final[Mapping[int, str]] = {
    0x000001: "no_sensor",
    0x000002: "defective_sensor",
    0x000004: "low_perfusion",
    0x000008: "pulse_search",
    0x000010: "interference",
    0x000020: "sensor_off",
    0x000040: "ambient_light",
    0x000080: "unrecognized_sensor",
    0x000100: "incompatible_sensor",
    0x000400: "low_signal_iq",
    0x000800: "masimo_set",
    0x001000: "no_cable",
    0x002000: "cable_life_expired",
    0x004000: "incompatible_cable",
    0x008000: "unrecognized_cable",
    0x010000: "defective_cable",
    0x020000: "sensor_calibrating",
    0x040000: "sensor_life_expired",
    0x080000: "emitter_temp_out_of_range",
    0x100000: "sensor_current_limit",
    0x200000: "spco_low_confidence",
    0x400000: "spmet_low_confidence",
}
_EXC_NORMAL: Final = 0x000800

# Bits that make every pleth-derived reading invalid. No, defective or unrecognised sensor,
# sensor off the patient and pulse search mean there is no pleth to measure from, whatever number
# the line still carries. The others here (incompatible sensor, cable faults, calibrating, sensor
# life expired, emitter temperature, current limit) are documented only by name, not by whether
# the numbers stay meaningful; we invalidate them to be safe, since on a review video a blank is
# better than a wrong number. Signal-quality warnings (low perfusion, interference, ambient light,
# low signal IQ) and "cable life expired" keep the value valid and are reported as flags only.
_EXC_INVALIDATING: Final = frozenset(
    {
        "no_sensor",
        "defective_sensor",
        "pulse_search",
        "sensor_off",
        "unrecognized_sensor",
        "incompatible_sensor",
        "no_cable",
        "incompatible_cable",
        "unrecognized_cable",
        "defective_cable",
        "sensor_calibrating",
        "sensor_life_expired",
        "emitter_temp_out_of_range",
        "sensor_current_limit",
    }
)
_EXC_INVALIDATES: Final = sum(bit for bit, name in EXC_BITS.items() if name in _EXC_INVALIDATING)
# Low-confidence bits that invalidate one rainbow parameter only.
_EXC_INVALIDATES_ONE: Final[Mapping[int, Parameter]] = {
    0x200000: Parameter.SPCO,
    0x400000: Parameter.SPMET,
}

# ALARM bit → (flag name, parameter it concerns, or None for the whole device).
ALARM_BITS: Final[Mapping[int, tuple[str, Parameter | None]]] = {
    0x0001: ("spo2_high", Parameter.SPO2),
    0x0002: ("spo2_low", Parameter.SPO2),
    0x0004: ("pr_high", Parameter.HR),
    0x0008: ("pr_low", Parameter.HR),
    0x0010: ("alarm_active", None),
    0x0020: ("alarm_silenced", None),
    0x0040: ("low_battery", None),
    0x0100: ("spco_high", Parameter.SPCO),
    0x0200: ("spco_low", Parameter.SPCO),
    0x0400: ("spmet_high", Parameter.SPMET),
    0x0800: ("spmet_low", Parameter.SPMET),
    0x1000: ("desat_index", Parameter.SPO2),
    0x2000: ("pi_delta", Parameter.PI),
}


@dataclass(frozen=True, slots=True)
class FieldValue:
    """One field's value as read: ``value`` is None unless ``status`` is "ok"."""

    value: float | None
    status: str  # "ok", "no_value" (dashes) or "malformed"


def parse_value(raw: str) -> FieldValue:
    """Read a numeric field: ``098%``, ``03.60``, ``-02``; dashes (``+--``, ``--.-%``) → no value.

    The no-value test looks at every character, not the first, because signed fields such as
    PIDELTA carry a sign before their dashes.
    """
    return FieldValue(*_read_value(raw))


# Cached: a field holds one of a few thousand strings ("098%", "--.-%"), the same ones line after
# line. Bounded, since noise can bring any text.
@functools.lru_cache(maxsize=4096)
def _read_value(raw: str) -> tuple[float | None, str]:
    """``parse_value`` as a plain tuple: the per-sample path builds no FieldValue."""
    m = _NUMBER.match(raw)
    if m is not None:
        return float(m.group(1)), "ok"
    text = raw[:-1] if raw.endswith("%") else raw
    if text and "-" in text and set(text) <= _NO_VALUE_CHARS:
        return None, "no_value"
    return None, "malformed"


def parse_hex(raw: str | None) -> int | None:
    """A hex bitfield (``ALARM``, ``EXC``), any of the 2–8 digit widths models use."""
    if raw is None or not _HEX.match(raw):
        return None
    return int(raw, 16)


def decode_exc(exc: int) -> frozenset[str]:
    """Names of the exception bits set in ``exc``; unknown bits as ``exc_0x...``."""
    names = {name for bit, name in EXC_BITS.items() if exc & bit}
    unknown = exc & ~sum(EXC_BITS)
    names.update(f"exc_0x{1 << i:06x}" for i in range(unknown.bit_length()) if unknown >> i & 1)
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class MasimoRecord:
    """One understood ASCII 1 line: the monitor's timestamp and its raw ``KEY=VALUE`` fields."""

    monitor_time: datetime
    fields: Mapping[str, str]
    ignored_bytes: int = 0  # tokens in the line that were not KEY=VALUE

    def value(self, key: str) -> FieldValue | None:
        raw = self.fields.get(key)
        return None if raw is None else parse_value(raw)


def parse_line(line: bytes) -> MasimoRecord | None:
    """Parse one line without its terminator; None when it is not an ASCII 1 record.

    Rejected: no leading timestamp, an impossible date, no fields at all, or a key that occurs
    twice (two lines glued together because a line end was lost on the wire).
    """
    # Decoded once; latin-1 keeps one character per byte, so lengths are byte counts.
    text = line.decode("latin-1")
    m = _HEADER.match(text)
    if m is None:
        return None
    month, day, year, hour, minute, second = map(int, m.groups())
    try:
        # Two-digit years: these devices postdate 2000 and print their clock as set.
        stamp = datetime(2000 + year, month, day, hour, minute, second)
    except ValueError:
        return None
    fields: dict[str, str] = {}
    ignored = 0
    for key, value, other in _TOKEN.findall(text, m.end()):
        if other:
            ignored += len(other)
            continue
        if key in fields:
            return None
        fields[key] = value
    if not fields:
        return None
    return MasimoRecord(stamp, fields, ignored)


_OUT_OF_RANGE: Final = frozenset({"out_of_range"})
_NO_FLAGS: Final[frozenset[str]] = frozenset()


def record_samples(record: MasimoRecord, host_ns: int, monitor: str) -> list[VitalSample]:
    """The samples one record carries, validity and flags decided from values, EXC and ALARM."""
    fields = record.fields
    stamp = record.monitor_time
    state = _field_states(fields.get("EXC"), fields.get("ALARM"))
    samples: list[VitalSample] = []
    for key, spec in _FIELDS.items():
        raw = fields.get(key)
        if raw is None:
            continue
        flags, valid, limit_alarm = state[key]
        value, status = _read_value(raw)
        if status != "ok":
            flags = flags | {status}
            valid = False
        elif value is not None and not spec.low <= value <= spec.high:
            flags = flags | _OUT_OF_RANGE
            valid = False
        # All ten fields in order; see _new_sample. A value the monitor dashed, or one we could
        # not read, is never a number; an out-of-range one is kept for the record but invalid.
        samples.append(
            _new_sample(
                (
                    spec.parameter,
                    value,
                    spec.unit,
                    valid,
                    host_ns,
                    monitor,
                    spec.source,
                    flags,
                    limit_alarm,
                    stamp,
                )
            )
        )
    return samples


# Builds a sample from a tuple of all ten fields, in order, as VitalSample._make does but without
# its Python frame and length check: calling VitalSample(...) with keywords runs a generated
# Python __new__ and took a fifth of the time of a line.
_new_sample: Final = functools.partial(tuple.__new__, VitalSample)


# Cached because a monitor repeats the same EXC and ALARM words line after line: working out their
# flags for every line and field took about a third of a line's time. Bounded, since a noisy line
# can carry any text there.
@functools.lru_cache(maxsize=256)
def _field_states(
    exc_raw: str | None, alarm_raw: str | None
) -> Mapping[str, tuple[frozenset[str], bool, bool]]:
    """Per key of ``_FIELDS``: the flags, validity and limit alarm that EXC and ALARM give it.

    The returned mapping is shared between calls and must not be changed.
    """
    exc = parse_hex(exc_raw)
    alarm = parse_hex(alarm_raw)
    common_flags: set[str] = set()
    common_invalid = False
    if exc is not None:
        common_invalid = bool(exc & _EXC_INVALIDATES)
        common_flags.update(decode_exc(exc & ~_EXC_NORMAL & ~sum(_EXC_INVALIDATES_ONE)))
    elif exc_raw is not None:
        # An unreadable EXC may hide "no sensor": trust nothing on this line.
        common_invalid = True
        common_flags.add("exc_unreadable")
    if alarm is not None:
        common_flags.update(n for bit, (n, p) in ALARM_BITS.items() if p is None and alarm & bit)
    elif alarm_raw is not None:
        common_flags.add("alarm_unreadable")

    states: dict[str, tuple[frozenset[str], bool, bool]] = {}
    for key, spec in _FIELDS.items():
        if spec.source != _PLETH:
            states[key] = (_NO_FLAGS, True, False)
            continue
        flags = set(common_flags)
        valid = not common_invalid
        if exc is not None:
            for bit, only in _EXC_INVALIDATES_ONE.items():
                if only is spec.parameter and exc & bit:
                    flags.add(EXC_BITS[bit])
                    valid = False
        limit_alarm = False
        if alarm is not None:
            for bit, (name, parameter) in ALARM_BITS.items():
                if parameter is spec.parameter and alarm & bit:
                    flags.add(name)
                    limit_alarm = True
        states[key] = (frozenset(flags), valid, limit_alarm)
    return states


class MasimoParser(MonitorParser):
    """Incremental ASCII 1 parser: complete CR/LF lines only, resyncs on the next good line.

    Each line's samples carry the arrival time of the line's first byte, the moment closest to
    when the monitor produced it (a 150-byte line takes ~160 ms at 9600 baud).
    """

    protocol: ClassVar[str] = "masimo"
    # Root sends at 19200 on its USB port; configuration overrides the baud rate for it.
    link_settings: ClassVar[LinkSettings] = LinkSettings(baudrate=9600)

    def __init__(self, monitor: str, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        super().__init__(monitor)
        self.max_line = max_line
        self._buf = bytearray()
        self._buf_ns = 0  # arrival of the first byte now in _buf
        self._discarding = False  # inside an overlong line: drop until its end

    def reset(self) -> None:
        self.stats.garbage_bytes += len(self._buf)
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        try:
            return self._feed(bytes(data), host_ns)
        except Exception:
            # Unreachable by design; the contract is never to raise into the reader thread.
            self.stats.records_bad += 1
            self.reset()
            return []

    def _feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        self.stats.bytes_in += len(data)
        # Masimo ends lines CR LF (one source says LF CR): either byte ends a line and the empty
        # line between them is skipped.
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        if cut < 0:
            self._buffer(data, host_ns)
            return []
        samples: list[VitalSample] = []
        lines = data[:cut].replace(b"\r", b"\n").split(b"\n")
        if self._discarding:
            self.stats.garbage_bytes += len(lines[0])
            self.stats.records_bad += 1
            self._discarding = False
        elif self._buf:
            self._buf += lines[0]
            self._line(bytes(self._buf), self._buf_ns, samples)
            self._buf.clear()
        else:
            self._line(lines[0], host_ns, samples)
        for line in lines[1:]:
            # Skipped here rather than in _line: every CR LF leaves an empty "line" between them.
            if line:
                self._line(line, host_ns, samples)
        self._buffer(data[cut + 1 :], host_ns)
        return samples

    def _buffer(self, part: bytes, host_ns: int) -> None:
        """Keep the unterminated tail; a tail longer than a line can be is noise."""
        if not part:
            return
        if self._discarding:
            self.stats.garbage_bytes += len(part)
            return
        if not self._buf:
            self._buf_ns = host_ns
        self._buf += part
        if len(self._buf) > self.max_line:
            self.stats.garbage_bytes += len(self._buf)
            self._buf.clear()
            self._discarding = True

    def _line(self, line: bytes, host_ns: int, out: list[VitalSample]) -> None:
        nuls = line.count(0)
        if nuls:
            # Radicals pad with NULs around port open; they are noise, not part of a record.
            self.stats.garbage_bytes += nuls
            line = line.replace(b"\0", b"")
        if not line.strip():
            self.stats.garbage_bytes += len(line)
            return
        record = parse_line(line) if len(line) <= self.max_line else None
        if record is None:
            self.stats.records_bad += 1
            self.stats.garbage_bytes += len(line)
            return
        self.stats.records_ok += 1
        self.stats.garbage_bytes += record.ignored_bytes
        out.extend(record_samples(record, host_ns, self.monitor))
