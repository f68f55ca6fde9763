"""Real faults against the real daemon, and what each one cost: the harness behind the kill tests
(tests/e2e/test_kill_recovery.py) and ``scripts/bench faults``.

A ``Station`` runs ``neoflix-capture run`` as a child process on a test-pattern camera, a tone and
a Masimo oximeter on a pty that this process feeds (a line every 0.25 s, each send timed). While
a recording runs, a marker is set every 0.25 s through the control socket; then the daemon is
killed with SIGKILL. The next start closes what the kill left open (``session.recovery``), and
``losses`` decrypts the session and measures, per stream, the seconds before the kill that are
not in it:

- video and audio: the kill's UTC minus the UTC of the last frame or audio packet end in the
  segments (media epoch from the manifest + PTS); the encoder's delay counts against it;
- vitals and markers: the UTC of the last one sent (and, for markers, acknowledged) before the
  kill, minus the UTC of the last one recorded.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av

from control.socket import ControlError, request
from review.export import decrypt
from session.layout import MANIFEST, MARKERS, VITALS, parse_segment_name
from store.keys import Identity
from vitals.pty import PtyPair, open_pty_pair
from vitals.simulators.masimo import masimo_line

ROOT = Path(__file__).resolve().parents[1]
STREAMS = ("video", "audio", "vitals", "markers")


@dataclass
class Kill:
    session: str
    kill_utc: datetime
    vitals_sent: list[datetime] = field(default_factory=list)
    markers_acked: list[tuple[str, datetime]] = field(default_factory=list)


class Oximeter:
    """Writes a Masimo line to the pty every ``every_s``, noting when each was sent."""

    def __init__(self, pty: PtyPair, every_s: float = 0.25) -> None:
        self._pty = pty
        self._every = every_s
        self._stop = threading.Event()
        self.sent: list[datetime] = []
        self._thread = threading.Thread(target=self._run, name="oximeter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self._every):
            now = datetime.now(UTC)
            try:
                line = masimo_line(now.replace(tzinfo=None), 90 + i % 8, 140 + i % 20, 2.5)
                os.write(self._pty.master_fd, line)
            except OSError:
                return
            self.sent.append(now)
            i += 1


class Station:
    """A daemon child process and its sources; see the module docstring."""

    def __init__(
        self, folder: Path, *, width: int = 320, height: int = 240, fps: int = 30, extra_config: str = ""
    ) -> None:
        self.folder = folder
        self.identity = Identity.generate()
        self.pty = open_pty_pair()
        self.socket = folder / "control.sock"
        self.recordings = folder / "recordings"
        self.audit = folder / "audit.jsonl"
        self.config = folder / "station.toml"
        self.config.write_text(
            f"""
[station]
table = "fault-test"
control_socket = "{self.socket}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = {width}
height = {height}
fps = {fps}
audio = true
[audio]
source = {{ kind = "tone" }}
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{self.pty.slave_path}"
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{self.recordings}"
audit_log = "{self.audit}"
segment_seconds = 4
recipients = ["{self.identity.recipient}"]
[session]
preroll_s = 1
[triggers]
vitals = false
"""
            + extra_config  # more sections (e.g. [collection]), appended whole
        )
        self.oximeter = Oximeter(self.pty)
        self.oximeter.start()
        self.process: subprocess.Popen[bytes] | None = None
        self.kills: list[Kill] = []

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the daemon and wait until its camera encodes frames."""
        log = open(self.folder / "daemon.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--config", str(self.config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}; see daemon.log")
            try:
                status = request(self.socket, "status", timeout=5)
                cams = status.get("cameras", {})
                if cams and all(c.get("frames_encoded", 0) > 0 for c in cams.values()):
                    return
            except (ControlError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the daemon did not start encoding in time")

    def record_then_kill(self, seconds: float) -> Kill:
        """Start a recording, mark every 0.25 s for ``seconds``, then SIGKILL the daemon."""
        assert self.process is not None
        reply = request(self.socket, "start", by="command line")
        session = str(reply.get("session"))
        acked: list[tuple[str, datetime]] = []
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            label = f"m{i}"
            if request(self.socket, "mark", label=label, by="command line").get("ok"):
                acked.append((label, datetime.now(UTC)))
            i += 1
            time.sleep(0.25)
        kill_utc = datetime.now(UTC)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        sent = [t for t in self.oximeter.sent if t <= kill_utc]
        kill = Kill(session, kill_utc, sent, acked)
        self.kills.append(kill)
        return kill

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def close(self) -> None:
        self.stop()
        self.oximeter.stop()
        self.pty.close()


def losses(station: Station, kill: Kill) -> dict[str, float]:
    """Seconds of each stream recorded before the kill and missing from the session."""
    folder = station.recordings / kill.session
    ids = [station.identity]
    manifest = json.loads(decrypt(folder / MANIFEST, ids)[0])
    epoch = datetime.fromisoformat(manifest["media_epoch_utc"])
    last_media: dict[str, float] = {}
    for path in sorted(folder.iterdir()):
        if parse_segment_name(path.name) is None:
            continue
        plain, _complete = decrypt(path, ids)
        if not plain:
            continue
        cut = station.folder / "cut.ts"
        cut.write_bytes(plain)
        try:
            with av.open(str(cut)) as ts:
                for packet in ts.demux():
                    if packet.pts is None or packet.time_base is None:
                        continue
                    kind = packet.stream.type
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    last_media[kind] = max(last_media.get(kind, 0.0), end)
        except av.error.FFmpegError:
            pass  # the cut tail: what came before it was read
    out: dict[str, float] = {}
    for kind in ("video", "audio"):
        last = epoch + timedelta(seconds=last_media.get(kind, 0.0))
        out[kind] = max(0.0, (kill.kill_utc - last).total_seconds())
    vitals = _lines(folder / VITALS, ids)
    recorded = max((datetime.fromisoformat(v["utc"]) for v in vitals), default=None)
    out["vitals"] = _gap(kill.vitals_sent[-1] if kill.vitals_sent else None, recorded)
    markers = _lines(folder / MARKERS, ids)
    labels = {m["label"] for m in markers}
    acked = [t for label, t in kill.markers_acked if label in labels]
    last_acked = kill.markers_acked[-1][1] if kill.markers_acked else None
    out["markers"] = _gap(last_acked, max(acked, default=None))
    return out


def _lines(path: Path, ids: list[Identity]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    plain, _ = decrypt(path, ids)
    return [json.loads(line) for line in plain.splitlines() if line.strip()]


def _gap(sent: datetime | None, recorded: datetime | None) -> float:
    if sent is None:
        return 0.0
    if recorded is None:
        return float("inf")
    return max(0.0, (sent - recorded).total_seconds())


def summary(per_kill: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """min / median / max seconds lost per stream."""
    return {
        s: {
            "min": round(min(k[s] for k in per_kill), 3),
            "median": round(statistics.median(k[s] for k in per_kill), 3),
            "max": round(max(k[s] for k in per_kill), 3),
        }
        for s in STREAMS
    }
