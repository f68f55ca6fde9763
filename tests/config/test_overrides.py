"""One template, per-table overrides: what the fleet renderer writes reads back as what was meant."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loading import ConfigError, parse_config
from config.overrides import OverrideError, apply_overrides, dumps, parse_override, render
from store.keys import Identity

EXAMPLE = (Path(__file__).resolve().parents[2] / "config" / "example.toml").read_text()

scalars = (
    st.text()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), values, max_size=6))
def test_what_is_written_reads_back_the_same(data: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(data)) == data


def test_dates_and_nan_are_refused_not_written_wrongly() -> None:
    with pytest.raises(OverrideError, match="not a value a config holds"):
        dumps({"x": float("nan")})
    with pytest.raises(OverrideError, match="datetime"):
        dumps(tomllib.loads("x = 2026-01-01T00:00:00Z"))


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ('station.table="Resus 3"', ["station", "table"], "Resus 3"),
        ("station.table=Resus 3", ["station", "table"], "Resus 3"),  # no quotes in a shell loop
        ("collection.table=resus-3", ["collection", "table"], "resus-3"),
        ("storage.retention_days=14", ["storage", "retention_days"], 14),
        ("collection.enabled=true", ["collection", "enabled"], True),
        ("cameras[0].fps = 15", ["cameras", 0, "fps"], 15),
        ('storage.recipients=["age1x"]', ["storage", "recipients"], ["age1x"]),
    ],
)
def test_an_override_is_a_key_the_errors_use_and_a_toml_value(
    text: str, path: list[str | int], value: Any
) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("station.table", "KEY=VALUE"),
        ("station..table=x", "not a config key"),
        ('storage.recipients=["age1x"', "not a TOML value"),  # meant as TOML: no guessing
        ("cameras[3].fps=15", "only 1 entries"),
        ("station.table.x=1", "station.table is not a table"),
        ("station[0]=1", "not an array"),
        ("audio_devices[0].x=1", "no audio_devices array"),
    ],
)
def test_an_override_that_cannot_apply_says_why(text: str, message: str) -> None:
    data = tomllib.loads(EXAMPLE)
    with pytest.raises(OverrideError, match=message.replace("[", r"\[")):
        apply_overrides(data, [text])


def test_the_template_is_not_changed_and_a_later_override_wins() -> None:
    data = tomllib.loads(EXAMPLE)
    before = tomllib.loads(EXAMPLE)
    out = apply_overrides(data, ["cameras[0].fps=15", "cameras[0].fps=25", "logging.level=debug"])
    assert data == before
    assert out["cameras"][0]["fps"] == 25 and out["logging"]["level"] == "debug"


def test_a_rendered_table_config_loads_with_the_real_loader() -> None:
    recipient = str(Identity.generate().recipient)
    template = EXAMPLE.replace("recipients = []", f'recipients = ["{recipient}"]')
    text = render(
        template,
        [
            "station.table=Resus 3",
            "collection.enabled=true",
            "collection.endpoint=https://s3.hospital.example",
            "collection.bucket=neoflix-recordings",
            "collection.site=st-elsewhere-nicu",
            "collection.table=resus-3",
            "cameras[0].source.exposure=156",
        ],
        header="rendered from unit.toml\nfor resus-3",
    )
    assert text.startswith("# rendered from unit.toml\n# for resus-3\n")
    config = parse_config(text)
    original = parse_config(template)
    assert config.station.table == "Resus 3"
    assert (config.collection.enabled, config.collection.site, config.collection.table) == (
        True, "st-elsewhere-nicu", "resus-3",
    )  # fmt: skip
    assert config.cameras[0].source.kind == "v4l2" and config.cameras[0].source.exposure == 156
    # Everything not overridden is the template's, to the last field.
    assert (
        config.model_copy(
            update={
                "station": original.station,
                "collection": original.collection,
                "cameras": original.cameras,
            }
        )
        == original
    )
    assert config.storage.recipients == [recipient]


def test_a_misspelt_override_is_caught_by_the_loader_naming_the_field() -> None:
    text = render(EXAMPLE, ["storage.retention_dayz=14"])
    with pytest.raises(ConfigError, match=r"storage\.retention_dayz: unknown field"):
        parse_config(text)


def test_a_key_with_a_final_newline_is_quoted_not_written_bare() -> None:
    # Found by the property test: a regex "$" also matches before a final newline.
    assert tomllib.loads(dumps({"0\n": {}, "a\n": 1})) == {"0\n": {}, "a\n": 1}
    with pytest.raises(OverrideError, match="not a config key"):
        parse_override("station\n.table=x")
