"""Nellcor N-595 pulse oximeter real-time data port output → VitalSamples.

The oximeter prints a table, one row per reading, unasked (column widths illustrative)::

    N-595   VERSION 1.2.0.0   CRC:A1B2   SpO2 Limit: 85-95%   PR Limit: 100-180BPM
                                          NEO   0SAT-S   SPO2 RESP MODE: NORMAL
    TIME                 %SPO2  BPM  PA  Status
    01-May-24 10:00:02     82*  140  50  SL
    01-May-24 10:00:04     ---  ---  --- SO

A data row is the monitor's clock (``dd-MMM-yy HH:mm:ss``, 18 characters), SpO2, pulse rate,
pulse amplitude and zero or more two-letter status codes. ``---`` means no value; ``*`` after a
value means it violates an alarm limit. The heading rows (model, version, CRC and alarm limits;
patient mode; column names) come at start-up, every 25 rows and when a limit changes; the
interactive-mode menu (``NPB-595 Interactive Mode``, ``1) Dump Instrument Info`` ...) may appear
too. None of them are records and all are skipped; the version row's limits are kept in
``NellcorParser.info``.

Sources:
- Row layout, the ``*`` flag, the status codes and the heading and menu lines: OpenICE
  ``mdpnp/mdpnp:devices/nellcor/src/main/resources/org/mdpnp/devices/nellcor/pulseox/
  nellcor-n595.spec`` and ``.../NellcorN595.java`` (``filterStar``: digits then an optional ``*``).
- 9600 8N1, no flow control: ``mdpnp/mdpnp:interop-lab/demo-devices/.../nellcor/pulseox/
  DemoN595.java``.
- One row every 2 s, headings every 25 rows, XON/XOFF honoured and "if the data output stops
  transmitting ... send an XON (Ctrl-q)": the data port appendix of the NPB-290 operator's manual
  (the same table format as the N-595, whose own appendix we could not read); examples there
  print years as two digits from the 1990s (``12-NOV-97``) and months in capitals.

Not verified against a device: the N-595's own row interval, whether it honours the XON, and the
column widths (the parser splits on blanks, so widths do not matter).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from vitals.lines import DEFAULT_MAX_LINE, LineReader
from vitals.parser import LinkSettings, MonitorParser
from vitals.sample import Parameter, VitalSample

_MONTHS: Final[Mapping[str, int]] = {
    name: i + 1
    for i, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
# Time, then SpO2, BPM and PA, then status codes. The values are checked one by one below, so a
# row whose columns are damaged is rejected rather than read into the wrong parameter.
_ROW: Final = re.compile(
    r"([0-9]{2})-([A-Za-z]{3})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"\s+(\S+)\s+(\S+)\s+(\S+)((?:\s+\S+)*)",
    re.ASCII,
)
_VALUE: Final = re.compile(r"([0-9]{1,3}|-{1,3})(\*?)", re.ASCII)
_STATUS: Final = re.compile(r"[A-Z]{2}", re.ASCII)

_VERSION_ROW: Final = re.compile(
    r"(?P<model>\S+)\s+VERSION\s+(?P<version>[0-9.]+)(?:\s+INFO)?\s+CRC:\s*(?P<crc>\S+)(?P<rest>.*)",
    re.ASCII | re.IGNORECASE,
)
_SPO2_LIMITS: Final = re.compile(r"SpO2 Limit:\s*([0-9]+)\s*-\s*([0-9]+)", re.ASCII | re.IGNORECASE)
_PR_LIMITS: Final = re.compile(r"PR Limit:\s*([0-9]+)\s*-\s*([0-9]+)", re.ASCII | re.IGNORECASE)
# The other non-record lines: patient-mode row, column names, interactive-mode menu and prompts.
_INFO_ROWS: Final = re.compile(
    r"(?:ADULT|NEO)\b.*SAT-S.*"
    r"|TIME\s+%SPO2\s+BPM\s+PA(?:\s+Status)?"
    r"|\S+\s+Interactive Mode"
    r"|[0-9]\)\s+\S.*"
    r"|Command\?"
    r"|Output Complete",
    re.ASCII | re.IGNORECASE,
)

_SOURCE: Final = "pleth"
_LIMITS: Final[Mapping[Parameter, tuple[float, float]]] = {
    Parameter.SPO2: (0, 100),
    Parameter.HR: (0, 350),
}


@dataclass(frozen=True, slots=True)
class _Status:
    flag: str
    parameter: Parameter | None  # the value it concerns; None for the whole device
    invalidates: bool = False
    alarm: bool = False


# Status code → meaning (OpenICE's nellcor-n595.spec names). Sensor disconnected or off, pulse
# search and loss of pulse mean there is no pleth to measure from, whatever the row still prints,
# so they invalidate both values. Motion ("MO") is a quality warning and stays a flag.
STATUS_CODES: Final[Mapping[str, _Status]] = {
    "AO": _Status("alarm_off", None),
    "AS": _Status("alarm_silenced", None),
    "LB": _Status("low_battery", None),
    "LM": _Status("loss_of_pulse_motion", None, invalidates=True),
    "LP": _Status("loss_of_pulse", None, invalidates=True),
    "MO": _Status("motion", None),
    "PH": _Status("pr_high", Parameter.HR, alarm=True),
    "PL": _Status("pr_low", Parameter.HR, alarm=True),
    "PS": _Status("pulse_search", None, invalidates=True),
    "SH": _Status("spo2_high", Parameter.SPO2, alarm=True),
    "SL": _Status("spo2_low", Parameter.SPO2, alarm=True),
    "SD": _Status("sensor_disconnect", None, invalidates=True),
    "SO": _Status("sensor_off", None, invalidates=True),
}


@dataclass(frozen=True, slots=True)
class ColumnValue:
    """One column of a row: ``value`` None when dashed; ``starred`` when outside a limit."""

    value: float | None
    starred: bool


@dataclass(frozen=True, slots=True)
class NellcorRow:
    """One understood data row."""

    monitor_time: datetime
    spo2: ColumnValue
    pulse_rate: ColumnValue
    pulse_amplitude: ColumnValue  # relative units; kept for the record, not a sample
    status: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NellcorInfo:
    """What the version heading row says about the monitor."""

    model: str
    version: str
    crc: str
    spo2_limits: tuple[int, int] | None
    pr_limits: tuple[int, int] | None


# Cached: a column holds one of a few hundred strings ("97", "140*", "---"), and a ColumnValue is
# immutable, so rows share them. Bounded, since noise can bring any text.
@functools.lru_cache(maxsize=2048)
def _column(raw: str) -> ColumnValue | None:
    m = _VALUE.fullmatch(raw)
    if m is None:
        return None
    digits, star = m.groups()
    return ColumnValue(None if digits.startswith("-") else float(digits), bool(star))


def _year(yy: int) -> int:
    # Two-digit years as POSIX strptime reads them (69–99 → 19xx): the manuals' own examples
    # are from 1997/98, and the monitor prints its clock as set.
    return 1900 + yy if yy >= 69 else 2000 + yy


def parse_row(line: str) -> NellcorRow | None:
    """Parse one stripped data row; None when it is not one (headings included)."""
    m = _ROW.fullmatch(line)
    if m is None:
        return None
    day, mon, yy, hh, mm, ss, spo2_raw, pr_raw, pa_raw, status_raw = m.groups()
    month = _MONTHS.get(mon.upper())
    if month is None:
        return None
    try:
        stamp = datetime(_year(int(yy)), month, int(day), int(hh), int(mm), int(ss))
    except ValueError:
        return None
    spo2, pr, pa = _column(spo2_raw), _column(pr_raw), _column(pa_raw)
    if spo2 is None or pr is None or pa is None:
        return None
    status = _status_codes(status_raw)
    if status is None:
        return None
    return NellcorRow(stamp, spo2, pr, pa, status)


# Cached: a monitor prints the same few status columns ("", "SL", "SO") row after row.
@functools.lru_cache(maxsize=256)
def _status_codes(raw: str) -> tuple[str, ...] | None:
    """The status codes of a row's last columns; None unless every one is two capitals."""
    status = tuple(raw.split())
    if not all(_STATUS.fullmatch(code) for code in status):
        return None
    return status


def parse_info(line: str) -> NellcorInfo | None:
    """The version heading row (``N-595 VERSION ... CRC:... SpO2 Limit: 85-100% ...``)."""
    m = _VERSION_ROW.fullmatch(line)
    if m is None:
        return None
    rest = m.group("rest")
    spo2 = _SPO2_LIMITS.search(rest)
    pr = _PR_LIMITS.search(rest)
    return NellcorInfo(
        model=m.group("model"),
        version=m.group("version"),
        crc=m.group("crc"),
        spo2_limits=(int(spo2.group(1)), int(spo2.group(2))) if spo2 else None,
        pr_limits=(int(pr.group(1)), int(pr.group(2))) if pr else None,
    )


# The sampled columns, in the order of _status_states' answer: parameter, unit, range.
_SAMPLED: Final = (
    (Parameter.SPO2, "%", *_LIMITS[Parameter.SPO2]),
    (Parameter.HR, "/min", *_LIMITS[Parameter.HR]),
)
_NO_VALUE: Final = frozenset({"no_value"})
_OUT_OF_RANGE: Final = frozenset({"out_of_range"})
_ALARM_LIMIT: Final = frozenset({"alarm_limit"})
# Builds a sample from a tuple of all ten fields, in order, as VitalSample._make does but without
# its Python frame and length check: calling VitalSample(...) runs a generated Python __new__.
_new_sample: Final = functools.partial(tuple.__new__, VitalSample)


def row_samples(row: NellcorRow, host_ns: int, monitor: str) -> list[VitalSample]:
    """SpO2 and pulse rate of one row, validity and flags from dashes, stars and status codes."""
    samples: list[VitalSample] = []
    # Pulse rate from the pleth goes in the HR slot with source "pleth", as for Masimo: it is
    # the heart rate the team reads at the table, and source keeps it apart from an ECG rate.
    for (parameter, unit, low, high), column, (flags, valid, alarm) in zip(
        _SAMPLED, (row.spo2, row.pulse_rate), _status_states(row.status), strict=True
    ):
        if column.value is None:
            flags = flags | _NO_VALUE
            valid = False
        elif not low <= column.value <= high:
            flags = flags | _OUT_OF_RANGE
            valid = False
        if column.starred:
            flags = flags | _ALARM_LIMIT
            alarm = True
        samples.append(
            _new_sample(
                (
                    parameter,
                    column.value,
                    unit,
                    valid,
                    host_ns,
                    monitor,
                    _SOURCE,
                    flags,
                    alarm,
                    row.monitor_time,
                )
            )
        )
    return samples


# Cached because the status columns repeat row after row: what they mean is worked out once per
# distinct set, not once per sample. The answer is shared and immutable.
@functools.lru_cache(maxsize=256)
def _status_states(status: tuple[str, ...]) -> tuple[tuple[frozenset[str], bool, bool], ...]:
    """For SpO2, then pulse rate: the flags, validity and limit alarm the status codes give."""
    device_flags: set[str] = set()
    invalid = False
    by_parameter: dict[Parameter, set[str]] = {Parameter.SPO2: set(), Parameter.HR: set()}
    limit_alarm: set[Parameter] = set()
    for code in status:
        meaning = STATUS_CODES.get(code)
        if meaning is None:
            device_flags.add(f"status_{code}")
            continue
        invalid |= meaning.invalidates
        if meaning.parameter is None:
            device_flags.add(meaning.flag)
        else:
            by_parameter[meaning.parameter].add(meaning.flag)
            if meaning.alarm:
                limit_alarm.add(meaning.parameter)
    return tuple(
        (frozenset(device_flags | by_parameter[parameter]), not invalid, parameter in limit_alarm)
        for parameter, *_ in _SAMPLED
    )


class NellcorParser(MonitorParser):
    """Incremental N-595 parser: complete lines only, resyncs on the next good row.

    Heading and menu lines are understood but are not records: they are counted in
    ``info_lines``, not in ``stats``. The greeting is one XON byte: the manual's remedy for a
    data port that stopped sending, and a no-op for one that is sending. The link sends it on
    every (re)connect, so a monitor left paused by an XOFF (line noise can make one) starts again
    when the link reconnects after its silence timeout.
    """

    protocol: ClassVar[str] = "nellcor"
    link_settings: ClassVar[LinkSettings] = LinkSettings(baudrate=9600)

    XON: ClassVar[bytes] = b"\x11"

    def __init__(self, monitor: str, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        super().__init__(monitor)
        self._reader = LineReader(self.stats, line_ending="any", max_line=max_line)
        self.info: NellcorInfo | None = None
        self.info_lines = 0

    def greeting(self) -> bytes:
        return self.XON

    def reset(self) -> None:
        self._reader.reset()
        self.info = None  # another monitor may be on the port now

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        try:
            samples: list[VitalSample] = []
            for line in self._reader.push(data, host_ns):
                # Data rows first, as nearly every line is one: no line is both a data row (date
                # and time first) and a heading (see _heading's patterns), so the order does not
                # change what a line is taken for, only how many patterns a data row is tried on.
                row = parse_row(line.text)
                if row is not None:
                    self._reader.accept(line)
                    samples.extend(row_samples(row, line.host_ns, self.monitor))
                elif self._heading(line.text):
                    self.info_lines += 1
                else:
                    self._reader.reject(line)
            return samples
        except Exception:
            # Unreachable by design; the contract is never to raise into the reader thread.
            self.stats.records_bad += 1
            self.reset()
            return []

    def _heading(self, line: str) -> bool:
        info = parse_info(line)
        if info is not None:
            self.info = info
            return True
        return _INFO_ROWS.fullmatch(line) is not None
