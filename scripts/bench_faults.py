"""``scripts/bench faults``: SIGKILL the real daemon mid-recording, again and again, and report
per stream the seconds lost before each kill (min / median / max), at 320x240 and at 720p30.

Usage: scripts/bench faults [--kills 20] [--seconds 4] [--sizes 320x240,1280x720] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_kit import STREAMS, Station, losses, summary


def run(width: int, height: int, kills: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        station = Station(Path(folder), width=width, height=height, fps=30)
        starts = []
        try:
            for i in range(kills):
                t0 = time.monotonic()
                station.start()
                starts.append(time.monotonic() - t0)
                station.record_then_kill(seconds)
                print(f"  {width}x{height} kill {i + 1}/{kills}", file=sys.stderr)
            station.start()
            station.stop()
            per_kill = [losses(station, k) for k in station.kills]
        finally:
            station.close()
    return {
        "size": f"{width}x{height}@30",
        "kills": kills,
        "seconds_recorded_before_each_kill": seconds,
        "lost_s": summary(per_kill),
        "start_to_encoding_s_median": round(sorted(starts)[len(starts) // 2], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sizes", default="320x240,1280x720")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        results.append(run(width, height, args.kills, args.seconds))
    print(f"{'size':<16}" + "".join(f"{s + ' (min/med/max s)':>28}" for s in STREAMS))
    for r in results:
        lost = r["lost_s"]
        assert isinstance(lost, dict)
        cells = [f"{lost[s]['min']:.2f} / {lost[s]['median']:.2f} / {lost[s]['max']:.2f}" for s in STREAMS]
        print(f"{r['size']:<16}" + "".join(f"{c:>28}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
