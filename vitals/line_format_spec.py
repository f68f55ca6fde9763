"""The description of a configured line format, checked when it is built: ``LineFormat``, ``FieldSpec``.

A ``LineFormat`` says how one device's lines are read (a regular expression with named groups, or
``KEY=VALUE`` tokens) and which ``FieldSpec`` maps each group or key to a ``Parameter``, with its
unit, scale, "no value" markers and plausible range. Both check themselves on construction and
raise ``LineFormatError`` naming the offending field (``fields[1].parameter``), so a mistake in
the configuration is reported when it is loaded, never as odd samples later.
``line_format_from_mapping`` builds one from the TOML table that ``vitals.line_format`` (the
parser that reads such lines) documents.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from vitals.lines import LineEnding
from vitals.link_settings import LinkSettings
from vitals.sample import Parameter

Mode = Literal["regex", "key_value"]

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
