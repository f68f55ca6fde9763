"""GE Datex-Ohmeda S/5 and CARESCAPE "Computer Interface" (Datex Record Interface, DRI) → VitalSamples.

The monitor says nothing until the host asks. The host sends a physiological-database (PHDB)
transmission request for *displayed values* at an interval of at least 5 s; the monitor then sends
one record per interval. Every record, both ways, travels in a frame::

    7E | record (escaped) | checksum (escaped) | 7E

Inside a frame ``7E`` is sent as ``7D 5E`` and ``7D`` as ``7D 5D``; the checksum is the 8-bit sum of
the *unescaped* record bytes and is escaped like any other byte. A record is a 40-byte
little-endian header (length, DRI level, the monitor's Unix time, main type, eight subrecord
descriptors ended by type ``0xFF``) followed by subrecords. A displayed-values subrecord is a
``dri_phdb``: ``time u32 | 270-byte class block | marker u8 | reserved u8 | cl_drilvl_subt u16``,
where bits 8–9 of ``cl_drilvl_subt`` say which class block it holds (basic, ext1, ext2, ext3).
Each group in a class block opens with ``status u32 | label u16``; status bit 0 says the
measurement exists, bit 1 that it is active. Values are int16; anything below −32001 is a marker
(invalid, not updated, under/over range, ...) and never a number.

Sources (public, none checked against a monitor here; GE's *Datex-Ohmeda S/5 Computer Interface
Specification* is the authority):

- ``xeonfusion/VSCapture:VSCapture/Class1.cs`` (framing, receive checksum, ``RequestTransfer``,
  scaling in ``ShowBasicSubRecord``) and ``VSCapture/Class2.cs`` (header, request and class block
  structs, the invalid-value constants, request class bits, DRI levels up to 2005);
- ``xeonfusion/VSCaptureWave:ProgramS5.cs`` (interval forced to ≥ 5 s; the request sent at DRI
  levels 2015, 2009, 2005, 2003 and 2001 because a monitor ignores a request at a level it does not
  speak) and ``Class2.cs`` (levels 2009 = 0x0A, 2015 = 0x0B; the ext3 ``flow_vol_group2``);
- ``part-cw/LNhealth:modules/s5parser/s5.scm`` (escaping of the checksum byte, the raw 5 s request)
  and ``s5parser.scm`` (class from ``(cl_drilvl_subt >> 8) & 3``; only subrecord type 1 is read,
  because trend subrecords jump to averages; a group counts only when status bits 0 and 1 are both
  set; the ECG heart-rate source in status bits 3–6; pressure and temperature site labels; scales
  of ``pmean`` and the other ext3 airway fields);
- ``wei2374/monitor_serial:datex.h`` (status bit 0 = exists, bit 1 = active);
- PROTOCOLS.md §3 and §8 (offsets of the basic class, the worked request frame, pitfalls).

What this parser decides on its own, each for a stated reason: every ``7E`` is a frame boundary
(one lost byte then costs one frame, never a run of them); a record must be exactly as long as
its ``r_len`` says, because the 8-bit sum cannot see a lost 0x00 byte and most of a record is
zeros (neither working decoder checks ``r_len``, so a monitor that pads its records would show up
here first: not verified on hardware); a group that does not exist yields no samples while an
existing but inactive one yields invalid samples; etCO2/FiCO2 go out in mmHg (``value × ambient
pressure × 1e-5``, in float as §8 warns) when the ambient pressure is valid and in % of ambient
otherwise. The link's silence timeout should exceed the re-request time (2 × interval, 10 s by
default), or a reconnect comes before the re-request can help. The first request goes out at every
DRI level, since a monitor ignores one at a level it does not speak; once a displayed-values
record has come, re-requests go out only at the level it came at.

The monitor's clock (``r_time``) is ambiguous: it is seconds since 1970, but no public source says
whether the monitor counts them from UTC or from its own wall clock (VSCapture adds them to
1970-01-01 with no zone shift, which is right only for the latter). ``monitor_time`` is therefore
naive and may be off by the site's UTC offset; samples are placed by host arrival time, and the
per-monitor clock offset (monitor − host) absorbs a constant shift, so only a change of zone
(daylight saving) shows, as a logged drift.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Final

from vitals.parser import LinkSettings, MonitorParser
from vitals.sample import Parameter, VitalSample

FRAME: Final = 0x7E
ESC: Final = 0x7D
_FRAME_B: Final = b"\x7e"
_ESC_B: Final = b"\x7d"
_ESCAPED_FRAME: Final = b"\x7d\x5e"
_ESCAPED_ESC: Final = b"\x7d\x5d"

HEADER_LEN: Final = 40
MAX_RECORD_LEN: Final = 1490  # 40-byte header + 1450 data bytes (datex_record_type)
# An escaped frame body can at most double, plus its escaped checksum.
MAX_SEGMENT_LEN: Final = 2 * (MAX_RECORD_LEN + 1)

# Main types (r_maintype) and PHDB subrecord types.
DRI_MT_PHDB: Final = 0
DRI_MT_WAVE: Final = 1
DRI_MT_ALARM: Final = 4
DRI_PH_DISPL: Final = 1
DRI_PH_10S_TREND: Final = 2
DRI_PH_60S_TREND: Final = 3
DRI_EOL_SUBR_LIST: Final = 0xFF
MAX_SUBRECORDS: Final = 8

# Request class bits: basic is sent unless denied; the others must be asked for.
DRI_PHDBCL_DENY_BASIC: Final = 0x0001
DRI_PHDBCL_REQ_EXT1: Final = 0x0002
DRI_PHDBCL_REQ_EXT2: Final = 0x0004
DRI_PHDBCL_REQ_EXT3: Final = 0x0008
#: What VSCapture and LNhealth ask for (basic + ext1–3); ext3 carries the mean airway pressure.
DEFAULT_CLASSES: Final = DRI_PHDBCL_REQ_EXT1 | DRI_PHDBCL_REQ_EXT2 | DRI_PHDBCL_REQ_EXT3

# Class of a dri_phdb subrecord, from bits 8–9 of cl_drilvl_subt.
CLASS_BASIC: Final = 0
CLASS_EXT1: Final = 1
CLASS_EXT2: Final = 2
CLASS_EXT3: Final = 3

DRI_LEVEL_2001: Final = 0x07
DRI_LEVEL_2003: Final = 0x08
DRI_LEVEL_2005: Final = 0x09
DRI_LEVEL_2009: Final = 0x0A
DRI_LEVEL_2015: Final = 0x0B
#: Levels the transmission request is sent at, newest first, as VSCaptureWave does.
REQUEST_LEVELS: Final = (DRI_LEVEL_2015, DRI_LEVEL_2009, DRI_LEVEL_2005, DRI_LEVEL_2003, DRI_LEVEL_2001)

#: The monitor refuses, or VSCaptureWave never asks for, displayed values faster than every 5 s.
MIN_INTERVAL_S: Final = 5

PHDB_SUBRECORD_LEN: Final = 278  # time 4 + class block 270 + marker 1 + reserved 1 + cl_drilvl_subt 2
CLASS_BLOCK_OFFSET: Final = 4
CLASS_BLOCK_LEN: Final = 270
_CLASS_WORD_OFFSET: Final = 276

# Values below this are markers, not data (DATA_INVALID_LIMIT).
DATA_INVALID_LIMIT: Final = -32001
#: Marker value → flag name (DataConstants in VSCapture Class2.cs).
MARKERS: Final[Mapping[int, str]] = {
    -32767: "invalid",
    -32766: "not_updated",
    -32765: "discontinuity",
    -32764: "under_range",
    -32763: "over_range",
    -32762: "not_calibrated",
}

_HEADER: Final = struct.Struct("<hBBHIBBHh")  # up to r_maintype; descriptors follow at 16
_DESCRIPTOR: Final = struct.Struct("<hB")
_I16: Final = struct.Struct("<h")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_REQUEST: Final = struct.Struct("<BhIh")  # phdb_rcrd_type, tx_interval, phdb_class_bf, reserved
_EPOCH: Final = datetime(1970, 1, 1)

# -- framing ------------------------------------------------------------------------------------


def checksum(record: bytes) -> int:
    """The 8-bit sum of the unescaped record bytes."""
    return sum(record) & 0xFF


def escape(data: bytes) -> bytes:
    # 7D first, or the 7D that escapes a 7E would be escaped again.
    return data.replace(_ESC_B, _ESCAPED_ESC).replace(_FRAME_B, _ESCAPED_FRAME)


def unescape(body: bytes) -> bytes | None:
    """Undo the escaping of a frame body; None when a 7D is not followed by 5E or 5D.

    7D 5E is replaced first: the second byte of an escape is never 7D, so a 7D left afterwards
    can only start a 7D 5D pair and no pair is read twice.
    """
    escapes = body.count(_ESC_B)
    if escapes == 0:
        return body
    if escapes != body.count(_ESCAPED_FRAME) + body.count(_ESCAPED_ESC):
        return None
    return body.replace(_ESCAPED_FRAME, _FRAME_B).replace(_ESCAPED_ESC, _ESC_B)


def frame(record: bytes) -> bytes:
    """One record as it travels: start flag, escaped record and checksum, end flag."""
    return _FRAME_B + escape(record + bytes((checksum(record),))) + _FRAME_B


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The 40-byte ``datex_hdr``; ``subrecords`` are (offset from byte 40, type) up to 0xFF."""

    r_len: int
    r_nbr: int
    dri_level: int
    plug_id: int
    r_time: int
    maintype: int
    subrecords: tuple[tuple[int, int], ...]

    @property
    def monitor_time(self) -> datetime | None:
        """The monitor's clock as VSCapture reads it (seconds since 1970, no zone); 0 = unset.

        Naive, and possibly local time rather than UTC: see the module docstring."""
        return _EPOCH + timedelta(seconds=self.r_time) if self.r_time else None


def parse_header(record: bytes) -> RecordHeader | None:
    if len(record) < HEADER_LEN:
        return None
    r_len, r_nbr, level, plug_id, r_time, _, _, _, maintype = _HEADER.unpack_from(record, 0)
    subrecords: list[tuple[int, int]] = []
    for i in range(MAX_SUBRECORDS):
        offset, sr_type = _DESCRIPTOR.unpack_from(record, 16 + 3 * i)
        if sr_type == DRI_EOL_SUBR_LIST:
            break
        subrecords.append((offset, sr_type))
    return RecordHeader(r_len, r_nbr, level, plug_id, r_time, maintype, tuple(subrecords))


def header_bytes(
    *,
    r_len: int,
    dri_level: int,
    maintype: int,
    subrecords: Iterable[tuple[int, int]],
    r_nbr: int = 0,
    plug_id: int = 0,
    r_time: int = 0,
) -> bytes:
    """A 40-byte header; descriptors after the given ones are the 0xFF end marker."""
    descriptors = list(subrecords)
    if len(descriptors) > MAX_SUBRECORDS:
        raise ValueError("at most 8 subrecords")
    if len(descriptors) < MAX_SUBRECORDS:
        descriptors.append((0, DRI_EOL_SUBR_LIST))
    body = b"".join(_DESCRIPTOR.pack(o, t) for o, t in descriptors)
    head = _HEADER.pack(r_len, r_nbr & 0xFF, dri_level, plug_id, r_time & 0xFFFFFFFF, 0, 0, 0, maintype)
    return (head + body).ljust(HEADER_LEN, b"\0")


def phdb_request(
    dri_level: int,
    interval_s: int,
    *,
    record_type: int = DRI_PH_DISPL,
    classes: int = DEFAULT_CLASSES,
) -> bytes:
    """An unframed PHDB transmission request (49 bytes), as VSCapture's ``RequestTransfer``.

    ``interval_s`` 0 stops the transmission and -1 asks for one record; a stop request carries no
    class bits, as in VSCapture.
    """
    head = header_bytes(r_len=49, dri_level=dri_level, maintype=DRI_MT_PHDB, subrecords=[(0, 0)])
    return head + _REQUEST.pack(record_type, interval_s, classes if interval_s else 0, 0)


def transmission_request(
    interval_s: int,
    *,
    levels: Iterable[int] = REQUEST_LEVELS,
    classes: int = DEFAULT_CLASSES,
) -> bytes:
    """The framed displayed-values request at each DRI level, ready for the wire."""
    return b"".join(frame(phdb_request(level, interval_s, classes=classes)) for level in levels)


# -- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    group: int  # offset of the group (its 6-byte header) in the class block
    offset: int  # offset of the int16 from the group start
    parameter: Parameter
    unit: str
    scale: float
    low: float
    high: float
    source: str = ""


# Invasive pressure and temperature site labels (label_info), LNhealth p_getname / t_getname.
_PRESSURE_LABELS: Final = ("", "ART", "CVP", "PA", "RAP", "RVP", "LAP", "ICP", "ABP",
                           "P1", "P2", "P3", "P4", "P5", "P6")  # fmt: skip
_TEMP_LABELS: Final = ("", "ESO", "NASO", "TYMP", "RECT", "BLAD", "AXIL", "SKIN", "AIRW", "ROOM",
                       "MYO", "T1", "T2", "T3", "T4", "CORE", "SURF")  # fmt: skip
# ECG heart-rate source, status bits 3–6 (LNhealth hr_getsource). 0 is not listed there; it is
# read as the field's nominal source, ECG, because older DRI levels may leave the bits clear.
_HR_SOURCES: Final[Mapping[int, str]] = {
    0: "ECG", 1: "ECG", 2: "P1", 3: "P2", 4: "P3", 5: "P4", 6: "pleth", 7: "P5", 8: "P6",
    10: "P7", 11: "P8", 12: "pleth",
}  # fmt: skip

_ECG: Final = 0
_PRESSURE_GROUPS: Final = (16, 30, 44, 58, 240, 254)  # p1–p4, then p5, p6 after svo2
_NIBP: Final = 72
_TEMP_GROUPS: Final = (86, 94, 102, 110)
_SPO2: Final = 118
_CO2: Final = 132
_O2: Final = 146
_FLOW_VOL: Final = 178
_FLOW_VOL2: Final = 14  # ext3, after the 14-byte gasex group
_AMB_PRESS_OFFSET: Final = 12  # in the co2 group, 0.1 mmHg

_HR_RANGE: Final = (0.0, 350.0)
_PRESSURE_RANGE: Final = (-50.0, 400.0)
_AIRWAY_RANGE: Final = (-20.0, 150.0)
_RR_RANGE: Final = (0.0, 200.0)
_PERCENT: Final = (0.0, 100.0)

_BASIC_FIELDS: Final[tuple[_Field, ...]] = (
    _Field(_ECG, 6, Parameter.HR, "/min", 1, *_HR_RANGE),
    _Field(_SPO2, 6, Parameter.SPO2, "%", 0.01, *_PERCENT, source="pleth"),
    _Field(_SPO2, 8, Parameter.PR, "/min", 1, *_HR_RANGE, source="pleth"),
    _Field(_NIBP, 6, Parameter.NBP_SYS, "mmHg", 0.01, 0, 400),
    _Field(_NIBP, 8, Parameter.NBP_DIA, "mmHg", 0.01, 0, 400),
    _Field(_NIBP, 10, Parameter.NBP_MEAN, "mmHg", 0.01, 0, 400),
    *(
        _Field(group, offset, parameter, "mmHg", 0.01, *_PRESSURE_RANGE)
        for group in _PRESSURE_GROUPS
        for offset, parameter in ((6, Parameter.IBP_SYS), (8, Parameter.IBP_DIA), (10, Parameter.IBP_MEAN))
    ),
    *(_Field(group, 6, Parameter.TEMP, "°C", 0.01, 0, 50) for group in _TEMP_GROUPS),
    # etCO2/FiCO2: % of ambient here; converted to mmHg where the ambient pressure is valid.
    _Field(_CO2, 6, Parameter.ETCO2, "%", 0.01, 0, 30, source="CO2"),
    _Field(_CO2, 8, Parameter.FICO2, "%", 0.01, 0, 30, source="CO2"),
    _Field(_CO2, 10, Parameter.RR, "/min", 1, *_RR_RANGE, source="CO2"),
    _Field(_O2, 6, Parameter.ETO2, "%", 0.01, *_PERCENT),
    _Field(_O2, 8, Parameter.FIO2, "%", 0.01, *_PERCENT),
    _Field(_FLOW_VOL, 6, Parameter.RR, "/min", 1, *_RR_RANGE, source="spirometry"),
    _Field(_FLOW_VOL, 8, Parameter.PIP, "cmH2O", 0.01, *_AIRWAY_RANGE, source="spirometry"),
    _Field(_FLOW_VOL, 10, Parameter.PEEP, "cmH2O", 0.01, *_AIRWAY_RANGE, source="spirometry"),
    _Field(_FLOW_VOL, 14, Parameter.VTI, "mL", 0.1, 0, 3000, source="spirometry"),
    _Field(_FLOW_VOL, 16, Parameter.VTE, "mL", 0.1, 0, 3000, source="spirometry"),
    _Field(_FLOW_VOL, 20, Parameter.MV, "L/min", 0.01, 0, 100, source="spirometry"),
)
_EXT3_FIELDS: Final[tuple[_Field, ...]] = (
    _Field(_FLOW_VOL2, 8, Parameter.MAP_AW, "cmH2O", 0.01, *_AIRWAY_RANGE, source="spirometry"),
)
_CLASS_FIELDS: Final[Mapping[int, tuple[_Field, ...]]] = {
    CLASS_BASIC: _BASIC_FIELDS,
    CLASS_EXT3: _EXT3_FIELDS,
}
_CO2_MMHG_RANGE: Final = (0.0, 150.0)

# Group status bits (datex.h phdb_status_bits).
STATUS_EXISTS: Final = 0x1
STATUS_ACTIVE: Final = 0x2


@dataclass(frozen=True, slots=True)
class RawValue:
    """An int16 field read as a number, or as the marker it is (``value`` None, ``marker`` named)."""

    value: float | None
    marker: str | None


def decode_value(raw: int, scale: float) -> RawValue:
    """Scale ``raw``; a value below −32001 is a marker and never a number."""
    return RawValue(*_decode_value(raw, scale))


def _decode_value(raw: int, scale: float) -> tuple[float | None, str | None]:
    """``decode_value`` as a plain (value, marker) pair: no RawValue built for every field."""
    if raw < DATA_INVALID_LIMIT:
        return None, MARKERS.get(raw, "invalid_marker")
    return float(raw * scale), None  # a float even where the scale is 1, as from every family


def _i16(block: bytes, offset: int) -> int:
    value: int = _I16.unpack_from(block, offset)[0]
    return value


def _label(labels: tuple[str, ...], index: int, fallback: str) -> str:
    return labels[index] if 0 < index < len(labels) else fallback


def _source(spec: _Field, block: bytes) -> str:
    """Where the value comes from: ECG HR's own source bits, or a pressure/temperature site."""
    if spec.group == _ECG and spec.parameter is Parameter.HR:
        code = _U32.unpack_from(block, _ECG)[0] >> 3 & 0xF
        return _HR_SOURCES.get(code, "unknown")
    if spec.group in _PRESSURE_GROUPS:
        channel = _PRESSURE_GROUPS.index(spec.group) + 1
        return _label(_PRESSURE_LABELS, _U16.unpack_from(block, spec.group + 4)[0], f"P{channel}")
    if spec.group in _TEMP_GROUPS:
        channel = _TEMP_GROUPS.index(spec.group) + 1
        return _label(_TEMP_LABELS, _U16.unpack_from(block, spec.group + 4)[0], f"T{channel}")
    return spec.source


def class_block_samples(
    class_id: int,
    block: bytes,
    *,
    host_ns: int,
    monitor: str,
    monitor_time: datetime | None,
) -> list[VitalSample]:
    """The samples one 270-byte class block carries (none for classes we do not read)."""
    fields = _CLASS_FIELDS.get(class_id, ())
    samples: list[VitalSample] = []
    status_cache: dict[int, int] = {}
    for spec in fields:
        status = status_cache.get(spec.group)
        if status is None:
            status = status_cache[spec.group] = _U32.unpack_from(block, spec.group)[0]
        if not status & STATUS_EXISTS:
            continue  # no such measurement on this monitor
        value, marker = _decode_value(_i16(block, spec.group + spec.offset), spec.scale)
        flags: set[str] = set()
        valid = True
        unit, low, high = spec.unit, spec.low, spec.high
        if marker is not None:
            flags.update(("no_value", marker))
            valid = False
        elif spec.group == _CO2 and spec.parameter is not Parameter.RR and value is not None:
            ambient = _i16(block, _CO2 + _AMB_PRESS_OFFSET)
            if ambient > 0:
                # % of ambient × ambient (0.1 mmHg) → mmHg; in float, an int16 product overflows.
                value = value * ambient * 0.001
                unit, (low, high) = "mmHg", _CO2_MMHG_RANGE
        if value is not None and not low <= value <= high:
            flags.add("out_of_range")
            valid = False
        if not status & STATUS_ACTIVE:
            flags.add("inactive")
            valid = False
        # All ten fields in order; see _new_sample. Most samples have no flags and share one set.
        samples.append(
            _new_sample(
                (
                    spec.parameter,
                    None if value is None else round(value, 6),
                    unit,
                    valid,
                    host_ns,
                    monitor,
                    _source(spec, block),  # source
                    frozenset(flags) if flags else _NO_FLAGS,
                    False,  # alarm
                    monitor_time,
                )
            )
        )
    return samples


_NO_FLAGS: Final[frozenset[str]] = frozenset()
# Builds a sample from a tuple of all ten fields, in order, as VitalSample._make does but without
# its Python frame and length check: calling VitalSample(...) with keywords runs a generated
# Python __new__ and was a measurable part of a class block's cost.
_new_sample: Final = functools.partial(tuple.__new__, VitalSample)


@dataclass(frozen=True, slots=True)
class PhdbSubrecord:
    """One displayed-values subrecord: its own time, class and 270-byte class block."""

    time: int
    class_id: int
    block: bytes


@dataclass(frozen=True, slots=True)
class DriRecord:
    """One accepted record: its header and the displayed-values subrecords it holds."""

    header: RecordHeader
    subrecords: tuple[PhdbSubrecord, ...]


def parse_record(record: bytes) -> DriRecord | None:
    """An unescaped, checksum-stripped record; None when its structure is impossible.

    Rejected: shorter than a header, a length other than ``r_len``, a negative or oversized main
    type (the known ones are 0–18), or a PHDB subrecord that does not fit in the record.
    Subrecords of other PHDB types (trends, the undocumented type 4) are skipped, as LNhealth does.
    """
    header = parse_header(record)
    if header is None or header.r_len != len(record) or not 0 <= header.maintype <= 0xFF:
        return None
    subrecords: list[PhdbSubrecord] = []
    if header.maintype == DRI_MT_PHDB:
        for offset, sr_type in header.subrecords:
            if sr_type != DRI_PH_DISPL:
                continue
            start = HEADER_LEN + offset
            if offset < 0 or start + PHDB_SUBRECORD_LEN > len(record):
                return None
            time = _U32.unpack_from(record, start)[0]
            class_id = _U16.unpack_from(record, start + _CLASS_WORD_OFFSET)[0] >> 8 & 0x3
            block = record[start + CLASS_BLOCK_OFFSET : start + CLASS_BLOCK_OFFSET + CLASS_BLOCK_LEN]
            subrecords.append(PhdbSubrecord(time, class_id, block))
    return DriRecord(header, tuple(subrecords))


def record_samples(record: DriRecord, host_ns: int, monitor: str) -> list[VitalSample]:
    samples: list[VitalSample] = []
    monitor_time = record.header.monitor_time
    for sub in record.subrecords:
        samples += class_block_samples(
            sub.class_id, sub.block, host_ns=host_ns, monitor=monitor, monitor_time=monitor_time
        )
    return samples


# -- parser -------------------------------------------------------------------------------------


class GeS5Parser(MonitorParser):
    """Incremental DRI parser that asks for displayed values and asks again when they stop.

    ``greeting()`` is the displayed-values request at every level in ``levels``. When no
    displayed-values record has arrived for ``resend_after_s`` (default twice the interval, so
    one late record is tolerated), ``poll()`` hands the link the request again: a monitor that
    was restarted, or whose interface was reset, forgets the request while the cable stays up,
    and the link's own silence timeout would otherwise be the only way back. The request is
    repeated at every level until a record has come, then only at the level of the monitor's
    records (``answered_level``); a reconnect (``reset``) forgets it, since another monitor may
    now be at the end of the cable.

    Samples carry the arrival time of their frame's first byte.
    """

    protocol: ClassVar[str] = "ge_s5"
    # 19200 8E1 with RTS/CTS: VSCapture Class1.cs, LNhealth s5.scm, icu_devices ge_monitor.cpp.
    link_settings: ClassVar[LinkSettings] = LinkSettings(baudrate=19200, parity="E", rtscts=True)

    def __init__(
        self,
        monitor: str,
        *,
        interval_s: int = MIN_INTERVAL_S,
        levels: Iterable[int] = REQUEST_LEVELS,
        classes: int = DEFAULT_CLASSES,
        resend_after_s: float | None = None,
    ) -> None:
        super().__init__(monitor)
        self.interval_s = max(MIN_INTERVAL_S, int(interval_s))
        self.levels = tuple(levels)
        self.classes = classes
        self.request = transmission_request(self.interval_s, levels=self.levels, classes=classes)
        #: The DRI level of the monitor's displayed-values records; None until one has come.
        self.answered_level: int | None = None
        self._answered_request = b""
        resend = 2.0 * self.interval_s if resend_after_s is None else resend_after_s
        self._resend_after_ns = int(resend * 1e9)
        #: Transmission requests handed out by poll() (the greeting not counted).
        self.requests_resent = 0
        self._segment = bytearray()  # escaped bytes since the last 7E
        self._segment_ns = 0
        self._synced = False  # a 7E has been seen: the bytes after it are a frame body
        self._overflow = False  # the current segment outgrew any frame; dropping to the next 7E
        self._last_heard_ns: int | None = None

    def reset(self) -> None:
        self.stats.garbage_bytes += len(self._segment)
        self._segment.clear()
        self._synced = False
        self._overflow = False
        self._last_heard_ns = None
        self.answered_level = None
        self._answered_request = b""

    def greeting(self) -> bytes:
        return self.request

    def poll(self, now_ns: int) -> bytes:
        if self._last_heard_ns is None:
            # First poll after the greeting went out: the interval counts from here.
            self._last_heard_ns = now_ns
            return b""
        if now_ns - self._last_heard_ns < self._resend_after_ns:
            return b""
        self._last_heard_ns = now_ns
        self.requests_resent += 1
        return self._answered_request or self.request

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
        pieces = data.split(_FRAME_B)
        samples: list[VitalSample] = []
        # Every piece but the last ends at a 7E; the first continues the pending segment.
        for i, piece in enumerate(pieces):
            self._append(piece, host_ns)
            if i < len(pieces) - 1:
                self._end_segment(samples)
        return samples

    def _append(self, piece: bytes, host_ns: int) -> None:
        if not piece:
            return
        if self._overflow:
            self.stats.garbage_bytes += len(piece)
            return
        if not self._segment:
            self._segment_ns = host_ns
        self._segment += piece
        if len(self._segment) > MAX_SEGMENT_LEN:
            self.stats.garbage_bytes += len(self._segment)
            self._segment.clear()
            self._overflow = True

    def _end_segment(self, out: list[VitalSample]) -> None:
        body = bytes(self._segment)
        self._segment.clear()
        was_synced, self._synced = self._synced, True
        if self._overflow:
            self._overflow = False
            if was_synced:
                self.stats.records_bad += 1
            return
        if not body:
            return  # the 7E 7E between two frames
        if not was_synced:
            self.stats.garbage_bytes += len(body)  # the tail of a frame we joined midway
            return
        record = self._record(body)
        if record is None:
            self.stats.records_bad += 1
            self.stats.garbage_bytes += len(body)
            return
        self.stats.records_ok += 1
        if record.subrecords:
            self._last_heard_ns = self._segment_ns
            level = record.header.dri_level
            if level != self.answered_level:
                self.answered_level = level
                self._answered_request = transmission_request(
                    self.interval_s, levels=(level,), classes=self.classes
                )
        out += record_samples(record, self._segment_ns, self.monitor)

    @staticmethod
    def _record(body: bytes) -> DriRecord | None:
        raw = unescape(body)
        if raw is None or len(raw) < HEADER_LEN + 1 or len(raw) > MAX_RECORD_LEN + 1:
            return None
        record, received = raw[:-1], raw[-1]
        if checksum(record) != received:
            return None
        return parse_record(record)
