"""The real daemon under a notify socket the test owns: READY, WATCHDOG only while healthy, STATUS.

The hang is real: camera "room" reads an MPEG-TS stream from a named pipe fed by ffmpeg, and the
test stops ffmpeg with SIGSTOP. OpenCV's read then blocks without an error, so the camera is not
"lost" (no NO SIGNAL frames, no reconnect): its frames just stop, which is what a hung pipeline
looks like from inside. The pings must stop while STATUS says why, and resume when ffmpeg does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_testkit import NotifySocket

from store.keys import Identity

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)"),
]

WATCHDOG_USEC = 2_000_000  # pings every second


@pytest.fixture
def fifo_camera(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A named pipe with ffmpeg writing 15 fps of MPEG-TS into it in real time."""
    fifo = tmp_path / "room.ts"
    os.mkfifo(fifo)
    command = [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
        "-c:v", "mpeg2video", "-q:v", "5", "-f", "mpegts", "-y", str(fifo),
    ]  # fmt: skip
    ffmpeg = subprocess.Popen(command)
    yield fifo, ffmpeg
    ffmpeg.send_signal(signal.SIGCONT)
    ffmpeg.kill()
    ffmpeg.wait(timeout=10)


def write_config(tmp: Path, fifo: Path) -> Path:
    config = tmp / "station.toml"
    config.write_text(
        f"""
[station]
control_socket = "{tmp / 'control.sock'}"

[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15

[[cameras]]
name = "room"
source = {{ kind = "file", path = "{fifo}", loop = false }}
width = 320
height = 240
fps = 15
overlay = false

[encoding]
preset = "ultrafast"

[storage]
directory = "{tmp / 'recordings'}"
recipients = ["{Identity.generate().recipient}"]

[session]
preroll_s = 2

[logging]
format = "json"
"""
    )
    return config


def wait_for(sock: NotifySocket, predicate: object, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in sock.drain(0.2):
            if callable(predicate) and predicate(message):
                return message
    raise AssertionError(f"no matching message within {timeout_s} s; got {sock.messages[-10:]}")


def collect(sock: NotifySocket, seconds: float) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += sock.drain(0.2)
    return got


def control_status(sock_path: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--json", "--socket", str(sock_path)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_ready_watchdog_and_status_follow_the_pipeline(
    tmp_path: Path,
    notify_socket: NotifySocket,
    fifo_camera: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    fifo, ffmpeg = fifo_camera
    config = write_config(tmp_path, fifo)
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.env_value, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        ready = wait_for(notify_socket, lambda m: m.get("READY") == "1", 30)
        assert ready["STATUS"].startswith("idle")

        # Healthy and idle (encoding into the pre-roll only): pings keep coming, once a second.
        healthy = collect(notify_socket, 4.5)
        assert sum(m.get("WATCHDOG") == "1" for m in healthy) >= 3, healthy
        assert not any("HUNG" in m.get("STATUS", "") for m in healthy)

        # Hang the room camera's source. Its reader blocks in read(): still "live", no frames.
        ffmpeg.send_signal(signal.SIGSTOP)
        hung = wait_for(notify_socket, lambda m: "HUNG" in m.get("STATUS", ""), 20)
        assert "camera room" in hung["STATUS"]
        assert "closeup" not in hung["STATUS"].split("HUNG")[1]
        after = collect(notify_socket, 4.0)
        assert not any(m.get("WATCHDOG") == "1" for m in after), after
        assert any("camera room" in m.get("STATUS", "") for m in after)  # still saying why
        status = control_status(tmp_path / "control.sock")
        room = status["cameras"]["room"]  # type: ignore[index]
        assert room["health"]["state"] == "live", "a hung read is not a lost camera"

        # The source moves again before systemd's timeout: pings resume, STATUS clears.
        ffmpeg.send_signal(signal.SIGCONT)
        wait_for(notify_socket, lambda m: m.get("WATCHDOG") == "1", 15)
        recovered = collect(notify_socket, 3.0)
        assert sum(m.get("WATCHDOG") == "1" for m in recovered) >= 2
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
    assert any(m.get("STOPPING") == "1" for m in notify_socket.drain(1.0) + notify_socket.messages)
