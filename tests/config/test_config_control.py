"""Button and trigger settings the recorder could not run with are refused up front, by name.

Each of these used to pass the config check and then crash the daemon (or silence a camera)
when it built the button or the motion detector; now ``check-config`` exits 78 naming the field.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from config.loading import EX_CONFIG, ConfigError, parse_config
from control.gestures import GestureRecognizer
from recorder.daemon import Daemon
from store.keys import Identity

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
STATION = f"""
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 640
height = 480
[[cameras]]
name = "room"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
[storage]
recipients = ["{RECIPIENT}"]
"""


@pytest.mark.parametrize(
    ("section", "field", "words"),
    [
        ("[button]\nlong_press_s = 10", "button.long_press_s", "less than 10"),
        ("[triggers]\nmotion_threshold = 1", "triggers.motion_threshold", "less than 1"),
        ("[triggers]\nmotion_region = [-1, 0, 100, 100]", "triggers.motion_region:", "x and y of 0 or more"),
        ("[triggers]\nmotion_region = [0, 0, 0, 100]", "triggers.motion_region:", "height above 0"),
        ("[triggers]\nmotion_region = [600, 0, 100, 100]", "triggers.motion_region:", "640x480 frame"),
        ('[triggers]\nmotion_camera = "hall"', "triggers.motion_camera:", "no camera named 'hall'"),
        (
            '[triggers]\nmotion_camera = "room"\nmotion_region = [0, 200, 100, 100]',
            "triggers.motion_region:",
            "320x240 frame of camera 'room'",
        ),
    ],
)
def test_a_setting_the_daemon_cannot_use_is_refused_by_name(section: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(STATION + section, source="station.toml")
    message = str(err.value)
    assert field in message and words in message


@pytest.mark.parametrize(
    "section",
    [
        "[button]\nlong_press_s = 9.5",
        "[triggers]\nmotion_threshold = 0.99",
        "[triggers]\nmotion_region = [540, 380, 100, 100]",  # up to the frame's edge
        '[triggers]\nmotion_camera = "room"\nmotion_region = [0, 0, 320, 240]',
    ],
)
def test_the_limits_themselves_are_usable(section: str) -> None:
    config = parse_config(STATION + section)
    b = config.button
    GestureRecognizer(double_press_ms=b.double_press_ms, long_press_s=b.long_press_s)  # builds


def test_check_config_exits_78_naming_the_button_field(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(STATION + "[button]\nlong_press_s = 10\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "check-config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EX_CONFIG
    assert "button.long_press_s" in result.stderr


def test_a_motion_detector_that_fails_never_costs_the_camera_its_frames(tmp_path: Path) -> None:
    config = parse_config(
        STATION.replace("[storage]", f'[storage]\ndirectory = "{tmp_path / "rec"}"')
        + f'[station]\ncontrol_socket = "{tmp_path / "control.sock"}"\n'
        + "[triggers]\nmotion = true\nmotion_region = [0, 0, 64, 48]\n"
    )
    daemon = Daemon(config, [Identity.generate().recipient])
    seen: list[int] = []
    tap: Callable[[np.ndarray, int], None] = daemon._motion_tap("closeup", lambda f, t: seen.append(t))
    empty = np.zeros((0, 0, 3), dtype=np.uint8)  # nothing the detector can read a region from
    for t in range(1, 5):
        tap(empty, t)
    assert seen == [1, 2, 3, 4]
    daemon.audit.close()
