"""Paths the recorder cannot use are config errors (exit 78, the field named) for check-config and
run alike, tried for real (root passes every permission check, a read-only mount does not); and
a second recorder on the same storage is refused with a plain reason while the first goes on."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from control.socket import ControlError, request
from store.keys import Identity

EX_CONFIG = 78
EX_TEMPFAIL = 75


def station(tmp: Path, *, storage: Path, socket: Path) -> Path:
    path = tmp / "station.toml"
    path.write_text(
        f"""
[station]
control_socket = "{socket}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15
[storage]
directory = "{storage}"
audit_log = "{tmp / "audit.jsonl"}"
recipients = ["{Identity.generate().recipient}"]
"""
    )
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_storage_on_a_read_only_mount_is_a_config_error(
    tmp_path: Path, small_disk: Callable[[str], Any]
) -> None:
    disk = small_disk("1m")
    subprocess.run(["mount", "-o", "remount,ro", str(disk.path)], check=True)
    config = station(tmp_path, storage=disk.path / "recordings", socket=tmp_path / "control.sock")
    for command in (["check-config", str(config)], ["run", "--config", str(config)]):
        done = cli(*command)
        assert done.returncode == EX_CONFIG, done.stderr
        assert "storage.directory:" in done.stderr and "Read-only file system" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_control_socket_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("")  # a file where the socket's folder should be
    config = station(tmp_path, storage=tmp_path / "recordings", socket=blocker / "control.sock")
    for command in (["check-config", str(config)], ["run", "--config", str(config)]):
        done = cli(*command)
        assert done.returncode == EX_CONFIG, done.stderr
        assert "station.control_socket:" in done.stderr and "is not a directory" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_second_recorder_on_the_same_storage_is_refused_and_the_first_keeps_control(
    tmp_path: Path,
) -> None:
    socket = tmp_path / "control.sock"
    config = station(tmp_path, storage=tmp_path / "recordings", socket=socket)
    first = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request(socket, "status", timeout=2)
                break
            except (ControlError, OSError):
                assert time.monotonic() < deadline, "the first recorder never answered"
                time.sleep(0.2)
        second = cli("run", "--config", str(config))
        assert second.returncode == EX_TEMPFAIL, second.stderr
        assert "already in use by a recorder (pid" in second.stderr and "Traceback" not in second.stderr
        assert str(first.pid) in second.stderr
        # The first still answers on its socket: it can be stopped and asked to discard.
        assert request(socket, "discard", by="command line")["ok"]
        assert request(socket, "status")["do_not_record"] is True
    finally:
        first.terminate()
        first.wait(30)
