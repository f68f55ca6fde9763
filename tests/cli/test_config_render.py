"""``neoflix-capture config-render``: a table's config from the unit's template, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from config.loading import EX_CONFIG, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def test_renders_a_checked_config_for_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["config-render", str(EXAMPLE), "--set", "station.table=Resus 3", "--set", "logging.level=debug"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("# Rendered by neoflix-capture config-render from example.toml with:\n")
    assert "#   --set station.table=Resus 3\n" in out
    config = parse_config(out)
    assert (config.station.table, config.logging.level) == ("Resus 3", "debug")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("collection.table=Resus 3", "collection.table: String should match pattern"),  # not a slug
        ("cameras[1].fps=15", "only 1 entries"),
        ("button.kind=hid", "button: device: a USB button needs its /dev/input event device"),
    ],
)
def test_a_config_that_would_not_load_is_not_printed(
    capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    code = main(["config-render", str(EXAMPLE), "--set", override])
    captured = capsys.readouterr()
    assert code == EX_CONFIG
    assert captured.out == ""
    assert message in captured.err
