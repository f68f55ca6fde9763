"""One camera's picture path: frame → privacy masks → overlay → I420 → encoder → packets.

The camera's reader thread only queues frames here and returns, so capture never waits for the
encoder; when the encoder falls behind, the oldest queued frame is dropped and counted. While the
camera is lost this thread keeps the timeline going with "NO SIGNAL" frames, so the gap is
visible in the recording instead of silently missing.

Threads: ``on_frame`` runs on the camera reader's thread; everything else on this pipeline's own
thread. They meet only in the bounded queue.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

import cv2
import numpy as np
import structlog

from capture.encoder import VideoEncoder
from capture.overlay import OverlayRenderer, OverlayState
from capture.packets import PacketSink
from sync.clock import MediaClock

log = structlog.get_logger()

OverlayStateFor = Callable[[int], OverlayState]  # capture time (monotonic ns) → what to draw

# How far the encoder may fall behind the camera before a frame is dropped. On a 2-core PC x264
# stalls now and then for longer than three frames (a keyframe on a busy picture, the other
# camera's keyframe, a monitor thread waking): a quarter second absorbs those, and costs RAM
# only while it is in use (720p BGR: 2.8 MB a frame).
QUEUE_S = 0.25


class CameraPipeline:
    def __init__(
        self,
        camera: str,
        *,
        width: int,
        height: int,
        fps: int,
        encoder: VideoEncoder,
        sink: PacketSink,
        clock: MediaClock,
        overlay: OverlayRenderer,
        overlay_state: OverlayStateFor,
        lost_since: Callable[[], datetime | None],
        masks: list[np.ndarray] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        queue_frames: int | None = None,
    ) -> None:
        self.camera = camera
        self._size = (width, height)
        self._interval_s = 1.0 / fps
        self._encoder = encoder
        self._sink = sink
        self._clock = clock
        self._overlay = overlay
        self._overlay_state = overlay_state
        self._lost_since = lost_since
        self._masks = masks or []
        self._clock_ns = clock_ns
        depth = queue_frames if queue_frames is not None else max(3, round(fps * QUEUE_S))
        self._queue: queue.Queue[tuple[np.ndarray, int]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"encode-{camera}", daemon=True)
        self.frames_encoded = 0
        self.frames_dropped = 0
        self.no_signal_frames = 0
        self.last_frame_ns = 0  # monotonic time the last frame left the encoder (watchdog)

    def start(self) -> None:
        self._thread.start()

    @property
    def backlog_frames(self) -> int:
        """Frames captured and waiting for the encoder."""
        return self._queue.qsize()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def on_frame(self, frame: np.ndarray, t_ns: int) -> None:
        """Called by the camera reader for each captured frame. Never blocks."""
        while True:
            try:
                self._queue.put_nowait((frame, t_ns))
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.frames_dropped += 1
                    if self.frames_dropped in (1, 10, 100) or self.frames_dropped % 1000 == 0:
                        log.warning("frames_dropped", camera=self.camera, total=self.frames_dropped)
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, t_ns = self._queue.get(timeout=self._interval_s * 1.5)
            except queue.Empty:
                if self._lost_since() is None:
                    continue
                t_ns = self._clock_ns()
                frame = self._overlay.no_signal_frame(self._overlay_state(t_ns))
                self.no_signal_frames += 1
                self._encode(frame, t_ns, draw=False)
                continue
            self._encode(frame, t_ns, draw=True)
        try:
            for packet in self._encoder.flush():
                self._sink.write(packet)
        except Exception as exc:
            log.error("encoder_flush_failed", camera=self.camera, error=repr(exc))

    def _encode(self, frame: np.ndarray, t_ns: int, *, draw: bool) -> None:
        try:
            if draw:
                if self._masks:
                    # Masks go on before the overlay: they hide people, never the vitals panel.
                    cv2.fillPoly(frame, self._masks, (0, 0, 0))
                self._overlay.draw(frame, self._overlay_state(t_ns))
            i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
            for packet in self._encoder.encode(i420, self._clock.video_pts(t_ns)):
                self._sink.write(packet)
            self.frames_encoded += 1
            self.last_frame_ns = self._clock_ns()
        except Exception as exc:
            log.error("frame_encode_failed", camera=self.camera, error=repr(exc))
