"""One config template for many tables: dotted-key overrides applied to it, written back as TOML.

A unit's tables share almost everything (cameras, monitors, review keys, retention, the archive);
what differs is a handful of values: the name on the overlay, the table's slug in the archive.
``render(template, ["station.table=Resus 3", "collection.table=resus-3"])`` reads the template,
sets those values and returns the config as TOML text.

Keys are written as the loader's error messages name fields: ``storage.retention_days``,
``cameras[0].fps``, ``monitors[1].port``. A value is read as a TOML value (``30``, ``true``,
``"Resus 3"``, ``["age1..."]``); text that is not one, and does not start like a string, an
array or an inline table, is taken as a string, so ``collection.table=resus-3`` needs no quotes
in a shell loop.

Standard library only (``tomllib`` reads; the writer below writes), so the installer can render a
config with the system's Python before the program is installed. Checking the result against the
schema is the loader's job (``config.loading.parse_config``): this module knows no field names.
The rendered file has no comments: it is generated, and its header names the template and the
overrides it came from, so the template stays the one place to edit.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

# A bare TOML key; anything else is written quoted.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch: "$" would let a final newline through
# One step of an override's key: a name, then any number of [index].
_STEP = re.compile(r"([A-Za-z0-9_-]+)((?:\[\d+\])*)")


class OverrideError(ValueError):
    """An override that cannot be applied; the message names the key and says why."""


# --- overrides -----------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"cameras[0].fps=15"`` → (``["cameras", 0, "fps"]``, ``15``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f'{text!r}: an override is KEY=VALUE, e.g. station.table="Resus 3"')
    return parse_key(key), parse_value(key, raw.strip())


def parse_key(key: str) -> list[str | int]:
    path: list[str | int] = []
    for step in key.split("."):
        match = _STEP.fullmatch(step)
        if match is None:
            raise OverrideError(
                f"{key}: not a config key (write it as the errors name fields: section.field, cameras[0].fps)"
            )
        path.append(match.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return path


def parse_value(key: str, raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw[:1] in ('"', "'", "[", "{") or raw == "":
            # Meant as TOML and broken: guessing a string would hide the mistake.
            raise OverrideError(f"{key}: {raw!r} is not a TOML value ({exc})") from None
        return raw


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``KEY=VALUE`` set, in order (a later one wins). A missing
    table on the way is created; an array index must exist (there is no guessing which camera
    a new one would be)."""
    result: dict[str, Any] = _copy(data)
    for text in overrides:
        path, value = parse_override(text)
        _set(result, path, value, text.partition("=")[0].strip())
    return result


def _set(data: dict[str, Any], path: list[str | int], value: Any, key: str) -> None:
    node: Any = data
    for i, step in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(step, int):
            node = _item(node, step, key)
            continue
        if not isinstance(node, dict):
            raise OverrideError(f"{key}: {_where(path[:i])} is not a table")
        if step not in node:
            if isinstance(nxt, int):
                raise OverrideError(f"{key}: the template has no {_where(path[: i + 1])} array")
            node[step] = {}
        node = node[step]
    last = path[-1]
    if isinstance(last, int):
        _item(node, last, key)  # says why when it cannot be set
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise OverrideError(f"{key}: {_where(path[:-1])} is not a table")


def _item(node: Any, index: int, key: str) -> Any:
    if not isinstance(node, list):
        raise OverrideError(f"{key}: [{index}] indexes something that is not an array")
    if index >= len(node):
        raise OverrideError(f"{key}: the template has only {len(node)} entries there")
    return node[index]


def _where(path: list[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or "the top level"


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def render(template_text: str, overrides: Iterable[str], *, header: str = "") -> str:
    """The template with the overrides applied, as TOML text (``header`` lines as comments)."""
    try:
        data = tomllib.loads(template_text)
    except tomllib.TOMLDecodeError as exc:
        raise OverrideError(f"the template is not valid TOML: {exc}") from None
    body = dumps(apply_overrides(data, overrides))
    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comments + ("\n" if comments else "") + body


# --- writing TOML ---------------------------------------------------------------------------------


def dumps(data: Mapping[str, Any]) -> str:
    """TOML text that ``tomllib.loads`` reads back as ``data``.

    The types a config holds: strings, integers, floats, booleans, arrays and tables (nested,
    and arrays of tables such as ``[[cameras]]``). Dates and times are not config values and
    are refused, as are NaN and infinities, which no field accepts.
    """
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    # Plain values first: after a [header], everything up to the next header belongs to it.
    subtables = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            subtables.append((key, value, False))
        elif _is_array_of_tables(value):
            subtables.append((key, value, True))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value, is_array in subtables:
        sub = [*path, key]
        header = ".".join(_key(k) for k in sub)
        if is_array:
            for item in value:
                lines += ["", f"[[{header}]]"]
                _table(lines, sub, item)
        else:
            lines += ["", f"[{header}]"]
            _table(lines, sub, value)


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OverrideError(f"{value!r}: not a value a config holds")
        return repr(value)  # shortest form that reads back exactly; always has . or e
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # inside an array: an inline table
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise OverrideError(f"{value!r}: a {type(value).__name__} is not a value a config holds")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")  # other control characters are not allowed bare
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def main(argv: list[str] | None = None) -> int:
    """``python -m config.overrides TEMPLATE --set KEY=VALUE ...``: for the installer, which
    renders with the system's Python before the program (and pydantic) is installed. The schema
    is checked afterwards by the installed program's check-config."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m config.overrides")
    parser.add_argument("template")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--header", default="", help="comment lines for the top of the file")
    args = parser.parse_args(argv)
    try:
        with open(args.template, encoding="utf-8") as f:
            text = render(f.read(), args.overrides, header=args.header)
    except (OSError, OverrideError) as exc:
        print(f"{args.template}: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG, as the loader's
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
