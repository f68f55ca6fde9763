"""Benchmark: the sync probe. Every offset between the streams of one recording, measured.

The real daemon process records two test-pattern cameras (1280x720 at 30 fps with the tone's
audio, and 640x360 at 15 fps), the tone source and the Masimo simulator on a pty, all in probe
mode: a white frame, a 1 kHz beep and an HR step at the same instants of the monotonic clock.
``review.sync_probe.measure_session`` then finds them in the decrypted recording and reports
audio vs video, vitals vs video (logged and first shown) and camera vs camera: mean, max and
drift per hour. Also measured on the same recording: the jitter of the frame intervals (frame
times come from the source's schedule, so this is what the pipeline adds to it).

Prints JSON; ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from review.sync_probe import measure_session
from store.keys import Identity
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator

REFERENCE = "closeup"


def probe_config(work: Path, identity: Identity, port: str, every_s: float) -> str:
    return f"""
[station]
table = "Bench"
control_socket = "{work / "control.sock"}"
[[cameras]]
name = "{REFERENCE}"
source = {{ kind = "test_pattern", probe_every_s = {every_s} }}
width = 1280
height = 720
fps = 30
overlay = true
audio = true
[[cameras]]
name = "room"
source = {{ kind = "test_pattern", probe_every_s = {every_s} }}
width = 640
height = 360
fps = 15
overlay = true
[audio]
source = {{ kind = "tone", probe_every_s = {every_s} }}
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{port}"
[storage]
directory = "{work / "recordings"}"
segment_seconds = 10
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
[logging]
format = "json"
level = "warning"
"""


def frame_jitter_ms(times: list[float]) -> dict[str, float]:
    """Spread of the intervals between consecutive frames, in ms."""
    d = np.diff(np.asarray(times)) * 1000
    if d.size == 0:
        return {}
    return {
        "mean_interval_ms": round(float(d.mean()), 3),
        "sd_ms": round(float(d.std()), 3),
        "min_ms": round(float(d.min()), 3),
        "max_ms": round(float(d.max()), 3),
    }


def record(seconds: float, every_s: float, work: Path) -> tuple[Path, Identity]:
    work.mkdir(parents=True, exist_ok=True)
    identity = Identity.generate()
    pty = open_pty_pair()
    simulator = MasimoSimulator(pty.master_fd, probe_every_s=every_s)
    sock = work / "control.sock"
    config = work / "probe.toml"
    config.write_text(probe_config(work, identity, pty.slave_path, every_s))
    cli = [sys.executable, "-m", "cli.main"]
    simulator.start()
    daemon = subprocess.Popen([*cli, "run", "--config", str(config)])
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not start")
            time.sleep(0.1)
        time.sleep(2)  # the monitor's first values, so the overlay has an HR from the start
        subprocess.run([*cli, "start", "--socket", str(sock)], check=True, capture_output=True)
        time.sleep(seconds)
        subprocess.run([*cli, "stop", "--socket", str(sock)], check=True, capture_output=True)
        status = json.loads(
            subprocess.run(
                [*cli, "status", "--json", "--socket", str(sock)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        simulator.stop()
        pty.close()
    return Path(status["last_session"]["path"]), identity


def run(seconds: float, every_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="neoflix-sync-"))
    try:
        session, identity = record(seconds, every_s, work)
        report = measure_session(session, [identity], reference=REFERENCE)
        result = report.to_json()
        result["frame_intervals"] = {
            name: frame_jitter_ms(times) for name, times in report.frame_times.items()
        }
        result["seconds"] = seconds
        result["probe_every_s"] = every_s
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the recording")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between probe marks")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(args.seconds, args.every)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
