"""The demo the README promises: it records by itself from synthetic sources and exports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_records_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--out", str(out), "--seconds", "4"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recording started by itself" in result.stdout
    assert (out / "identity.txt").read_text().count("AGE-SECRET-KEY-1") == 1
    export = out / "export"
    names = ("closeup.mp4", "room.mp4", "vitals.csv", "trends.svg", "markers.csv", "session.json")
    for name in (*names, "viewer.html"):
        assert (export / name).stat().st_size > 0, name
    assert "birth" in (export / "markers.csv").read_text()
    trends = ET.parse(export / "trends.svg").getroot()
    assert trends.tag == "{http://www.w3.org/2000/svg}svg"
    assert json.loads((export / "session.json").read_text())["trends"] == "trends.svg"
    assert str(export / "trends.svg") in result.stdout
