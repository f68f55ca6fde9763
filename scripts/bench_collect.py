"""``scripts/bench collect``: collection's figures against a real SeaweedFS on loopback.

1. Recording 720p30 (test pattern, tone, oximeter, overlay, encryption: the real daemon) for
   ``--seconds``, twice: with collection on and off. Reported: frames dropped (must be 0), the
   daemon's CPU (user + system of the process, from /proc) in both runs, the upload throughput,
   and per segment the time from its close (the file's last write, just before the rename) to
   the object being listed in the archive (polled every 0.1 s with the reviewer's keys).
2. The backlog an outage leaves: ``--outage-hours`` of 720p30 segments' bytes (the byte rate
   measured in part 1, in 10 s segments, as random bytes: ciphertext is opaque to the
   collector) written as closed sessions, then the collector started as the daemon starts it
   (a rescan that hashes every file, then uploads at nice 19); reported: time to drain, MB/s,
   files/s, with nothing else running; then again through the daemon, which drains it while
   recording 720p30 (frames dropped, drain time from the daemon's start).

Usage: scripts/bench collect [--seconds 40] [--outage-hours 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_kit import Station
from seaweed_kit import Seaweed, wait_for

from collect.collector import Collector
from config.models import CollectionConfig
from control.socket import request
from session.layout import (
    COLLECTED,
    MANIFEST,
    MARKERS,
    VITALS,
    new_session_id,
    parse_segment_name,
    segment_name,
)
from store.age_format import VERSION_LINE

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class ArchiveWatcher:
    """Notes when each key first shows in the archive."""

    def __init__(self, seaweed: Seaweed, prefix: str) -> None:
        self._seaweed, self._prefix = seaweed, prefix
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                keys = self._seaweed.keys_under(self._prefix)
            except Exception:
                continue
            now = time.time()  # after the answer: an upper bound of when each key arrived
            for key in keys:
                self.first_seen.setdefault(key, now)


def record_720p(
    seaweed: Seaweed, folder: Path, seconds: float, collect: bool, backlog: tuple[float, float] | None = None
) -> dict[str, Any]:
    """One recording; with ``backlog`` (bytes/s, hours) an outage's backlog waits in storage
    before the daemon starts, so its collector drains it while the recording runs."""
    keys = seaweed.write_credentials(folder / "keys")
    extra = seaweed.collection_toml(keys) if collect else ""
    station = Station(folder, width=1280, height=720, fps=30, extra_config=extra)
    watcher = ArchiveWatcher(seaweed, f"{seaweed.site}/{seaweed.table}/")
    waiting: list[Path] = []
    drained_at: list[float] = []
    if backlog is not None:
        files, total = synthetic_backlog(station.recordings, *backlog)
        waiting = sorted(station.recordings.iterdir())
    try:
        t_start = time.monotonic()
        station.start()
        assert station.process is not None
        pid = station.process.pid
        watcher.start()
        cpu0, t0 = process_cpu_s(pid), time.monotonic()
        session = str(request(station.socket, "start", by="command line")["session"])
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if waiting and not drained_at and all((s / COLLECTED).exists() for s in waiting):
                drained_at.append(time.monotonic())
            time.sleep(0.1)
        request(station.socket, "stop", by="command line")
        cpu1, t1 = process_cpu_s(pid), time.monotonic()
        status = request(station.socket, "status")
        dropped = sum(c["frames_dropped"] for c in status["cameras"].values())
        folder_of = station.recordings / session
        if collect:
            wait_for("collected", lambda: (folder_of / COLLECTED).exists(), timeout_s=600)
            status = request(station.socket, "status")
        segments = sorted(
            p for p in folder_of.iterdir() if (n := parse_segment_name(p.name)) and not n.partial
        )
        media_bytes = sum(p.stat().st_size for p in segments)
        result: dict[str, Any] = {
            "collection": collect,
            "seconds": round(t1 - t0, 1),
            "frames_dropped": dropped,
            "daemon_cpu_s": round(cpu1 - cpu0, 1),
            "daemon_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "segments": len(segments),
            "segment_bytes_per_s": round(media_bytes / (t1 - t0)),
        }
        if collect:
            c = status["collection"]
            prefix = f"{seaweed.site}/{seaweed.table}/{session}/"
            delays = [
                watcher.first_seen[prefix + p.name] - p.stat().st_mtime
                for p in segments
                if prefix + p.name in watcher.first_seen
            ]
            result.update(
                uploaded_files=c["uploaded_files"],
                uploaded_mbit_s_while_recording=round(c["uploaded_bytes"] * 8 / 1e6 / (t1 - t0), 2),
                close_to_archive_s={
                    "n": len(delays),
                    "min": round(min(delays), 2),
                    "median": round(statistics.median(delays), 2),
                    "max": round(max(delays), 2),
                },
            )
        if backlog is not None:
            if not drained_at:
                wait_for("the backlog drained", lambda: all((s / COLLECTED).exists() for s in waiting), 3600)
                drained_at.append(time.monotonic())
            took = drained_at[0] - t_start
            result["backlog_drained_while_recording"] = {
                "outage_hours": backlog[1],
                "files": files,
                "bytes": total,
                "drain_s_from_daemon_start": round(took, 1),
                "drain_mb_s": round(total / 1e6 / took, 1),
                "drained_before_the_recording_ended": took < t1 - t_start,
            }
        return result
    finally:
        watcher.stop()
        station.close()


def synthetic_backlog(storage: Path, bytes_per_s: float, hours: float) -> tuple[int, int]:
    """``hours`` of closed sessions at ``bytes_per_s`` in 10 s segments (random bytes: ciphertext
    is opaque to the collector), one session per 10 minutes; (files, bytes)."""
    segment_s = 10
    segments = int(hours * 3600 / segment_s)
    per_segment = int(bytes_per_s * segment_s)
    # One session per 10 minutes, as a busy table might record.
    per_session = 60
    files = total = 0
    for start in range(0, segments, per_session):
        session = storage / new_session_id(datetime.now(UTC))
        while session.exists():
            session = storage / new_session_id(datetime.now(UTC))
        session.mkdir(parents=True)
        for i in range(start, min(start + per_session, segments)):
            (session / segment_name("closeup", i + 1)).write_bytes(VERSION_LINE + os.urandom(per_segment))
            files += 1
            total += per_segment
        for name, size in ((VITALS, 200_000), (MARKERS, 2_000), (MANIFEST, 60_000)):
            (session / name).write_bytes(VERSION_LINE + os.urandom(size))
            files += 1
            total += size
    return files, total


def drain(seaweed: Seaweed, folder: Path, bytes_per_s: float, hours: float) -> dict[str, Any]:
    storage = folder / "recordings"
    written = time.monotonic()
    files, total = synthetic_backlog(storage, bytes_per_s, hours)
    written_s = time.monotonic() - written
    config = CollectionConfig(
        enabled=True,
        endpoint=seaweed.endpoint,
        bucket=seaweed.bucket,
        site=seaweed.site,
        table=seaweed.table,
        credentials_file=seaweed.write_credentials(folder / "keys"),
    )
    sessions = sorted(storage.iterdir())
    collector = Collector(config, storage, audit=None, recording=lambda: None)
    t0 = time.monotonic()
    collector.start()
    try:
        wait_for(
            "the backlog drained",
            lambda: all((s / COLLECTED).exists() for s in sessions),
            timeout_s=3600,
        )
    finally:
        collector.stop()
    took = time.monotonic() - t0
    return {
        "outage_hours": hours,
        "files": files,
        "bytes": total,
        "sessions": len(sessions),
        "synthetic_files_written_s": round(written_s, 1),
        "drain_s": round(took, 1),
        "drain_mb_s": round(total / 1e6 / took, 1),
        "drain_files_s": round(files / took, 1),
        "hours_of_recording_per_hour_of_draining": round(hours * 3600 / took, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--outage-hours", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        folder = Path(tmp)
        (folder / "seaweed").mkdir()
        seaweed = Seaweed(folder / "seaweed")
        seaweed.start()
        try:
            results: dict[str, Any] = {}
            (folder / "off").mkdir()
            (folder / "on").mkdir()
            print("recording 720p30 without collection ...", file=sys.stderr)
            results["without_collection"] = record_720p(seaweed, folder / "off", args.seconds, collect=False)
            print("recording 720p30 with collection ...", file=sys.stderr)
            results["with_collection"] = record_720p(seaweed, folder / "on", args.seconds, collect=True)
            rate = results["with_collection"]["segment_bytes_per_s"]
            print(f"draining a {args.outage_hours} h backlog ...", file=sys.stderr)
            (folder / "drain").mkdir()
            results["backlog_drain"] = drain(seaweed, folder / "drain", rate, args.outage_hours)
            print(f"720p30 while the daemon drains a {args.outage_hours} h backlog ...", file=sys.stderr)
            (folder / "both").mkdir()
            results["recording_while_draining"] = record_720p(
                seaweed, folder / "both", args.seconds, collect=True, backlog=(rate, args.outage_hours)
            )
        finally:
            seaweed.stop()
    results["machine"] = {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()}
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
