"""The vital-sign trend plot of a review export: one self-contained SVG beside vitals.csv.

Stacked panels share one time axis, labelled in time since the start of the recording and, once a
birth was marked, in time since birth, so a reviewer can read the plot against the videos and the
resuscitation algorithm's clock at once. SpO2 and heart rate come first on the fixed axes
clinicians read at a glance; FiO2 and the airway pressures follow, then whatever else the
monitors sent, each scaled to its own values.

SVG rather than an image library: it is plain text, opens in any browser on the review
workstation, scales without blurring, and needs nothing beyond the standard library.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from review.pressure import AIRWAY_PRESSURES, CMH2O, in_cmh2o
from review.targets import DEFAULT_TARGETS, Target, band_polygon

MAX_PANELS = 8
MAX_POINTS = 2000  # per series, after decimation
GAP_S = 5.0  # no valid value for longer than this (or GAP_FACTOR median intervals) breaks the line
GAP_FACTOR = 3.0

WIDTH = 1180.0
PLOT_LEFT = 140.0
PLOT_RIGHT = 1140.0  # 1000 units of plot: MAX_POINTS is a min and a max per unit
AXIS_TITLE_X = 12.0  # clear of a tick label centred on the plot's left edge
TITLE_H = 34.0
MARKER_ROW_H = 14.0
MAX_MARKER_ROWS = 4
PANEL_HEADER_H = 20.0
PANEL_GAP = 10.0
AXIS_H = 64.0
NOTE_H = 18.0
LABEL_CHARS = 40  # longer marker labels are shortened on the plot; the tooltip holds all of it

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
BAND_COLOUR = "#2ca02c"
MARKER_COLOUR = "#555555"
BIRTH_COLOUR = "#b2182b"

# Characters XML 1.0 cannot carry at all, not even escaped: a label typed with a stray control
# character must not make the whole file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class _PanelSpec:
    title: str
    parameters: tuple[str, ...]
    fixed: tuple[float, float] | None  # None: scaled to the values
    height: float
    from_zero: bool = False


# The order a neonatologist reads a resuscitation in. PR sits with HR: the pleth's rate against
# the ECG's is how a poor signal shows.
_FIXED_PANELS = (
    _PanelSpec("SpO2", ("SpO2",), (0.0, 100.0), 130.0),
    _PanelSpec("Heart rate", ("HR", "PR"), (0.0, 220.0), 130.0),
    _PanelSpec("FiO2", ("FiO2",), (0.0, 100.0), 90.0),
    _PanelSpec("Airway pressure", ("PIP", "PEEP", "MAP_AW"), None, 100.0, from_zero=True),
)
_GROUPED_PANELS = (
    _PanelSpec("NBP", ("NBP_SYS", "NBP_MEAN", "NBP_DIA"), None, 80.0),
    _PanelSpec("IBP", ("IBP_SYS", "IBP_MEAN", "IBP_DIA"), None, 80.0),
)
# Parameters without a panel of their own above get a small one each, in this order first.
_PRIORITY = ("ETCO2", "RR", "VTE", "VTI", "LEAK", "MV", "TEMP", "PI")
_SMALL_PANEL_H = 70.0

_TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)
_TARGET_TIME_TICKS = 10


@dataclass(frozen=True)
class Axis:
    """A linear mapping from values (seconds, or a parameter's unit) to SVG user units."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def to_px(self, value: float) -> float:
        return self.px_lo + (value - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)

    def from_px(self, px: float) -> float:
        return self.lo + (px - self.px_lo) / (self.px_hi - self.px_lo) * (self.hi - self.lo)


@dataclass(frozen=True)
class SeriesInfo:
    key: str  # the data-series attribute of its <g> in the SVG
    parameter: str
    monitor: str
    source: str
    unit: str
    label: str  # as the legend shows it
    values: int  # valid values in the log
    points: int  # points drawn, after decimation
    runs: int  # separate lines (a single value is drawn as a dot)


@dataclass(frozen=True)
class PanelInfo:
    title: str
    unit: str
    y: Axis
    series: tuple[SeriesInfo, ...]


@dataclass(frozen=True)
class TrendSummary:
    path: Path
    x: Axis  # seconds since the start of the recording
    panels: tuple[PanelInfo, ...]
    omitted: tuple[str, ...]  # parameters with values that found no panel within MAX_PANELS


@dataclass
class _Series:
    parameter: str
    monitor: str
    source: str
    unit: str
    t: list[float]
    v: list[float]


def write_trends_svg(
    records: Iterable[Mapping[str, Any]],
    markers: Iterable[Mapping[str, Any]],
    target: Path,
    *,
    start_s: float,
    birth_s: float | None,
    end_s: float | None = None,
    table: str | None = None,
    session: str | None = None,
    start_utc: datetime | None = None,
    started_s: float | None = None,
    spo2_targets: Sequence[Target] = DEFAULT_TARGETS,
) -> TrendSummary | None:
    """Draw the valid vital-sign values of a session into an SVG at ``target``.

    Times are media seconds on the session clock; ``start_s`` (the first video frame) is zero on
    the time axis, ``end_s`` (the last, where known) makes the axis cover the whole recording.
    ``start_utc`` is the UTC of ``start_s`` for the title, derived from the records when not given.
    ``started_s`` is when the recording was started (the pre-roll runs from ``start_s`` to it).
    The SpO2 panel carries the target band, its minutes counted from birth (from ``started_s``
    when no birth was marked). Each monitor has one colour in every panel.
    Writes nothing and returns None when there is not one valid value.
    """
    records = list(records)
    series = _collect(records, start_s)
    if not series:
        return None
    marks = [m for m in markers if _finite(m.get("t"))]
    times = [t for s in series for t in (s.t[0], s.t[-1])]
    times += [float(m["t"]) - start_s for m in marks]
    x_lo = min(0.0, *times)
    x_hi = max(x_lo + 1.0, *times, (end_s - start_s) if end_s is not None else x_lo)
    x = Axis(x_lo, x_hi, PLOT_LEFT, PLOT_RIGHT)

    groups, omitted = _panels(series)
    monitors = sorted({s.monitor for s in series})
    colours = {m: COLOURS[i % len(COLOURS)] for i, m in enumerate(monitors)}
    band_origin = birth_s if birth_s is not None else started_s if started_s is not None else start_s
    band = band_polygon(list(spo2_targets), band_origin - start_s, x_hi)
    marker_rows = _marker_rows(marks, start_s, x)
    rows_used = max((row for _m, row, _a in marker_rows), default=-1) + 1
    top = TITLE_H + rows_used * MARKER_ROW_H + (6.0 if rows_used else 0.0)

    body: list[str] = []
    panels: list[PanelInfo] = []
    for index, (spec, unit, members) in enumerate(groups):
        y_top = top + PANEL_HEADER_H
        y = _y_axis(spec, members, y_top + spec.height, y_top)
        info, svg = _draw_panel(
            index, spec, unit, members, x, y, colours, band if spec.title == "SpO2" else []
        )
        panels.append(info)
        body += svg
        top = y_top + spec.height + PANEL_GAP
    plot_top = TITLE_H + rows_used * MARKER_ROW_H
    plot_bottom = top - PANEL_GAP

    body += _draw_markers(marker_rows, x, plot_top, plot_bottom, start_s)
    birth_rel = None if birth_s is None else birth_s - start_s
    body += _draw_time_axis(x, plot_bottom, birth_rel)
    height = plot_bottom + AXIS_H + NOTE_H * (2 if omitted else 1)
    note_y = plot_bottom + AXIS_H + 12.0
    body.append(
        _text(
            PLOT_LEFT,
            note_y,
            f"Only valid values are drawn; a line breaks where none came for more than {GAP_S:.0f} s "
            f"(or {GAP_FACTOR:.0f} usual intervals). All values, with UTC: vitals.csv. "
            + (
                f"Green: the SpO2 target band, minutes after "
                f"{'birth' if birth_s is not None else 'the start of the recording'}. "
                if band
                else ""
            )
            + ("Airway pressures in cmH2O (1 mbar = 1.01972 cmH2O)." if _has_pressure(series) else ""),
            size=10,
            fill="#555",
        )
    )
    if omitted:
        body.append(
            _text(
                PLOT_LEFT,
                note_y + NOTE_H,
                f"Not plotted (at most {MAX_PANELS} panels): {', '.join(omitted)}; see vitals.csv.",
                size=10,
                fill="#555",
            )
        )

    if start_utc is None:
        start_utc = _utc_at_start(records, start_s)
    title = _title(table, session, start_utc, None if started_s is None else started_s - start_s)
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH:.0f} {height:.0f}" font-family="sans-serif" font-size="11">',
        f"<title>{_esc(title)}</title>",
        f'<rect width="{WIDTH:.0f}" height="{height:.0f}" fill="white"/>',
        _text(PLOT_LEFT, 22.0, title, size=15, weight="bold"),
    ]
    target.write_text("\n".join([*head, *body, "</svg>", ""]), encoding="utf-8")
    return TrendSummary(path=target, x=x, panels=tuple(panels), omitted=tuple(omitted))


# --- data ------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _collect(records: Sequence[Mapping[str, Any]], start_s: float) -> list[_Series]:
    """Valid values per (parameter, monitor, source, unit), in time order.

    Source is part of a series' identity because one monitor may report a parameter twice, as
    RR from the capnograph and from spirometry: joining them would draw a zigzag.
    """
    found: dict[tuple[str, str, str, str], _Series] = {}
    for rec in records:
        value: Any = rec.get("value")
        t: Any = rec.get("t")
        if rec.get("valid") is not True or not _finite(value) or not _finite(t):
            continue
        parameter, unit = str(rec.get("parameter", "")), str(rec.get("unit") or "")
        if parameter in AIRWAY_PRESSURES and (converted := in_cmh2o(float(value), unit)) is not None:
            # One airway-pressure panel whatever each monitor's unit: all in cmH2O.
            value, unit = converted, CMH2O
        key = (parameter, str(rec.get("monitor", "")), str(rec.get("source") or ""), unit)
        series = found.get(key)
        if series is None:
            series = found[key] = _Series(*key, t=[], v=[])
        series.t.append(float(t) - start_s)
        series.v.append(float(value))
    for series in found.values():
        if any(b < a for a, b in pairwise(series.t)):
            pairs = sorted(zip(series.t, series.v, strict=True))
            series.t = [p[0] for p in pairs]
            series.v = [p[1] for p in pairs]
    return list(found.values())


def _panels(series: list[_Series]) -> tuple[list[tuple[_PanelSpec, str, list[_Series]]], list[str]]:
    """The panels to draw, in reading order, and the parameters left out for want of room.

    A panel holds one unit only: ETCO2 in % and in mmHg on one axis would read as nonsense.
    """
    present = sorted({s.parameter for s in series})
    claimed = {p for spec in (*_FIXED_PANELS, *_GROUPED_PANELS) for p in spec.parameters}
    rest = [p for p in _PRIORITY if p in present] + [
        p for p in present if p not in claimed and p not in _PRIORITY
    ]
    specs = [*_FIXED_PANELS, *_GROUPED_PANELS] + [_PanelSpec(p, (p,), None, _SMALL_PANEL_H) for p in rest]
    panels: list[tuple[_PanelSpec, str, list[_Series]]] = []
    omitted: list[str] = []
    for spec in specs:
        members = [s for s in series if s.parameter in spec.parameters]
        order = {p: i for i, p in enumerate(spec.parameters)}
        members.sort(key=lambda s: (order[s.parameter], s.monitor, s.source))
        for unit in sorted({s.unit for s in members}):
            same_unit = [s for s in members if s.unit == unit]
            if len(panels) < MAX_PANELS:
                panels.append((spec, unit, same_unit))
            else:
                omitted += [p for p in dict.fromkeys(s.parameter for s in same_unit) if p not in omitted]
    return panels, omitted


def _runs(t: list[float]) -> list[tuple[int, int]]:
    """Index ranges [start, end) of the stretches without a gap."""
    steps = [b - a for a, b in pairwise(t) if b > a]
    # Relative to the usual interval too, so a parameter measured every few minutes (NBP) is
    # still one line while a 1 Hz one breaks after a few silent seconds.
    limit = max(GAP_S, GAP_FACTOR * statistics.median(steps)) if steps else GAP_S
    runs: list[tuple[int, int]] = []
    begin = 0
    for i in range(1, len(t)):
        if t[i] - t[i - 1] > limit:
            runs.append((begin, i))
            begin = i
    runs.append((begin, len(t)))
    return runs


def _decimate(t: list[float], v: list[float], runs: list[tuple[int, int]], x: Axis) -> list[list[int]]:
    """The indices to draw per run: at most MAX_POINTS over all runs.

    Each time bucket keeps its lowest and its highest value, in time order, so a desaturation or
    a bradycardia lasting less than a bucket still shows at its full depth. Buckets start one
    plot unit wide. Only where that still leaves too many points (a signal broken into many short
    runs) do they widen, and gaps narrower than a bucket, which the plot could not show anyway,
    stop breaking the line.
    """
    if len(t) <= MAX_POINTS:
        return [list(range(a, b)) for a, b in runs]
    width = (x.hi - x.lo) / (MAX_POINTS // 2)
    while True:
        kept = [_min_max(t, v, a, b, x.lo, width) for a, b in runs]
        if sum(len(k) for k in kept) <= MAX_POINTS:
            return kept
        width *= 2.0
        merged: list[tuple[int, int]] = []
        for a, b in runs:
            if merged and t[a] - t[merged[-1][1] - 1] < width:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        runs = merged


def _min_max(t: list[float], v: list[float], a: int, b: int, origin: float, width: float) -> list[int]:
    out: list[int] = []
    bucket, low, high = math.floor((t[a] - origin) / width), a, a
    for i in range(a + 1, b):
        here = math.floor((t[i] - origin) / width)
        if here != bucket:
            out += sorted({low, high})
            bucket, low, high = here, i, i
        elif v[i] < v[low]:
            low = i
        elif v[i] > v[high]:
            high = i
    out += sorted({low, high})
    return out


# --- scales ----------------------------------------------------------------------------------


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10.0 * power


def _tick_count(height: float) -> int:
    return max(2, min(5, int(height // 24)))


def _y_axis(spec: _PanelSpec, members: list[_Series], px_lo: float, px_hi: float) -> Axis:
    low = min(min(s.v) for s in members)
    high = max(max(s.v) for s in members)
    ticks = _tick_count(spec.height)
    if spec.fixed is not None:
        lo, hi = spec.fixed
        step = _nice_step((hi - lo) / ticks)
        # Widened rather than clipped when a value lies outside: a heart rate of 260 in SVT must
        # be seen, not cut off at the top.
        if high > hi:
            hi = math.ceil(high / step) * step
        if low < lo:
            lo = math.floor(low / step) * step
        return Axis(lo, hi, px_lo, px_hi)
    if spec.from_zero:
        low = min(0.0, low)
    if high - low < 1e-9:
        pad = max(1.0, abs(high) * 0.05)
        low, high = low - pad, high + pad
    step = _nice_step((high - low) / ticks)
    lo = math.floor(low / step) * step
    hi = math.ceil(high / step) * step
    if hi - lo < 1e-12:
        hi = lo + step
    return Axis(lo, hi, px_lo, px_hi)


def _y_ticks(y: Axis, height: float) -> list[float]:
    step = _nice_step((y.hi - y.lo) / _tick_count(height))
    first = math.ceil(y.lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= y.hi + step * 1e-9:
        ticks.append(k * step)
        k += 1
    return ticks


def _number(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs (2.5 keeps one, 20 none)."""
    decimals = next((d for d in range(6) if math.isclose(step * 10**d, round(step * 10**d))), 6)
    return f"{value:.{decimals}f}"


def _time_step(span: float) -> float:
    for step in _TIME_STEPS_S:
        if span / step <= _TARGET_TIME_TICKS:
            return float(step)
    return float(_TIME_STEPS_S[-1])


def _mmss(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(abs(whole), 60)
    return f"{'-' if whole < 0 else ''}{minutes:02d}:{secs:02d}"


def _since_birth(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(abs(whole), 60)
    return f"T{'-' if whole < 0 else '+'}{minutes:02d}:{secs:02d}"


# --- drawing ---------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text))


def _attr(text: str) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", text))


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float = 11,
    anchor: str = "start",
    fill: str = "#222",
    weight: str = "normal",
    extra: str = "",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" text-anchor="{anchor}" '
        f'fill="{fill}" font-weight="{weight}"{extra}>{_esc(text)}</text>'
    )


def _series_label(s: _Series, members: list[_Series]) -> str:
    """Parameter and monitor always; the source only where it tells two series apart."""
    label = f"{s.parameter} · {s.monitor}" if s.monitor else s.parameter
    twins = [m for m in members if m.parameter == s.parameter and m.monitor == s.monitor]
    if s.source and len(twins) > 1:
        label += f" ({s.source})"
    return label


def _has_pressure(series: list[_Series]) -> bool:
    return any(s.parameter in AIRWAY_PRESSURES for s in series)


def _draw_band(band: list[tuple[float, float, float]], x: Axis, y: Axis, clip: str) -> str:
    """The target band as one filled shape under the series."""
    upper = [(x.to_px(t), y.to_px(hi)) for t, _lo, hi in band]
    lower = [(x.to_px(t), y.to_px(lo)) for t, lo, _hi in reversed(band)]
    points = " ".join(f"{px:.1f},{py:.1f}" for px, py in upper + lower)
    return (
        f'<polygon class="target-band" clip-path="url(#{clip})" points="{points}" '
        f'fill="{BAND_COLOUR}" fill-opacity="0.15" stroke="none"/>'
    )


def _draw_panel(
    index: int,
    spec: _PanelSpec,
    unit: str,
    members: list[_Series],
    x: Axis,
    y: Axis,
    colours: Mapping[str, str],
    band: list[tuple[float, float, float]],
) -> tuple[PanelInfo, list[str]]:
    top, bottom = y.px_hi, y.px_lo
    title = f"{spec.title} ({unit})" if unit else spec.title
    clip = f"panel{index}"
    out = [
        f'<g class="panel" data-panel={_attr(title)}>',
        f'<clipPath id="{clip}"><rect x="{PLOT_LEFT:.1f}" y="{top - 2:.1f}" '
        f'width="{PLOT_RIGHT - PLOT_LEFT:.1f}" height="{bottom - top + 4:.1f}"/></clipPath>',
        f'<rect x="{PLOT_LEFT:.1f}" y="{top:.1f}" width="{PLOT_RIGHT - PLOT_LEFT:.1f}" '
        f'height="{bottom - top:.1f}" fill="#fafafa" stroke="#999" stroke-width="0.8"/>',
        _text(PLOT_LEFT, top - 6, title, size=12, weight="bold"),
    ]
    step = _nice_step((y.hi - y.lo) / _tick_count(spec.height))
    for tick in _y_ticks(y, spec.height):
        py = y.to_px(tick)
        out.append(
            f'<line class="grid" data-value="{tick:.6g}" x1="{PLOT_LEFT:.1f}" y1="{py:.1f}" '
            f'x2="{PLOT_RIGHT:.1f}" y2="{py:.1f}" stroke="#e2e2e2" stroke-width="0.6"/>'
        )
        out.append(_text(PLOT_LEFT - 6, py + 4, _number(tick, step), size=10, anchor="end", fill="#444"))

    if band:
        out.append(_draw_band(band, x, y, clip))
    infos: list[SeriesInfo] = []
    legend: list[tuple[str, str, str]] = []
    for s in members:
        # The monitor's colour in every panel; a second series of one monitor here is dashed.
        colour = colours.get(s.monitor, COLOURS[0])
        same_monitor = [m for m in members if m.monitor == s.monitor]
        dash = "" if same_monitor.index(s) == 0 else ' stroke-dasharray="5 3"'
        label = _series_label(s, members)
        key = f"{s.parameter}|{s.monitor}|{s.source}|{s.unit}"
        kept = _decimate(s.t, s.v, _runs(s.t), x)
        out.append(
            f'<g class="series" data-series={_attr(key)} data-label={_attr(label)} '
            f'clip-path="url(#{clip})" stroke="{colour}" fill="none" stroke-width="1.4"{dash}>'
        )
        for run in kept:
            coords = [(x.to_px(s.t[i]), y.to_px(s.v[i])) for i in run]
            if len(coords) == 1:
                cx, cy = coords[0]
                out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.8" fill="{colour}" stroke="none"/>')
            else:
                points = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
                out.append(f'<polyline points="{points}"/>')
        out.append("</g>")
        infos.append(
            SeriesInfo(
                key=key,
                parameter=s.parameter,
                monitor=s.monitor,
                source=s.source,
                unit=s.unit,
                label=label,
                values=len(s.t),
                points=sum(len(run) for run in kept),
                runs=len(kept),
            )
        )
        legend.append((label, colour, dash))
    out += _draw_legend(legend, top)
    out.append("</g>")
    return PanelInfo(title=title, unit=unit, y=y, series=tuple(infos)), out


def _draw_legend(entries: list[tuple[str, str, str]], top: float) -> list[str]:
    """The panel's legend in its header, right-aligned, in the order the series were drawn."""
    widths = [7.0 * len(label) + 24.0 for label, _c, _d in entries]
    left = PLOT_RIGHT - sum(widths)
    out = ['<g class="legend">']
    for (label, colour, dash), width in zip(entries, widths, strict=True):
        out.append(
            f'<g class="legend-entry"><line x1="{left + 4:.1f}" y1="{top - 10:.1f}" '
            f'x2="{left + 18:.1f}" y2="{top - 10:.1f}" stroke="{colour}" stroke-width="2.5"{dash}/>'
            + _text(left + 21, top - 6, label, size=11)
            + "</g>"
        )
        left += width
    out.append("</g>")
    return out


def _marker_rows(
    marks: list[Mapping[str, Any]], start_s: float, x: Axis
) -> list[tuple[Mapping[str, Any], int, str]]:
    """Each marker with the label row it goes in and its text anchor, so labels do not overlap."""
    placed: list[tuple[Mapping[str, Any], int, str]] = []
    row_ends = [-math.inf] * MAX_MARKER_ROWS
    for m in sorted(marks, key=lambda m: float(m["t"])):
        px = x.to_px(float(m["t"]) - start_s)
        width = 6.5 * len(_short(str(m.get("label", "")))) + 6.0
        anchor, left, right = "start", px, px + width
        if right > WIDTH - 4:
            anchor, left, right = "end", px - width, px
        free = [r for r in range(MAX_MARKER_ROWS) if row_ends[r] < left]
        # With every row taken, the row whose last label ends soonest overlaps least.
        row = free[0] if free else min(range(MAX_MARKER_ROWS), key=lambda r: row_ends[r])
        row_ends[row] = right
        placed.append((m, row, anchor))
    return placed


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _draw_markers(
    placed: list[tuple[Mapping[str, Any], int, str]], x: Axis, top: float, bottom: float, start_s: float
) -> list[str]:
    out = ['<g class="markers">']
    for m, row, anchor in placed:
        label = str(m.get("label", ""))
        t = float(m["t"]) - start_s
        px = x.to_px(t)
        birth = label.strip().lower() == "birth"
        colour = BIRTH_COLOUR if birth else MARKER_COLOUR
        label_y = TITLE_H + (row + 1) * MARKER_ROW_H - 3
        detail = f"{label} at {_mmss(t)}"
        if m.get("by"):
            detail += f", by {m['by']}"
        if m.get("utc"):
            detail += f" ({m['utc']})"
        out += [
            f'<g class="marker" data-label={_attr(label)}>',
            f"<title>{_esc(detail)}</title>",
            f'<line x1="{px:.1f}" y1="{label_y + 3:.1f}" x2="{px:.1f}" y2="{bottom:.1f}" '
            f'stroke="{colour}" stroke-width="{1.6 if birth else 1.0}" stroke-dasharray="5 3"/>',
            _text(
                px + (2 if anchor == "start" else -2),
                label_y,
                _short(label),
                anchor=anchor,
                fill=colour,
                weight="bold" if birth else "normal",
            ),
            "</g>",
        ]
    out.append("</g>")
    return out


def _draw_time_axis(x: Axis, bottom: float, birth: float | None) -> list[str]:
    step = _time_step(x.hi - x.lo)
    out = ['<g class="time-axis">']
    k = math.ceil(x.lo / step - 1e-9)
    while k * step <= x.hi + 1e-9:
        t = k * step
        px = x.to_px(t)
        out.append(
            f'<line class="tick" data-t="{t:.3f}" x1="{px:.1f}" y1="{bottom:.1f}" x2="{px:.1f}" '
            f'y2="{bottom + 5:.1f}" stroke="#444"/>'
        )
        out.append(_text(px, bottom + 17, _mmss(t), size=10, anchor="middle", extra=' class="label-start"'))
        k += 1
    out.append(_text(AXIS_TITLE_X, bottom + 17, "since start", size=10, fill="#555"))
    if birth is not None:
        # Ticks of their own, on whole steps from birth, so this row reads T+01:00, T+02:00 ...
        k = math.ceil((x.lo - birth) / step - 1e-9)
        while birth + k * step <= x.hi + 1e-9:
            t = birth + k * step
            px = x.to_px(t)
            out.append(
                f'<line class="tick-birth" data-t="{t:.3f}" x1="{px:.1f}" y1="{bottom + 22:.1f}" '
                f'x2="{px:.1f}" y2="{bottom + 27:.1f}" '
                f'stroke="{BIRTH_COLOUR}"/>'
            )
            out.append(
                _text(
                    px,
                    bottom + 39,
                    _since_birth(k * step),
                    size=10,
                    anchor="middle",
                    fill=BIRTH_COLOUR,
                    extra=' class="label-birth"',
                )
            )
            k += 1
        out.append(_text(AXIS_TITLE_X, bottom + 39, "since birth", size=10, fill=BIRTH_COLOUR))
    out.append(
        _text(
            (PLOT_LEFT + PLOT_RIGHT) / 2, bottom + 56, "time (mm:ss)", size=10, anchor="middle", fill="#555"
        )
    )
    out.append("</g>")
    return out


def _utc_at_start(records: Sequence[Mapping[str, Any]], start_s: float) -> datetime | None:
    for rec in records:
        try:
            utc = datetime.fromisoformat(str(rec["utc"]))
            return utc - timedelta(seconds=float(rec["t"]) - start_s)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _title(
    table: str | None, session: str | None, start_utc: datetime | None, started: float | None
) -> str:
    """Names the table and session, and says what 0:00 is: where the pre-roll starts (the
    recording itself was started later, by a trigger or a person)."""
    parts = ["Vital-sign trends"]
    if table:
        parts.append(table)
    if session:
        parts.append(f"session {session}")
    if start_utc is not None:
        if start_utc.tzinfo is not None:
            start_utc = start_utc.astimezone(UTC)
        if started is not None and started > 0.5:
            parts.append(f"0:00 = start of the pre-roll, {start_utc:%Y-%m-%d %H:%M:%S} UTC")
            parts.append(f"recording started at {_mmss(started)}")
        else:
            parts.append(f"recording started {start_utc:%Y-%m-%d %H:%M:%S} UTC")
    return " · ".join(parts)
