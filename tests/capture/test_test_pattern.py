"""The synthetic camera: right shape, moving content, a counter that advances, real-time pace."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from capture.sources import FrameSource, frames_skipped
from capture.test_pattern import TestPatternSource


def test_is_a_frame_source() -> None:
    assert isinstance(TestPatternSource(64, 48, 10), FrameSource)


def test_frames_have_the_configured_shape_and_move(fake_clock: Any) -> None:
    src = TestPatternSource(640, 360, 30, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    frames = [src.read() for _ in range(5)]
    for frame in frames:
        assert frame is not None
        assert frame.shape == (360, 640, 3)
        assert frame.dtype == np.uint8
    for a, b in itertools.pairwise(frames):
        assert a is not None and b is not None
        assert np.count_nonzero(a != b) > 100  # the block moved (and the counter changed)
    src.close()
    assert src.read() is None


def test_counter_increases_and_jumps_when_the_reader_is_late(fake_clock: Any) -> None:
    src = TestPatternSource(320, 240, 25, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    seen = []
    for _ in range(10):
        src.read()
        seen.append(src.frame_index)
    assert seen == list(range(10))
    fake_clock.now += int(1e9)  # the reader stalls for a second
    # The last four slots are still held, as a driver's buffers hold them; older ones are gone.
    got = []
    for _ in range(5):
        src.read()
        got.append(src.frame_index)
    assert got == [31, 32, 33, 34, 35]
    assert frames_skipped(src) == 31 - 10


def test_schedule_does_not_drift(fake_clock: Any) -> None:
    src = TestPatternSource(64, 48, 29.97, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    start = fake_clock.now
    for _ in range(3001):
        src.read()
    # Frame 3000 of 29.97 fps is due at exactly 100.1 s after the first, to the nanosecond.
    assert fake_clock.now - start == round(3000 * 1e9 / 29.97)


def test_real_time_pace() -> None:
    src = TestPatternSource(320, 240, 30)
    src.open()
    src.read()
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.0:
        src.read()
        n += 1
    assert 24 <= n <= 36, f"{n} frames in 1 s at 30 fps"


def test_different_sizes_render() -> None:
    for w, h in [(1920, 1080), (1280, 720), (160, 90)]:
        frame = TestPatternSource(w, h, 30).render(123)
        assert frame.shape == (h, w, 3)
