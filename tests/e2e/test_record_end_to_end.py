"""The real daemon, as the service runs it, records from synthetic sources through a real tty.

Independent judges: ``age-keygen`` makes the review key, the ``age`` CLI decrypts what the
daemon wrote, and ``ffprobe`` decodes it (every frame, not only the headers) and says what is in
it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from vitals.masimo import MasimoParser
from vitals.pty import open_pty_pair
from vitals.sample import Parameter
from vitals.simulators.masimo import MasimoSimulator

pytestmark = pytest.mark.slow

SEGMENT_S = 5
RECORD_S = 15
PREROLL_S = 2
FPS = {"closeup": 30, "room": 15}


class Tap:
    """Writes the simulator's lines to the pty and remembers them, with when they were sent."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: list[tuple[float, bytes]] = []

    def write(self, data: bytes, /) -> int:
        self.lines.append((time.time(), data))
        return os.write(self.fd, data)


def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True, text=True, timeout=120, check=False, **kw,
    )


def age_decrypt(path: Path, identity: Path) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], capture_output=True, check=True
    ).stdout


def ffprobe(path: Path, *, decode: bool = False) -> dict[str, Any]:
    """What ffprobe reads in ``path``; with ``decode``, after decoding every frame of it, which
    must raise no error (headers alone say nothing of a broken picture)."""
    count = ["-count_frames"] if decode else []
    out = subprocess.run(
        ["ffprobe", "-v", "error", *count, "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    assert out.stderr == "", (path.name, out.stderr[-2000:])
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def values_sent(lines: list[tuple[float, bytes]], parameter: Parameter, start: float, end: float
                ) -> list[float]:
    """The valid values of ``parameter`` in the lines the simulator sent between two times."""
    parser = MasimoParser("oximeter")
    values: list[float] = []
    for sent_at, line in lines:
        for s in parser.feed(line, 0):
            if s.parameter is parameter and s.valid and start <= sent_at <= end:
                assert s.value is not None
                values.append(s.value)
    return values


def holds_in_order(logged: list[float], sent: list[float]) -> bool:
    """True when ``sent`` appears in ``logged`` as one unbroken run: nothing lost, nothing reordered."""
    return any(logged[i : i + len(sent)] == sent for i in range(len(logged) - len(sent) + 1))


def write_config(tmp: Path, recipient: str, port: str) -> Path:
    config = tmp / "station.toml"
    config.write_text(
        f"""
[station]
table = "Test table"
control_socket = "{tmp / 'control.sock'}"

[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 640
height = 360
fps = 30
overlay = true

[[cameras]]
name = "room"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15
overlay = false
audio = true

[audio]
source = {{ kind = "tone", frequency_hz = 1000 }}

[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{port}"

[encoding]
keyframe_interval_s = 1.0

[storage]
directory = "{tmp / 'recordings'}"
segment_seconds = {SEGMENT_S}
recipients = ["{recipient}"]

[session]
preroll_s = {PREROLL_S}

[triggers]
vitals = false  # this test starts and stops by hand; the triggers have their own test

[logging]
format = "json"
"""
    )
    return config


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_daemon_records_encrypted_playable_segments_with_vitals(tmp_path: Path) -> None:
    identity = tmp_path / "review-identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()

    pty = open_pty_pair()
    tap = Tap(pty.master_fd)
    simulator = MasimoSimulator(tap, time_scale=10.0)
    config = write_config(tmp_path, recipient, pty.slave_path)
    sock = tmp_path / "control.sock"
    log_path = tmp_path / "daemon.log"
    simulator.start()
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: sock.exists(), 30, "the control socket")
        status = json.loads(cli("status", "--json", "--socket", str(sock)).stdout)
        assert status["state"] == "idle"
        assert not (tmp_path / "recordings").exists(), "nothing may touch the disk while idle"
        time.sleep(PREROLL_S + 1.5)

        started = time.monotonic()
        reply = cli("start", "--socket", str(sock))
        recording_from = time.time()  # by now the daemon records
        assert reply.returncode == 0, reply.stderr
        assert "recording started" in reply.stdout
        time.sleep(RECORD_S)
        recording_until = time.time()  # and still records until the stop below arrives
        stop = cli("stop", "--socket", str(sock))
        wall = time.monotonic() - started
        assert stop.returncode == 0, stop.stderr
        final = json.loads(cli("status", "--json", "--socket", str(sock)).stdout)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        simulator.stop()
        pty.close()
    assert code == 0, log_path.read_text()[-3000:]

    session = final["last_session"]
    assert final["state"] == "idle"
    session_dir = Path(session["path"])

    # Everything at rest is an age file; nothing is left half-written.
    files = [p for p in (tmp_path / "recordings").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert not path.name.endswith(".partial"), path
        assert path.read_bytes()[:22] == b"age-encryption.org/v1\n", path

    manifest = json.loads(age_decrypt(session_dir / "manifest.json.age", identity))
    assert manifest["end_reason"].startswith("stop")
    for camera, has_audio in (("closeup", False), ("room", True)):
        entries = [s for s in manifest["segments"] if s["camera"] == camera]
        assert len(entries) >= 3
        total = missing = 0.0
        fps = FPS[camera]
        for i, entry in enumerate(entries):
            plain = tmp_path / f"{camera}-{i}.ts"
            plain.write_bytes(age_decrypt(session_dir / entry["file"], identity))
            info = ffprobe(plain, decode=True)
            kinds = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
            assert kinds["video"] == "h264"
            assert ("audio" in kinds) == has_audio
            if has_audio:
                assert kinds["audio"] == "aac"
            duration = float(info["format"]["duration"])
            assert abs(duration - (entry["end_s"] - entry["start_s"])) <= 0.5
            if 0 < i < len(entries) - 1:  # the first starts with the pre-roll, off the grid
                assert abs(duration - SEGMENT_S) <= 0.5, (camera, i, duration)
            # Every frame the camera delivered in that time is there, decoded: a frame dropped
            # anywhere (late source, full encoder queue, lost packet) leaves a gap in the video's
            # timestamps, so the count falls short of fps × the video's span (from its first frame
            # to the end of its last; the audio may run a packet longer).
            video = next(s for s in info["streams"] if s["codec_type"] == "video")
            frames = int(video["nb_read_frames"])
            assert frames == entry["video_frames"], (camera, i)
            span = entry["end_s"] - entry["start_s"]
            assert abs(frames - fps * span) <= max(3, 0.03 * fps * span), (
                camera, i, frames, span, final["cameras"][camera]
            )
            missing += fps * span - frames
            # The picture's own length (the container's also covers audio past the last frame).
            video_s = float(video["duration"])
            assert abs(video_s - span) <= 0.5, (camera, i, video_s, span)
            total += video_s
        # The picture spans the session, pre-roll included, as the daemon timed it...
        expected = session["duration_s"] + session["preroll_s"][camera]
        assert abs(total - expected) <= 0.5, (camera, total, expected)
        # ...and as the test saw it from outside (two CLI round trips of slack).
        assert abs(total - (wall + session["preroll_s"][camera])) <= 1.5, (camera, total, wall)
        assert session["preroll_s"][camera] >= PREROLL_S
        # A frame short in the recording is a frame the daemon counted as dropped, wherever it
        # was lost (the count covers the daemon's whole run, so it may be larger).
        assert missing <= final["cameras"][camera]["frames_dropped"] + 2, (camera, missing)

    # The vitals log holds what the monitor said, sample for sample.
    records = [
        json.loads(line)
        for line in age_decrypt(session_dir / "vitals.jsonl.age", identity).splitlines()
    ]
    for parameter in (Parameter.SPO2, Parameter.HR):
        logged = [r["value"] for r in records if r["parameter"] == str(parameter) and r["valid"]]
        # Every value sent while it recorded (a second of slack each end for the pty) is in the
        # log, in order; nothing is logged that the monitor did not send.
        sent = values_sent(tap.lines, parameter, recording_from + 1.0, recording_until - 1.0)
        assert len(sent) >= RECORD_S - 4, (parameter, sent)
        assert holds_in_order(logged, sent), (parameter, sent, logged)
        everything_sent = Counter(values_sent(tap.lines, parameter, 0.0, float("inf")))
        assert not Counter(logged) - everything_sent, parameter
    assert len(records) == len({(r["t"], r["parameter"]) for r in records}), "no duplicates"

    # The journal gets one canonical line per segment and per session.
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.count("segment_closed") == len(manifest["segments"])
    assert names.count("session_ended") == 1

    # And the review side turns it into one playable file per camera.
    out = tmp_path / "export"
    exported = cli("export", str(session_dir), "--identity", str(identity), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    for camera in ("closeup", "room"):
        info = ffprobe(out / f"{camera}.mp4", decode=True)
        assert abs(float(info["format"]["duration"]) - (wall + PREROLL_S)) <= 2.0
    assert (out / "vitals.csv").read_text().count("\n") == len(records) + 1
