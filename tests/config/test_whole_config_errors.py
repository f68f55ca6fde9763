"""Checks that look at several fields at once still name the field, like any other error."""

from __future__ import annotations

import pytest

from config.loading import ConfigError, parse_config

CAMERA = '[[cameras]]\nname = "{name}"\nsource = {{ kind = "test_pattern" }}\n'


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            CAMERA.format(name="closeup") + CAMERA.format(name="closeup"),
            "station.toml: cameras[1].name: name 'closeup' is used more than once",
        ),
        (
            CAMERA.format(name="room") + "audio = true\n",
            "station.toml: cameras: 'room' records audio but there is no [audio] section",
        ),
        (
            CAMERA.format(name="room")
            + 'masks = [{ name = "door", polygon = [[0, 0], [1300, 0], [0, 9]] }]\n',
            "station.toml: cameras[0].masks[0].polygon: mask door corner (1300, 0) lies outside the "
            "1280x720 frame",
        ),
        (
            CAMERA.format(name="closeup")
            + '[[monitors]]\nname = "ox"\nprotocol = "masimo"\nport = "/dev/ttyUSB0"\n' * 2,
            "station.toml: monitors[1].name: name 'ox' is used more than once",
        ),
    ],
)
def test_the_message_names_the_field_and_reads_as_one_line(text: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="station.toml")
    assert str(caught.value) == line
