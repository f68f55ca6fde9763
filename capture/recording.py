"""One camera's recorder: where encoded packets go, pre-roll while idle, segments while recording.

Encoders hand packets to ``write`` and return at once; a writer thread of its own does the
muxing, encryption and disk writes, so a slow disk never stalls capture. Start, stop and discard
travel through the same queue as the packets, so each takes effect exactly between two packets.

A stop ends the recording at a media time, not at a queue position: x264 holds a few frames
(lookahead, B-frames) and the interleaver holds audio until the video catches up, so when the
stop reaches the writer, frames captured before it are still on their way. The writer keeps
feeding the segment until a video packet whose decode time is at or after the stop arrives (DTS
never exceeds PTS and only grows, so by then every frame shown before the stop has come, and the
reference frames its B-frames need with it), then closes it; the B-frames shown between the
stop and such a reference frame go in too, so the recording ends without a hole. What follows
goes to the pre-roll.
The wait is bounded by ``_DRAIN_TIMEOUT_S`` (an encoder that stalls, a camera lost at the stop):
then the segment closes with what it has, the log says so, and the frames captured before the
stop that come later still are counted in ``frames_late_for_stop``. A discard is immediate.

Threads: ``write`` runs on the encoding threads (through the interleaver), ``begin``, ``end``
and ``keep_preroll`` on session control's; they only put items in the queue. Everything else,
the segmenter and the pre-roll included, belongs to the writer thread. The counters are written
by one thread each and only read elsewhere.
"""

from __future__ import annotations

import errno
import math
import queue
import threading
import time
from dataclasses import dataclass

import structlog

from capture.packets import EncodedPacket
from capture.preroll import PrerollBuffer
from capture.segmenter import Segmenter

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class _Begin:
    segmenter: Segmenter
    with_preroll: bool
    at_s: float | None = None  # the start's media time, to measure the pre-roll against


@dataclass(frozen=True, slots=True)
class _End:
    done: threading.Event
    discard: bool
    at_s: float | None = None  # the stop's media time; None: close now


# How long a stop waits for the frames captured before it (x264 holds about 10, at 15 fps
# 0.7 s; a loaded 2-core PC adds its queue) before it closes with what there is.
_DRAIN_TIMEOUT_S = 3.0
_ERROR_LOG_EVERY_S = 30.0


@dataclass(frozen=True, slots=True)
class _KeepPreroll:
    keep: bool  # False: forget it and keep none ("do not record")


_Item = EncodedPacket | _Begin | _End | _KeepPreroll | None


class CameraRecorder:
    """A ``PacketSink``. ``write`` is called by the encoding threads; commands by the daemon."""

    def __init__(self, camera: str, preroll_s: float, *, max_queued: int = 4000) -> None:
        self.camera = camera
        self.preroll = PrerollBuffer(preroll_s)
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=max_queued)
        self._segmenter: Segmenter | None = None
        self._thread = threading.Thread(target=self._run, name=f"writer-{camera}", daemon=True)
        self.packets_dropped = 0
        self.write_errors = 0
        # Frames captured before a stop that reached the writer after the wait for them ran out:
        # the stopped recording lacks them (they go to the pre-roll like anything after a stop).
        self.frames_late_for_stop = 0
        self.preroll_s_used = 0.0  # how much pre-roll the current recording began with
        self._keep_preroll = True
        # When the writer took the item it is on (monotonic ns), None while it waits for one: a
        # write that blocks (a hung USB disk) shows as a time that keeps growing, long before the
        # queue fills.
        self._busy_since_ns: int | None = None
        # A stop waiting for the packets decoded before it (writer thread only).
        self._ending: _End | None = None
        self._ending_deadline = 0.0
        self._newest_shown_s = -math.inf  # the latest frame time the open segment shows
        self._last_video_dts_s: float | None = None  # the newest video packet seen
        self._cut_at_s: float | None = None  # a stop whose wait ran out, its frames still coming
        self._late_frames = 0  # of them, those that came
        self._error_logged_at: float | None = None
        self.disk_full = False  # the last segment write failed for want of space (status reads it)

    def start(self) -> None:
        self._thread.start()

    def write(self, packet: EncodedPacket) -> None:
        try:
            self._queue.put_nowait(packet)
        except queue.Full:
            if self.packets_dropped == 0:
                log.error("writer_backlog_full", camera=self.camera)
            self.packets_dropped += 1

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def busy_s(self) -> float:
        """Seconds the writer has spent on its current item; 0.0 while it waits for one."""
        since = self._busy_since_ns
        return 0.0 if since is None else (time.monotonic_ns() - since) / 1e9

    def begin(self, segmenter: Segmenter, *, with_preroll: bool = True, at_s: float | None = None) -> None:
        """Start recording into ``segmenter``, the pre-roll first; ``at_s`` (the start's media
        time) makes ``preroll_s_used`` the time the recording reaches back before the start."""
        self._queue.put(_Begin(segmenter, with_preroll, at_s))

    def end(self, *, discard: bool = False, at_s: float | None = None, timeout: float = 30.0) -> bool:
        """Close (or throw away) the open recording; returns once its files are closed, False
        when that took longer than ``timeout``. With ``at_s`` (the stop's media time, seconds on
        the ``MediaClock`` the packets are stamped on) every frame captured before it is written
        first (module docstring); without it, or with ``discard``, it closes at once."""
        done = threading.Event()
        self._queue.put(_End(done, discard, None if discard else at_s))
        return done.wait(timeout)

    def keep_preroll(self, keep: bool) -> None:
        """``False`` forgets the pre-roll and keeps none until called with ``True``."""
        self._queue.put(_KeepPreroll(keep))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                self._finish_ending()
                return
            self._busy_since_ns = time.monotonic_ns()
            try:
                self._handle(item)
            except Exception as exc:  # broad: a muxer or disk failure of any kind costs one segment
                self._failed(exc)
                if isinstance(item, _End):
                    item.done.set()
            finally:
                self._busy_since_ns = None

    def _next(self) -> _Item:
        """The next item; while a stop waits, it closes with what there is at its deadline."""
        while self._ending is not None:
            try:
                return self._queue.get(timeout=max(0.0, self._ending_deadline - time.monotonic()))
            except queue.Empty:
                self._cut_ending()
        return self._queue.get()

    def _failed(self, exc: Exception) -> None:
        self.write_errors += 1
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            self.disk_full = True  # a state, not a hang: said in status, cleared on a write
        # A full disk fails every keyframe's new segment until there is room: say so once a
        # while, with the count, not once a second.
        now = time.monotonic()
        if self._error_logged_at is None or now - self._error_logged_at >= _ERROR_LOG_EVERY_S:
            self._error_logged_at = now
            log.error("segment_write_failed", camera=self.camera, error=repr(exc), total=self.write_errors)

    def _handle(self, item: _Item) -> None:
        ending = self._ending
        if ending is not None:
            if isinstance(item, EncodedPacket):
                assert ending.at_s is not None
                shown_before = item.kind == "video" and item.pts_s < self._newest_shown_s
                if item.dts_s < ending.at_s or shown_before:
                    # Decoded before the stop, or a B-frame shown before a reference frame that
                    # already went in (so the tail has no hole): it belongs to the recording.
                    self._to_segment(item)
                    return
                if item.kind == "audio":
                    if self._keep_preroll:  # after the stop: the next recording's pre-roll
                        self.preroll.write(item)
                    return
                self._finish_ending()  # every frame shown before the stop is in
            elif not isinstance(item, _KeepPreroll):  # that one is about the pre-roll only
                self._finish_ending()  # a command: the stop is as complete as it gets
        if isinstance(item, EncodedPacket):
            if item.kind == "video":
                self._last_video_dts_s = item.dts_s
                if self._cut_at_s is not None:
                    self._count_late(item)
            if self._segmenter is not None:
                self._to_segment(item)
                if self.disk_full and self._segmenter.writing:
                    self.disk_full = False  # a segment opened and took a packet: room again
            elif self._keep_preroll:
                self.preroll.write(item)
        elif isinstance(item, _Begin):
            self._segmenter = item.segmenter
            self._newest_shown_s = -math.inf
            packets = self.preroll.drain() if item.with_preroll else []
            # Measured to the start, not to the newest packet: frames still inside x264 when the
            # start came belong to the pre-roll too, and arrive just after.
            newest = item.at_s if item.at_s is not None else (packets[-1].dts_s if packets else 0.0)
            self.preroll_s_used = max(0.0, newest - packets[0].dts_s) if packets else 0.0
            if not item.with_preroll:
                self.preroll.clear()
            for packet in packets:
                self._to_segment(packet)
        elif isinstance(item, _End):
            last = self._last_video_dts_s
            # Nothing on its way when no video ever came (no camera yet), or it is past the stop.
            waiting = item.at_s is not None and last is not None and last < item.at_s
            if waiting and self._segmenter is not None:
                self._ending = item  # wait for the frames still on their way (module docstring)
                self._ending_deadline = time.monotonic() + _DRAIN_TIMEOUT_S
                return
            self._close(item)
        elif isinstance(item, _KeepPreroll):
            self._keep_preroll = item.keep
            if not item.keep:
                self.preroll.clear()

    def _to_segment(self, packet: EncodedPacket) -> None:
        assert self._segmenter is not None
        self._segmenter.write(packet)
        if packet.kind == "video":
            self._newest_shown_s = max(self._newest_shown_s, packet.pts_s)

    def _cut_ending(self) -> None:
        """The wait ran out: close with what there is, and count what comes after."""
        ending = self._ending
        assert ending is not None and ending.at_s is not None
        newest = self._newest_shown_s
        log.warning(
            "stop_drain_timeout",
            camera=self.camera,
            waited_s=_DRAIN_TIMEOUT_S,
            stop_s=round(ending.at_s, 3),
            newest_frame_s=round(newest, 3) if math.isfinite(newest) else None,  # None: no frame
        )
        self._cut_at_s, self._late_frames = ending.at_s, 0
        self._finish_ending()

    def _count_late(self, packet: EncodedPacket) -> None:
        assert self._cut_at_s is not None
        if packet.pts_s < self._cut_at_s:
            self.frames_late_for_stop += 1
            self._late_frames += 1
        elif packet.dts_s >= self._cut_at_s:  # no frame shown before the stop can follow this one
            if self._late_frames:
                log.warning(
                    "stop_frames_late",
                    camera=self.camera,
                    frames=self._late_frames,
                    stop_s=round(self._cut_at_s, 3),
                )
            self._cut_at_s = None

    def _finish_ending(self) -> None:
        ending, self._ending = self._ending, None
        if ending is not None:
            self._close(ending)

    def _close(self, item: _End) -> None:
        """Close (or throw away) the open segment; never raises, so a close that fails (the
        disk, the manifest) costs that segment's end, not the writer thread."""
        segmenter, self._segmenter = self._segmenter, None
        self._newest_shown_s = -math.inf
        try:
            if segmenter is not None:
                if item.discard:
                    self.preroll.clear()
                    segmenter.abort()
                else:
                    segmenter.close()
        except Exception as exc:  # broad: as in _run
            self._failed(exc)
        finally:
            item.done.set()
