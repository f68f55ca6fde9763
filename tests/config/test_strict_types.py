"""Config types are strict: a string or a number where a boolean belongs, or a string where a
number belongs, is refused by name, not guessed at."""

from __future__ import annotations

import pytest

from config.loading import ConfigError, parse_config

ROOM = '[[cameras]]\nname = "room"\nsource = { kind = "test_pattern" }\n'
BASE = """
[[cameras]]
name = "closeup"
source = { kind = "test_pattern" }
"""


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (ROOM + 'audio = "yes"\n', "cameras[1].audio"),
        (ROOM + "overlay = 1\n", "cameras[1].overlay"),
        ('[storage]\nsegment_seconds = "10"\n', "storage.segment_seconds"),
        ('[storage]\nretention_days = 30.5\n', "storage.retention_days"),
        ('[triggers]\nvitals = "true"\n', "triggers.vitals"),
        ('[triggers]\nmotion_region = [0, "0", 10, 10]\n', "triggers.motion_region"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_name(extra: str, field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(BASE + extra, source="station.toml")
    assert f"station.toml: {field}" in str(refused.value)


def test_the_types_toml_writes_are_taken() -> None:
    config = parse_config(
        BASE
        + '[storage]\ndirectory = "/srv/rec"\nfsync_interval_s = 2\n'
        + "[triggers]\nmotion_region = [0, 0, 64, 48]\n"
    )
    assert str(config.storage.directory) == "/srv/rec"
    assert config.storage.fsync_interval_s == 2.0  # a whole number where a float belongs is fine
    assert config.triggers.motion_region == (0, 0, 64, 48)
