"""Is something moving on the table? A cheap motion detector for one camera's region of interest.

It runs on every frame of a camera, all day, so it must cost next to nothing: it looks at every
``every_n_frames``-th frame only, takes the configured region, samples its green channel on a
grid and averages that down to ``scale_width`` pixels wide, then compares it with a running
average of the past (the background). A pixel moves when it differs from the background by more
than ``pixel_delta`` grey levels; the frame shows motion when more than ``threshold`` of the
pixels move. Averaging many camera pixels into each small one is what makes sensor noise vanish;
the slow background average lets someone who stops moving fade out within a few seconds.

A sudden change of the whole picture (room lights switched) reads as motion once, then fades
like anything else. The cameras run on fixed exposure, so the picture does not drift by itself.

Threads: ``update`` belongs to one thread (the camera's); ``motion`` and ``last_motion_ns`` are
single attributes, safe to read from any thread.
"""

from __future__ import annotations

import cv2
import numpy as np

Roi = tuple[int, int, int, int]  # x, y, width, height in frame pixels


class MotionDetector:
    def __init__(
        self,
        roi: Roi | None,
        *,
        scale_width: int = 160,
        threshold: float = 0.02,
        every_n_frames: int = 3,
        pixel_delta: int = 25,
        adapt_rate: float = 0.05,
    ) -> None:
        if roi is not None:
            x, y, w, h = roi
            if x < 0 or y < 0 or w <= 0 or h <= 0:
                raise ValueError(f"roi must be (x >= 0, y >= 0, width > 0, height > 0), got {roi}")
        if scale_width < 8:
            raise ValueError("scale_width must be at least 8")
        if not 0 < threshold < 1:
            raise ValueError("threshold is a fraction of the region: between 0 and 1")
        if every_n_frames < 1:
            raise ValueError("every_n_frames must be at least 1")
        if not 0 < pixel_delta < 255:
            raise ValueError("pixel_delta must be between 1 and 254 grey levels")
        if not 0 < adapt_rate <= 1:
            raise ValueError("adapt_rate must be in (0, 1]")
        self.roi = roi
        self.scale_width = scale_width
        self.threshold = threshold
        self.every_n_frames = every_n_frames
        self.pixel_delta = pixel_delta
        self.adapt_rate = adapt_rate
        self.motion = False  # the result of the last frame looked at
        self.moving_fraction = 0.0  # of that frame; for tuning ``threshold``
        self.last_motion_ns: int | None = None
        self._frames = 0
        self._background: np.ndarray | None = None  # float32, the small picture's running average
        self._frame_shape: tuple[int, ...] = ()

    def update(self, frame_bgr: np.ndarray, t_ns: int) -> bool:
        """Whether the region shows motion; frames between every N-th repeat the last answer."""
        self._frames += 1
        if (self._frames - 1) % self.every_n_frames:
            return self.motion
        small = self._small(frame_bgr)
        background = self._background
        if background is None or frame_bgr.shape != self._frame_shape:
            # First frame, or the camera came back at another size: this is the new normal.
            self._background = small.astype(np.float32)
            self._frame_shape = frame_bgr.shape
            self.motion = False
            self.moving_fraction = 0.0
            return False
        diff = cv2.absdiff(small, cv2.convertScaleAbs(background))
        _, moving = cv2.threshold(diff, self.pixel_delta, 255, cv2.THRESH_BINARY)
        self.moving_fraction = cv2.countNonZero(moving) / moving.size
        cv2.accumulateWeighted(small, background, self.adapt_rate)
        self.motion = self.moving_fraction > self.threshold
        if self.motion:
            self.last_motion_ns = t_ns
        return self.motion

    def _small(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        x, y, w, h = self.roi if self.roi is not None else (0, 0, width, height)
        crop = frame[y : min(y + h, height), x : min(x + w, width)]
        if crop.shape[0] == 0 or crop.shape[1] == 0:
            raise ValueError(f"motion roi {self.roi} lies outside the {width}x{height} frame")
        # Sample a grid about four times the target width, then average it down: most of the
        # noise averaging of a full-resolution INTER_AREA at a tenth of its cost. Green carries
        # most of the brightness and needs no colour conversion.
        step = max(1, crop.shape[1] // (4 * self.scale_width))
        grid = crop[::step, ::step, 1] if crop.ndim == 3 else crop[::step, ::step]
        grid = np.ascontiguousarray(grid)
        out_w = min(self.scale_width, grid.shape[1])
        out_h = max(1, round(grid.shape[0] * out_w / grid.shape[1]))
        return cv2.resize(grid, (out_w, out_h), interpolation=cv2.INTER_AREA)
