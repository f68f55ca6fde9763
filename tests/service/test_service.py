"""sd_notify, readiness, watchdog health and the status line: protocol and table tests."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from service_testkit import NotifySocket, camera_status, daemon_status, parse_message

from recorder.service import (
    Progress,
    SdNotifier,
    ServiceLoop,
    notify_address,
    pipeline_health,
    readiness,
    status_line,
    storage_problem,
)
from recorder.status import RecorderStatus

# --- the protocol ---------------------------------------------------------------------------------


def typed(status: dict[str, Any]) -> RecorderStatus:
    """The wire format the tables are written in, as the typed status the decisions take."""
    return RecorderStatus.from_json(status)


@pytest.mark.parametrize(
    ("value", "address"),
    [
        (None, None),
        ("", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/123", "\0/org/freedesktop/systemd1/notify/123"),
        ("vsock:2:1234", None),
        ("relative/path", None),
    ],
)
def test_notify_address(value: str | None, address: str | None) -> None:
    assert notify_address(value) == address


def test_not_under_systemd_everything_is_a_no_op() -> None:
    notifier = SdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s() is None
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.status("x")
    assert not notifier.stopping()


def test_messages_reach_a_path_socket(notify_socket: NotifySocket) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket.env_value})
    assert notifier.ready("idle, 1 camera live")
    assert notifier.watchdog()
    assert notifier.status("two\nlines")
    assert notifier.stopping()
    got = notify_socket.drain(1.0)
    assert got == [
        {"READY": "1", "STATUS": "idle, 1 camera live"},
        {"WATCHDOG": "1"},
        {"STATUS": "two lines"},  # a newline would have started a bogus field
        {"STOPPING": "1"},
    ]


def test_messages_reach_an_abstract_socket() -> None:
    name = f"neoflix-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    try:
        server.settimeout(2.0)
        assert SdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert parse_message(server.recv(4096)) == {"WATCHDOG": "1"}
    finally:
        server.close()


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert not notifier.watchdog()
    assert not notifier.watchdog()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], interval: float | None
) -> None:
    assert SdNotifier(env, pid=4242).watchdog_interval_s() == interval


# --- status line ----------------------------------------------------------------------------------

TWO_LIVE = {"closeup": camera_status(), "room": camera_status()}


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (daemon_status(TWO_LIVE, monitors={"oximeter": "live"}), "idle, 2 cameras live, 1 monitor"),
        (daemon_status({"closeup": camera_status()}), "idle, 1 camera live"),
        (
            daemon_status(
                {"closeup": camera_status(), "room": camera_status("lost")},
                state="recording",
                elapsed_s=751.4,
                monitors={"oximeter": "live"},
            ),
            "recording 00:12:31, camera room lost, 1 monitor",
        ),
        (
            daemon_status(TWO_LIVE, state="recording", elapsed_s=3 * 3600 + 5, audio="lost"),
            "recording 03:00:05, 2 cameras live, audio lost",
        ),
        (
            daemon_status(TWO_LIVE, monitors={"oximeter": "lost", "ventilator": "live"}),
            "idle, 2 cameras live, monitor oximeter lost",
        ),
        (
            daemon_status({"closeup": camera_status("connecting", frames=0)}, audio="live"),
            "idle, camera closeup connecting",
        ),
        (daemon_status(TWO_LIVE, free=3 * 1024**3), "idle, 2 cameras live, disk low: 3.0 GB free"),
        ({**daemon_status(TWO_LIVE), "do_not_record": True}, "idle, do not record, 2 cameras live"),
        (
            {**daemon_status(TWO_LIVE, free=10**6), "storage_problem": "storage full: ..."},
            "idle, 2 cameras live, CANNOT RECORD: disk full",
        ),
        (
            {**daemon_status(TWO_LIVE, state="recording", elapsed_s=5), "writing_failed": "No space"},
            "recording 00:00:05, 2 cameras live, NOT SAVING: disk full",
        ),
        ({}, "?"),
    ],
)
def test_status_line(status: dict[str, Any], line: str) -> None:
    assert status_line(typed(status)) == line


# --- pipeline health ------------------------------------------------------------------------------


def run_health(steps: list[tuple[float, dict[str, Any]]]) -> tuple[bool, str]:
    """Feed (time, status) in order, as the daemon's loop would; the verdict at the last one."""
    progress = Progress()
    for now, status in steps:
        progress = progress.advance(typed(status), now)
    now, status = steps[-1]
    return pipeline_health(typed(status), now, progress)


def cams(**states: tuple[str, int]) -> dict[str, Any]:
    return daemon_status({name: camera_status(st, frames) for name, (st, frames) in states.items()})


@pytest.mark.parametrize(
    ("steps", "healthy", "why"),
    [
        # A healthy idle recorder still encodes into its pre-roll: frames move, pings go on.
        ([(0, cams(a=("live", 10))), (3, cams(a=("live", 100))), (9, cams(a=("live", 280)))], True, "flow"),
        # The first status ever seen: nothing has had time to stall.
        ([(0, cams(a=("live", 10)))], True, "flow"),
        # A lost camera still gets NO SIGNAL frames: not a hung pipeline, no restart.
        ([(0, cams(a=("lost", 10))), (6, cams(a=("lost", 14))), (12, cams(a=("lost", 18)))], True, "flow"),
        # A reader that says live but delivers nothing: hung; the pings stop.
        ([(0, cams(a=("live", 10))), (3, cams(a=("live", 90))), (9, cams(a=("live", 90)))], False,
         "camera a: no frame encoded for 6 s, its source says live but delivers nothing"),
        # Not even NO SIGNAL frames from a lost camera: the encoder is stuck.
        ([(0, cams(a=("lost", 10))), (7, cams(a=("lost", 10)))], False, "the encoder is stuck"),
        # Within the stall time it is too early to tell.
        ([(0, cams(a=("live", 10))), (4, cams(a=("live", 10)))], True, "flow"),
        # One stalled camera among healthy ones is enough.
        ([(0, cams(a=("live", 1), b=("live", 1))), (8, cams(a=("live", 200), b=("live", 1)))], False,
         "camera b"),
        # Opening for the first time (RTSP open timeout): not a hang, up to the grace period.
        ([(0, cams(a=("connecting", 0))), (20, cams(a=("connecting", 0)))], True, "flow"),
        ([(0, cams(a=("connecting", 0))), (31, cams(a=("connecting", 0)))], False,
         "still opening after 31 s"),
        # A reader thread that ended.
        ([(0, cams(a=("live", 5))), (1, cams(a=("stopped", 6))), (7, cams(a=("stopped", 6)))], False,
         "reader thread has ended"),
        ([(0, daemon_status({}))], False, "no camera pipelines"),
    ],
)
def test_frames_flow(steps: list[tuple[float, dict[str, Any]]], healthy: bool, why: str) -> None:
    verdict, reason = run_health(steps)
    assert verdict is healthy, reason
    assert why in reason


def writes(errors: int = 0, dropped: int = 0, frames: int = 0) -> dict[str, Any]:
    return daemon_status(
        {"a": camera_status(frames=frames, write_errors=errors, packets_dropped=dropped)},
        state="recording",
        elapsed_s=10,
    )


@pytest.mark.parametrize(
    ("steps", "healthy"),
    [
        ([(0, writes(0, 0, 1)), (2, writes(0, 0, 60))], True),
        # Errors that were already there when the loop started are not news.
        ([(0, writes(3, 0, 1)), (2, writes(3, 0, 60))], True),
        # A new write error withholds the pings for the window...
        ([(0, writes(0, 0, 1)), (2, writes(1, 0, 60)), (5, writes(1, 0, 150))], False),
        # ...after which a recorder whose writes succeed again is healthy again.
        ([(0, writes(0, 0, 1)), (2, writes(1, 0, 60)), (8, writes(1, 0, 240)), (13, writes(1, 0, 390))],
         True),
        # Writes that keep failing keep the pings away until systemd restarts the recorder.
        ([(0, writes(0, 0, 1)), (9, writes(5, 0, 270)), (18, writes(9, 0, 540)), (27, writes(14, 0, 810))],
         False),
        # Packets dropped at a full writer queue: the disk does not keep up.
        ([(0, writes(0, 0, 1)), (2, writes(0, 40, 60))], False),
    ],
)
def test_segment_writes_succeed(steps: list[tuple[float, dict[str, Any]]], healthy: bool) -> None:
    verdict, reason = run_health(steps)
    assert verdict is healthy, reason


def test_a_full_disk_never_withholds_the_watchdog() -> None:
    # A restart would not make room: the recorder shows the state and resumes by itself.
    full = {**writes(9, 0, 540), "writing_failed": "no space left on the storage disk (camera a)"}
    verdict, reason = run_health([(0, writes(0, 0, 1)), (9, writes(5, 0, 270)), (18, full)])
    assert verdict, reason


def writer(busy_s: float, backlog: int) -> dict[str, Any]:
    return daemon_status(
        {"a": camera_status(writer_busy_s=busy_s, writer_backlog=backlog)},
        state="recording",
        elapsed_s=10,
    )


@pytest.mark.parametrize(
    ("status", "healthy", "why"),
    [
        # Writing as usual: the writer is on each packet for a moment, a few queued behind it.
        (writer(0.0, 3), True, "flow"),
        # A segment's close (fsync on a slow disk) takes a few seconds: not yet a hang.
        (writer(4.0, 120), True, "flow"),
        # Blocked in one write for longer with packets waiting: a hung disk, long before the
        # 2000-packet backlog (over a minute at 30 fps, half an hour at 1 fps).
        (writer(12.0, 12), False, "camera a: a write has blocked for 12 s with 12 packets waiting"),
        # Nothing waiting behind it: the long item is not holding anything up.
        (writer(12.0, 0), True, "flow"),
    ],
)
def test_a_blocked_write_withholds_the_ping(status: dict[str, Any], healthy: bool, why: str) -> None:
    verdict, reason = pipeline_health(typed(status), 0.0)
    assert verdict is healthy, reason
    assert why in reason


def recording(segment_age: float | None, elapsed: float, state: str = "recording") -> dict[str, Any]:
    return {
        **daemon_status(state=state, elapsed_s=elapsed),
        "segment_seconds": 10.0,
        "last_segment_age_s": segment_age,
    }


@pytest.mark.parametrize(
    ("status", "healthy", "why"),
    [
        (recording(4.0, 600), True, "flow"),
        (recording(29.0, 600), True, "flow"),  # within 2 x 10 s + the margin
        (recording(31.0, 600), False, "no segment closed for 31 s while recording (one is due every 10 s)"),
        # No segment closed yet: counted from the start of the recording.
        (recording(None, 25), True, "flow"),
        (recording(None, 45), False, "no segment closed for 45 s"),
        # Not recording: no segments are due (the last one's age keeps growing, harmlessly).
        (recording(500.0, 0, state="idle"), True, "flow"),
    ],
)
def test_segments_that_stop_closing_withhold_the_ping(
    status: dict[str, Any], healthy: bool, why: str
) -> None:
    verdict, reason = pipeline_health(typed(status), 0.0)
    assert verdict is healthy, reason
    assert why in reason


def test_fields_the_daemon_may_add_are_used() -> None:
    stalled = daemon_status({"a": camera_status(frames=50, last_frame_age_s=8.0)})
    assert pipeline_health(typed(stalled), 0.0) == (
        False,
        "camera a: no frame encoded for 8 s, its source says live but delivers nothing "
        "(a hung read or encoder)",
    )
    backlog = daemon_status({"a": camera_status(frames=50, writer_backlog=2500)})
    ok, why = pipeline_health(typed(backlog), 0.0)
    assert not ok
    assert "2500 packets waiting for the disk" in why


# --- readiness ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        (daemon_status({"a": camera_status("connecting", 0)}), False),
        (daemon_status({"a": camera_status("live", 0)}), False),  # opened, nothing encoded yet
        (daemon_status({"a": camera_status("live", 1)}), True),
        (daemon_status({"a": camera_status("lost", 30)}), False),  # NO SIGNAL frames only
        (daemon_status({"a": camera_status("lost", 30)}, audio="live"), True),
        (daemon_status({"a": camera_status("lost", 30)}, monitors={"ox": "live"}), True),
    ],
)
def test_ready_once_a_source_delivers(status: dict[str, Any], ready: bool) -> None:
    assert (readiness(typed(status)) is None) is ready


def test_storage_problems(tmp_path: Path) -> None:
    assert storage_problem(tmp_path / "not" / "yet" / "there") is None  # created on first use
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "is not a directory" in str(storage_problem(blocker / "recordings"))
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "not writable" in str(storage_problem(locked / "recordings"))


# --- the loop -------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_service_loop_ready_watchdog_status(notify_socket: NotifySocket, tmp_path: Path) -> None:
    clock = FakeClock()
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket.env_value, "WATCHDOG_USEC": "2000000"})
    loop = ServiceLoop(notifier, storage_dir=tmp_path / "recordings", clock=clock)
    frames = 0

    def tick(state: str = "live", advance: float = 0.5, step: int = 15) -> list[dict[str, str]]:
        nonlocal frames
        clock.now += advance
        frames += step
        cam = camera_status(state, frames if state != "connecting" else 0)
        loop.tick(typed(daemon_status({"closeup": cam})))
        return notify_socket.drain()

    # Starting: no READY, no WATCHDOG, a STATUS saying what it waits for.
    assert tick("connecting", step=0) == [
        {"STATUS": "starting: waiting for a camera, the microphone or a monitor to deliver"}
    ]
    assert tick("connecting", step=0) == []  # unchanged: not repeated
    # The first frame: READY with the status line, and the first ping.
    assert tick() == [{"READY": "1", "STATUS": "idle, 1 camera live"}, {"WATCHDOG": "1"}]
    # Pings at half the interval (1 s), STATUS only when the line changes.
    pings = [m for _ in range(8) for m in tick()]
    assert pings == [{"WATCHDOG": "1"}] * 4
    # The camera hangs: frames stop moving. After the stall time the pings stop and STATUS says why.
    quiet: list[dict[str, str]] = []
    for _ in range(16):
        quiet += tick(step=0)
    assert quiet[:2] == [{"WATCHDOG": "1"}] * 2  # the first 5 s are within the stall time
    hung = [m for m in quiet if "STATUS" in m]
    assert hung and "HUNG" in hung[0]["STATUS"] and "camera closeup" in hung[0]["STATUS"]
    assert loop.health[0] is False and "camera closeup" in loop.health[1]
    assert {"WATCHDOG": "1"} not in quiet[quiet.index(hung[0]):]
    # Frames flow again (it came back before systemd's timeout): pings resume.
    back = tick() + tick()
    assert {"WATCHDOG": "1"} in back
    assert {"STATUS": "idle, 1 camera live"} in back
    loop.stopping()
    assert notify_socket.drain() == [{"STOPPING": "1", "STATUS": "stopping: closing segments"}]


def test_service_loop_without_a_watchdog_still_reports(notify_socket: NotifySocket) -> None:
    loop = ServiceLoop(SdNotifier({"NOTIFY_SOCKET": notify_socket.env_value}), clock=FakeClock())
    loop.tick(typed(daemon_status()))
    assert notify_socket.drain() == [{"READY": "1", "STATUS": "idle, 1 camera live"}]
    assert loop.ready
