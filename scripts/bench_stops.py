"""``scripts/bench stops``: start and stop a recording again and again on the real daemon (test
pattern, 30 fps, x264 veryfast with its B-frames) and count, per stop, the frames each session's
segments hold against the frames its time span must hold, and the frames the daemon counted as
dropped: every captured frame must be in a segment or counted. It also counts the stops whose
wait for x264 ran out and the frames that came after (the writer's ``stop_drain_timeout`` and
``stop_frames_late`` log lines).

Usage: scripts/bench stops [--stops 50] [--seconds 1.5] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import av
from structlog.testing import capture_logs

from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from review.export import decrypt
from session.layout import parse_segment_name
from store.keys import Identity

FPS = 30


def frames_in(session: Path, identity: Identity) -> list[int]:
    """Every video frame's index (pts × fps) in a session's segments, in order."""
    shown: list[int] = []
    for path in sorted(session.iterdir()):
        if parse_segment_name(path.name) is None:
            continue
        plain, _ = decrypt(path, [identity])
        cut = session.parent / "cut.ts"
        cut.write_bytes(plain)
        with av.open(str(cut)) as ts:
            shown += [
                round(float(f.pts * f.time_base) * FPS)
                for f in ts.decode(video=0)
                if f.pts is not None and f.time_base is not None
            ]
        cut.unlink()
    return sorted(shown)


def run_stops(daemon: Daemon, stops: int, seconds: float, results: list[tuple[Path, int, float]]) -> None:
    for i in range(stops):
        daemon.handle_request({"cmd": "start", "by": "command line"})
        time.sleep(seconds)
        # Read just before the stop is asked for, so a little before the controller's own stop
        # instant: the frames owed are counted a frame short at most, never one too many.
        stop_s = daemon.media_seconds_now()
        daemon.handle_request({"cmd": "stop", "by": "command line"})
        last = daemon.status().session.last_session or {}
        results.append((Path(last["path"]), int(last.get("frames_dropped", 0)), stop_s))
        print(f"  stop {i + 1}/{stops}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stops", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    identity = Identity.generate()
    results: list[tuple[Path, int, float]] = []
    logs: list[MutableMapping[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-stops-") as folder:
        root = Path(folder)
        config = parse_config(
            f"""
[station]
control_socket = "{root / 'control.sock'}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = {width}
height = {height}
fps = {FPS}
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{root / 'recordings'}"
segment_seconds = 10
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
"""
        )
        daemon = Daemon(config, [identity.recipient])
        stop = threading.Event()
        loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
        daemon.start()
        loop.start()
        try:
            assert wait_for_frames(daemon)
            with capture_logs() as logs:
                run_stops(daemon, args.stops, args.seconds, results)
                time.sleep(args.seconds)  # the last stop's late frames, if any, are logged by then
        finally:
            stop.set()
            loop.join()
            daemon.shutdown()
        missing = []
        tails: list[int] = []  # frames captured before the stop that are not in the recording
        found_total = expected_total = dropped_total = 0
        for path, dropped, stop_s in results:
            frames = frames_in(path, identity)
            shown = set(frames)
            # Frames captured before the stop (the test pattern paces them on the clock, so one a
            # frame interval), from the recording's first: each must be in a segment or counted as
            # dropped. Counted, not matched by index: a frame read a few ms late rounds to its
            # neighbour's index. A reference frame shown after the stop may come along (the
            # B-frames before it need it): not owed.
            stop_index = int(stop_s * FPS)
            captured = stop_index - min(frames) if frames else 0
            found = sum(1 for f in frames if f < stop_index)
            lost = max(0, captured - found)
            found_total += min(found, captured)
            expected_total += captured
            dropped_total += dropped
            missing.append(max(0, lost - dropped))
            tails.append(max(0, int(stop_s * FPS) - 1 - max(shown)) if shown else 0)
    summary = {
        "stops": args.stops,
        "size": f"{width}x{height}@{FPS}",
        "frames_captured_before_each_stop": expected_total,
        "of_them_in_segments": found_total,
        "frames_counted_dropped": dropped_total,
        "frames_missing_uncounted": sum(missing),
        "stops_with_uncounted_loss": sum(1 for m in missing if m),
        "stops_whose_wait_ran_out": sum(1 for e in logs if e["event"] == "stop_drain_timeout"),
        "frames_late_for_stop": sum(int(e["frames"]) for e in logs if e["event"] == "stop_frames_late"),
        "tail_frames_after_last_recorded_median": statistics.median(tails),
        "tail_frames_after_last_recorded_max": max(tails),
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
