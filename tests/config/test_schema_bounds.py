"""Every config field says what it is, and every number and free text has bounds.

Walks the whole schema, so a field added later without a description or a bound fails here
rather than reaching a station unchecked.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
from pydantic import BaseModel

from config.loading import ConfigError, parse_config
from config.models import Config

# (model, field) → why it needs no bound of its own.
EXEMPT_BOUNDS: dict[tuple[str, str], str] = {
    ("PrivacyMask", "polygon"): "each corner is checked against the camera's frame",
    ("TriggerConfig", "motion_region"): "checked against the watched camera's frame",
    ("MonitorConfig", "line_format"): "a table of its own, checked by vitals.line_format",
}


def models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in seen:
                seen.append(annotation)
                for info in annotation.model_fields.values():
                    visit(info.annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    visit(root)
    return seen


def leaves(annotation: Any, metadata: list[Any]) -> list[tuple[Any, list[Any]]]:
    """Each scalar type a field may hold, with the constraints that apply to it."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        found: list[Any] = []
        for item in extra:
            found += getattr(item, "metadata", [item])
        return leaves(inner, metadata + found)
    if origin in (Union, types.UnionType):
        return [leaf for arg in get_args(annotation) for leaf in leaves(arg, metadata)]
    if origin is Literal or annotation is type(None):
        return []
    return [(annotation, metadata)]


def has(metadata: list[Any], *kinds: type) -> bool:
    return any(isinstance(m, kinds) for m in metadata)


def fields() -> list[tuple[str, str, Any]]:
    return [(m.__name__, name, info) for m in models(Config) for name, info in m.model_fields.items()]


@pytest.mark.parametrize(("model", "name", "info"), fields(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_field_is_described_and_bounded(model: str, name: str, info: Any) -> None:
    assert info.description and len(info.description) > 10, f"{model}.{name}: no description"
    if (model, name) in EXEMPT_BOUNDS:
        return
    for kind, metadata in leaves(info.annotation, list(info.metadata)):
        if kind in (int, float):
            assert has(metadata, at.Ge, at.Gt), f"{model}.{name}: {kind.__name__} without a lower bound"
            assert has(metadata, at.Le, at.Lt), f"{model}.{name}: {kind.__name__} without an upper bound"
        elif kind is str:
            bounded = has(metadata, at.MaxLen) or any(getattr(m, "pattern", None) for m in metadata)
            assert bounded, f"{model}.{name}: free text without a length limit or a pattern"
        elif get_origin(kind) is list:
            assert has(metadata, at.MaxLen) or (model, name) in {
                ("StorageConfig", "recipients"),  # one per reviewer; each a fixed-length key
                ("TriggerConfig", "vitals_parameters"),  # a choice among three, repeats harmless
                ("CameraConfig", "masks"),  # each a bounded polygon; a room may need several
            }, f"{model}.{name}: a list without a length limit"


def test_the_walk_sees_the_whole_schema() -> None:
    names = {m.__name__ for m in models(Config)}
    assert {"V4L2Source", "ToneAudio", "MonitorConfig", "ButtonConfig", "PrivacyMask"} <= names
    assert len(fields()) > 80


CAMERA = """
[[cameras]]
name = "closeup"
source = {{ kind = "v4l2", {source} }}
"""


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("device = -3", "device"),
        ("device = 64", "device"),
        ('device = ""', "device"),
        ('device = "/dev/video0", exposure = -1e9', "exposure"),
        ('device = "/dev/video0", exposure = 1e9', "exposure"),
        (f'device = "/dev/{"v" * 300}"', "device"),
    ],
)
def test_v4l2_bounds_refuse_what_no_driver_takes(source: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"cameras\[0\]\.source\.{field}"):
        parse_config(CAMERA.format(source=source))


def test_v4l2_accepts_an_index_a_path_and_a_fixed_exposure() -> None:
    index = parse_config(CAMERA.format(source="device = 0, exposure = 156"))
    path = parse_config(CAMERA.format(source='device = "/dev/v4l/by-id/usb-cam-video-index0"'))
    assert index.cameras[0].source.device == 0  # type: ignore[union-attr]
    assert path.cameras[0].source.device == "/dev/v4l/by-id/usb-cam-video-index0"  # type: ignore[union-attr]


def test_free_text_is_bounded() -> None:
    long = "x" * 600
    with pytest.raises(ConfigError, match=r"monitors\[0\]\.port"):
        parse_config(
            CAMERA.format(source="device = 0")
            + f'[[monitors]]\nname = "ox"\nprotocol = "masimo"\nport = "{long}"\n'
        )
    with pytest.raises(ConfigError, match=r"button\.key"):
        parse_config(CAMERA.format(source="device = 0") + f'[button]\nkey = "{long}"\n')


EXAMPLE = Path(__file__).parents[2] / "config" / "example.toml"


def test_example_toml_shows_every_field() -> None:
    """IT configures a station from config/example.toml: a field it never mentions, commented or
    not, is a setting nobody finds."""
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [
        f"{model}.{name}"
        for model, name, _info in fields()
        if not re.search(rf"(?<![\w.]){name}\s*=", text)  # a key, set or commented out
        and not re.search(rf"\[\[?(?:\w+\.)*{name}\]\]?", text)  # a section: [audio], [[cameras]]
    ]
    assert not missing, f"config/example.toml does not mention: {', '.join(missing)}"
