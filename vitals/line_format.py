"""A monitor family set up by configuration: lines read by a regular expression or as key=value.

``LineFormatParser`` (protocol ``"line_format"``) is a line family whose meaning comes from
configuration, so IT can add a device that prints lines without new code. A ``LineFormat`` is
read either by a regular expression with named groups (``mode = "regex"``) or as ``KEY=VALUE``
tokens (``mode = "key_value"``); each ``FieldSpec`` maps one group or key to a ``Parameter``.
In the recorder's TOML it sits under its monitor::

    [[monitors]]
    name = "blender"
    protocol = "line_format"
    port = "/dev/neoflix/monitor-1"

    [monitors.line_format]
    mode = "key_value"          # or "regex", with pattern = '...(?P<fio2>\\d+)...'
    separator = " "             # " " means any run of blanks
    assign = "="
    line_ending = "crlf"        # "crlf", "lf", "cr" or "any"
    # baudrate = 9600, bytesize = 8, parity = "N", stopbits = 1, xonxoff = false, rtscts = false
    # time_field = "TIME", time_format = "%H:%M:%S"   (the monitor's own clock, if it prints one)

    [[monitors.line_format.fields]]
    name = "SPO2"               # the key (key_value) or the regex group name (regex)
    parameter = "SpO2"          # a vitals.sample.Parameter value, e.g. HR, SpO2, FiO2, PEEP
    unit = "%"
    # scale = 1.0, offset = 0.0 (value = raw * scale + offset), source = "pleth",
    # no_value = ["---", "--", "-", ""], low = 0, high = 100 (a plausible range)

``line_format_from_mapping`` turns that table into a ``LineFormat``; every mistake raises
``LineFormatError`` naming the field (``line_format.fields[1].parameter: unknown parameter ...``).

A value the monitor printed as a "no value" marker (the configured ones, or any run of dashes) is
never a number; a value outside its plausible range is kept but marked invalid; a line that is
not a record is counted, never raised on. Cutting the bytes into lines and reading each value
are ``LineReader`` and ``read_value`` of ``vitals.lines``; the format's description and its
checks are ``vitals.line_format_spec``. Both are re-exported here (``__all__``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from vitals.line_format_spec import (
    DEFAULT_RANGES,
    FieldSpec,
    LineFormat,
    LineFormatError,
    Mode,
    line_format_from_mapping,
    parameter_named,
)
from vitals.lines import DEFAULT_MAX_LINE, LineEnding, LineReader, read_value
from vitals.parser import LinkSettings, MonitorParser, Parity
from vitals.sample import VitalSample

# The parser, and the names other code imports from this module although they live in
# vitals.line_format_spec and vitals.lines.
__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_RANGES",
    "FieldSpec",
    "LineEnding",
    "LineFormat",
    "LineFormatError",
    "LineFormatParser",
    "LineReader",
    "Mode",
    "line_format_from_mapping",
    "parameter_named",
    "read_value",
]

# -- the parser ----------------------------------------------------------------------------------


class LineFormatParser(MonitorParser):
    """Reads the lines a ``LineFormat`` describes; per line, one sample per field present, in
    the order of ``spec.fields``.

    A line that does not match (regex) or carries none of the configured keys (key_value) is a
    bad record. A field whose group did not take part in the match, or whose key is missing,
    yields no sample for that line. A key that occurs twice means two lines glued together (a
    lost line end), so the line is rejected.
    """

    protocol: ClassVar[str] = "line_format"

    def __init__(
        self,
        monitor: str,
        spec: LineFormat,
        *,
        baudrate: int | None = None,
        bytesize: int | None = None,
        parity: Parity | None = None,
        stopbits: float | None = None,
        xonxoff: bool | None = None,
        rtscts: bool | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        if not isinstance(spec, LineFormat):
            raise TypeError(f"spec must be a LineFormat, not {type(spec).__name__}")
        super().__init__(monitor)
        self.spec = spec
        self._reader = LineReader(self.stats, line_ending=spec.line_ending, max_line=max_line)
        base = spec.link_settings
        # The link reads ``parser.link_settings``; the base declares it per class because most
        # families have fixed settings, but this family's come from configuration, so the
        # instance attribute shadows the class default.
        self.link_settings = LinkSettings(  # type: ignore[misc]
            baudrate=base.baudrate if baudrate is None else baudrate,
            bytesize=base.bytesize if bytesize is None else bytesize,
            parity=base.parity if parity is None else parity,
            stopbits=base.stopbits if stopbits is None else stopbits,
            xonxoff=base.xonxoff if xonxoff is None else xonxoff,
            rtscts=base.rtscts if rtscts is None else rtscts,
        )
        self._pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        self._ranges = [f.value_range() for f in spec.fields]
        self._keys = frozenset(f.name for f in spec.fields)

    def reset(self) -> None:
        self._reader.reset()

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        try:
            samples: list[VitalSample] = []
            for line in self._reader.push(data, host_ns):
                record = self.parse_record(line.text, line.host_ns)
                if record is None:
                    self._reader.reject(line)
                else:
                    self._reader.accept(line)
                    samples.extend(record)
            return samples
        except Exception:
            # Unreachable by design; the contract is never to raise into the reader thread.
            self.stats.records_bad += 1
            self.reset()
            return []

    def parse_record(self, line: str, host_ns: int) -> list[VitalSample] | None:
        """The samples of one stripped line; None when it is not a record of this format."""
        spec = self.spec
        if spec.mode == "regex":
            assert self._pattern is not None  # checked by LineFormat
            m = self._pattern.search(line)
            if m is None:
                return None
            values: Mapping[str, str | None] = m.groupdict()
        else:
            if self._pattern is not None and self._pattern.search(line) is None:
                return None
            kv = self._key_values(line)
            if kv is None:
                return None
            values = kv
        stamp, time_flags = self._monitor_time(values.get(spec.time_field) if spec.time_field else None)
        samples: list[VitalSample] = []
        for fs, value_range in zip(spec.fields, self._ranges, strict=True):
            raw = values.get(fs.name)
            if raw is None:
                continue
            rv = read_value(raw, fs.no_value)
            flags = set(time_flags)
            valid = rv.status == "ok"
            value = None if rv.value is None else rv.value * fs.scale + fs.offset
            if rv.status != "ok":
                flags.add(rv.status)
            elif value is not None and value_range is not None:
                low, high = value_range
                if not low <= value <= high:
                    flags.add("out_of_range")
                    valid = False
            samples.append(
                VitalSample(
                    parameter=fs.parameter,
                    value=value,
                    unit=fs.unit,
                    valid=valid,
                    host_ns=host_ns,
                    monitor=self.monitor,
                    source=fs.source,
                    flags=frozenset(flags),
                    monitor_time=stamp,
                )
            )
        return samples

    def _key_values(self, line: str) -> dict[str, str] | None:
        spec = self.spec
        tokens = line.split() if spec.separator == " " else line.split(spec.separator)
        found: dict[str, str] = {}
        ignored = 0
        for token in tokens:
            key, sep, value = token.partition(spec.assign)
            key = key.strip()
            if not sep or not key:
                ignored += len(token)
                continue
            if key in found:
                return None
            found[key] = value
        if not self._keys & found.keys():
            return None
        self.stats.garbage_bytes += ignored
        return found

    def _monitor_time(self, raw: str | None) -> tuple[datetime | None, frozenset[str]]:
        if raw is None:
            return None, frozenset()
        try:
            return datetime.strptime(raw.strip(), self.spec.time_format), frozenset()
        except ValueError:
            # The values are still the monitor's; only its clock reading is unusable.
            return None, frozenset({"time_unreadable"})
