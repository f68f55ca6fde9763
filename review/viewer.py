"""``viewer.html``: the page a review meeting plays the session in, written beside the media.

It opens from disk (``file://``) with no server and no network, as on a laptop in a meeting room:
the plotting library (uPlot, vendored in ``viewer_assets``) and the page's own script and style
are inlined, and the vitals, markers, gaps and timeline are embedded as JSON. Only the videos are
referenced, by relative path, because they are too large to inline.

Every time in the page is a time of the exported MP4s (seconds from their common start, the
media time ``media_start_s``), so one number positions both videos, the plots and the markers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from importlib import resources
from itertools import pairwise
from typing import Any

from review.pressure import AIRWAY_PRESSURES, CMH2O, in_cmh2o
from review.targets import Target, band_polygon

VIEWER = "viewer.html"
GAP_S = 5.0  # no valid value for longer than this breaks a line (as on the trend plot)

# Panels in the order a resuscitation is read; each (title, parameters, fixed y-range or None).
_PANELS: tuple[tuple[str, tuple[str, ...], tuple[float, float] | None], ...] = (
    ("SpO2", ("SpO2",), (40.0, 100.0)),
    ("Heart rate", ("HR", "PR"), (40.0, 220.0)),
    ("FiO2", ("FiO2",), (20.0, 100.0)),
    ("Airway pressure", ("PIP", "PEEP", "MAP_AW"), None),
)
# One colour per monitor, the same in every panel (and in trends.svg's order).
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _asset(name: str) -> str:
    return resources.files("review").joinpath("viewer_assets", name).read_text(encoding="utf-8")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _series(
    records: Iterable[Mapping[str, Any]], origin_s: float
) -> dict[tuple[str, str, str], list[list[Any]]]:
    """(parameter, monitor, unit) → [times, values]; an invalid sample is a null (a break in
    the line), airway pressures are in cmH2O whatever the monitor sent."""
    found: dict[tuple[str, str, str], list[tuple[float, float | None]]] = {}
    for rec in records:
        t: Any = rec.get("t")
        value: Any = rec.get("value")
        if not _finite(t):
            continue
        parameter, unit = str(rec.get("parameter", "")), str(rec.get("unit") or "")
        v: float | None = float(value) if rec.get("valid") is True and _finite(value) else None
        if parameter in AIRWAY_PRESSURES:
            converted = in_cmh2o(v, unit) if v is not None else None
            if v is None or converted is not None:
                v, unit = converted, CMH2O
        found.setdefault((parameter, str(rec.get("monitor", "")), unit), []).append(
            (round(float(t) - origin_s, 3), v)
        )
    out: dict[tuple[str, str, str], list[list[Any]]] = {}
    for key, points in found.items():
        points.sort(key=lambda p: p[0])
        if not any(v is not None for _, v in points):
            continue
        steps = [b[0] - a[0] for a, b in pairwise(points)]
        gap = max(GAP_S, 3 * statistics.median(steps)) if steps else GAP_S
        ts: list[float] = []
        vs: list[float | None] = []
        for i, (t, v) in enumerate(points):
            if i and t - points[i - 1][0] > gap:  # a silent stretch: break the line there
                ts.append(round(points[i - 1][0] + 0.001, 3))
                vs.append(None)
            ts.append(t)
            vs.append(v)
        out[key] = [ts, vs]
    return out


def page_data(
    summary: Mapping[str, Any],
    vitals: Sequence[Mapping[str, Any]],
    targets: Sequence[Target],
    gaps: Mapping[str, Sequence[Sequence[float]]],
    started_s: float | None,
) -> dict[str, Any]:
    """What the page embeds, every time in seconds of the exported MP4s."""
    origin = float(summary["media_start_s"])
    birth = summary.get("birth_media_s")
    cameras = summary.get("cameras", {})
    duration = max((float(c["seconds"]) for c in cameras.values()), default=0.0)
    monitors = sorted({str(r.get("monitor", "")) for r in vitals})
    colour = {m: COLOURS[i % len(COLOURS)] for i, m in enumerate(monitors)}
    series = _series(vitals, origin)
    panels: list[dict[str, Any]] = []
    claimed: set[str] = set()
    rest = sorted({p for p, _, _ in series} - {p for _, ps, _ in _PANELS for p in ps})
    for title, parameters, fixed in (*_PANELS, *((p, (p,), None) for p in rest)):
        claimed.update(parameters)
        members = sorted(
            (k for k in series if k[0] in parameters), key=lambda k: (parameters.index(k[0]), k[1])
        )
        for unit in sorted({k[2] for k in members}):  # one unit to an axis
            same = [k for k in members if k[2] == unit]
            panels.append(
                {
                    "title": title,
                    "unit": unit,
                    "range": fixed,
                    "series": [
                        {
                            "label": f"{k[0]} ({k[1]})" if len(monitors) > 1 else k[0],
                            "colour": colour[k[1]],
                            # A second parameter of one monitor in a panel is dashed (PEEP under PIP).
                            "dash": [k2 for k2 in same if k2[1] == k[1]].index(k) > 0,
                            "t": series[k][0],
                            "v": series[k][1],
                        }
                        for k in same
                    ],
                }
            )
    # The band counts its minutes from birth; without a birth marker, from the recording's start.
    band_from = birth if birth is not None else started_s if started_s is not None else origin
    band = band_polygon(list(targets), float(band_from) - origin, duration)
    epoch = summary.get("media_epoch_utc")
    return {
        "session": summary.get("session"),
        # JavaScript's Date.parse reads milliseconds at most; microseconds in the ISO text may not parse.
        "epoch_ms": datetime.fromisoformat(epoch).timestamp() * 1000 if isinstance(epoch, str) else 0,
        "table": summary.get("table"),
        "duration": duration,
        "epoch_utc": epoch,
        "media_start_s": origin,
        "birth": None if birth is None else float(birth) - origin,
        "started": None if started_s is None else started_s - origin,
        "band_from": "birth" if birth is not None else "the start of the recording",
        "band": [[round(t, 3), lo, hi] for t, lo, hi in band],
        "targets": [[t.minute, t.low, t.high] for t in targets],
        "cameras": [
            {
                "name": name,
                "file": c["file"],
                "fps": c.get("fps") or 30,
                "audio": bool(c.get("audio")),
                "first_frame": c["first_frame_in_mp4_s"],
            }
            for name, c in cameras.items()
        ],
        "markers": [
            {"t": round(float(m["t"]) - origin, 3), "label": str(m.get("label", "")), "utc": m.get("utc")}
            for m in summary.get("markers", [])
            if _finite(m.get("t"))
        ],
        "gaps": [
            {"camera": camera, "from": round(a - origin, 3), "to": round(b - origin, 3)}
            for camera, spans in gaps.items()
            for a, b in spans
        ],
        "monitors": [{"name": m, "colour": colour[m]} for m in monitors],
        "panels": panels,
    }


def _script_json(data: Mapping[str, Any]) -> str:
    # Inside <script>, "</script" or "<!--" in typed text (a marker label) would end or change
    # the element: "<" only occurs in JSON strings, where \u003c means the same.
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def render_page(data: Mapping[str, Any]) -> str:
    """The whole self-contained page."""
    title = f"Session {data.get('session')}"
    return (
        _asset("viewer.html")
        .replace("{{TITLE}}", json.dumps(title)[1:-1].replace("<", "&lt;"))
        .replace("/*{{UPLOT_CSS}}*/", _asset("uPlot.min.css"))
        .replace("/*{{VIEWER_CSS}}*/", _asset("viewer.css"))
        .replace("/*{{UPLOT_JS}}*/", _asset("uPlot.iife.min.js"))
        .replace("/*{{VIEWER_JS}}*/", _asset("viewer.js"))
        .replace("{{DATA}}", _script_json(data))
    )
