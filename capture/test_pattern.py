"""A synthetic camera for the demo and tests: colour bars, a moving block, frame counter and time.

It has to be cheap, because the demo runs it beside a 720p30 x264 encoder on a two-core machine:
the bars and ramp are drawn once, and each frame is a copy of that background plus a small moving
block and one line of text. Motion makes encoder and pipeline behave as with a real camera
(static frames compress to nothing), and the counter makes dropped or repeated frames visible in
the recording. Frames come at ``fps`` in real time on a fixed schedule; when the reader is late,
slots are skipped (the counter jumps) rather than delivered in a burst. A frame's time is the
slot it was scheduled for (``frame_time_ns``), not when the reader got to it.

Sync probe (``probe_every_s``): the slots are put on the clock's own grid, and the frame due at
each whole multiple of ``probe_every_s`` on the monotonic clock is all white, the instant the
tone source beeps and the monitor simulator steps its heart rate. Whatever offset a recording
shows between them is the pipeline's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import cv2
import numpy as np

from capture.sources import FramePacer

# 75 % colour bars (white, yellow, cyan, green, magenta, red, blue), BGR.
_BARS = [
    (191, 191, 191),
    (0, 191, 191),
    (191, 191, 0),
    (0, 191, 0),
    (191, 0, 191),
    (0, 0, 191),
    (191, 0, 0),
]


def _background(width: int, height: int) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    bars_h = height * 2 // 3
    for i, colour in enumerate(_BARS):
        x0 = i * width // len(_BARS)
        x1 = (i + 1) * width // len(_BARS)
        img[:bars_h, x0:x1] = colour
    # A grey ramp below the bars shows banding and level clipping after encoding.
    ramp = np.linspace(0, 255, width, dtype=np.float32).astype(np.uint8)
    img[bars_h:, :] = ramp[None, :, None]
    return img


class TestPatternSource:
    """A ``FrameSource`` that needs no hardware."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        *,
        probe_every_s: float | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if probe_every_s is not None and probe_every_s * fps < 2:
            raise ValueError("the probe's marks must be at least two frames apart")
        self.probe_every_ns = round(probe_every_s * 1e9) if probe_every_s is not None else None
        self.width = width
        self.height = height
        self.fps = fps
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._background = _background(width, height)
        self._block = max(16, height // 8)
        self._scale = max(0.4, height / 720)
        self._thickness = max(1, round(2 * self._scale))
        (text_w, text_h), _ = cv2.getTextSize(
            "0000000  00:00:00.000 UTC", cv2.FONT_HERSHEY_SIMPLEX, self._scale, self._thickness
        )
        self._text_box = (text_w + int(20 * self._scale), text_h + int(24 * self._scale))
        self._pacer: FramePacer | None = None
        self._skipped_before = 0  # skips counted by pacers of earlier opens
        self.frame_index = -1  # schedule slot of the last frame; jumps when slots were skipped

    @property
    def frames_skipped(self) -> int:
        """Frames not drawn because the reader was late, over every open of this source."""
        return self._skipped_before + (self._pacer.skipped if self._pacer is not None else 0)

    def describe(self) -> str:
        return f"test-pattern {self.width}x{self.height}@{self.fps:g}"

    def open(self) -> None:
        aligned = self.probe_every_ns is not None
        self._pacer = FramePacer(self.fps, self._clock_ns, self._sleep, aligned=aligned)
        self.frame_index = -1

    def read(self) -> np.ndarray | None:
        if self._pacer is None:
            return None
        index = self._pacer.next()
        self.frame_index = index
        due = self._pacer.due_ns
        if due is not None and self.is_mark(due):
            return np.full((self.height, self.width, 3), 255, np.uint8)
        return self.render(index)

    def is_mark(self, t_ns: int) -> bool:
        """Whether the frame due at ``t_ns`` is the probe's flash (the one nearest a mark)."""
        if self.probe_every_ns is None:
            return False
        half_frame = round(5e8 / self.fps)
        return (t_ns + half_frame) % self.probe_every_ns < 2 * half_frame

    def frame_time_ns(self) -> int | None:
        """The slot the last frame was scheduled for, on the monotonic clock."""
        return self._pacer.due_ns if self._pacer is not None else None

    def render(self, index: int) -> np.ndarray:
        """Frame number ``index``, without waiting for it to be due."""
        frame = self._background.copy()
        w, h, b = self.width, self.height, self._block
        # The block crosses the bars in about four seconds and bounces, so motion never stops.
        span = max(1, w - b)
        step = max(1, round(w / (4 * self.fps)))
        pos = (index * step) % (2 * span)
        x = pos if pos < span else 2 * span - pos
        y = (h * 2 // 3 - b) // 2
        frame[y : y + b, x : x + b] = 255
        frame[y + b // 4 : y + 3 * b // 4, x + b // 4 : x + 3 * b // 4] = 0
        now = datetime.now(UTC)
        text = f"{index:07d}  {now:%H:%M:%S}.{now.microsecond // 1000:03d} UTC"
        frame[h - self._text_box[1] :, : self._text_box[0]] = 0
        cv2.putText(
            frame,
            text,
            (int(10 * self._scale), h - int(12 * self._scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            self._scale,
            (255, 255, 255),
            self._thickness,
            cv2.LINE_AA,
        )
        return frame

    def close(self) -> None:
        if self._pacer is not None:
            self._skipped_before += self._pacer.skipped
        self._pacer = None
