"""Benchmark: how quickly a recording starts, how much pre-roll it gets, what the ring costs.

One run of the real daemon (720p30 test pattern with the vitals overlay, Masimo simulator on a
pty, 60 s pre-roll, vitals trigger after 5 s of valid values):
1. idle for 65 s: the pre-roll ring fills; its bytes (as counted by the ring) and the daemon's
   resident memory growth from 5 s to 65 s are reported;
2. the sensor goes on: the trigger fires; reported are how long after the start condition held
   the decision came (the trigger loop's granularity) and how long the start itself took;
3. 20 s later a stop through the control socket; the session is exported with its identity and
   the pre-roll found in the exported files is compared with the configured 60 s;
4. five manual start/stop round trips through the command line, timed from the client.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store.keys import Identity, identity_file_text
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

PREROLL_S = 60
HOLD_S = 5


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def ctl(sock: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "--socket", str(sock)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout) if "--json" in args else {"text": out.stdout}


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        choices=["testsrc2", "pattern"],
        default="testsrc2",
        help="testsrc2: a busy picture (an MJPEG clip, as a USB camera delivers) whose bit rate is "
        "closer to a real table's; pattern: the built-in test pattern (compresses far better)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="neoflix-bench-session-"))
    camera_source = '{ kind = "test_pattern" }'
    if args.source == "testsrc2":
        clip = work / "testsrc2.avi"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
             "-t", "10", "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", str(clip)],
            check=True,
        )
        camera_source = f'{{ kind = "file", path = "{clip}" }}'
    identity = Identity.generate()
    (work / "id.txt").write_text(identity_file_text(identity, datetime.now(UTC)))
    pty = open_pty_pair()
    simulator = MasimoSimulator(pty.master_fd, script=StabilisationScript(no_sensor_s=0, acquire_s=2))
    simulator.sensor_off()
    sock = work / "control.sock"
    config = work / "bench.toml"
    config.write_text(
        f"""
[station]
control_socket = "{sock}"
[[cameras]]
name = "closeup"
source = {camera_source}
width = 1280
height = 720
fps = 30
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{pty.slave_path}"
[storage]
directory = "{work / 'recordings'}"
recipients = ["{identity.recipient}"]
[session]
preroll_s = {PREROLL_S}
[triggers]
vitals_hold_s = {HOLD_S}
post_roll_s = 600
[logging]
format = "json"
level = "warning"
"""
    )
    simulator.start()
    daemon = subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--config", str(config)])
    result: dict[str, Any] = {"camera_content": args.source}
    try:
        while not sock.exists():
            time.sleep(0.1)
        time.sleep(5)
        rss_early = rss_kib(daemon.pid)
        early = ctl(sock, "status", "--json")["cameras"]["closeup"]
        print(f"idle {PREROLL_S + 5} s while the pre-roll fills ...", flush=True)
        time.sleep(PREROLL_S)
        rss_full = rss_kib(daemon.pid)
        full = ctl(sock, "status", "--json")["cameras"]["closeup"]
        result["preroll_ring"] = {
            "held_s": full["preroll_s"],
            "bytes": full["preroll_bytes"],
            "mib": round(full["preroll_bytes"] / 2**20, 1),
            "rss_growth_mib_5s_to_65s": round((rss_full - rss_early) / 1024, 1),
            "ring_bytes_at_5s": early["preroll_bytes"],
            "daemon_rss_mib": round(rss_full / 1024, 1),
        }
        assert ctl(sock, "status", "--json")["state"] == "idle"

        simulator.sensor_on()
        sensor_on = time.monotonic()
        while ctl(sock, "status", "--json")["state"] != "recording":
            time.sleep(0.05)
        seen = time.monotonic() - sensor_on
        status = ctl(sock, "status", "--json")
        result["automatic_start"] = {
            **status["last_start"],
            "sensor_on_to_recording_seen_s": round(seen, 2),
            "expected_floor_s": "pulse search 2 s + first valid line + hold 5 s",
        }
        time.sleep(20)
        stop_reply = ctl(sock, "stop")
        last = ctl(sock, "status", "--json")["last_session"]
        out = work / "export"
        subprocess.run(
            [sys.executable, "-m", "cli.main", "export", last["path"], "--identity",
             str(work / "id.txt"), "--out", str(out)],
            check=True, capture_output=True,
        )
        exported = ffprobe_duration(out / "closeup.mp4")
        result["preroll_in_export"] = {
            "configured_s": PREROLL_S,
            "recorded_s": last["duration_s"],
            "exported_video_s": round(exported, 2),
            "preroll_found_s": round(exported - last["duration_s"], 2),
            "preroll_reported_by_recorder_s": last["preroll_s"]["closeup"],
            "stop_note": stop_reply["text"].splitlines()[0],
        }

        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            ctl(sock, "start")
            times.append(time.perf_counter() - t0)
            time.sleep(1.5)
            ctl(sock, "stop")
        result["manual_start_round_trip_s"] = {
            "min": round(min(times), 3), "max": round(max(times), 3),
            "note": "includes starting the command-line client (a Python process)",
        }
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        simulator.stop()
        pty.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
