"""Load a station config from TOML and turn validation failures into one readable line each."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from config.models import Config

EX_CONFIG = 78  # sysexits.h: the daemon's exit status for a configuration it cannot use


class ConfigError(Exception):
    """A config that cannot be used; the message names the file, the field and the problem."""


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from exc


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("cameras", 0, "source", "v4l2", "device")`` → ``cameras[0].source.device``."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif previous == "source" or part.startswith("function-"):
            # pydantic names the union member (the ``kind``) it tried; the user never wrote it.
            pass
        else:
            out += f".{part}" if out else part
        previous = part
    return out or "(top level)"


def describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        where = field_path(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        got = ""
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            shown = repr(err["input"])
            if len(shown) <= 60 and not isinstance(err["input"], dict):
                got = f" (got {shown})"
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against config/example.toml)"
        lines.append(f"{source}: {where}: {message}{got}")
    return "\n".join(lines)
