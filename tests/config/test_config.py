"""A config that cannot be used names the field and the daemon exits 78 (EX_CONFIG)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.loading import EX_CONFIG, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "config" / "example.toml"
GOOD_RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

MINIMAL = f"""
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
[storage]
recipients = ["{GOOD_RECIPIENT}"]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60
    )


def test_example_config_parses_and_documents_every_section() -> None:
    config = load_config(EXAMPLE)
    assert config.cameras[0].name == "closeup"
    assert config.monitors[0].protocol == "masimo"
    assert config.storage.recipients == []  # fail closed until IT pastes the review key


def test_minimal_config_gets_sensible_defaults() -> None:
    config = parse_config(MINIMAL)
    cam = config.cameras[0]
    assert (cam.width, cam.height, cam.fps) == (1280, 720, 30)
    assert config.encoding.preset == "veryfast"
    assert config.storage.segment_seconds == 10


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (("fps", "fps = 120"), "cameras[0].fps", "less than or equal to 60"),
        (("name", 'name = "Close Up"'), "cameras[0].name", "pattern"),
        (("typo", "widht = 1280"), "cameras[0].widht", "unknown field"),
        (("kind", 'source = { kind = "webcam" }'), "cameras[0].source", "webcam"),
        (("url", 'source = { kind = "url", url = "ftp://x" }'), "cameras[0].source.url", "rtsp"),
        (("masks", 'masks = [{ polygon = [[0, 0], [5000, 0], [0, 10]] }]'), "cameras[0]", "outside"),
    ],
)
def test_bad_camera_field_is_named(edit: tuple[str, str], field: str, words: str) -> None:
    text = MINIMAL.replace('source = { kind = "test_pattern" }', "")
    line = edit[1]
    if not line.startswith("source"):
        line = 'source = { kind = "test_pattern" }\n' + line
    text = text.replace('name = "closeup"', 'name = "closeup"\n' + line)
    if edit[0] == "name":
        text = text.replace('name = "closeup"\n', "", 1)
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="station.toml")
    message = str(err.value)
    assert f"station.toml: {field}" in message
    assert words in message


def test_audio_camera_without_audio_section_is_refused() -> None:
    text = MINIMAL.replace('name = "closeup"', 'name = "closeup"\naudio = true')
    with pytest.raises(ConfigError, match=r"cameras: 'closeup' records audio but there is no \[audio\]"):
        parse_config(text)


def test_duplicate_camera_names_are_refused() -> None:
    text = MINIMAL + '\n[[cameras]]\nname = "closeup"\nsource = { kind = "test_pattern" }\n'
    with pytest.raises(ConfigError, match="name 'closeup' is used more than once"):
        parse_config(text)


def test_check_config_exit_78_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace("[storage]", "[storage]\nsegment_seconds = 0.5"))
    result = cli("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert "storage.segment_seconds" in result.stderr
    assert "greater than or equal to 2" in result.stderr


def test_run_exits_78_on_bad_config_before_touching_anything(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    store = tmp_path / "store"
    path.write_text(
        MINIMAL.replace("[storage]", f'[storage]\ndirectory = "{store}"\nfsync_interval_s = -1')
    )
    result = cli("run", "--config", str(path))
    assert result.returncode == EX_CONFIG
    assert "storage.fsync_interval_s" in result.stderr
    assert not store.exists()


def test_run_refuses_without_recipient(tmp_path: Path) -> None:
    path = tmp_path / "nokey.toml"
    path.write_text(MINIMAL.replace(f'recipients = ["{GOOD_RECIPIENT}"]', "recipients = []"))
    result = cli("run", "--config", str(path))
    assert result.returncode == EX_CONFIG
    assert "storage.recipients" in result.stderr
    assert "refuses to record" in result.stderr


def test_recipient_with_bad_checksum_is_refused(tmp_path: Path) -> None:
    broken = GOOD_RECIPIENT[:-1] + ("q" if GOOD_RECIPIENT[-1] != "q" else "p")
    path = tmp_path / "badkey.toml"
    path.write_text(MINIMAL.replace(GOOD_RECIPIENT, broken))
    result = cli("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert "storage.recipients[0]" in result.stderr


def test_unreadable_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[[cameras]\nname=")
    result = cli("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert "not valid TOML" in result.stderr


LINE_MONITOR = """
[[monitors]]
name = "analyser"
protocol = "line_format"
port = "/dev/ttyUSB3"
"""


def test_line_format_monitor_needs_its_table() -> None:
    with pytest.raises(ConfigError, match=r"monitors\[0\]: line_format: protocol 'line_format' needs"):
        parse_config(MINIMAL + LINE_MONITOR)


def test_line_format_errors_name_the_field_inside_the_table() -> None:
    text = MINIMAL + LINE_MONITOR + """
[monitors.line_format]
mode = "regex"
pattern = 'O2=(?P<fio2>\\d+)'
[[monitors.line_format.fields]]
name = "o2"
parameter = "FiO2"
unit = "%"
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="station.toml")
    message = str(err.value)
    assert "station.toml: monitors[0]" in message
    assert "fields[0].name" in message and "fio2" in message


def test_a_good_line_format_monitor_loads() -> None:
    text = MINIMAL + LINE_MONITOR + """
[monitors.line_format]
mode = "regex"
pattern = 'O2=(?P<fio2>\\d+)'
[[monitors.line_format.fields]]
name = "fio2"
parameter = "FiO2"
unit = "%"
"""
    assert parse_config(text).monitors[0].line_format is not None
