"""A full disk, for real: the storage and the audit log on a small tmpfs, filled before a start,
during a recording and before the daemon starts. The recorder never crashes, keeps every byte it
wrote before the disk filled, says so to the bedside and to IT, and records again once there is
room."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from review.export import decrypt
from session.audit import verify
from session.layout import PARTIAL, parse_segment_name
from store.keys import Identity

pytestmark = pytest.mark.slow


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running(folder: Path, disk: Path, identity: Identity) -> Iterator[Daemon]:
    config = parse_config(
        f"""
[station]
control_socket = "{folder / 'control.sock'}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{disk / 'recordings'}"
audit_log = "{disk / 'audit.jsonl'}"
segment_seconds = 2
reserve_minutes = 0.5
recipients = ["{identity.recipient}"]
[session]
preroll_s = 1
"""
    )
    d = Daemon(config, [identity.recipient])
    stop = threading.Event()
    loop = threading.Thread(target=d.run, args=(stop,), daemon=True)
    d.start()
    loop.start()
    try:
        assert wait_for_frames(d)
        yield d
    finally:
        stop.set()
        loop.join()
        d.shutdown()


def ask(d: Daemon, cmd: str, **args: Any) -> dict[str, Any]:
    return d.handle_request({"cmd": cmd, "by": "command line", **args})


def audit_events(disk: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (disk / "audit.jsonl").read_text().splitlines()]


def test_a_start_on_a_full_disk_is_refused_and_recording_resumes_when_room_returns(
    tmp_path: Path, small_disk: Callable[[str], Any]
) -> None:
    disk = small_disk("24m")
    identity = Identity.generate()
    with running(tmp_path, disk.path, identity) as d:
        disk.fill(leave=64 * 1024)
        reply = ask(d, "start")
        assert reply["ok"] is False and "storage full" in reply["error"]
        assert d.status().state == "idle" and d.status().session.storage_problem
        assert d.controller.lamp(0) and not d.controller.lamp(500_000_000)  # flashing, not steady
        disk.free_up()
        wait_until(lambda: d.status().session.storage_problem is None, 5, "the problem to clear")
        assert ask(d, "start")["ok"]
        time.sleep(1)
        assert ask(d, "stop")["ok"]
    assert "recording_refused" in audit_events(disk.path)
    assert verify(disk.path / "audit.jsonl") == []


def test_a_disk_that_fills_during_a_recording_keeps_what_was_written_and_never_crashes(
    tmp_path: Path, small_disk: Callable[[str], Any]
) -> None:
    disk = small_disk("24m")
    identity = Identity.generate()
    with running(tmp_path, disk.path, identity) as d:
        assert ask(d, "start")["ok"]
        wait_until(lambda: d.controller.session_id is not None, 5, "the start")
        session = disk.path / "recordings" / str(d.controller.session_id)
        wait_until(lambda: any(p.name.endswith(".ts.age") for p in session.iterdir()), 10, "a closed segment")
        disk.fill()
        time.sleep(3)  # recording on a full disk
        full = d.status()
        assert full.session.state == "recording" and full.session.writing_failed, full.session
        assert d.controller.alert == "DISK FULL"
        assert full.service is None or full.service.healthy  # no restart for a full disk
        # Closed before the disk filled (the one it cut stays .partial until closed late).
        closed = [p for p in session.iterdir() if p.name.endswith(".ts.age")]
        disk.free_up()  # room again: the recording goes on by itself, in a new segment
        before = {p.name for p in session.iterdir()}
        wait_until(
            lambda: any(p.name.endswith(".ts.age") and p.name not in before for p in session.iterdir()),
            10,
            "a new segment after the disk had room again",
        )
        reply = ask(d, "stop")
        assert reply["ok"] and reply["state"] == "idle", reply
        # Everything closed before the disk filled reads back whole.
        assert closed
        for path in closed:
            _plain, complete = decrypt(path, [identity])
            assert complete, path.name
        wait_until(
            lambda: not any(p.name.endswith(PARTIAL) for p in session.iterdir()), 10, "the late close"
        )
        assert ask(d, "start")["ok"]  # and it records again
        time.sleep(1)
        assert ask(d, "stop")["ok"]
    events = audit_events(disk.path)
    assert "session_closed_late" in events and events.count("recording_started") == 2
    assert verify(disk.path / "audit.jsonl") == []
    assert all(parse_segment_name(p.name) is None or not p.name.endswith(PARTIAL) for p in session.iterdir())


def test_the_daemon_starts_with_its_audit_log_on_a_full_disk(
    tmp_path: Path, small_disk: Callable[[str], Any]
) -> None:
    disk = small_disk("8m")
    identity = Identity.generate()
    (disk.path / "audit.jsonl").touch()
    disk.fill()
    with running(tmp_path, disk.path, identity) as d:
        assert d.audit.held >= 1  # "service_started" waits for room
        disk.free_up()
        wait_until(lambda: d.audit.held == 0, 5, "the held entry to be written")
    assert audit_events(disk.path)[:1] == ["service_started"]
    assert verify(disk.path / "audit.jsonl") == []
