"""viewer.html without a browser: one self-contained file, its data on the MP4s' clock, safe
against typed text, and the SpO2 target table a unit can set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from review.targets import DEFAULT_TARGETS, TargetSpecError, parse_targets
from review.viewer import page_data, render_page

SUMMARY: dict[str, Any] = {
    "session": "20260301T080000Z-abcdef",
    "table": "Table 1",
    "media_start_s": 100.0,
    "birth_media_s": 130.0,
    "media_epoch_utc": "2026-03-01T08:00:00.123456+00:00",
    "markers": [
        {"t": 130.0, "utc": "x", "label": "birth", "by": "button"},
        {"t": 200.0, "utc": "x", "label": "</script><script>alert(1)</script><!--", "by": "button"},
    ],
    "cameras": {
        "closeup": {"file": "closeup.mp4", "first_frame_in_mp4_s": 0.033, "seconds": 900.0, "fps": 30,
                    "audio": False},
        "room": {"file": "room.mp4", "first_frame_in_mp4_s": 0.0, "seconds": 899.0, "fps": 30, "audio": True},
    },
}


def rec(t: float, parameter: str, value: float | None, unit: str, monitor: str = "m") -> dict[str, Any]:
    return {"t": t, "parameter": parameter, "value": value, "unit": unit, "monitor": monitor,
            "valid": value is not None}


def embedded(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="session-data">(.*?)</script>', html, re.S)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_the_page_is_one_file_that_needs_no_network() -> None:
    html = render_page(page_data(SUMMARY, [rec(101, "HR", 120, "/min")], DEFAULT_TARGETS, {}, 105.0))
    assert "uPlot" in html and "{{" not in html and "/*{{" not in html
    # Nothing fetched: no external script, style or font; the videos by relative path only.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(http" not in html
    data = embedded(html)
    assert [c["file"] for c in data["cameras"]] == ["closeup.mp4", "room.mp4"]


def test_typed_text_cannot_end_the_data_element() -> None:
    html = render_page(page_data(SUMMARY, [], DEFAULT_TARGETS, {}, None))
    assert html.count("</script>") == 3  # the data, uPlot and the page's own script
    assert "<!--" not in html.split('id="session-data">', 1)[1].split("</script>", 1)[0]
    labels = [m["label"] for m in embedded(html)["markers"]]
    assert labels[1] == "</script><script>alert(1)</script><!--"


def test_times_are_seconds_of_the_mp4s_and_the_band_counts_from_birth() -> None:
    vitals = [rec(100 + i, "SpO2", 80.0, "%") for i in range(0, 600, 2)]
    data = page_data(SUMMARY, vitals, DEFAULT_TARGETS, {"room": [[400.0, 410.0]]}, 105.0)
    assert data["birth"] == 30.0 and data["started"] == 5.0
    assert [m["t"] for m in data["markers"]] == [30.0, 100.0]
    assert data["gaps"] == [{"camera": "room", "from": 300.0, "to": 310.0}]
    assert data["band_from"] == "birth"
    assert data["band"][0] == [90.0, 60.0, 65.0]  # one minute after birth
    assert data["band"][-1][0] == 900.0  # to the end of the longest video
    assert data["epoch_ms"] == pytest.approx(1772352000123.456)
    (spo2,) = data["panels"]
    assert spo2["series"][0]["t"][0] == 0.0


def test_without_a_birth_the_band_counts_from_the_recordings_start() -> None:
    summary = {**SUMMARY, "birth_media_s": None}
    data = page_data(summary, [], DEFAULT_TARGETS, {}, 105.0)
    assert data["band_from"] == "the start of the recording"
    assert data["band"][0][0] == 65.0


def test_airway_pressures_share_one_panel_in_cmh2o_and_gaps_break_lines() -> None:
    vitals = [rec(100 + i, "PIP", 20.0, "mbar", "vent") for i in range(10)]
    vitals += [rec(100 + i, "PEEP", 5.0, "cmH2O", "neopuff") for i in (*range(10), *range(40, 50))]
    vitals.append(rec(111, "PIP", None, "mbar", "vent"))  # invalid: a break
    data = page_data(SUMMARY, vitals, DEFAULT_TARGETS, {}, None)
    (pressure,) = data["panels"]
    assert pressure["title"] == "Airway pressure" and pressure["unit"] == "cmH2O"
    pip, peep = pressure["series"]
    assert pip["v"][0] == pytest.approx(20.394, abs=0.001)
    assert pip["v"][-1] is None
    assert None in peep["v"]  # 30 s without a value: the line breaks there
    assert pip["colour"] != peep["colour"]  # two monitors, two colours


def test_a_unit_sets_its_own_targets_and_a_bad_table_is_named() -> None:
    targets = parse_targets("5:80-90, 1:60-70")
    assert [(t.minute, t.low, t.high) for t in targets] == [(1, 60, 70), (5, 80, 90)]
    for bad, words in (("5:80", "MINUTE:LOW-HIGH"), ("5:90-80", "LOW <= HIGH"), ("", "none given"),
                       ("1:60-65,1:60-70", "twice")):
        with pytest.raises(TargetSpecError, match=words):
            parse_targets(bad)


def test_export_refuses_a_bad_target_table_with_a_clear_message(tmp_path: Path, capsys: Any) -> None:
    from cli.main import main

    with pytest.raises(SystemExit) as stop:
        main(["export", str(tmp_path), "--identity", str(tmp_path / "id"), "--out", str(tmp_path / "o"),
              "--spo2-targets", "5:90-80"])
    assert stop.value.code == 2
    assert "SpO2 target '5:90-80'" in capsys.readouterr().err
