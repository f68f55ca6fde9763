"""The [overlay] section: a zone, a unit, a panel; a wrong one names the field and exits 78."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.loading import EX_CONFIG, ConfigError, parse_config
from config.models import OVERLAY_PARAMETERS
from vitals.sample import Parameter

EXAMPLE = Path(__file__).parents[2] / "config" / "example.toml"
MINIMAL = """
[[cameras]]
name = "closeup"
source = { kind = "test_pattern" }
"""


def overlay(lines: str) -> str:
    return MINIMAL + "[overlay]\n" + lines + "\n"


def test_defaults_the_system_zone_cmh2o_and_every_parameter() -> None:
    config = parse_config(MINIMAL).overlay
    assert config.timezone == "localtime" and config.zone() is None
    assert config.pressure_unit == "cmH2O"
    assert sorted(config.shown_parameters()) == sorted(Parameter)
    assert config.max_parameters == 8


def test_a_named_zone_is_used() -> None:
    assert parse_config(overlay('timezone = "Europe/Amsterdam"')).overlay.zone() == ZoneInfo(
        "Europe/Amsterdam"
    )


@pytest.mark.parametrize("name", ["Europe/Amsterdm", "CET+1", "../../etc/passwd", "/etc/localtime", "Europe"])
def test_an_unknown_zone_names_the_field(name: str) -> None:
    with pytest.raises(ConfigError, match=r"overlay\.timezone: .*not a time zone this system knows"):
        parse_config(overlay(f'timezone = "{name}"'))


def test_check_config_exits_78_on_an_unknown_zone(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(overlay('timezone = "Europe/Amsterdm"'))
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EX_CONFIG
    assert "overlay.timezone" in result.stderr and "Europe/Amsterdm" in result.stderr


def test_parameter_names_are_those_of_vitals_csv_in_any_case() -> None:
    config = parse_config(overlay('parameters = ["spo2", "Vte", "etCO2", "MAP_AW"]')).overlay
    assert config.shown_parameters() == (Parameter.SPO2, Parameter.VTE, Parameter.ETCO2, Parameter.MAP_AW)


@pytest.mark.parametrize(
    ("lines", "field", "words"),
    [
        ('parameters = ["HR", "VTx"]', "overlay.parameters", "'VTx' is not a parameter the recorder knows"),
        ('parameters = ["HR", "hr"]', "overlay.parameters", "listed more than once"),
        ("parameters = []", "overlay.parameters", "at least 1"),
        ("parameters = [1]", "overlay.parameters[0]", "string"),
        ("max_parameters = 0", "overlay.max_parameters", "greater than or equal to 1"),
        ('max_parameters = "8"', "overlay.max_parameters", "integer"),
        ('pressure_unit = "kPa"', "overlay.pressure_unit", "'cmH2O' or 'mbar'"),
        ('pressure_units = "mbar"', "overlay.pressure_units", "unknown field"),
    ],
)
def test_a_bad_panel_names_the_field(lines: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(overlay(lines))
    assert f"{field}: " in str(caught.value) and words in str(caught.value)


def test_example_toml_shows_the_default_panel() -> None:
    """The commented list in example.toml is the default, so IT edits what is really in use."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = re.search(r"^# (parameters = \[.*?\])$", text, re.MULTILINE | re.DOTALL)
    assert block is not None
    listed = tomllib.loads(re.sub(r"^#\s*", "", block.group(1), flags=re.MULTILINE))["parameters"]
    assert tuple(listed) == OVERLAY_PARAMETERS


def test_zones_are_known_without_the_systems_zone_files(tmp_path: Path) -> None:
    """A minimal Debian may lack /usr/share/zoneinfo: the tzdata package stands in for it."""
    path = tmp_path / "amsterdam.toml"
    path.write_text(overlay('timezone = "Europe/Amsterdam"'))
    load = "import sys; from pathlib import Path; from config.loading import load_config; "
    load += "print(load_config(Path(sys.argv[1])).overlay.zone())"
    result = subprocess.run(
        [sys.executable, "-c", load, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONTZPATH": ""},  # no system zone files at all
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Europe/Amsterdam"
