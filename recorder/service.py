"""systemd integration: readiness, the watchdog and the status line, over the sd_notify protocol.

The protocol is a few ``KEY=value`` lines sent as one datagram to the AF_UNIX socket named in
``NOTIFY_SOCKET`` ("@name" is an abstract socket). Outside systemd the variable is unset and
every call here does nothing, so the daemon runs the same from a terminal, a test or a unit.

The decisions are pure functions of the daemon's ``status()`` (a ``RecorderStatus``),
table-tested without a daemon:

- ``readiness``: READY=1 once storage is usable and at least one source delivers (config and
  recipients were checked before the daemon could be built at all).
- ``pipeline_health``: may WATCHDOG=1 be sent? Only while every camera's pipeline keeps encoding
  frames and segment writes succeed. A camera that is *lost* (unplugged, unreachable) is not a
  hung pipeline: its pipeline keeps encoding "NO SIGNAL" frames and its reader retries, so the
  recorder is doing its job and a restart would not bring the camera back. A camera whose reader
  says *live* but whose frames stopped (a read that blocks forever, a stuck encoder) is hung, and
  only a restart clears it: no frames, no ping, and systemd restarts the recorder. Likewise a
  writer blocked in one write with packets waiting behind it (a hung disk), and a recording
  whose segments stopped closing.
- ``status_line``: the human line for STATUS= ("recording 00:12:31, camera room lost").

``ServiceLoop`` ties them together for the daemon's main loop: one ``tick(status)`` per loop.

Threads: ``ServiceLoop`` and ``SdNotifier`` belong to the daemon's main thread.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from recorder.status import RecorderStatus

log = structlog.get_logger()

#: A camera whose encoded-frame count has not moved for this long is stalled. Healthy cameras
#: encode at least one frame a second (fps >= 1) and lost ones a NO SIGNAL frame every 1.5 frame
#: intervals, so this leaves a wide margin; it must stay well below the unit's WatchdogSec.
STALL_AFTER_S = 5.0
#: A camera may take this long to open the first time (an RTSP open timeout is 10 s); while
#: "connecting" its pipeline has nothing to encode yet, which is not a hang.
CONNECT_GRACE_S = 30.0
#: Write errors or packets dropped at a full writer queue within this window withhold the ping.
#: One failed write pauses the pings briefly; writes that keep failing outlast WatchdogSec.
WRITE_TROUBLE_WINDOW_S = 10.0
#: A writer queue this deep is not keeping up with the disk (the queue holds 4000 packets).
WRITER_BACKLOG_LIMIT = 2000
#: A writer that has spent this long on one item (a packet, a segment's close) with more waiting
#: is blocked in a write: a hung USB disk. Closing a segment (final chunk, fsync, rename) and
#: writing out the pre-roll at the start take well under it; waiting for the queue to fill
#: instead would take 4000 packets, over a minute at 30 fps and half an hour at 1 fps.
WRITER_BUSY_LIMIT_S = 10.0
#: While recording, a segment closes every storage.segment_seconds; none for twice that plus
#: this margin means the session's files have stopped growing (a writer that is not blocked
#: but whose writes go nowhere).
SEGMENT_LATE_MARGIN_S = 10.0
#: A collection backlog whose oldest file has waited this long is called stalled (status line,
#: watchdog reason, doctor). It never withholds the watchdog: a restart would not bring the
#: archive back, and would cut the recording.
COLLECTION_STALLED_AFTER_S = 24 * 3600.0
#: Below this, the status line mentions the free space.
LOW_DISK_BYTES = 5 * 1024**3


# --- the protocol ---------------------------------------------------------------------------------


def notify_address(value: str | None) -> str | None:
    """``NOTIFY_SOCKET`` as an address for ``sendto``: "@x" → abstract "\\0x"; None if unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. "vsock:..." (systemd in a VM host): not something a recorder PC uses


class SdNotifier:
    """Sends sd_notify messages; a no-op when not started by systemd (no ``NOTIFY_SOCKET``).

    A message that cannot be sent is logged once and otherwise ignored: losing the connection to
    the service manager must never stop a recording.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        self.address = notify_address(raw)
        if raw and self.address is None:
            log.warning("notify_socket_unsupported", notify_socket=raw)
        self._watchdog_s = _watchdog_interval(env, os.getpid() if pid is None else pid)
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half of WatchdogSec), or None when not watched."""
        return self._watchdog_s

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` ("READY=1", "STATUS=...") as one message; True if it went out."""
        if self.address is None or not fields:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("notify_failed", error=str(exc))
            return False
        if self._failed:
            self._failed = False
            log.info("notify_recovered")
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([_status_field(status)] if status is not None else []))

    def status(self, text: str) -> bool:
        return self.notify(_status_field(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([_status_field(status)] if status is not None else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status_field(text: str) -> str:
    # A newline would end the field and start a bogus one.
    return "STATUS=" + " ".join(text.split())


def _watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    # WATCHDOG_PID names the process systemd watches; a child that inherited the variable is not
    # it (sd_watchdog_enabled(3) makes the same check).
    watched = env.get("WATCHDOG_PID")
    if watched and watched.strip() != str(pid):
        return None
    return usec / 2 / 1e6


# --- decisions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraProgress:
    frames: int  # frames_encoded last seen
    moved_at_s: float  # when that count was first seen (monotonic s)
    state: str  # the reader's state last seen
    state_since_s: float
    write_errors: int
    packets_dropped: int


@dataclass(frozen=True)
class Progress:
    """What the status dicts seen so far say about movement over time; ``advance`` makes the next.

    ``pipeline_health`` needs history: one status dict holds counters, and a stall is a counter
    that stopped moving. Kept as a value so the decision stays a pure function. Counters that
    were already up when a camera was first seen are its baseline, not news.
    """

    cameras: Mapping[str, CameraProgress] = field(default_factory=dict)
    write_trouble_at_s: float | None = None  # last time write errors or drops went up

    @property
    def write_errors(self) -> int:
        return sum(c.write_errors for c in self.cameras.values())

    @property
    def packets_dropped(self) -> int:
        return sum(c.packets_dropped for c in self.cameras.values())

    def advance(self, status: RecorderStatus, now_mono_s: float) -> Progress:
        cameras: dict[str, CameraProgress] = {}
        trouble_at = self.write_trouble_at_s
        for name, cam in status.cameras.items():
            frames = cam.frames_encoded
            errors = cam.write_errors
            dropped = cam.packets_dropped
            state = cam.health.state
            old = self.cameras.get(name)
            if old is None:
                cameras[name] = CameraProgress(
                    frames, now_mono_s, state, now_mono_s, errors, dropped
                )
                continue
            if errors > old.write_errors or dropped > old.packets_dropped:
                trouble_at = now_mono_s
            cameras[name] = CameraProgress(
                frames,
                now_mono_s if frames != old.frames else old.moved_at_s,
                state,
                now_mono_s if state != old.state else old.state_since_s,
                errors,
                dropped,
            )
        return Progress(cameras, trouble_at)


def pipeline_health(
    status: RecorderStatus,
    now_mono_s: float,
    progress: Progress | None = None,
    *,
    stall_after_s: float = STALL_AFTER_S,
    connect_grace_s: float = CONNECT_GRACE_S,
    write_trouble_window_s: float = WRITE_TROUBLE_WINDOW_S,
    backlog_limit: int = WRITER_BACKLOG_LIMIT,
    writer_busy_limit_s: float = WRITER_BUSY_LIMIT_S,
    segment_late_margin_s: float = SEGMENT_LATE_MARGIN_S,
) -> tuple[bool, str]:
    """(may WATCHDOG=1 be sent, why in plain words) for the daemon's ``status()`` at ``now``.

    ``progress`` is ``Progress().advance(...)`` carried along status by status, ending with
    ``status`` itself; without one, ``status`` is the first ever seen (nothing has had time to
    stall). Per camera, a ``last_frame_age_s`` field in the status is used where the daemon
    provides one, else the time since ``frames_encoded`` last moved.
    """
    if progress is None:
        progress = Progress().advance(status, now_mono_s)
    cameras = status.cameras
    if not cameras:
        return False, "no camera pipelines in the recorder's status"
    problems: list[str] = []
    for name, cam in cameras.items():
        seen = progress.cameras.get(name)
        state = cam.health.state
        age = cam.last_frame_age_s
        if age is not None and cam.frames_encoded > 0:
            idle_s = float(age)
        elif seen is not None:
            idle_s = now_mono_s - seen.moved_at_s
        else:
            idle_s = 0.0
        if state == "connecting" and cam.frames_encoded == 0:
            waited = now_mono_s - seen.state_since_s if seen is not None else 0.0
            if waited > connect_grace_s:
                problems.append(f"camera {name} still opening after {waited:.0f} s")
            continue
        if idle_s > stall_after_s:
            why = {
                "live": "its source says live but delivers nothing (a hung read or encoder)",
                "lost": "not even NO SIGNAL frames (the encoder is stuck)",
                "stopped": "its reader thread has ended",
            }.get(state, f"reader {state}")
            problems.append(f"camera {name}: no frame encoded for {idle_s:.0f} s, {why}")
        backlog = cam.writer_backlog
        busy = cam.writer_busy_s
        if backlog >= backlog_limit:
            problems.append(f"camera {name}: {backlog} packets waiting for the disk")
        elif busy > writer_busy_limit_s and backlog > 0:
            problems.append(
                f"camera {name}: a write has blocked for {busy:.0f} s with {backlog} packets "
                "waiting (the disk does not answer)"
            )
    late = _segment_late(status, segment_late_margin_s)
    if late is not None:
        problems.append(late)
    trouble = progress.write_trouble_at_s
    # A full disk is a state the recorder shows and recovers from by itself (status, lamp,
    # overlay): a restart would not make room, so it never withholds the watchdog.
    disk_full = bool(status.session.writing_failed or status.session.storage_problem)
    if trouble is not None and now_mono_s - trouble <= write_trouble_window_s and not disk_full:
        problems.append(
            f"segment writes failing ({progress.write_errors} errors, "
            f"{progress.packets_dropped} packets dropped so far)"
        )
    note = collection_note(status)
    if problems:
        return False, "; ".join(problems + ([note] if note else []))
    return True, "frames flow and writes succeed" + (f"; {note}" if note else "")


def collection_note(
    status: RecorderStatus, stalled_after_s: float = COLLECTION_STALLED_AFTER_S
) -> str | None:
    """The collection backlog in words, for the watchdog's reason; None when collection is off."""
    c = status.collection
    if c is None:
        return None
    if not c.backlog_files:
        text = "collection: nothing waiting"
    else:
        age = c.oldest_age_s or 0.0
        text = (
            f"collection: {c.backlog_files} files ({c.backlog_bytes / 2**20:.1f} MiB) waiting, "
            f"oldest {format_duration(age)}"
        )
        if age > stalled_after_s:
            text = "COLLECTION STALLED, " + text
    if c.files_held:
        text += f", {c.files_held} file(s) held back (see last_error)"
    if c.kept_not_collected:
        text += f", {c.kept_not_collected} session(s) past retention kept: not collected"
    if c.deletion_requests_waiting:
        text += f", {c.deletion_requests_waiting} deletion request(s) waiting"
    if c.last_success_utc:
        text += f", last upload {c.last_success_utc}"
    if c.last_error and (not c.last_success_utc or (c.last_error_utc or "") > c.last_success_utc):
        when = f" {c.last_error_utc}" if c.last_error_utc else ""
        text += f", last error{when}: {c.last_error}"
    return text


def _segment_late(status: RecorderStatus, margin_s: float) -> str | None:
    """While recording: why no segment has closed for too long, or None."""
    segment_s = status.segment_seconds
    if status.state != "recording" or segment_s is None:
        return None
    age = status.session.last_segment_age_s
    if age is None:
        age = status.session.elapsed_s  # no segment closed yet: since the recording began
        if age is None:
            return None
    if age <= 2 * segment_s + margin_s:
        return None
    return f"no segment closed for {age:.0f} s while recording (one is due every {segment_s:g} s)"


def readiness(status: RecorderStatus, storage_dir: Path | None = None) -> str | None:
    """None when READY=1 may be sent; otherwise what the recorder is still waiting for."""
    if storage_dir is not None:
        problem = storage_problem(storage_dir)
        if problem is not None:
            return problem
    if any(c.health.state == "live" and c.frames_encoded > 0 for c in status.cameras.values()):
        return None
    if status.audio is not None and status.audio.state == "live":
        return None
    if any(m.health.state == "live" for m in status.monitors.values()):
        return None
    return "waiting for a camera, the microphone or a monitor to deliver"


def storage_problem(directory: Path) -> str | None:
    """None if the recorder can write sessions under ``directory`` (created on first use)."""
    probe = directory
    while not probe.exists():
        if probe == probe.parent:
            return f"storage {directory}: no existing parent directory"
        probe = probe.parent
    if not probe.is_dir():
        return f"storage {directory}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"storage {directory}: {probe} is not writable by this user"
    return None


def status_line(status: RecorderStatus, *, low_disk_bytes: int = LOW_DISK_BYTES) -> str:
    """One line for STATUS= (shown by ``systemctl status``): state, then what is not right."""
    session = status.session
    state = session.state
    parts = [state]
    if state == "recording":
        parts = [f"recording {format_duration(session.elapsed_s or 0.0)}"]
    if session.do_not_record:
        parts.append("do not record")  # automatic starts suppressed for this patient
    cams = status.cameras
    not_live = [(n, c.health.state) for n, c in cams.items() if c.health.state != "live"]
    if cams and not not_live:
        parts.append(f"{len(cams)} camera{'s' if len(cams) != 1 else ''} live")
    parts += [f"camera {name} {st}" for name, st in not_live]
    audio = status.audio
    if audio is not None and audio.state != "live":
        parts.append(f"audio {audio.state}")
    mons = status.monitors
    bad_mons = [(n, m.health.state) for n, m in mons.items() if m.health.state != "live"]
    if mons and not bad_mons:
        parts.append(f"{len(mons)} monitor{'s' if len(mons) != 1 else ''}")
    parts += [f"monitor {name} {st}" for name, st in bad_mons]
    free = status.storage_free_bytes
    if session.storage_problem:
        parts.append("CANNOT RECORD: disk full")  # below the reserve: starts are refused
    elif session.writing_failed:
        parts.append("NOT SAVING: disk full")
    elif isinstance(free, int) and free < low_disk_bytes:
        parts.append(f"disk low: {free / 1024**3:.1f} GB free")
    c = status.collection
    if c is not None and c.backlog_files:
        stalled = (c.oldest_age_s or 0.0) > COLLECTION_STALLED_AFTER_S
        parts.append(f"{'COLLECTION STALLED: ' if stalled else ''}{c.backlog_files} files to upload")
    return ", ".join(parts)


def format_duration(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# --- the loop --------------------------------------------------------------------------------------


class ServiceLoop:
    """Call ``tick(daemon.status())`` from the daemon's main loop; ``stopping()`` on the way out.

    Sends READY=1 the first time ``readiness`` allows, then WATCHDOG=1 at half the watchdog
    interval while ``pipeline_health`` allows, and STATUS= whenever the line changes. While the
    pipeline is unhealthy the pings stop and STATUS says why; systemd restarts the recorder once
    WatchdogSec passes without one.
    """

    def __init__(
        self,
        notifier: SdNotifier | None = None,
        *,
        storage_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        stall_after_s: float = STALL_AFTER_S,
    ) -> None:
        self.notifier = notifier if notifier is not None else SdNotifier()
        self._storage_dir = storage_dir
        self._clock = clock
        self._stall_after_s = stall_after_s
        self._interval = self.notifier.watchdog_interval_s()
        self._progress = Progress()
        self._ready = False
        self._healthy = True
        #: The latest verdict of ``pipeline_health``, for ``status()`` and fleet tools.
        self.health: tuple[bool, str] = (False, "starting")
        self._last_ping: float | None = None
        self._last_status: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    def tick(self, status: RecorderStatus) -> None:
        now = self._clock()
        self._progress = self._progress.advance(status, now)
        line = status_line(status)
        if not self._ready:
            waiting = readiness(status, self._storage_dir)
            if waiting is not None:
                self._set_status(f"starting: {waiting}")
                return
            self._ready = True
            self._last_status = line
            self.notifier.ready(line)
            log.info("service_ready", status=line)
        healthy, why = pipeline_health(
            status, now, self._progress, stall_after_s=self._stall_after_s
        )
        self.health = (healthy, why)
        if healthy != self._healthy:
            self._healthy = healthy
            if healthy:
                log.info("watchdog_resumed")
            else:
                log.error("watchdog_withheld", reason=why)
        if healthy:
            if self._interval is not None and (
                self._last_ping is None or now - self._last_ping >= self._interval
            ):
                self.notifier.watchdog()
                self._last_ping = now
            self._set_status(line)
        else:
            self._set_status(f"{line}; HUNG, restart pending: {why}")

    def stopping(self) -> None:
        self.notifier.stopping("stopping: closing segments")

    def _set_status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)
