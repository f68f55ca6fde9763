"""The camera reader: stamps, sizes, survives a lost camera, logs each transition once, stops fast."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from structlog.testing import capture_logs

from capture.camera_reader import CameraReader, fit_frame
from capture.sources import SourceError

Wait = Callable[..., None]


class FlakySource:
    """Delivers ``good`` frames, then is lost; opening fails until the test lets it back."""

    def __init__(self, good: int, size: tuple[int, int] = (320, 240)) -> None:
        self.good = good
        self.size = size
        self.delivered = 0
        self.opens = 0
        self.closes = 0
        self.failed_opens = 0
        self.back = threading.Event()
        self.lost = False

    def describe(self) -> str:
        return "flaky test camera"

    def open(self) -> None:
        self.opens += 1
        if self.lost and not self.back.is_set():
            self.failed_opens += 1
            raise SourceError("camera unplugged")

    def read(self) -> np.ndarray | None:
        time.sleep(0.002)
        if not self.lost and self.delivered >= self.good:
            self.lost = True
            return None
        self.delivered += 1
        w, h = self.size
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : self.delivered % w] = 200
        return frame

    def close(self) -> None:
        self.closes += 1


def test_lost_then_recovered(wait_for: Wait) -> None:
    source = FlakySource(good=5)
    got: list[tuple[np.ndarray, int]] = []
    with capture_logs() as logs:
        reader = CameraReader(
            "cam1",
            source,
            lambda f, t: got.append((f, t)),
            width=320,
            height=240,
            backoff_initial_s=0.01,
            backoff_max_s=0.04,
        )
        assert reader.health().state == "connecting"
        before = time.monotonic_ns()
        reader.start()
        wait_for(lambda: reader.health().state == "lost", what="lost")
        wait_for(lambda: source.failed_opens >= 3, what="retries")  # retried, quietly
        lost = reader.health()
        assert lost.delivered == 5
        assert lost.lost_since_ns is not None and lost.lost_since_ns >= before
        assert lost.lost_since_utc is not None
        assert abs(lost.lost_since_utc - datetime.now(UTC)) < timedelta(seconds=5)
        assert reader.lost_since() == lost.lost_since_utc
        assert lost.last_error == "open failed: SourceError: camera unplugged"  # the last retry
        assert lost.reconnects == 0

        source.back.set()
        wait_for(lambda: reader.health().state == "live", what="recovered")
        wait_for(lambda: reader.health().delivered >= 10, what="more frames")
        live = reader.health()
        assert live.reconnects == 1
        assert live.lost_since_ns is None and live.lost_since_utc is None
        assert reader.lost_since() is None
        assert reader.stop()
    events = [e["event"] for e in logs]
    assert events.count("camera_live") == 1
    assert events.count("camera_lost") == 1
    assert events.count("camera_recovered") == 1
    lost_event = next(e for e in logs if e["event"] == "camera_lost")
    assert lost_event["camera"] == "cam1"
    assert lost_event["log_level"] == "warning"
    recovered = next(e for e in logs if e["event"] == "camera_recovered")
    assert recovered["camera"] == "cam1" and recovered["lost_for_s"] > 0
    # Every open was matched by a close (the source is released before each retry).
    assert source.closes >= source.opens
    stamps = [t for _, t in got]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert reader.health().state == "stopped"


def test_first_open_failing_counts_as_lost(wait_for: Wait) -> None:
    source = FlakySource(good=10**9)
    source.lost = True  # unplugged from the start
    with capture_logs() as logs:
        reader = CameraReader(
            "cam2", source, lambda f, t: None, width=320, height=240, backoff_initial_s=0.01
        )
        reader.start()
        wait_for(lambda: reader.health().state == "lost", what="lost")
        source.lost = False
        source.back.set()
        wait_for(lambda: reader.health().state == "live", what="live")
        # Live for the first time: not a reconnection (one vocabulary with monitors and button).
        assert reader.health().reconnects == 0
        reader.stop()
    events = [e["event"] for e in logs]
    assert events.count("camera_lost") == 1 and events.count("camera_live") == 1


def test_stop_is_prompt_during_a_long_backoff(wait_for: Wait) -> None:
    source = FlakySource(good=0)
    reader = CameraReader(
        "cam3",
        source,
        lambda f, t: None,
        width=320,
        height=240,
        backoff_initial_s=10.0,
        backoff_max_s=10.0,
    )
    reader.start()
    wait_for(lambda: reader.health().state == "lost", what="lost")
    t0 = time.monotonic()
    assert reader.stop()
    assert time.monotonic() - t0 < 0.5
    assert not reader.running


def test_frames_are_resized_only_when_needed(wait_for: Wait) -> None:
    small: list[np.ndarray] = []
    reader = CameraReader(
        "cam4", FlakySource(good=10**9, size=(640, 360)), lambda f, t: small.append(f),
        width=320, height=180,
    )  # fmt: skip
    reader.start()
    wait_for(lambda: len(small) >= 3)
    reader.stop()
    assert all(f.shape == (180, 320, 3) for f in small)

    frame = np.zeros((240, 320, 3), np.uint8)
    assert fit_frame(frame, 320, 240) is frame  # no copy, no resize
    assert fit_frame(frame, 1280, 720).shape == (720, 1280, 3)
    assert fit_frame(np.zeros((240, 320), np.uint8), 320, 240).shape == (240, 320, 3)


def test_callback_errors_do_not_stop_the_reader(wait_for: Wait) -> None:
    def explode(frame: np.ndarray, t_ns: int) -> None:
        raise RuntimeError("encoder is on fire")

    with capture_logs() as logs:
        reader = CameraReader("cam5", FlakySource(good=10**9), explode, width=320, height=240)
        reader.start()
        wait_for(lambda: reader.health().delivered >= 20)
        health = reader.health()
        reader.stop()
    assert health.state == "live"
    assert health.callback_errors >= 19
    failures = [e for e in logs if e["event"] == "camera_callback_failed"]
    assert len(failures) == 1  # rate-limited, not one line per frame


def test_stamps_come_from_the_injected_clock(wait_for: Wait) -> None:
    ticks = iter(range(10**9, 2 * 10**9, 1000))
    lock = threading.Lock()

    def clock() -> int:
        with lock:
            return next(ticks)

    stamps: list[int] = []
    reader = CameraReader(
        "cam6", FlakySource(good=10**9), lambda f, t: stamps.append(t),
        width=320, height=240, clock_ns=clock,
    )  # fmt: skip
    reader.start()
    wait_for(lambda: len(stamps) >= 5)
    reader.stop()
    assert all(10**9 <= t < 2 * 10**9 for t in stamps)
    assert stamps == sorted(stamps)


def test_measured_fps(wait_for: Wait) -> None:
    from capture.test_pattern import TestPatternSource

    reader = CameraReader("cam7", TestPatternSource(160, 120, 50), lambda f, t: None, width=160, height=120)
    reader.start()
    wait_for(lambda: reader.health().delivered >= 25)
    fps = reader.health().rate
    reader.stop()
    assert fps == pytest.approx(50, rel=0.2)
