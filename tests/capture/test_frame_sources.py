"""Camera sources through OpenCV: files at real-time pace, network streams, V4L2 negotiation."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from capture.sources import (
    FileCamera,
    FramePacer,
    FrameSource,
    SourceError,
    StreamCamera,
    V4L2Camera,
    frames_skipped,
    mask_url,
)
from capture.test_pattern import TestPatternSource

# --- FileCamera -----------------------------------------------------------------------------------


def test_file_camera_reads_frames(video_file: Path, fake_clock: Any) -> None:
    cam = FileCamera(video_file, loop=False, clock_ns=fake_clock, sleep=fake_clock.sleep)
    assert isinstance(cam, FrameSource)
    cam.open()
    assert cam.fps == pytest.approx(30.0)
    frames = []
    while (frame := cam.read()) is not None:
        frames.append(frame)
    assert len(frames) == 60
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert np.count_nonzero(frames[0] != frames[30]) > 0
    # Paced by the file's rate: 60 frames span 59 intervals of 1/30 s.
    assert fake_clock.slept == pytest.approx(59 / 30, abs=1e-6)
    cam.close()


def test_file_camera_loops(video_file: Path, fake_clock: Any) -> None:
    cam = FileCamera(video_file, loop=True, clock_ns=fake_clock, sleep=fake_clock.sleep)
    cam.open()
    first = cam.read()
    for _ in range(149):
        assert cam.read() is not None
    assert cam.loops == 2
    # After a loop the picture starts over.
    cam.read()  # frame 150 = frame 0 of the third pass
    cam.close()
    again = FileCamera(video_file, loop=True, clock_ns=fake_clock, sleep=fake_clock.sleep)
    again.open()
    second = again.read()
    assert first is not None and second is not None
    assert np.array_equal(first, second)


def test_file_camera_real_time_pace(video_file: Path) -> None:
    cam = FileCamera(video_file)
    cam.open()
    cam.read()
    t0 = time.monotonic()
    for _ in range(15):
        cam.read()
    elapsed = time.monotonic() - t0
    assert 0.4 <= elapsed <= 0.65, f"15 frames at 30 fps took {elapsed:.3f} s"
    cam.close()


def test_file_camera_missing_file(tmp_path: Path) -> None:
    cam = FileCamera(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="no such file"):
        cam.open()


def test_file_camera_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot open video file"):
        FileCamera(path).open()


# --- StreamCamera ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ts_file(video_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test video as MPEG-TS: a stream format that plays without seeking, like a camera's."""
    path = tmp_path_factory.mktemp("stream") / "live.ts"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(video_file), "-c", "copy",
         "-f", "mpegts", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def http_server(ts_file: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ts_file.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_stream_camera_reads_over_http(http_server: str, ts_file: Path) -> None:
    cam = StreamCamera(f"{http_server}/{ts_file.name}")
    cam.open()
    frames = [cam.read() for _ in range(5)]
    assert all(f is not None and f.shape == (240, 320, 3) for f in frames)
    cam.close()
    cam.close()  # idempotent
    assert cam.read() is None


def test_stream_camera_unreachable_names_the_url_without_credentials() -> None:
    cam = StreamCamera("rtsp://admin:s3cret@127.0.0.1:9/stream", open_timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        cam.open()
    assert time.monotonic() - t0 < 5
    assert "127.0.0.1:9/stream" in str(err.value)
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)
    assert "s3cret" not in cam.describe()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://user:pw@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("rtsp://user@cam/x", "rtsp://***@cam/x"),
        ("rtsp://cam.local/x", "rtsp://cam.local/x"),
        ("http://cam/snap.cgi?user=a&password=b&x=1", "http://cam/snap.cgi?user=a&password=***&x=1"),
        ("http://u:p@[::1]:80/v", "http://***@[::1]:80/v"),
        ("rtsp://us:er:p@ss@host/p", "rtsp://***@host/p"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


# --- V4L2Camera -----------------------------------------------------------------------------------


class FakeCapture:
    """Stands in for ``cv2.VideoCapture`` on a V4L2 device that honours only some settings."""

    instances: ClassVar[list[FakeCapture]] = []
    supports: ClassVar[dict[int, float]] = {}  # property → what the "driver" settles on

    def __init__(self, device: Any, api: int) -> None:
        self.device = device
        self.api = api
        self.calls: list[tuple[int, float]] = []
        self.props: dict[int, float] = {}
        self.released = False
        FakeCapture.instances.append(self)

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.calls.append((prop, value))
        self.props[prop] = self.supports.get(prop, value)
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray]:
        w = int(self.props.get(cv2.CAP_PROP_FRAME_WIDTH, 640))
        h = int(self.props.get(cv2.CAP_PROP_FRAME_HEIGHT, 480))
        return True, np.zeros((h, w, 3), np.uint8)

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_v4l2(monkeypatch: pytest.MonkeyPatch) -> type[FakeCapture]:
    FakeCapture.instances = []
    FakeCapture.supports = {}
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)  # the module capture.sources uses
    return FakeCapture


def test_v4l2_asks_for_size_rate_format_and_fixed_exposure(fake_v4l2: type[FakeCapture]) -> None:
    cam = V4L2Camera("/dev/video0", 1280, 720, 30, fourcc="MJPG", exposure=150, white_balance_k=4600)
    with capture_logs() as logs:
        cam.open()
    cap = fake_v4l2.instances[-1]
    assert cap.api == cv2.CAP_V4L2
    props = [p for p, _ in cap.calls]
    assert props.index(cv2.CAP_PROP_FOURCC) < props.index(cv2.CAP_PROP_FRAME_WIDTH)
    assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280
    assert cap.props[cv2.CAP_PROP_FRAME_HEIGHT] == 720
    assert cap.props[cv2.CAP_PROP_FPS] == 30
    assert cap.props[cv2.CAP_PROP_BUFFERSIZE] == 1
    # Manual exposure mode first, then the value; auto white balance off, then the temperature.
    assert props.index(cv2.CAP_PROP_AUTO_EXPOSURE) < props.index(cv2.CAP_PROP_EXPOSURE)
    assert cap.props[cv2.CAP_PROP_AUTO_EXPOSURE] == 1
    assert cap.props[cv2.CAP_PROP_EXPOSURE] == 150
    assert props.index(cv2.CAP_PROP_AUTO_WB) < props.index(cv2.CAP_PROP_WB_TEMPERATURE)
    assert cap.props[cv2.CAP_PROP_AUTO_WB] == 0
    assert cap.props[cv2.CAP_PROP_WB_TEMPERATURE] == 4600
    assert not [e for e in logs if e["event"] == "camera_settings_not_honoured"]
    frame = cam.read()
    assert frame is not None and frame.shape == (720, 1280, 3)
    cam.close()
    assert cap.released


def test_v4l2_leaves_automatic_controls_alone_when_not_configured(
    fake_v4l2: type[FakeCapture],
) -> None:
    cam = V4L2Camera(0, 1280, 720, 30, fourcc=None)
    cam.open()
    props = {p for p, _ in fake_v4l2.instances[-1].calls}
    for untouched in (
        cv2.CAP_PROP_AUTO_EXPOSURE,
        cv2.CAP_PROP_EXPOSURE,
        cv2.CAP_PROP_AUTO_WB,
        cv2.CAP_PROP_WB_TEMPERATURE,
        cv2.CAP_PROP_FOURCC,
    ):
        assert untouched not in props


def test_v4l2_warns_once_about_settings_the_driver_refused(fake_v4l2: type[FakeCapture]) -> None:
    fake_v4l2.supports = {
        cv2.CAP_PROP_FRAME_WIDTH: 640,
        cv2.CAP_PROP_FRAME_HEIGHT: 480,
        cv2.CAP_PROP_FPS: 15,
        cv2.CAP_PROP_AUTO_EXPOSURE: 3,  # stays in aperture priority (auto)
    }
    cam = V4L2Camera("/dev/video0", 1280, 720, 30, exposure=100)
    with capture_logs() as logs:
        cam.open()
        cam.close()
        cam.open()  # a reconnect does not repeat the warning
    warnings = [e for e in logs if e["event"] == "camera_settings_not_honoured"]
    assert len(warnings) == 1
    ignored = warnings[0]["ignored"]
    assert ignored["size"] == {"wanted": "1280x720", "got": "640x480"}
    assert ignored["fps"]["got"] == 15
    assert "exposure" in ignored
    assert "fourcc" not in ignored
    assert cam.accepted["width"] == 640


def test_v4l2_missing_device_is_a_clear_error(tmp_path: Path) -> None:
    cam = V4L2Camera(str(tmp_path / "video9"), 1280, 720, 30)
    with pytest.raises(SourceError, match="no such device node"):
        cam.open()


# --- pacing ---------------------------------------------------------------------------------------


def test_frame_pacer_keeps_schedule_and_skips_when_late(fake_clock: Any) -> None:
    pacer = FramePacer(10, fake_clock, fake_clock.sleep, buffered=1)
    start = fake_clock.now
    assert [pacer.next() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert fake_clock.now - start == 400_000_000
    fake_clock.now += 50_000_000  # half an interval late: still slot 5, no skip
    assert pacer.next() == 5
    fake_clock.now += 350_000_000  # now at 0.85 s: slots 6 and 7 are gone, 8 is due
    assert pacer.next() == 8
    assert pacer.skipped == 2
    assert fake_clock.now - start == 850_000_000  # no wait: slot 8 was already due
    assert pacer.next() == 9
    assert fake_clock.now - start == 900_000_000


def test_frame_pacer_hands_out_the_slots_a_driver_would_still_hold(fake_clock: Any) -> None:
    """A reader held up for a moment loses nothing: the slots it missed come at once, each with
    its own due time, up to the four a V4L2 driver queues; beyond that the oldest are given up."""
    pacer = FramePacer(10, fake_clock, fake_clock.sleep)
    start = fake_clock.now
    assert [pacer.next() for _ in range(3)] == [0, 1, 2]
    fake_clock.now += 250_000_000  # at 0.45 s: slots 3 and 4 are due
    assert [pacer.next() for _ in range(2)] == [3, 4]
    assert fake_clock.now - start == 450_000_000  # no wait for either
    assert pacer.due_ns == start + 400_000_000  # each carries its own time, not the reader's
    assert pacer.skipped == 0
    fake_clock.now += 1_000_000_000  # at 1.45 s: slots 5..14 due, the driver holds 11..14
    assert [pacer.next() for _ in range(5)] == [11, 12, 13, 14, 15]
    assert pacer.skipped == 6
    assert fake_clock.now - start == 1_500_000_000  # caught up: slot 15 waited for its time


def test_file_camera_counts_frames_skipped_by_a_late_reader_across_reopens(
    video_file: Path, fake_clock: Any
) -> None:
    cam = FileCamera(video_file, loop=True, clock_ns=fake_clock, sleep=fake_clock.sleep)
    cam.open()
    for _ in range(3):
        cam.read()
    assert frames_skipped(cam) == 0
    fake_clock.now += 200_000_000  # the reader stalled for 0.2 s: 6 slots at 30 fps, 4 held
    cam.read()
    assert frames_skipped(cam) == 2
    cam.close()  # a reconnect starts a new schedule; what was skipped stays counted
    cam.open()
    cam.read()
    fake_clock.now += 200_000_000
    cam.read()
    cam.read()
    assert frames_skipped(cam) == 2 + 2


def test_test_pattern_skips_are_counted(fake_clock: Any) -> None:
    src = TestPatternSource(320, 240, 10, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    src.read()
    src.read()
    fake_clock.now += 1_000_000_000  # one second late at 10 fps: slots 2..11 due, 4 still held
    src.read()
    assert frames_skipped(src) == src.frame_index - 2 == 6
    # A reopen (the reader's retry) starts a new pacer; the skips before it still count.
    src.close()
    src.open()
    src.read()
    fake_clock.now += 500_000_000
    src.read()
    assert frames_skipped(src) == 6 + 1


def test_a_live_camera_reports_no_source_skips() -> None:
    assert frames_skipped(V4L2Camera(0, 1280, 720, 30)) == 0
