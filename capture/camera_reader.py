"""One camera's reader thread: frames from any ``FrameSource``, stamped and sized, to a callback.

The capture time of a frame is the source's own time for it where the source has one (a V4L2
buffer timestamp, a stream's timestamps, the slot of a paced file or the test pattern; see
``capture.sources.SourceClock``), else the clock right after ``read`` returns; everything
downstream (overlay's vitals-as-of, video timestamps) uses that stamp. Frames are brought to the configured
size here, so the encoder sees one size whatever the camera delivered (and across a reconnect
to a camera that came back with other settings). Supervision (backoff, lost/recovered, health)
is ``capture.supervisor``'s (``supervision``).

Threads: ``on_frame`` runs on this reader's thread and must return quickly (queue and go);
``health`` and ``lost_since`` may be called from any thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import cv2
import numpy as np

from capture.sources import FrameSource, SourceClock, source_time_ns
from capture.supervisor import SupervisedReader
from supervision.health import DeviceHealth

__all__ = ["CameraReader", "fit_frame"]


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` as 3-channel BGR of ``width``×``height``; untouched when it already is."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    h, w = frame.shape[:2]
    if (w, h) != (width, height):
        # INTER_AREA is the cleanest way down, but only cheap for whole factors: 1080p → 720p
        # costs ~9 ms a frame with it against ~2 ms linear, too much beside x264 on two cores.
        whole_factor = w % width == 0 and h % height == 0 and w // width == h // height > 1
        interpolation = cv2.INTER_AREA if whole_factor else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (width, height), interpolation=interpolation)
    return frame


class CameraReader:
    def __init__(
        self,
        name: str,
        source: FrameSource,
        on_frame: Callable[[np.ndarray, int], None],
        *,
        width: int,
        height: int,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.name = name
        self.source = source
        self.width = width
        self.height = height
        self._on_frame = on_frame
        self.times = SourceClock(f"camera {name}")
        self._reader = SupervisedReader[np.ndarray](
            name,
            "camera",
            source,
            self._deliver,
            clock_ns=clock_ns,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )

    def _deliver(self, frame: np.ndarray, arrival_ns: int) -> None:
        # Runs on the reader's thread right after read(): the source's time is this frame's.
        t_ns = self.times.time_of(source_time_ns(self.source), arrival_ns)
        self._on_frame(fit_frame(frame, self.width, self.height), t_ns)

    def start(self) -> None:
        self._reader.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        return self._reader.stop(timeout_s)

    def health(self) -> DeviceHealth:
        return self._reader.health()

    def lost_since(self) -> datetime | None:
        return self._reader.lost_since()

    @property
    def running(self) -> bool:
        return self._reader.running
