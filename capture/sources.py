"""Where frames come from: the camera source contract and the OpenCV-backed cameras.

A source does one thing: hand over BGR frames (``numpy`` uint8, shape ``(h, w, 3)``) as they
arrive. It knows nothing of readers, overlay, encoder or store; the camera reader supervises it
(stamps, resizes, reconnects). Every camera, real or synthetic, goes through the same reader.

The small pieces shared with the audio sources live here too: ``SourceError``, the real-time
pacing used by file and synthetic sources, and credential masking for log lines.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import structlog

log = structlog.get_logger()


class SourceError(RuntimeError):
    """A source cannot be opened or has stopped delivering. The message is meant for people."""


@runtime_checkable
class FrameSource(Protocol):
    """A camera. Used from one thread only (its reader's)."""

    def open(self) -> None:
        """Connect; raises ``SourceError`` saying why when it cannot."""

    def read(self) -> np.ndarray | None:
        """Block until the next frame. ``None`` (or ``SourceError``) means the source is lost."""

    def close(self) -> None:
        """Release the device. Safe to call when not open, and more than once."""

    def describe(self) -> str:
        """What this source is, for log lines. Never contains credentials."""


# --- pacing ---------------------------------------------------------------------------------------


def sleep_until(
    deadline_ns: int,
    clock_ns: Callable[[], int],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    remaining = deadline_ns - clock_ns()
    if remaining > 0:
        sleep(remaining / 1e9)


class FramePacer:
    """Hands out frame slots at a fixed rate on a schedule fixed at the first frame.

    Each due time is computed from the start and the slot index, never by adding intervals, so
    rounding never accumulates into drift. A late caller gets the slots it missed at once, each
    with its own due time, up to ``buffered`` of them: what a camera's driver does with its
    queue of buffers (OpenCV's V4L2 backend queues 4), so a reader held up for a moment by the
    scheduler loses no frame. Later than that, the oldest are given up, as a camera drops frames
    nobody took, and counted in ``skipped``.

    ``aligned``: the schedule starts on the clock's own grid of frame slots (slot ``k`` due at
    ``k / fps`` seconds of the clock) instead of at the first call, so that every whole second of
    the clock is a slot when ``fps`` is whole. Synthetic sources that mark the same instants in
    every stream (the sync probe) need their frames on those instants. ``due_ns`` is the due time
    of the slot last handed out: the frame's time on the clock, whenever the caller got to it.
    """

    def __init__(
        self,
        fps: float,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
        *,
        aligned: bool = False,
        buffered: int = 4,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if buffered < 1:
            raise ValueError(f"buffered must be at least 1, got {buffered}")
        self.fps = fps
        self.buffered = buffered
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._aligned = aligned
        self._start_ns: int | None = None
        self._index = 0
        self.skipped = 0  # slots given up because the caller was late
        self.due_ns: int | None = None

    def _due(self, index: int) -> int:
        assert self._start_ns is not None
        return self._start_ns + round(index * 1e9 / self.fps)

    def next(self) -> int:
        """Wait until the next slot is due; return its index (0 for the first, immediate, slot)."""
        now = self._clock_ns()
        if self._start_ns is None:
            self._index = 0
            if not self._aligned:
                self._start_ns = self.due_ns = now
                return 0
            # The next slot of the clock's grid, in integers (milli-frames per second) so that
            # the slots of a whole rate fall exactly on the clock's whole seconds.
            rate_mfps = round(self.fps * 1000)
            slot = -(-now * rate_mfps // 1_000_000_000_000)
            self._start_ns = slot * 1_000_000_000_000 // rate_mfps
            self.due_ns = self._start_ns
            sleep_until(self._start_ns, self._clock_ns, self._sleep)
            return 0
        index = self._index + 1
        # The latest slot already due, and the oldest of the ``buffered`` a driver would still hold.
        latest = int((now - self._start_ns) * self.fps // 1e9)
        oldest_held = latest - (self.buffered - 1)
        if index < oldest_held:
            self.skipped += oldest_held - index
            index = oldest_held
        self._index = index
        self.due_ns = self._due(index)
        sleep_until(self.due_ns, self._clock_ns, self._sleep)
        return index

    def reset(self) -> None:
        self._start_ns = None
        self.due_ns = None


# --- frame times from the source -------------------------------------------------------------------


def source_time_ns(source: object) -> int | None:
    """When the source says its last item was captured, on the monotonic clock; None: unknown.

    Sources that know offer ``frame_time_ns()`` (cameras) or ``chunk_time_ns()`` (audio, the
    time of the chunk's last sample): the buffer time of a V4L2 driver, a stream's own timestamps
    mapped onto the clock, the scheduled time of a paced file or synthetic source.
    """
    for name in ("frame_time_ns", "chunk_time_ns"):
        get = getattr(source, name, None)
        if callable(get):
            value = get()
            return value if isinstance(value, int) else None
    return None


class SourceClock:
    """Picks each item's capture time: the source's own when it is believable, else the arrival.

    The arrival time (the clock right after ``read`` returned) carries every scheduling delay of
    the reader thread: a read 30 ms late shows as a 60 ms gap followed by a 10 ms one. A source's
    own time does not. It is believed only when it is on our clock and in order: not after the
    arrival (beyond ``lead_ns`` of rounding), not older than ``max_age_ns`` (another clock, such
    as a driver stamping wall-clock time, or a stream whose mapping slipped), and later than the
    time given to the item before. Otherwise the arrival is used for that item, the first such
    item is logged with the reason, and ``fallbacks`` counts them all.

    One per reader thread.
    """

    def __init__(
        self, name: str, *, max_age_ns: int = 500_000_000, lead_ns: int = 2_000_000
    ) -> None:
        self.name = name
        self._max_age_ns = max_age_ns
        self._lead_ns = lead_ns
        self._last_ns: int | None = None
        self.fallbacks = 0
        self.from_source = 0

    def time_of(self, source_ns: int | None, arrival_ns: int) -> int:
        reason: str | None = None
        t_ns = arrival_ns
        if source_ns is not None:
            if source_ns > arrival_ns + self._lead_ns:
                reason = "after its arrival"
            elif source_ns < arrival_ns - self._max_age_ns:
                reason = "too old for its arrival: another clock?"
            elif self._last_ns is not None and source_ns <= self._last_ns:
                reason = "not after the previous item's"
            else:
                t_ns = min(source_ns, arrival_ns)
                self.from_source += 1
        if reason is not None:
            self.fallbacks += 1
            if self.fallbacks == 1:
                log.warning(
                    "source_time_rejected",
                    source=self.name,
                    reason=reason,
                    source_ms=round(source_ns / 1e6, 3) if source_ns is not None else None,
                    arrival_ms=round(arrival_ns / 1e6, 3),
                    note="arrival time used for this and every rejected item (logged once)",
                )
        if self._last_ns is not None and t_ns <= self._last_ns:
            # An arrival stamp never goes back, but a source time just before may have been
            # later than this arrival: keep the timeline strictly increasing.
            t_ns = self._last_ns + 1
        self._last_ns = t_ns
        return t_ns


class StreamTimeMapper:
    """Maps a stream's own timestamps (ms since its start) onto the monotonic clock.

    The first frame fixes the offset between the two (its arrival minus its timestamp). After
    that, a frame that arrives *earlier* than the mapping says is proof that the offset is too
    large (it cannot arrive before it was captured), so the offset drops to it at once; otherwise
    it creeps towards the arrivals by ``creep`` of the difference per frame, slowly enough that
    network jitter hardly moves it and fast enough to follow the camera's clock drifting against
    ours (tens of ppm). The mapping thus tracks the least-delayed arrivals. A timestamp that goes
    back or jumps by more than ``max_jump_ms`` (a camera restarting its stream) starts over.
    """

    def __init__(self, *, creep: float = 0.002, max_jump_ms: float = 2000.0) -> None:
        self._creep = creep
        self._max_jump_ms = max_jump_ms
        self._offset_ns: float | None = None
        self._last_ms: float | None = None
        self.restarts = 0

    def map(self, stream_ms: float, arrival_ns: int) -> int:
        jumped = self._last_ms is not None and not (
            0 < stream_ms - self._last_ms <= self._max_jump_ms
        )
        if self._offset_ns is None or jumped:
            if jumped:
                self.restarts += 1
            self._offset_ns = arrival_ns - stream_ms * 1e6
        else:
            error = arrival_ns - (stream_ms * 1e6 + self._offset_ns)
            self._offset_ns += error if error < 0 else self._creep * error
        self._last_ms = stream_ms
        return round(stream_ms * 1e6 + self._offset_ns)


def frames_skipped(source: object) -> int:
    """Frame slots a paced source (a file, the test pattern) gave up because its reader ran late.

    Those frames never reach the encoder's queue, so its drop count cannot see them; a recording
    that lost them is as short of frames as one whose encoder fell behind. A live camera's driver
    drops unread frames itself, out of our sight: 0 for it.
    """
    counted = getattr(source, "frames_skipped", 0)
    return counted if isinstance(counted, int) else 0


# --- log hygiene ----------------------------------------------------------------------------------

_SECRET_QUERY = re.compile(r"((?:password|passwd|pass|pwd|token|key|auth)=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``rtsp://user:pw@cam/x?password=y`` → ``rtsp://***@cam/x?password=***``, for log lines."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit(parts._replace(netloc=f"***@{host}"))
    else:
        # Not parseable as a URL with authority: still never let user:pass@ through.
        url = re.sub(r"//[^/@]*@", "//***@", url)
    return _SECRET_QUERY.sub(r"\1***", url)


# --- OpenCV helpers -------------------------------------------------------------------------------


def _fourcc_to_str(value: float) -> str:
    code = int(value)
    if code <= 0:
        return ""
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))


def _read_bgr(cap: Any) -> np.ndarray | None:
    ok, frame = cap.read()
    if not ok or frame is None:
        return None
    return np.asarray(frame)


# --- V4L2 ----------------------------------------------------------------------------------------

# OpenCV's V4L2 backend maps CAP_PROP_AUTO_EXPOSURE onto V4L2_CID_EXPOSURE_AUTO, whose menu is
# 1 = manual, 3 = aperture priority (the usual "auto" of UVC cameras).
V4L2_EXPOSURE_MANUAL = 1.0


class V4L2Camera:
    """A local camera (USB/UVC, capture card) through OpenCV's V4L2 backend.

    ``device`` is an index or a path; prefer a stable path such as ``/dev/v4l/by-id/...`` or a
    udev symlink, since indexes move when cameras are replugged. ``exposure`` and
    ``white_balance_k`` of ``None`` leave the driver's automatic control on; a number fixes it, as
    review footage should not change brightness or colour when someone leans over the table.

    Frame time: the driver's buffer timestamp, which OpenCV's V4L2 backend returns as
    ``CAP_PROP_POS_MSEC`` (seconds and microseconds of ``v4l2_buffer.timestamp``, in ms). Drivers
    that set ``V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`` (uvcvideo and most capture cards since Linux
    3.10) stamp it with CLOCK_MONOTONIC when the frame's first data arrived, the clock the daemon
    runs on; a driver stamping another clock is caught by the reader's ``SourceClock``.
    """

    def __init__(
        self,
        device: int | str,
        width: int,
        height: int,
        fps: float,
        fourcc: str | None = "MJPG",
        exposure: float | None = None,
        white_balance_k: int | None = None,
    ) -> None:
        if fourcc is not None and len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.fourcc = fourcc
        self.exposure = exposure
        self.white_balance_k = white_balance_k
        self._cap: Any = None
        self._warned = False  # a camera that ignores a setting does so on every reconnect
        self.accepted: dict[str, object] = {}  # what the driver reported after the last open
        self._frame_ns: int | None = None

    def describe(self) -> str:
        return f"v4l2:{self.device} {self.width}x{self.height}@{self.fps:g}"

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            hint = ""
            if isinstance(self.device, str) and not os.path.exists(self.device):
                hint = " (no such device node: is the camera plugged in, is the udev rule loaded?)"
            elif isinstance(self.device, str) and not os.access(self.device, os.R_OK | os.W_OK):
                hint = " (permission denied: is the service user in the 'video' group?)"
            raise SourceError(f"cannot open V4L2 camera {self.device}{hint}")
        # Order matters to V4L2: the pixel format decides which sizes and rates exist.
        if self.fourcc is not None:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        # One buffered frame: we want the newest picture, not a queue of old ones.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.exposure is not None:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_MANUAL)
            cap.set(cv2.CAP_PROP_EXPOSURE, self.exposure)
        if self.white_balance_k is not None:
            cap.set(cv2.CAP_PROP_AUTO_WB, 0)
            cap.set(cv2.CAP_PROP_WB_TEMPERATURE, self.white_balance_k)
        self._cap = cap
        self._check_settings(cap)

    def _check_settings(self, cap: Any) -> None:
        got_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        got_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        got_fps = float(cap.get(cv2.CAP_PROP_FPS))
        got_fourcc = _fourcc_to_str(cap.get(cv2.CAP_PROP_FOURCC))
        self.accepted = {"width": got_w, "height": got_h, "fps": got_fps, "fourcc": got_fourcc}
        ignored: dict[str, dict[str, object]] = {}
        if (got_w, got_h) != (self.width, self.height):
            ignored["size"] = {
                "wanted": f"{self.width}x{self.height}",
                "got": f"{got_w}x{got_h}",
            }
        # Drivers report rates such as 29.97 for 30; only a real difference matters.
        if abs(got_fps - self.fps) > 0.5:
            ignored["fps"] = {"wanted": self.fps, "got": got_fps}
        if self.fourcc is not None and got_fourcc.upper() != self.fourcc.upper():
            ignored["fourcc"] = {"wanted": self.fourcc, "got": got_fourcc}
        if self.exposure is not None:
            auto = float(cap.get(cv2.CAP_PROP_AUTO_EXPOSURE))
            exposure = float(cap.get(cv2.CAP_PROP_EXPOSURE))
            self.accepted["exposure"] = exposure
            if auto != V4L2_EXPOSURE_MANUAL or abs(exposure - self.exposure) > 1.0:
                ignored["exposure"] = {"wanted": self.exposure, "got": exposure, "auto_mode": auto}
        if self.white_balance_k is not None:
            auto_wb = float(cap.get(cv2.CAP_PROP_AUTO_WB))
            wb = float(cap.get(cv2.CAP_PROP_WB_TEMPERATURE))
            self.accepted["white_balance_k"] = wb
            if auto_wb != 0 or abs(wb - self.white_balance_k) > 50:
                ignored["white_balance"] = {
                    "wanted": self.white_balance_k,
                    "got": wb,
                    "auto": auto_wb,
                }
        if ignored and not self._warned:
            self._warned = True
            log.warning(
                "camera_settings_not_honoured",
                source=self.describe(),
                ignored=ignored,
                note="review footage wants at least 720p30, fixed exposure and white balance",
            )

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        frame = _read_bgr(self._cap)
        ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) if frame is not None else 0.0
        self._frame_ns = round(ms * 1e6) if ms > 0 else None
        return frame

    def frame_time_ns(self) -> int | None:
        """The driver's buffer time of the last frame (CLOCK_MONOTONIC on current drivers)."""
        return self._frame_ns

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --- network streams ------------------------------------------------------------------------------


class StreamCamera:
    """An RTSP or HTTP camera (IP camera, encoder box) through OpenCV's FFmpeg backend.

    The URL may carry credentials; they never reach a log line (see ``describe``). RTSP goes
    over TCP unless ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` says otherwise: interleaved TCP survives
    lossy hospital networks where UDP turns lost packets into smeared frames.

    Frame time: the stream's own presentation time (RTP timestamps for RTSP, which FFmpeg turns
    into PTS; ``CAP_PROP_POS_MSEC``), mapped onto the monotonic clock by ``StreamTimeMapper``, so
    network and decoder jitter do not reach the recording's timeline.
    """

    def __init__(
        self,
        url: str,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._clock_ns = clock_ns
        self._cap: Any = None
        self._mapper = StreamTimeMapper()
        self._frame_ns: int | None = None

    def describe(self) -> str:
        return mask_url(self.url)

    def open(self) -> None:
        self.close()
        if self.url.lower().startswith("rtsp"):
            # Read by OpenCV at open time; process-wide, so only filled in when nobody chose.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        params: list[int] = []
        # Timeouts keep a dead camera from hanging the reader thread forever (OpenCV ≥ 4.6).
        if hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000)]
        if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open stream {self.describe()} (unreachable, wrong path or credentials, "
                f"or no answer within {self.open_timeout_s:g} s)"
            )
        self._cap = cap
        self._mapper = StreamTimeMapper()  # a new connection restarts the stream's timestamps

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        frame = _read_bgr(self._cap)
        arrival_ns = self._clock_ns()
        ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) if frame is not None else 0.0
        # 0 is what OpenCV says when the stream carries no timestamps at all.
        self._frame_ns = self._mapper.map(ms, arrival_ns) if ms > 0 else None
        return frame

    def frame_time_ns(self) -> int | None:
        """The stream's timestamp of the last frame, on the monotonic clock."""
        return self._frame_ns

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --- files ----------------------------------------------------------------------------------------


class FileCamera:
    """Plays a video file as if it were a camera: at the file's frame rate, looping by default.

    For demos and tests. ``read`` returns ``None`` at the end when not looping. Frame time: the
    slot the pacer played the frame in, start + index / fps, which is the file's own PTS for the
    constant-rate files this plays (looping continues the count).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        loop: bool = True,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
        default_fps: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.loop = loop
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._default_fps = default_fps
        self._cap: Any = None
        self._pacer: FramePacer | None = None
        self._skipped_before = 0  # skips counted by pacers of earlier opens
        self.loops = 0  # how often the file restarted

    @property
    def frames_skipped(self) -> int:
        """Frames not played because the reader was late, over every open of this camera."""
        return self._skipped_before + (self._pacer.skipped if self._pacer is not None else 0)

    @property
    def fps(self) -> float:
        return self._pacer.fps if self._pacer is not None else self._default_fps

    def describe(self) -> str:
        return f"file:{self.path.name}"

    def _open_capture(self) -> Any:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            reason = "no such file" if not self.path.exists() else "not a video OpenCV can read"
            raise SourceError(f"cannot open video file {self.path} ({reason})")
        return cap

    def open(self) -> None:
        self.close()
        cap = self._open_capture()
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        # Some containers report 0 or absurd rates; play those at a sane default.
        if not 1.0 <= fps <= 240.0:
            fps = self._default_fps
        self._cap = cap
        self._pacer = FramePacer(fps, self._clock_ns, self._sleep)

    def read(self) -> np.ndarray | None:
        if self._cap is None or self._pacer is None:
            return None
        frame = _read_bgr(self._cap)
        if frame is None and self.loop:
            # Reopening is more reliable than seeking to frame 0 across containers and codecs.
            self._cap.release()
            self._cap = self._open_capture()
            self.loops += 1
            frame = _read_bgr(self._cap)
        if frame is None:
            return None
        self._pacer.next()
        return frame

    def frame_time_ns(self) -> int | None:
        """When the last frame was due in the paced playback."""
        return self._pacer.due_ns if self._pacer is not None else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._pacer is not None:
            self._skipped_before += self._pacer.skipped
        self._pacer = None
