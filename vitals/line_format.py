"""Line-oriented monitor output: the shared incremental line reader, and a parser set up by config.

Many monitors print one text line per reading. ``LineReader`` is what all such families share:
it cuts the byte stream into lines (any chunking gives the same lines), stamps each line with the
arrival of its first byte, drops NULs and overlong lines, and counts what it could not use.
Families (``vitals.nellcor``, ``vitals.nonin``) hold one and only say what a line means.

``LineFormatParser`` (protocol ``"line_format"``) is such a family whose meaning comes from
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

The rules every parser here keeps: a value the monitor printed as a "no value" marker (the
configured ones, or any run of dashes) is never a number; a value outside its plausible range is
kept but marked invalid; a line that is not a record is counted, never raised on. What the line
reader does with NULs and partial first lines follows what PROTOCOLS.md gathered for the Masimo
line format (``Iukekini/Baby-Monitor-Masimo-Pulse-Oximeter:scripts/Devices/RAD7.py``: leading
NULs and a partial first record after the port opens).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, NamedTuple, get_args

from vitals.sample import Parameter, VitalSample

if TYPE_CHECKING:
    from vitals.parser import ParserStats

LineEnding = Literal["crlf", "lf", "cr", "any"]
Mode = Literal["regex", "key_value"]

#: Default cap on one line: the longest lines these families print are well under 200 bytes.
DEFAULT_MAX_LINE: Final = 2048

_TERMINATORS: Final[Mapping[str, bytes]] = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}


class Line(NamedTuple):
    """One complete, non-blank line: stripped text, arrival of its first byte, bytes it took."""

    text: str  # latin-1 decoded, so every byte maps; records are ASCII anyway
    host_ns: int
    size: int


class LineReader:
    """Cuts a byte stream into lines for a line family's parser; any chunking, the same lines.

    It owns the parser's byte accounting: ``bytes_in``, NULs and stray blanks as garbage, and
    lines longer than ``max_line`` as bad records. The parser says which lines were records
    (``accept``) and which were not (``reject``). A family holds one, rather than inheriting
    from a shared base, so no family module depends on another's parser class.
    """

    def __init__(
        self, stats: ParserStats, *, line_ending: LineEnding = "any", max_line: int = DEFAULT_MAX_LINE
    ) -> None:
        if line_ending not in _TERMINATORS and line_ending != "any":
            raise ValueError(f"line_ending must be one of crlf, lf, cr, any, not {line_ending!r}")
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        self.stats = stats
        self.line_ending: LineEnding = line_ending
        self.max_line = max_line
        self._buf = bytearray()
        self._buf_ns = 0  # arrival of the first byte now in _buf
        self._discarding = False  # inside an overlong line: drop until its end

    def accept(self, line: Line) -> None:
        del line
        self.stats.records_ok += 1

    def reject(self, line: Line) -> None:
        self.stats.records_bad += 1
        self.stats.garbage_bytes += line.size

    def reset(self) -> None:
        """Drop the partial line (counted as garbage): the next bytes start a new line."""
        self.stats.garbage_bytes += len(self._buf)
        self._buf.clear()
        self._discarding = False

    def push(self, data: bytes, host_ns: int) -> list[Line]:
        """The lines ``data`` (arrived at ``host_ns``) completes, in order."""
        self.stats.bytes_in += len(data)
        if not data:
            return []
        if self._buf:
            start_ns = self._buf_ns
            chunk = bytes(self._buf) + data
            self._buf.clear()
        else:
            start_ns = host_ns
            chunk = bytes(data)
        raw_lines, rest = self._split(chunk)
        lines: list[Line] = []
        for i, raw in enumerate(raw_lines):
            if i == 0 and self._discarding:
                # The end of an overlong line: its bytes were counted as they were dropped.
                self._discarding = False
                self.stats.garbage_bytes += len(raw)
                self.stats.records_bad += 1
                continue
            line = self._line(raw, start_ns if i == 0 else host_ns)
            if line is not None:
                lines.append(line)
        self._keep(rest, start_ns if not raw_lines else host_ns)
        return lines

    def _split(self, chunk: bytes) -> tuple[list[bytes], bytes]:
        """Complete lines (terminators removed) and the unterminated rest."""
        if self.line_ending == "any":
            cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
            if cut < 0:
                return [], chunk
            # CR LF, LF CR, lone CR or LF all end a line; the empty lines between are skipped.
            return chunk[:cut].replace(b"\r", b"\n").split(b"\n"), chunk[cut + 1 :]
        term = _TERMINATORS[self.line_ending]
        cut = chunk.rfind(term)
        if cut < 0:
            return [], chunk
        return chunk[:cut].split(term), chunk[cut + len(term) :]

    def _keep(self, rest: bytes, rest_ns: int) -> None:
        """Buffer the unterminated tail; a tail longer than a line can be is noise."""
        if not rest:
            return
        # With CR LF endings a trailing CR may be the first half of the next terminator: keep it
        # whatever else is dropped, or the line end would be missed when the LF comes later.
        hold = 1 if self.line_ending == "crlf" and rest.endswith(b"\r") else 0
        if self._discarding:
            self.stats.garbage_bytes += len(rest) - hold
            self._buf += rest[len(rest) - hold :]
            self._buf_ns = rest_ns
            return
        self._buf += rest
        self._buf_ns = rest_ns
        if len(self._buf) - hold > self.max_line:
            self.stats.garbage_bytes += len(self._buf) - hold
            del self._buf[: len(self._buf) - hold]
            self._discarding = True

    def _line(self, raw: bytes, host_ns: int) -> Line | None:
        # Length first, NULs included: the buffered path drops a line on the same count, so a
        # line is judged the same whichever chunks it arrived in.
        if len(raw) > self.max_line:
            self.stats.records_bad += 1
            self.stats.garbage_bytes += len(raw)
            return None
        nuls = raw.count(0)
        if nuls:
            # Padding some monitors send around port open: noise, not part of a record.
            self.stats.garbage_bytes += nuls
            raw = raw.replace(b"\0", b"")
        stripped = raw.strip()
        if not stripped:
            # Blank lines (the empty "line" inside CR LF in "any" mode) are not records; stray
            # blanks are noise, stray CR/LF are line ends.
            self.stats.garbage_bytes += len(raw) - raw.count(b"\r") - raw.count(b"\n")
            return None
        return Line(stripped.decode("latin-1"), host_ns, len(raw))


# -- reading one value -------------------------------------------------------------------------

# A number, optionally followed by a suffix without digits: a unit echo ("98%", "37.2 C") or a
# flag ("85*"). Exponents, inf and nan are not numbers any monitor prints, so they are rejected.
_NUMBER: Final = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*(?:[^0-9.+\-\s][^0-9]*)?")
_DASH_CHARS: Final = frozenset("-+.")


@dataclass(frozen=True, slots=True)
class RawValue:
    """One printed value as read: ``value`` is None unless ``status`` is "ok"."""

    value: float | None
    status: Literal["ok", "no_value", "malformed"]


def read_value(raw: str, no_value: Sequence[str] = ("---", "--", "-", "")) -> RawValue:
    """Read a printed value; a listed marker or any run of dashes (``--.-``, ``+--``) → no value."""
    text = raw.strip()
    if text in no_value or raw in no_value:
        return RawValue(None, "no_value")
    # Dashes fill a field's width when there is no reading; a sign or decimal point may stay.
    if "-" in text and set(text) <= _DASH_CHARS:
        return RawValue(None, "no_value")
    m = _NUMBER.fullmatch(text)
    if m is None:
        return RawValue(None, "malformed")
    return RawValue(float(m.group(1)), "ok")


# Plausible ranges by (parameter, unit), applied when a field sets none of its own: a value
# outside is a corrupted line or a misconfigured scale, not physiology. Generous on purpose.
DEFAULT_RANGES: Final[Mapping[tuple[Parameter, str], tuple[float, float]]] = {
    (Parameter.SPO2, "%"): (0, 100),
    (Parameter.HR, "/min"): (0, 350),
    (Parameter.PR, "/min"): (0, 350),
    (Parameter.PI, "%"): (0, 20),
    (Parameter.SPCO, "%"): (0, 100),
    (Parameter.SPMET, "%"): (0, 100),
    (Parameter.FIO2, "%"): (0, 100),
    (Parameter.RR, "/min"): (0, 200),
    (Parameter.PIP, "cmH2O"): (-20, 150),
    (Parameter.PEEP, "cmH2O"): (-20, 150),
    (Parameter.MAP_AW, "cmH2O"): (-20, 150),
    (Parameter.VTI, "mL"): (0, 3000),
    (Parameter.VTE, "mL"): (0, 3000),
    (Parameter.LEAK, "%"): (0, 100),
    (Parameter.ETCO2, "mmHg"): (0, 150),
    (Parameter.NBP_SYS, "mmHg"): (0, 300),
    (Parameter.NBP_DIA, "mmHg"): (0, 300),
    (Parameter.NBP_MEAN, "mmHg"): (0, 300),
    (Parameter.TEMP, "°C"): (0, 50),
}


# Imported here rather than at the top: importing vitals.parser loads every family module, and
# the Nellcor and Nonin families use the reader above. With it defined first, this module can be
# imported before or after them.
from vitals.parser import LinkSettings, MonitorParser, Parity, register  # noqa: E402

# -- the configurable format -------------------------------------------------------------------


class LineFormatError(ValueError):
    """A ``LineFormat`` that cannot work; ``path`` names the field (``fields[1].parameter``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"line_format.{path}: {reason}" if path else f"line_format: {reason}")

    def within(self, prefix: str) -> LineFormatError:
        """The same error one level down, e.g. inside ``fields[2]``."""
        return LineFormatError(f"{prefix}.{self.path}", self.reason)


def _finite(path: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LineFormatError(path, f"must be a finite number, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One value a line carries: where it is (``name``), what it is, and how to read it."""

    name: str  # regex group name (mode "regex") or key (mode "key_value")
    parameter: Parameter
    unit: str
    scale: float = 1.0
    offset: float = 0.0
    no_value: tuple[str, ...] = ("---", "--", "-", "")
    source: str = ""  # e.g. "pleth" or "ECG" for HR
    low: float | None = None  # plausible range; None takes DEFAULT_RANGES where it has one
    high: float | None = None

    def __post_init__(self) -> None:
        try:
            self._check()
        except LineFormatError as exc:
            # Name the field too: a FieldSpec built in code has no index to point at.
            raise LineFormatError(exc.path, f"{exc.reason} (field {self.name!r})") from None

    def _check(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise LineFormatError("name", "must be a non-empty string")
        if not isinstance(self.parameter, Parameter):
            raise LineFormatError("parameter", f"must be a Parameter, not {self.parameter!r}")
        if not isinstance(self.unit, str):
            raise LineFormatError("unit", f"must be a string, not {self.unit!r}")
        if not isinstance(self.source, str):
            raise LineFormatError("source", f"must be a string, not {self.source!r}")
        if _finite("scale", self.scale) == 0:
            raise LineFormatError("scale", "must not be 0 (every reading would be the offset)")
        _finite("offset", self.offset)
        if not isinstance(self.no_value, tuple) or not all(isinstance(m, str) for m in self.no_value):
            raise LineFormatError("no_value", f"must be a tuple of strings, not {self.no_value!r}")
        low = None if self.low is None else _finite("low", self.low)
        high = None if self.high is None else _finite("high", self.high)
        if low is not None and high is not None and low > high:
            raise LineFormatError("low", f"{low:g} is above high ({high:g})")

    def value_range(self) -> tuple[float, float] | None:
        default = DEFAULT_RANGES.get((self.parameter, self.unit))
        if self.low is None and self.high is None:
            return default
        low = self.low if self.low is not None else -math.inf
        high = self.high if self.high is not None else math.inf
        return (low, high)


@dataclass(frozen=True, slots=True, kw_only=True)
class LineFormat:
    """How to read one device's lines; validated on construction (``LineFormatError``).

    In mode "regex", ``pattern`` is searched in each line (anchor it with ``^…$`` to demand a
    whole-line match) and every field names one of its groups. In mode "key_value", a line is
    split on ``separator`` (``" "``: any run of blanks) into ``KEY<assign>VALUE`` tokens and
    every field names a key; ``pattern``, if given, is a filter a line must match to be read.
    """

    mode: Mode
    fields: tuple[FieldSpec, ...]
    pattern: str | None = None
    separator: str = " "
    assign: str = "="
    line_ending: LineEnding = "any"
    time_field: str | None = None  # group or key holding the monitor's own time
    time_format: str = "%Y-%m-%d %H:%M:%S"  # strptime format of time_field
    link_settings: LinkSettings = field(default_factory=LinkSettings)

    def __post_init__(self) -> None:
        if self.mode not in get_args(Mode):
            raise LineFormatError("mode", f"must be 'regex' or 'key_value', not {self.mode!r}")
        if self.line_ending not in get_args(LineEnding):
            raise LineFormatError(
                "line_ending", f"must be one of 'crlf', 'lf', 'cr', 'any', not {self.line_ending!r}"
            )
        if not isinstance(self.fields, tuple) or not self.fields:
            raise LineFormatError("fields", "at least one field is needed")
        for i, spec in enumerate(self.fields):
            if not isinstance(spec, FieldSpec):
                raise LineFormatError(f"fields[{i}]", f"must be a FieldSpec, not {spec!r}")
        compiled = self._compile_pattern()
        if self.mode == "regex":
            if compiled is None:
                raise LineFormatError("pattern", "mode 'regex' needs a pattern")
            groups = sorted(compiled.groupindex)
            known = ", ".join(groups) or "none; name them with (?P<name>...)"
            for i, spec in enumerate(self.fields):
                if spec.name not in compiled.groupindex:
                    raise LineFormatError(
                        f"fields[{i}].name", f"the pattern has no group named {spec.name!r} (groups: {known})"
                    )
            if self.time_field is not None and self.time_field not in compiled.groupindex:
                raise LineFormatError(
                    "time_field", f"the pattern has no group named {self.time_field!r} (groups: {known})"
                )
        else:
            self._check_key_value()
        seen_names: dict[str, int] = {}
        seen_outputs: dict[tuple[Parameter, str], int] = {}
        for i, spec in enumerate(self.fields):
            if spec.name in seen_names:
                raise LineFormatError(
                    f"fields[{i}].name", f"{spec.name!r} is already read by fields[{seen_names[spec.name]}]"
                )
            seen_names[spec.name] = i
            key = (spec.parameter, spec.source)
            if key in seen_outputs:
                raise LineFormatError(
                    f"fields[{i}].parameter",
                    f"{spec.parameter.value} (source {spec.source!r}) already comes from "
                    f"fields[{seen_outputs[key]}]; give one of them a different source",
                )
            seen_outputs[key] = i
        if not isinstance(self.time_format, str) or not self.time_format:
            raise LineFormatError("time_format", "must be a non-empty strptime format")
        if not isinstance(self.link_settings, LinkSettings):
            raise LineFormatError("link_settings", f"must be LinkSettings, not {self.link_settings!r}")

    def _compile_pattern(self) -> re.Pattern[str] | None:
        if self.pattern is None:
            return None
        if not isinstance(self.pattern, str) or not self.pattern:
            raise LineFormatError("pattern", f"must be a non-empty string, not {self.pattern!r}")
        try:
            return re.compile(self.pattern)
        except re.error as exc:
            where = "" if exc.pos is None else f" at position {exc.pos}"
            raise LineFormatError("pattern", f"not a valid regular expression: {exc.msg}{where}") from None

    def _check_key_value(self) -> None:
        if not isinstance(self.separator, str) or not self.separator:
            raise LineFormatError("separator", 'must be a non-empty string (" " splits on blanks)')
        if not isinstance(self.assign, str) or not self.assign:
            raise LineFormatError("assign", 'must be a non-empty string, e.g. "="')
        if self.assign.strip() == "" or self.separator in self.assign or self.assign in self.separator:
            raise LineFormatError(
                "assign", f"{self.assign!r} cannot be told apart from the separator {self.separator!r}"
            )
        names = [(f"fields[{i}].name", spec.name) for i, spec in enumerate(self.fields)]
        if self.time_field is not None:
            names.append(("time_field", self.time_field))
        for path, name in names:
            if name != name.strip() or self.assign in name or self._splits(name):
                raise LineFormatError(
                    path, f"key {name!r} contains the separator, the assign sign or blanks at its ends"
                )

    def _splits(self, text: str) -> bool:
        return len(text.split()) > 1 if self.separator == " " else self.separator in text


# -- building a spec from configuration data ---------------------------------------------------

_SPEC_KEYS: Final = frozenset(
    {"mode", "pattern", "separator", "assign", "line_ending", "fields", "time_field", "time_format"}
)
_LINK_KEYS: Final = frozenset({"baudrate", "bytesize", "parity", "stopbits", "xonxoff", "rtscts"})
_FIELD_KEYS: Final = frozenset(
    {"name", "parameter", "unit", "scale", "offset", "no_value", "source", "low", "high"}
)


def parameter_named(name: object) -> Parameter:
    """The ``Parameter`` a config names, by value (``"SpO2"``) or member name, in any case."""
    if isinstance(name, str):
        wanted = name.strip().casefold()
        for p in Parameter:
            if wanted in (p.value.casefold(), p.name.casefold()):
                return p
    known = ", ".join(p.value for p in Parameter)
    raise LineFormatError("parameter", f"unknown parameter {name!r} (known: {known})")


def _typed(path: str, value: object, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise LineFormatError(path, f"must be {what}, not {value!r}")
    if not isinstance(value, kind):
        raise LineFormatError(path, f"must be {what}, not {value!r}")
    return value


def _unknown_keys(path: str, data: Mapping[str, Any], known: frozenset[str]) -> None:
    for key in data:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise LineFormatError(where, f"unknown key (known: {', '.join(sorted(known))})")


def _field_from_mapping(data: object) -> FieldSpec:
    if not isinstance(data, Mapping):
        raise LineFormatError("", f"must be a table, not {data!r}")
    _unknown_keys("", data, _FIELD_KEYS)
    for key in ("name", "parameter", "unit"):
        if key not in data:
            raise LineFormatError(key, "is required")
    no_value = data.get("no_value", ("---", "--", "-", ""))
    _typed("no_value", no_value, (list, tuple), "a list of strings")
    return FieldSpec(
        name=_typed("name", data["name"], str, "a string"),
        parameter=parameter_named(data["parameter"]),
        unit=_typed("unit", data["unit"], str, "a string"),
        scale=_typed("scale", data.get("scale", 1.0), (int, float), "a number"),
        offset=_typed("offset", data.get("offset", 0.0), (int, float), "a number"),
        no_value=tuple(no_value),
        source=_typed("source", data.get("source", ""), str, "a string"),
        low=None if data.get("low") is None else _typed("low", data["low"], (int, float), "a number"),
        high=None if data.get("high") is None else _typed("high", data["high"], (int, float), "a number"),
    )


def line_format_from_mapping(data: Mapping[str, Any]) -> LineFormat:
    """A ``LineFormat`` from plain TOML-like data (the table shown in the module docstring).

    Raises ``LineFormatError`` naming the offending key, e.g. ``line_format.fields[0].unit``.
    """
    if not isinstance(data, Mapping):
        raise LineFormatError("", f"must be a table, not {data!r}")
    _unknown_keys("", data, _SPEC_KEYS | _LINK_KEYS)
    if "mode" not in data:
        raise LineFormatError("mode", "is required ('regex' or 'key_value')")
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list | tuple) or not raw_fields:
        raise LineFormatError("fields", "at least one [[...fields]] table is needed")
    fields: list[FieldSpec] = []
    for i, item in enumerate(raw_fields):
        try:
            fields.append(_field_from_mapping(item))
        except LineFormatError as exc:
            raise (
                exc.within(f"fields[{i}]") if exc.path else LineFormatError(f"fields[{i}]", exc.reason)
            ) from None
    link = _link_settings_from_mapping(data)
    options: dict[str, Any] = {}
    for key in ("pattern", "separator", "assign", "line_ending", "time_field", "time_format"):
        if key in data:
            options[key] = _typed(key, data[key], str, "a string")
    return LineFormat(
        mode=_typed("mode", data["mode"], str, "a string"),
        fields=tuple(fields),
        link_settings=link,
        **options,
    )


def _link_settings_from_mapping(data: Mapping[str, Any]) -> LinkSettings:
    defaults = LinkSettings()
    baudrate = _typed("baudrate", data.get("baudrate", defaults.baudrate), int, "an integer")
    if not 50 <= baudrate <= 4_000_000:
        raise LineFormatError("baudrate", f"{baudrate} is not a serial baud rate")
    bytesize = _typed("bytesize", data.get("bytesize", defaults.bytesize), int, "an integer")
    if bytesize not in (5, 6, 7, 8):
        raise LineFormatError("bytesize", f"must be 5, 6, 7 or 8, not {bytesize}")
    parity = _typed("parity", data.get("parity", defaults.parity), str, "a string")
    if parity not in ("N", "E", "O", "M", "S"):
        raise LineFormatError("parity", f"must be one of N, E, O, M, S, not {parity!r}")
    stopbits = _typed("stopbits", data.get("stopbits", defaults.stopbits), (int, float), "a number")
    if stopbits not in (1, 1.5, 2):
        raise LineFormatError("stopbits", f"must be 1, 1.5 or 2, not {stopbits!r}")
    xonxoff = _typed("xonxoff", data.get("xonxoff", defaults.xonxoff), bool, "true or false")
    rtscts = _typed("rtscts", data.get("rtscts", defaults.rtscts), bool, "true or false")
    return LinkSettings(baudrate, bytesize, parity, stopbits, xonxoff, rtscts)


# -- the parser ----------------------------------------------------------------------------------


@register
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
