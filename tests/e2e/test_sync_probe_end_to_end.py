"""The sync probe through the real daemon: every stream marks the same instants, and the recording
keeps them together.

Two test-pattern cameras (30 and 15 fps), the tone and the Masimo simulator on a real pty run in
probe mode: a white frame, a 1 kHz beep and an HR step at every whole second of the monotonic
clock. The session is recorded, encrypted, decrypted with the reviewer's identity and measured by
``review.sync_probe``. These offsets are properties of the pipeline (frame and chunk times come
from the sources' schedules, not from when a loaded machine got round to reading them), so the
goals are asserted as they stand. Drift needs more than 10 s to mean anything: it is measured by
``scripts/bench sync``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from review.sync_probe import SyncReport, measure_session
from store.keys import Identity
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator

pytestmark = pytest.mark.slow

RECORD_S = 10.0
FPS = 30
FRAME_S = 1 / FPS


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncReport]:
    tmp = tmp_path_factory.mktemp("probe")
    identity = Identity.generate()
    pty = open_pty_pair()
    simulator = MasimoSimulator(pty.master_fd, probe_every_s=1.0)
    config = parse_config(
        f"""
[station]
control_socket = "{tmp / "control.sock"}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern", probe_every_s = 1.0 }}
width = 640
height = 360
fps = {FPS}
audio = true
[[cameras]]
name = "room"
source = {{ kind = "test_pattern", probe_every_s = 1.0 }}
width = 320
height = 240
fps = 15
[audio]
source = {{ kind = "tone", probe_every_s = 1.0 }}
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{pty.slave_path}"
[storage]
directory = "{tmp / "recordings"}"
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
[triggers]
vitals = false
"""
    )
    simulator.start()
    daemon = Daemon(config, [identity.recipient])
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    daemon.start()
    loop.start()
    try:
        assert wait_for_frames(daemon, timeout_s=30)
        # The monitor's first values first, so every mark in the recording is an HR step.
        deadline = time.monotonic() + 30
        while daemon.status().to_json()["monitors"]["oximeter"]["stats"]["records_ok"] < 2:
            assert time.monotonic() < deadline, "the simulated monitor sent nothing"
            time.sleep(0.2)
        daemon.handle_request({"cmd": "start"})
        time.sleep(RECORD_S)
        daemon.handle_request({"cmd": "stop"})
        session = Path(daemon.status().session.last_session["path"])
    finally:
        stop.set()
        loop.join()
        daemon.shutdown()
        simulator.stop()
        pty.close()
    yield measure_session(session, [identity], reference="closeup")


def test_every_stream_shows_every_mark(report: SyncReport) -> None:
    marks = len(report.flashes["closeup"])
    assert marks >= RECORD_S - 2
    assert len(report.flashes["room"]) >= marks - 1
    assert report.audio_vs_video.count >= marks - 1
    assert report.vitals_logged_vs_video.count >= marks - 2
    assert report.vitals_shown_after_arrival.count >= marks - 2


def test_audio_stays_with_video(report: SyncReport) -> None:
    assert report.audio_vs_video.max_abs_s <= 0.020, report.audio_vs_video.to_json()


def test_cameras_stay_within_a_frame_of_each_other(report: SyncReport) -> None:
    room = report.camera_vs_camera["room"]
    assert room.max_abs_s <= FRAME_S, room.to_json()


def test_a_vitals_sample_shows_on_the_first_frame_after_it_arrived(report: SyncReport) -> None:
    shown = report.vitals_shown_after_arrival
    # Never before it arrived (no value from the picture's future), never a frame late.
    assert min(o for _, o in shown.pairs) >= 0, shown.pairs
    assert shown.max_abs_s <= FRAME_S + 0.005, shown.to_json()
    # The monitor sent it at the mark: its logged arrival is the serial line's latency after.
    logged = report.vitals_logged_vs_video
    assert 0 <= logged.mean_s <= 0.050, logged.to_json()


def test_frame_times_are_the_sources_schedule(report: SyncReport) -> None:
    for camera, fps in (("closeup", 30), ("room", 15)):
        times = report.frame_times[camera]
        # A late read no longer shows as a long gap followed by a short one: every gap is a
        # whole number of frame intervals (more than one only where a slot was skipped).
        for a, b in itertools.pairwise(times):
            slots = (b - a) * fps
            assert round(slots) >= 1 and abs(slots - round(slots)) * 1000 / fps < 1, (camera, a, b)
