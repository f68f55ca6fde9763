"""The camera never waits for the encoder: a stalled encoder costs frames, counted, not capture."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from capture.overlay import OverlayRenderer, OverlayState
from capture.packets import EncodedPacket
from capture.pipeline import QUEUE_S, CameraPipeline
from sync.clock import MediaClock

W, H = 160, 120


class StalledEncoder:
    """An encoder whose first frame takes until ``release`` is set (a hung x264, a busy core)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames = 0

    def encode(self, i420: Any, pts: int) -> list[EncodedPacket]:
        self.release.wait(10)
        self.frames += 1
        return []

    def flush(self) -> list[EncodedPacket]:
        return []


STATE = OverlayState(
    table="Table 1",
    camera="closeup",
    utc=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
    recording=False,
    elapsed_s=None,
    since_birth_s=None,
    values=(),
)


class Nowhere:
    def write(self, packet: EncodedPacket) -> None:
        pass


def pipeline(fps: int, encoder: StalledEncoder) -> CameraPipeline:
    return CameraPipeline(
        "closeup",
        width=W,
        height=H,
        fps=fps,
        encoder=encoder,  # type: ignore[arg-type]
        sink=Nowhere(),
        clock=MediaClock(0),
        overlay=OverlayRenderer(W, H),
        overlay_state=lambda _t: STATE,
        lost_since=lambda: None,
    )


def test_a_stalled_encoder_drops_frames_beyond_a_quarter_second_and_counts_them() -> None:
    fps = 30
    encoder = StalledEncoder()
    p = pipeline(fps, encoder)
    p.start()
    frame = np.zeros((H, W, 3), np.uint8)
    try:
        p.on_frame(frame, 0)
        deadline = time.monotonic() + 5
        while p.backlog_frames and time.monotonic() < deadline:  # the encoder took frame 0
            time.sleep(0.01)
        started = time.monotonic()
        for i in range(1, 41):
            p.on_frame(frame, i * 1_000_000_000 // fps)
        assert time.monotonic() - started < 1.0  # capture never waited for the stalled encoder
        held = round(fps * QUEUE_S)
        assert p.backlog_frames == held  # a quarter second of frames waits ...
        assert p.frames_dropped == 40 - held  # ... and every older one is dropped, and counted
    finally:
        encoder.release.set()
        p.stop()


def test_a_slow_camera_still_gets_three_frames_of_slack() -> None:
    encoder = StalledEncoder()
    p = pipeline(2, encoder)
    frame = np.zeros((H, W, 3), np.uint8)
    for i in range(5):  # not started: nothing is taken off the queue
        p.on_frame(frame, i)
    assert p.backlog_frames == 3 and p.frames_dropped == 2
