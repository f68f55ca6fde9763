"""The trend plot of the review export: what a reviewer reads from trends.svg must be the data."""

from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from review.trends import MAX_PANELS, MAX_POINTS, TrendSummary, write_trends_svg

NS = "{http://www.w3.org/2000/svg}"


def rec(
    t: float,
    parameter: str,
    value: float | None,
    *,
    unit: str = "/min",
    monitor: str = "intellivue",
    valid: bool = True,
    source: str = "",
) -> dict[str, Any]:
    return {
        "utc": f"2024-05-01T10:{int(t) // 60 % 60:02d}:{int(t) % 60:02d}+00:00",
        "t": t,
        "monitor": monitor,
        "parameter": parameter,
        "value": value,
        "unit": unit,
        "valid": valid,
        "source": source,
        "alarm": False,
        "flags": [],
        "monitor_time": None,
    }


def mark(t: float, label: str, by: str = "button") -> dict[str, Any]:
    return {"utc": "2024-05-01T10:00:00+00:00", "t": t, "label": label, "by": by}


def draw(
    tmp_path: Path,
    records: list[dict[str, Any]],
    markers: list[dict[str, Any]] | None = None,
    *,
    start_s: float = 0.0,
    birth_s: float | None = None,
    **kw: Any,
) -> tuple[TrendSummary, ET.Element]:
    target = tmp_path / "trends.svg"
    summary = write_trends_svg(records, markers or [], target, start_s=start_s, birth_s=birth_s, **kw)
    assert summary is not None
    assert summary.path == target
    return summary, ET.parse(target).getroot()  # fails unless well-formed XML


def panel(root: ET.Element, title: str) -> ET.Element:
    found = [g for g in root.iter(f"{NS}g") if g.get("class") == "panel" and g.get("data-panel") == title]
    assert len(found) == 1, [g.get("data-panel") for g in root.iter(f"{NS}g") if g.get("class") == "panel"]
    return found[0]


def series(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-series", ""): g for g in root.iter(f"{NS}g") if g.get("class") == "series"}


def lines(group: ET.Element) -> list[list[tuple[float, float]]]:
    out = []
    for poly in group.iter(f"{NS}polyline"):
        pairs = [p.split(",") for p in poly.get("points", "").split()]
        out.append([(float(x), float(y)) for x, y in pairs])
    return out


def linear(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Slope and intercept through two (value, pixel) pairs read off the SVG."""
    (v0, p0), (v1, p1) = points[0], points[-1]
    slope = (p1 - p0) / (v1 - v0)
    return slope, p0 - slope * v0


def y_scale(panel_group: ET.Element) -> tuple[float, float]:
    grid = [
        (float(line.get("data-value", "")), float(line.get("y1", "")))
        for line in panel_group.iter(f"{NS}line")
        if line.get("class") == "grid"
    ]
    assert len(grid) >= 2
    return linear(grid)


def x_scale(root: ET.Element) -> tuple[float, float]:
    ticks = [
        (float(line.get("data-t", "")), float(line.get("x1", "")))
        for line in root.iter(f"{NS}line")
        if line.get("class") == "tick"
    ]
    assert len(ticks) >= 2
    return linear(ticks)


def invert(px: float, scale: tuple[float, float]) -> float:
    slope, intercept = scale
    return (px - intercept) / slope


def texts(root: ET.Element, cls: str | None = None) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text") if cls is None or t.get("class") == cls]


def test_known_values_map_back_from_the_svg_within_a_pixel(tmp_path: Path) -> None:
    start = 100.0
    values = [80.0 + 2.0 * i if i < 30 else 140.0 - i for i in range(60)]
    records = [rec(start + 5 + i, "HR", v) for i, v in enumerate(values)]
    summary, root = draw(tmp_path, records, start_s=start)

    hr = panel(root, "Heart rate (/min)")
    (drawn,) = lines(series(root)["HR|intellivue||/min"])
    assert len(drawn) == len(values)
    # The scales are read off the SVG's own grid lines and time ticks, not taken from the code.
    ys, xs = y_scale(hr), x_scale(root)
    px_per_s, px_per_unit = abs(xs[0]), abs(ys[0])
    for i, ((px, py), value) in enumerate(zip(drawn, values, strict=True)):
        assert invert(px, xs) == pytest.approx(5 + i, abs=1 / px_per_s)
        assert invert(py, ys) == pytest.approx(value, abs=1 / px_per_unit)
    # Higher values are drawn higher up, on the fixed heart-rate axis.
    assert ys[0] < 0
    (hr_panel,) = summary.panels
    assert (hr_panel.y.lo, hr_panel.y.hi) == (0.0, 220.0)
    assert summary.x.lo == 0.0


def test_fixed_axes_for_spo2_and_heart_rate_come_first(tmp_path: Path) -> None:
    records = []
    for i in range(20):
        records += [
            rec(i, "TEMP", 36.5, unit="°C"),
            rec(i, "FiO2", 30.0, unit="%", monitor="vent"),
            rec(i, "HR", 120.0),
            rec(i, "SpO2", 90.0, unit="%", monitor="masimo"),
            rec(i, "PEEP", 5.0, unit="cmH2O", monitor="vent"),
            rec(i, "PIP", 22.0, unit="cmH2O", monitor="vent"),
        ]
    summary, _root = draw(tmp_path, records)
    titles = [p.title for p in summary.panels]
    assert titles == ["SpO2 (%)", "Heart rate (/min)", "FiO2 (%)", "Airway pressure (cmH2O)", "TEMP (°C)"]
    spo2, hr = summary.panels[0], summary.panels[1]
    assert (spo2.y.lo, spo2.y.hi) == (0.0, 100.0)
    assert (hr.y.lo, hr.y.hi) == (0.0, 220.0)
    assert [s.parameter for s in summary.panels[3].series] == ["PIP", "PEEP"]


def test_a_heart_rate_above_the_fixed_axis_widens_it_rather_than_being_cut_off(tmp_path: Path) -> None:
    summary, _root = draw(tmp_path, [rec(i, "HR", 150.0 + 10 * i) for i in range(12)])
    assert summary.panels[0].y.hi >= 260.0


def test_invalid_and_missing_values_are_never_plotted(tmp_path: Path) -> None:
    records = []
    for i in range(40):
        records.append(rec(i, "HR", 100.0))
        records.append(rec(i + 0.5, "HR", 250.0, valid=False))
        records.append(rec(i + 0.7, "HR", None, valid=False))
        records.append(rec(i + 0.8, "HR", None, valid=True))
        records.append(rec(i + 0.9, "HR", math.nan))
        records.append(rec(i, "SpO2", 20.0, unit="%", valid=False))
    summary, root = draw(tmp_path, records)

    assert [p.title for p in summary.panels] == ["Heart rate (/min)"]
    (only,) = series(root).values()
    (drawn,) = lines(only)
    assert len(drawn) == 40
    ys = y_scale(panel(root, "Heart rate (/min)"))
    assert all(invert(py, ys) == pytest.approx(100.0, abs=1.0) for _px, py in drawn)


def test_a_gap_breaks_the_line_instead_of_bridging_it(tmp_path: Path) -> None:
    records = [rec(t, "SpO2", 95.0, unit="%") for t in range(0, 21)]
    records += [rec(t, "SpO2", 95.0, unit="%") for t in range(40, 61)]
    records.append(rec(30, "SpO2", 50.0, unit="%", valid=False))
    summary, root = draw(tmp_path, records)

    first, second = lines(series(root)["SpO2|intellivue||%"])
    xs = x_scale(root)
    assert invert(first[-1][0], xs) == pytest.approx(20, abs=0.5)
    assert invert(second[0][0], xs) == pytest.approx(40, abs=0.5)
    assert summary.panels[0].series[0].runs == 2


def test_a_parameter_measured_every_few_minutes_stays_one_line(tmp_path: Path) -> None:
    records = [rec(t, "HR", 140.0) for t in range(0, 1800)]
    records += [rec(t, "NBP_SYS", 50.0 + t / 300, unit="mmHg") for t in range(10, 1800, 300)]
    summary, root = draw(tmp_path, records)
    assert len(lines(series(root)["NBP_SYS|intellivue||mmHg"])) == 1
    assert summary.panels[1].series[0].runs == 1


def test_a_single_value_between_gaps_is_drawn_as_a_dot(tmp_path: Path) -> None:
    records = [rec(t, "HR", 120.0) for t in (0, 1, 2, 30, 60, 61, 62)]
    _summary, root = draw(tmp_path, records)
    group = series(root)["HR|intellivue||/min"]
    assert len(lines(group)) == 2
    assert len(list(group.iter(f"{NS}circle"))) == 1


def test_two_monitors_reporting_heart_rate_are_two_series_named_in_the_legend(tmp_path: Path) -> None:
    records = []
    for i in range(30):
        records.append(rec(i, "HR", 150.0, monitor="intellivue", source="ECG"))
        records.append(rec(i + 0.4, "HR", 90.0, monitor="nellcor", source="pleth"))
    summary, root = draw(tmp_path, records)

    drawn = series(root)
    assert set(drawn) == {"HR|intellivue|ECG|/min", "HR|nellcor|pleth|/min"}
    ys = y_scale(panel(root, "Heart rate (/min)"))
    for key, value in (("HR|intellivue|ECG|/min", 150.0), ("HR|nellcor|pleth|/min", 90.0)):
        (line,) = lines(drawn[key])
        assert all(invert(py, ys) == pytest.approx(value, abs=1.0) for _px, py in line)
    legend = [
        t.text or ""
        for g in panel(root, "Heart rate (/min)").iter(f"{NS}g")
        if g.get("class") == "legend"
        for t in g.iter(f"{NS}text")
    ]
    assert any("intellivue" in label for label in legend)
    assert any("nellcor" in label for label in legend)
    assert len(summary.panels[0].series) == 2


def test_one_monitor_reporting_a_parameter_from_two_sources_names_the_source(tmp_path: Path) -> None:
    records = []
    for i in range(30):
        records.append(rec(i, "RR", 40.0, monitor="s5", source="CO2"))
        records.append(rec(i, "RR", 44.0, monitor="s5", source="spirometry"))
    summary, _root = draw(tmp_path, records)
    assert sorted(s.label for s in summary.panels[0].series) == ["RR · s5 (CO2)", "RR · s5 (spirometry)"]


def test_markers_are_lines_with_their_labels_escaped(tmp_path: Path) -> None:
    records = [rec(i, "HR", 120.0) for i in range(100)]
    hostile = '<script>alert("x")</script> & "more"'
    markers = [mark(10, "birth"), mark(40, hostile), mark(41, "intubation\x07")]
    _summary, root = draw(tmp_path, records, markers, birth_s=10, table="Table <2> & co", session="s-1")

    groups = [g for g in root.iter(f"{NS}g") if g.get("class") == "marker"]
    assert [g.get("data-label") for g in groups] == ["birth", hostile, "intubation\ufffd"]
    xs = x_scale(root)
    for group, t in zip(groups, (10, 40, 41), strict=True):
        (line,) = group.iter(f"{NS}line")
        assert line.get("x1") == line.get("x2")
        assert invert(float(line.get("x1", "")), xs) == pytest.approx(t, abs=0.5)
    labels = texts(root)
    assert hostile in labels
    assert any("Table <2> & co" in text for text in labels)
    raw = (tmp_path / "trends.svg").read_text(encoding="utf-8")
    assert "<script>" not in raw
    assert not list(root.iter(f"{NS}script"))


def test_the_title_names_table_session_and_utc_start(tmp_path: Path) -> None:
    records = [rec(50 + i, "HR", 120.0) for i in range(10)]  # 10:00:50 UTC at t=50
    _summary, root = draw(tmp_path, records, start_s=20.0, table="Resus 1", session="20240501T100000Z-abc123")
    title = root.find(f"{NS}title")
    assert title is not None and title.text is not None
    assert "Resus 1" in title.text
    assert "20240501T100000Z-abc123" in title.text
    assert "2024-05-01 10:00:20 UTC" in title.text


def test_the_time_axis_reads_mm_ss_since_start_and_since_birth(tmp_path: Path) -> None:
    records = [rec(i, "SpO2", 80.0, unit="%") for i in range(121)]
    _summary, root = draw(tmp_path, records, [mark(30, "birth")], birth_s=30.0)

    since_start = texts(root, "label-start")
    assert since_start[0] == "00:00"
    assert "02:00" in since_start
    since_birth = texts(root, "label-birth")
    assert "T-00:30" in since_birth
    assert "T+00:00" in since_birth
    assert "T+01:30" in since_birth
    births = {
        float(line.get("data-t", "")): float(line.get("x1", ""))
        for line in root.iter(f"{NS}line")
        if line.get("class") == "tick-birth"
    }
    # The T+00:00 tick stands exactly where birth was marked.
    assert invert(births[30.0], x_scale(root)) == pytest.approx(30.0, abs=0.01)


def test_without_a_birth_marker_there_is_no_since_birth_row(tmp_path: Path) -> None:
    _summary, root = draw(tmp_path, [rec(i, "HR", 120.0) for i in range(61)])
    assert texts(root, "label-birth") == []
    assert not any("since birth" in text for text in texts(root))
    assert "01:00" in texts(root, "label-start")


def test_nothing_is_written_without_a_valid_value(tmp_path: Path) -> None:
    target = tmp_path / "trends.svg"
    assert write_trends_svg([], [mark(1, "birth")], target, start_s=0.0, birth_s=1.0) is None
    invalid = [rec(i, "HR", None, valid=False) for i in range(10)]
    invalid += [rec(i, "SpO2", 97.0, unit="%", valid=False) for i in range(10)]
    assert write_trends_svg(invalid, [], target, start_s=0.0, birth_s=None) is None
    assert not target.exists()


def test_beyond_the_panel_limit_parameters_are_named_as_not_plotted(tmp_path: Path) -> None:
    names = ["HR", "SpO2", "FiO2", "PIP", "ETCO2", "RR", "VTE", "VTI", "LEAK", "MV", "TEMP", "PI"]
    records = [rec(i, name, 10.0 + i % 3) for i in range(10) for name in names]
    summary, root = draw(tmp_path, records)
    assert len(summary.panels) == MAX_PANELS
    assert summary.omitted == ("LEAK", "MV", "TEMP", "PI")
    assert any("LEAK, MV, TEMP, PI" in text for text in texts(root))


def test_two_hours_of_a_dozen_parameters_stays_small_and_keeps_short_events(tmp_path: Path) -> None:
    rng = random.Random(7)
    names = ["HR", "PR", "SpO2", "FiO2", "PIP", "PEEP", "ETCO2", "RR", "VTE", "LEAK", "TEMP", "PI"]
    records = []
    for i in range(7200):
        for name in names:
            value = 60.0 + rng.gauss(0, 2)
            if name == "SpO2" and i == 3603:
                value = 5.0  # a one-second dip must survive decimation at its full depth
            if name == "HR" and i == 5003:
                value = 210.0  # and so must a one-second peak
            records.append(rec(float(i), name, value, unit="%" if name == "SpO2" else "u"))
    summary, root = draw(tmp_path, records, [mark(600, "birth")], birth_s=600.0)

    assert (tmp_path / "trends.svg").stat().st_size < 1_500_000
    groups = series(root)
    assert len(groups) == sum(len(p.series) for p in summary.panels)
    for key, group in groups.items():
        drawn = sum(len(line) for line in lines(group))
        assert 0 < drawn <= MAX_POINTS, key
    ys = y_scale(panel(root, "SpO2 (%)"))
    lowest = max(py for line in lines(groups["SpO2|intellivue||%"]) for _px, py in line)
    assert invert(lowest, ys) == pytest.approx(5.0, abs=1.0)
    ys = y_scale(panel(root, "Heart rate (u)"))
    highest = min(py for line in lines(groups["HR|intellivue||u"]) for _px, py in line)
    assert invert(highest, ys) == pytest.approx(210.0, abs=1.0)


def test_airway_pressures_in_mbar_and_cmh2o_share_one_panel_in_cmh2o(tmp_path: Path) -> None:
    records = []
    for i in range(30):
        records.append(rec(i, "PIP", 20.0, unit="cmH2O", monitor="neopuff"))
        records.append(rec(i, "PIP", 20.0, unit="mbar", monitor="ventilator"))
    summary, root = draw(tmp_path, records)
    assert [p.title for p in summary.panels] == ["Airway pressure (cmH2O)"]
    (pressure,) = summary.panels
    drawn = series(root)
    (cmh2o,) = lines(drawn["PIP|neopuff||cmH2O"])
    (mbar,) = lines(drawn["PIP|ventilator||cmH2O"])
    # 20 mbar is 20.39 cmH2O: drawn higher than 20 cmH2O by exactly that.
    assert pressure.y.from_px(cmh2o[0][1]) == pytest.approx(20.0, abs=0.05)
    assert pressure.y.from_px(mbar[0][1]) == pytest.approx(20.394, abs=0.05)


def test_each_monitor_has_one_colour_in_every_panel(tmp_path: Path) -> None:
    records = []
    for i in range(30):
        records.append(rec(i, "HR", 120.0, monitor="oximeter"))
        records.append(rec(i, "SpO2", 80.0, unit="%", monitor="oximeter"))
        records.append(rec(i, "HR", 125.0, monitor="ecg"))
        records.append(rec(i, "FiO2", 30.0, unit="%", monitor="ventilator"))
        records.append(rec(i, "SpO2", 82.0, unit="%", monitor="ventilator"))
    _summary, root = draw(tmp_path, records)
    by_monitor: dict[str, set[str]] = {}
    for key, group in series(root).items():
        by_monitor.setdefault(key.split("|")[1], set()).add(group.get("stroke", ""))
    assert all(len(colours) == 1 for colours in by_monitor.values()), by_monitor
    assert len({next(iter(c)) for c in by_monitor.values()}) == 3


def test_the_spo2_panel_carries_the_target_band_from_birth(tmp_path: Path) -> None:
    records = [rec(i, "SpO2", 70.0, unit="%") for i in range(0, 900, 5)]
    summary, root = draw(tmp_path, records, [mark(60, "birth")], birth_s=60.0)
    (band,) = [p for p in panel(root, "SpO2 (%)").iter(f"{NS}polygon") if p.get("class") == "target-band"]
    corners = [tuple(map(float, p.split(","))) for p in (band.get("points") or "").split()]
    spo2 = summary.panels[0]
    # The band starts one minute after birth at 60-65 % and reaches 85-95 % at ten minutes.
    first_x, first_y = corners[0]
    assert summary.x.from_px(first_x) == pytest.approx(120.0, abs=1)
    assert spo2.y.from_px(first_y) == pytest.approx(65.0, abs=0.5)
    at_ten = [(cx, cy) for cx, cy in corners if abs(summary.x.from_px(cx) - 660.0) < 1]
    assert sorted(round(spo2.y.from_px(cy)) for _cx, cy in at_ten) == [85, 95]


def test_the_title_says_where_the_pre_roll_starts(tmp_path: Path) -> None:
    records = [rec(50 + i, "HR", 120.0) for i in range(10)]
    _summary, root = draw(tmp_path, records, start_s=20.0, started_s=26.0)
    title = root.find(f"{NS}title")
    assert title is not None and title.text is not None
    assert "0:00 = start of the pre-roll, 2024-05-01 10:00:20 UTC" in title.text
    assert "recording started at 00:06" in title.text
