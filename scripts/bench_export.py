"""Benchmark: what the review export costs, per recorded minute, and how fast the page opens.

1. The demo records ``--seconds`` (default 60) with the real daemon: a 1280x720@30 camera with
   the vitals overlay and a 640x360@30 one with sound, a simulated oximeter.
2. That session is exported three times, each in a fresh process (its peak resident memory is the
   process's ru_maxrss, read with wait4): the plain export (verify, remux, CSVs, trends.svg,
   viewer.html), the same with ``--composite``, and the page alone rebuilt from the export's own
   files. Remux is the plain export less the page; composite is the difference of the first two.
3. Page load: a 2-hour session is synthesised for the page alone (recording two hours here is not
   practical): 1 Hz HR, SpO2, PI, FiO2, PIP and PEEP from two monitors, 40 markers, two gaps,
   with the short recorded MP4s beside it. Chromium (Debian's) opens it from file:// and the time
   to the page's script having built every plot is reported, with the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def run_measured(args: list[str]) -> tuple[float, float, str]:
    """Seconds, peak resident MiB and standard output of one child process."""
    start = time.monotonic()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    printed = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(args)}: failed")
    return elapsed, usage.ru_maxrss / 1024, printed


PAGE_ONLY = """
import json, sys, time
from pathlib import Path
from review.targets import DEFAULT_TARGETS
from review.viewer import page_data, render_page
out = Path(sys.argv[1])
start = time.perf_counter()
summary = json.loads((out / "session.json").read_text())
import csv
vitals = []
with open(out / "vitals.csv") as f:
    for row in csv.DictReader(f):
        vitals.append({"t": float(row["media_time_s"]), "parameter": row["parameter"],
                       "monitor": row["monitor"], "unit": row["unit"], "valid": row["valid"] == "1",
                       "value": float(row["value"]) if row["value"] else None})
render_page(page_data(summary, vitals, DEFAULT_TARGETS, {}, None))
print(time.perf_counter() - start)
"""


def two_hour_page(export: Path, target: Path) -> int:
    """A synthetic two-hour session's page beside the recorded MP4s; returns its size."""
    from review.targets import DEFAULT_TARGETS
    from review.viewer import page_data, render_page

    summary: dict[str, Any] = json.loads((export / "session.json").read_text())
    hours = 7200.0
    origin = float(summary["media_start_s"])
    for camera in summary["cameras"].values():
        camera["seconds"] = hours
        link = target.parent / camera["file"]
        if not link.exists():
            link.symlink_to(export / camera["file"])
    vitals = []
    courses = {"HR": ("/min", 90, 150), "SpO2": ("%", 60, 95), "PI": ("%", 0.5, 2.5),
               "FiO2": ("%", 21, 40), "PIP": ("mbar", 18, 25), "PEEP": ("cmH2O", 5, 6)}
    for i in range(int(hours)):
        for n, (parameter, (unit, lo, hi)) in enumerate(courses.items()):
            monitor = "oximeter" if parameter in ("HR", "SpO2", "PI") else "ventilator"
            value = lo + (hi - lo) * min(1.0, i / 900) + ((i * 7 + n) % 5 - 2) * 0.3
            vitals.append({"t": origin + i, "parameter": parameter, "value": value, "unit": unit,
                           "monitor": monitor, "valid": True})
    summary["markers"] = [{"t": origin + 60 + 170 * k, "label": f"marker {k}", "utc": None, "by": "bench"}
                          for k in range(40)]
    summary["birth_media_s"] = origin + 60
    gaps = {"room": [[origin + 1800, origin + 1830], [origin + 5000, origin + 5012]]}
    html = render_page(page_data(summary, vitals, DEFAULT_TARGETS, gaps, origin + 30))
    target.write_text(html, encoding="utf-8")
    return len(html.encode())


def page_load_ms(page_path: Path, runs: int = 3) -> list[float]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.monotonic()
            page.goto(page_path.as_uri())
            page.wait_for_function("window.viewer && viewer.plots.length > 0", polling=10)
            out.append((time.monotonic() - start) * 1000)
            page.close()
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the recording")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"recording {args.seconds:.0f} s with the demo ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "cli.main", "demo", "--out", str(tmp / "demo"),
             "--seconds", str(args.seconds)],
            check=True, stdout=subprocess.DEVNULL,
        )
        session = next((tmp / "demo" / "recordings").iterdir())
        identity = tmp / "demo" / "identity.txt"
        base = [sys.executable, "-m", "cli.main", "export", str(session), "--identity", str(identity)]
        plain_s, plain_mib, _ = run_measured([*base, "--out", str(tmp / "plain")])
        comp_s, comp_mib, _ = run_measured([*base, "--out", str(tmp / "composite"), "--composite"])
        _, page_mib, printed = run_measured([sys.executable, "-c", PAGE_ONLY, str(tmp / "plain")])
        page_only = float(printed.strip().splitlines()[-1])
        summary = json.loads((tmp / "plain" / "session.json").read_text())
        minutes = max(c["seconds"] for c in summary["cameras"].values()) / 60
        print(f"recorded media: {minutes * 60:.1f} s (including the pre-roll)")
        print(f"export (verify + remux + csv + svg + page): {plain_s:.2f} s = {plain_s / minutes:.2f} s per "
              f"recorded minute; peak RSS {plain_mib:.0f} MiB")
        print(f"  of which the page: {page_only:.3f} s = {page_only / minutes:.3f} s/min "
              f"(rebuilt alone from the export's files, timed in its process)")
        print(f"  remux and the rest: {(plain_s - page_only) / minutes:.2f} s per recorded minute")
        print(f"composite (re-encode), beyond the plain export: {comp_s - plain_s:.2f} s = "
              f"{(comp_s - plain_s) / minutes:.2f} s per recorded minute; peak RSS {comp_mib:.0f} MiB")
        print(f"page rebuilt alone: peak RSS {page_mib:.0f} MiB")
        big = tmp / "two-hours" / "viewer.html"
        big.parent.mkdir()
        size = two_hour_page(tmp / "plain", big)
        loads = page_load_ms(big)
        print(f"2-hour page (synthetic vitals, 6 series x 7200 s, 40 markers): {size / 1e6:.2f} MB; "
              f"load to plots drawn {', '.join(f'{ms:.0f}' for ms in loads)} ms "
              f"(median {sorted(loads)[len(loads) // 2]:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
