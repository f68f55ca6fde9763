"""Session control: applies the state machine's decisions to the cameras, the store and the audit log.

Every input (control socket, bedside button, triggers, timers) arrives here as an ``Event`` and
goes through ``session.machine.decide``; this module only carries out what it decided: open a
session directory and hand it to every camera, close it, or destroy it. Markers ("birth",
"intubation", button double presses) are kept here too, and the birth time gives the overlay its
"T+mm:ss".

Markers and the birth time belong to one patient: they are forgotten when a recording is
discarded, under "do not record", when the stabilisation ends and once the table has been quiet
for the post-roll, so the next baby's recording never carries them. A stop alone keeps the birth
time, so a recording started again for the same baby still counts T+ from it. For the same
reason the vitals and markers a recording begins with never reach back past the moment the
pre-roll was last emptied (a discard, "do not record", the end of a recording): the video
pre-roll cannot, and neither may they.

Threads: every input (a trigger, a button gesture, a socket command) is one event, carried out
on the controller's own thread ("session-control") in the order it arrived, so two presses never
start two sessions and the disk work of a start or stop (closing each camera's segment can take
seconds) never runs on the thread that delivered the event. The button thread only posts its
gesture and goes back to polling and blinking the lamp; socket threads post their command and wait
for its reply; the daemon's main loop posts a tick five times a second (one at a time: a tick is
not queued behind another). ``lamp``, ``status`` and the overlay's reads take no lock. Before
``start`` (and after ``stop``) events are carried out on the caller's thread under ``_lock``, as
unit tests and tools use it. Serial threads call ``on_samples`` under ``_vitals_lock``, which also
guards the open session's vitals; motion reaches the activity tracker from a camera's reader.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from capture.recording import CameraRecorder
from capture.segmenter import ClosedSegment, Segmenter, SegmentFile, StreamLayout
from config.models import Config
from control.gestures import Gesture
from control.lamp import lamp_level, lamp_pattern
from session.directory import CameraProfile, Marker, SessionDirectory
from session.layout import PARTIAL
from session.machine import IDLE, Action, Event, Mode, SessionState, decide
from session.recovery import recover_session
from session.triggers import ActivityTracker, Moment, TriggerRules, TriggerSource, trigger_event
from store.keys import Recipient
from sync.board import VitalsBoard
from sync.clock import MediaClock, now_ns
from vitals.sample import Parameter, VitalSample

log = structlog.get_logger()
R = TypeVar("R")

_NS = 1_000_000_000
BIRTH = "birth"
_TICK_S = 0.2  # the daemon's main loop ticks session control this often
_RETRY_S = 10.0  # an automatic start refused for want of space is tried again this often
# A long press this soon after a tap stopped a recording discards that recording: the tap was
# the start of the long press (someone hesitated), and consent refused means all of it.
_TAP_THEN_HOLD_S = 10.0
# Who may be named as asking through the control socket (``by`` in its requests). Anything else
# a client sends is recorded as "control socket": free text never reaches the audit log.
SOCKET_CLIENTS = frozenset({"command line", "demo", "doctor", "control socket"})


def socket_client(by: object) -> str:
    """The name to record for a control socket request's ``by``: a known client, or "control socket"."""
    return by if isinstance(by, str) and by in SOCKET_CLIENTS else "control socket"


class Audit(Protocol):
    def append(self, event: str, **fields: Any) -> Any: ...

    @property
    def head(self) -> tuple[int, str]: ...


class ClosedFiles(Protocol):
    """Who is told as a session's files close (the collector, ``collect``): each segment as it
    is renamed from ``.partial``, the session once every file is final, and a session discarded
    (its segments may already have been sent). Each call returns at once."""

    def file_closed(self, path: Path, sha256: str) -> None: ...

    def session_closed(self, session_dir: Path) -> None: ...

    def session_discarded(self, session_id: str) -> None: ...


@dataclass(frozen=True)
class SessionStatus:
    """What session control says of itself (``recorder.status`` carries it to every reader)."""

    state: str = "?"  # "idle" or "recording"
    do_not_record: bool = False
    auto_start_held: bool = False  # stopped by hand: automatic starts wait for the table to be quiet
    automatic: bool = False  # the recording was started by a trigger
    reason: str | None = None  # why it is recording
    session: str | None = None  # the session being recorded
    markers: int = 0
    last_segment_age_s: float | None = None
    elapsed_s: float | None = None
    auto_stop_in_s: float | None = None
    vitals_valid_for_s: float = 0.0
    since_birth_s: float | None = None
    armed_discard: bool = False  # the button is held: letting go discards
    storage_problem: str | None = None  # why no recording can be made (the disk is full)
    writing_failed: str | None = None  # why the recording's files stopped being written
    last_start: dict[str, float] | None = None
    last_session: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CameraOutput:
    name: str
    recorder: CameraRecorder
    layout: StreamLayout


class SessionController:
    def __init__(
        self,
        config: Config,
        recipients: Sequence[Recipient],
        clock: MediaClock,
        board: VitalsBoard,
        cameras: Sequence[CameraOutput],
        *,
        audit: Audit | None = None,
        frames_dropped: Callable[[], int] = lambda: 0,
        clock_ns: Callable[[], int] = now_ns,
        free_bytes: Callable[[], int | None] = lambda: None,
        bits_per_s: float = 0.0,
        closed_files: ClosedFiles | None = None,
    ) -> None:
        self._config = config
        self._closed_files = closed_files
        self._recipients = list(recipients)
        self._clock = clock
        self._board = board
        self._cameras = list(cameras)
        self._audit = audit
        self._frames_dropped = frames_dropped
        self._now = clock_ns
        self._free_bytes = free_bytes
        self._bits_per_s = bits_per_s
        # Below this much free space a recording is refused rather than started and lost; it is
        # minutes of this recorder's own bitrate, so it means the same on any camera setup.
        self._reserve_bytes = int(config.storage.reserve_minutes * 60 * bits_per_s / 8)
        self.storage_problem: str | None = None  # why no recording can be made now
        self._refused_at_ns: int | None = None  # when a start was last refused for it
        # Ticks come five times a second: sealing what has waited this long keeps each stream's
        # loss to a crash within storage.durable_within_s.
        self._seal_after_s = max(0.1, config.storage.durable_within_s - _TICK_S - 0.1)
        t = config.triggers
        self.rules = TriggerRules(
            vitals=t.vitals and bool(config.monitors),
            vitals_hold_s=t.vitals_hold_s,
            motion=t.motion,
            motion_hold_s=t.motion_hold_s,
            post_roll_s=t.post_roll_s,
            max_duration_s=config.session.max_duration_s,
        )
        self.activity = ActivityTracker(
            [Parameter(p) for p in t.vitals_parameters],
            stale_after_s=max((m.stale_after_s for m in config.monitors), default=3.0),
        )
        self._lock = threading.RLock()
        self._vitals_lock = threading.Lock()
        # The control thread's inbox: (work, its future or None when nobody waits for it).
        self._inbox: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any] | None] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._accepting = False  # events go to the control thread (else: run on the caller's)
        self._tick_pending = threading.Event()
        self.state: SessionState = IDLE
        self._session: SessionDirectory | None = None
        self.recording_since_ns: int | None = None
        # The stop's instant, published before the cameras drain: frames captured after it are
        # not part of this recording (they go to the pre-roll ring) and must not read REC.
        self.recording_until_ns: int | None = None
        self._quiet_since_ns: int | None = None
        self.reason: str | None = None
        self.birth_ns: int | None = None
        self._recent_markers: deque[Marker] = deque(maxlen=256)
        self.last_session: dict[str, Any] | None = None
        self.armed_discard = False  # the button is held: the lamp blinks fast, release discards
        self._trigger_late_s: float | None = None
        # Vitals and markers older than this are not the pre-roll of any recording (see above).
        self._preroll_floor_ns = 0
        self._forgotten_ns = 0  # when a patient's values were last forgotten (see _forget_patient)
        self._unfinished: list[Path] = []  # sessions whose end the disk refused
        self._dropped_at_start = 0
        self.last_start: dict[str, float] | None = None  # how quickly the last start took effect
        self._just_stopped: tuple[SessionDirectory, int] | None = None

    # --- the control thread ------------------------------------------------------------------

    def start(self) -> None:
        """Carry out events on the controller's own thread from now on."""
        if self._thread is not None:
            raise RuntimeError("session control is started once")
        self._thread = threading.Thread(target=self._run, name="session-control", daemon=True)
        self._accepting = True
        self._thread.start()

    def stop(self, timeout_s: float = 120.0) -> None:
        """Finish the events already posted, then stop the thread; later events run inline."""
        thread = self._thread
        if thread is None or not self._accepting:
            return
        self._accepting = False
        self._inbox.put(None)
        thread.join(timeout_s)
        # Whatever arrived while the thread was winding down is carried out here, so no caller
        # waits forever for a reply.
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._carry_out(*item)

    def _run(self) -> None:
        while (item := self._inbox.get()) is not None:
            self._carry_out(*item)

    def _carry_out(self, work: Callable[[], Any], done: Future[Any] | None) -> None:
        try:
            with self._lock:
                result = work()
        except BaseException as exc:
            if done is not None:
                done.set_exception(exc)  # the waiting caller (a socket thread) reports it
            else:  # nobody waits (a gesture, a tick): say so, and take the next event
                log.exception("session_event_failed")
            return
        if done is not None:
            done.set_result(result)

    def _inline(self) -> bool:
        return not self._accepting or threading.current_thread() is self._thread

    def _ask(self, work: Callable[[], R]) -> R:
        """Carry out ``work`` on the control thread and wait for its result."""
        if self._inline():
            with self._lock:
                return work()
        done: Future[R] = Future()
        self._inbox.put((work, done))
        return done.result()

    def _post(self, work: Callable[[], Any]) -> None:
        """Carry out ``work`` on the control thread; do not wait."""
        if self._inline():
            with self._lock:
                work()
            return
        self._inbox.put((work, None))

    def drain(self) -> None:
        """Return once every event posted before this call has been carried out."""
        self._ask(lambda: None)

    # --- inputs ----------------------------------------------------------------------------

    def on_samples(self, samples: list[VitalSample]) -> None:
        """Serial threads: every sample goes to the board, the triggers and the open session."""
        with self._vitals_lock:
            self._board.add(samples)
            self.activity.on_samples(samples)
            if self._session is not None:
                self._session.write_vitals(samples)

    def tick(self) -> None:
        """The daemon's main loop, five times a second: let the triggers speak. Posted, not waited
        for; while one tick waits to be carried out, another is not queued behind it."""
        if self._inline():
            with self._lock:
                self._tick()
            return
        if self._tick_pending.is_set():
            return
        self._tick_pending.set()
        self._post(self._tick)

    def _tick(self) -> None:
        self._tick_pending.clear()
        now = self._now()
        if not self.recording and self._check_storage() is None and self._unfinished:
            self._close_unfinished()
        moment = Moment(
            now_ns=now,
            vitals_valid_for_s=self.activity.vitals_valid_for_s(now),
            motion_for_s=self.activity.motion_for_s(now, self.rules.motion_gap_s),
            last_activity_ns=self.activity.last_activity_ns,
            recording_since_ns=self.recording_since_ns,
            quiet_since_ns=self._quiet_since_ns,
        )
        result = trigger_event(self.state, moment, self.rules)
        if result is not None:
            if result.event is Event.AUTO_START:
                # How long the start condition had already held when this tick saw it.
                late = max(
                    moment.vitals_valid_for_s - self.rules.vitals_hold_s,
                    moment.motion_for_s - self.rules.motion_hold_s,
                )
                self._trigger_late_s = max(0.0, late)
            refused = self._refused_at_ns
            if result.event is Event.AUTO_START and refused is not None and (now - refused) / _NS < _RETRY_S:
                pass  # refused moments ago for want of space: not again at every tick
            else:
                self._handle(result.event, by="trigger", why=result.why, trigger=result.source)
        if self._session is not None:
            self._session.seal_held(self._seal_after_s)
        if not self.recording and self._quiet_for_post_roll(now):
            self._forget_patient()  # that baby has left the table

    def handle(
        self, event: Event, *, by: str, why: str = "", trigger: TriggerSource | None = None
    ) -> dict[str, Any]:
        """One event, carried out on the control thread; its reply."""
        return self._ask(lambda: self._handle(event, by=by, why=why, trigger=trigger))

    def _handle(
        self, event: Event, *, by: str, why: str = "", trigger: TriggerSource | None = None
    ) -> dict[str, Any]:
        before = self.state
        decision = decide(before, event)
        reason = f"{event} by {by}" + (f" ({why})" if why else "")
        action = decision.action
        if action is Action.BEGIN:
            started_by = trigger or ("button" if by == "button" else "socket")
            problem = self._check_storage()
            if problem is not None:
                return self._refuse(problem, by=by)
            try:
                self._begin(reason, automatic=decision.state.automatic, trigger=started_by)
            except OSError as exc:  # the disk refused (full, read-only, gone): nothing was kept
                self.storage_problem = f"cannot write to the storage: {exc.strerror or exc}"
                return self._refuse(self.storage_problem, by=by)
        elif action is Action.END:
            self._end(reason, by_person=event in (Event.STOP, Event.TOGGLE))
        elif action is Action.DISCARD:
            self._end(reason, discard=True)
        if decision.state.waiting_for_quiet and not before.waiting_for_quiet:
            self._quiet_since_ns = self._now()
        dnr_changed = decision.state.do_not_record != before.do_not_record
        if dnr_changed:
            self._set_do_not_record(decision.state.do_not_record, reason)
        elif action is Action.CLEAR_PREROLL:
            for cam in self._cameras:  # already on: forget what gathered since
                cam.recorder.keep_preroll(False)
        if dnr_changed or action in (Action.END, Action.DISCARD, Action.CLEAR_PREROLL):
            # The video pre-roll starts empty from here: so do the vitals and markers.
            self._preroll_floor_ns = self._now()
        # A stop keeps the birth time: a team that stops and starts again (a slip, a second
        # phase of care) is still with the same baby, and T+ must go on. Quiet for the
        # post-roll (``tick``) or the stabilisation ending forgets it for the next baby.
        if action in (Action.DISCARD, Action.CLEAR_PREROLL) or (
            event is Event.ACTIVITY_ENDED and decision.state != before
        ):
            self._forget_patient()
        if decision.state != before or decision.action is not Action.NONE:
            log.info("session_event", input=str(event), by=by, why=why, note=decision.note)
        self.state = decision.state
        return {"ok": True, "note": decision.note}

    @property
    def alert(self) -> str | None:
        """A few words for the overlay when nothing can be saved: the disk is full."""
        if self.storage_problem is not None or self._writing_failed() is not None:
            return "DISK FULL"
        return None

    def _writing_failed(self) -> str | None:
        """Why the recording's files are not being written, while they are not."""
        session = self._session
        if session is None:
            return None
        if session.failed is not None:
            return session.failed
        full = [cam.name for cam in self._cameras if cam.recorder.disk_full]
        return f"no space left on the storage disk (camera {', '.join(full)})" if full else None

    def _check_storage(self) -> str | None:
        """Why a recording cannot be made now for want of space (None: it can); kept in
        ``storage_problem`` for the lamp, the overlay and the status."""
        free = self._free_bytes()
        if free is None or free >= self._reserve_bytes:
            if self.storage_problem is not None:
                log.info("storage_ok", free_bytes=free)
            self.storage_problem = None
            self._refused_at_ns = None
            return None
        minutes = free * 8 / self._bits_per_s / 60 if self._bits_per_s else 0.0
        reserve = self._config.storage.reserve_minutes
        self.storage_problem = (
            f"storage full: {minutes:.0f} min of recording left, below the {reserve:g} min reserve "
            "(free space on the storage disk; no session is deleted to make room)"
        )
        return self.storage_problem

    def _close_unfinished(self) -> None:
        """Close, as truncated files with a recovery record, what a full disk kept from closing."""
        while self._unfinished:
            path = self._unfinished[0]
            try:
                recovered = recover_session(path, self._recipients)
            except OSError as exc:
                log.error("session_close_retry_failed", session=path.name, error=str(exc))
                return
            self._unfinished.pop(0)
            if self._closed_files is not None:
                self._closed_files.session_closed(path)
            log.info("session_closed_late", session=path.name, files=len(recovered.files))
            if self._audit is not None:
                self._audit.append(
                    "session_closed_late",
                    session=path.name,
                    files=len(recovered.files),
                    reason="the disk was full when the recording ended",
                )

    def _refuse(self, why: str, *, by: str) -> dict[str, Any]:
        """A start that cannot be made: said once per episode in the log and the audit log."""
        if self._refused_at_ns is None:
            log.error("recording_refused", why=why, by=by)
            if self._audit is not None:
                # The audit log holds what it cannot write; one that fails anyway must not turn
                # a refusal into a crash of session control.
                with contextlib.suppress(OSError):
                    self._audit.append("recording_refused", reason="storage full or not writable", by=by)
        self._refused_at_ns = self._now()
        return {"ok": False, "error": f"not recording: {why}"}

    def mark(self, label: str, *, by: str) -> dict[str, Any]:
        """A marker at this instant (taken now, set on the control thread); ``birth`` also sets
        the time base for "time since birth"."""
        label = label.strip()
        if not label or len(label) > 64:
            return {"ok": False, "error": "a marker label has 1 to 64 characters"}
        marker = Marker(self._now(), label, by)
        return self._ask(lambda: self._mark(marker))

    def _mark(self, marker: Marker) -> dict[str, Any]:
        label, by = marker.label, marker.by
        if label.lower() == BIRTH:
            self.birth_ns = marker.mono_ns
        self._recent_markers.append(marker)
        if self._session is not None:
            self._session.write_markers([marker])
        if self._audit is not None:
            kind = _marker_kind(label)
            self._audit.append("marker", session=self._session_id(), by=by, marker_kinds=[kind])
        # The kind only: a label is free text (a name, a record number) and the journal is plain.
        log.info("marker", kind=_marker_kind(label), by=by, recording=self._session is not None)
        if self._session is not None and self._session.failed is not None:
            # Said, not hidden: the person setting it must know it will not be in the recording.
            return {
                "ok": False,
                "error": f"marker {label!r} kept in memory only: the recording's files cannot be "
                f"written ({self._session.failed})",
            }
        return {"ok": True, "note": f"marker {label!r} set" + ("" if self._session else " (not recording)")}

    def on_gesture(self, gesture: Gesture) -> None:
        """The bedside button's thread: post the gesture and return at once, so the button is
        polled and the lamp blinks while a start or stop is being carried out."""
        if gesture is Gesture.SHORT:
            self._post(lambda: self._handle(Event.TOGGLE, by="button"))
        elif gesture is Gesture.DOUBLE:
            marker = Marker(self._now(), "button", "button")  # the time of the press
            self._post(lambda: self._mark(marker))
        elif gesture is Gesture.LONG_ARMED:
            # Only reads, on the button thread, so the fast blink starts at once. Blink "release
            # to discard" only when letting go would do something.
            self.armed_discard = (
                self.recording
                or self._config.button.idle_long_press != "nothing"
                or self._just_stopped_recently()
            )
        elif gesture is Gesture.LONG_CANCELLED:
            self.armed_discard = False
        elif gesture is Gesture.LONG:
            self.armed_discard = False
            self._post(self._long_press)

    def _long_press(self) -> None:
        if not self.recording and self._config.button.idle_long_press == "nothing":
            self._discard_just_stopped("long press right after a stop")
            return
        self._discard(by="button", why="long press")

    def discard(self, *, by: str, why: str = "") -> dict[str, Any]:
        """Consent refused: destroy the recording being made, or the one a person stopped in the
        last few seconds (someone stopped, then refused), with the pre-roll; set "do not record"."""
        return self._ask(lambda: self._discard(by=by, why=why))

    def _discard(self, *, by: str, why: str = "") -> dict[str, Any]:
        current = self._session_id()
        just = None if current else self._discard_just_stopped(f"discard right after a stop by {by}")
        reply = self._handle(Event.DISCARD, by=by, why=why)
        if current is not None:
            note = f"recording {current} discarded (all its files destroyed), pre-roll included"
        elif just is not None:
            note = (
                f"recording {just} stopped moments ago discarded (all its files destroyed), "
                "pre-roll included"
            )
        else:
            note = (
                "nothing was being recorded: pre-roll discarded (a recording stopped earlier "
                "is removed with: neoflix-capture delete SESSION)"
            )
        return {**reply, "note": note + "; do not record is on", "discarded_session": current or just}

    def lamp(self, t_ns: int) -> bool:
        """Whether the button's lamp is lit at ``t_ns`` (the button thread asks every poll)."""
        pattern = lamp_pattern(
            self.recording,
            self.armed_discard,
            self.state.do_not_record,
            cannot_record=self.storage_problem is not None,
        )
        return lamp_level(pattern, t_ns)

    def _just_stopped_recently(self) -> bool:
        just = self._just_stopped
        return just is not None and (self._now() - just[1]) / _NS <= _TAP_THEN_HOLD_S

    def _discard_just_stopped(self, reason: str) -> str | None:
        """Destroy the recording a person stopped moments ago, if any; its session id."""
        recent = self._just_stopped_recently()
        just, self._just_stopped = self._just_stopped, None
        if just is None or not recent or self.recording:
            return None
        session, _ended = just
        files = session.discard()
        if self._closed_files is not None:
            self._closed_files.session_discarded(session.id)
        if self.last_session is not None and self.last_session.get("session") == session.id:
            self.last_session = {
                **self.last_session, "discarded": True, "segments": 0, "media_s": 0.0, "bytes": 0
            }
        if self._audit is not None:
            self._audit.append("recording_discarded", session=session.id, reason=reason, files=files)
        log.info("session_discarded", session=session.id, reason=reason)
        return session.id

    def _forget_patient(self) -> None:
        """This baby's birth time, markers and vitals are not the next one's: none of them is
        shown or stored again (the monitors' next values start afresh)."""
        self.birth_ns = None
        self._recent_markers.clear()
        self._forgotten_ns = self._now()
        self._board.forget_before(self._forgotten_ns)

    def _quiet_for_post_roll(self, now: int) -> bool:
        """Something of a patient is held (markers, or values since the last forgetting) and the
        table has seen no activity or marker for the post-roll."""
        newest_marker = self._recent_markers[-1].mono_ns if self._recent_markers else 0
        last = max(self.activity.last_activity_ns or 0, newest_marker, self.birth_ns or 0)
        if last <= self._forgotten_ns:
            return False
        return (now - last) / _NS >= self.rules.post_roll_s

    # --- actions ---------------------------------------------------------------------------

    def _begin(self, reason: str, *, automatic: bool, trigger: str) -> None:
        began = self._now()
        cfg = self._config
        # Under "do not record" the video pre-roll is empty: so is everything else's.
        floor = began if self.state.do_not_record else self._preroll_floor_ns
        session = SessionDirectory(
            cfg.storage.directory,
            recipients=self._recipients,
            fsync_interval_s=cfg.storage.fsync_interval_s,
            durable_within_s=cfg.storage.durable_within_s,
            table=cfg.station.table,
            cameras=[
                CameraProfile(c.name, c.width, c.height, c.fps, c.overlay, c.audio) for c in cfg.cameras
            ],
            clock=self._clock,
            reason=reason,
        )
        self._just_stopped = None  # a new recording: the one before is no longer "just stopped"
        begun: list[CameraOutput] = []
        try:
            for cam in self._cameras:
                cam.recorder.begin(
                    Segmenter(
                        _segment_opener(session, cam.name),
                        cam.layout,
                        segment_s=cfg.storage.segment_seconds,
                        on_closed=_segment_logger(session, cam.name, self._closed_files),
                    ),
                    at_s=self._clock.seconds(began),
                )
                begun.append(cam)
            # The pre-roll's vitals and markers go in first, then everything from now on.
            reach = cfg.session.preroll_s + 2 * cfg.encoding.keyframe_interval_s + 1
            horizon = max(self._now() - int(reach * _NS), floor)
            with self._vitals_lock:
                session.write_vitals(self._board.history_since(horizon))
                self._session = session
            recent = [m for m in self._recent_markers if m.mono_ns >= horizon]
            if self.birth_ns is not None and all(m.mono_ns != self.birth_ns for m in recent):
                birth = next((m for m in self._recent_markers if m.mono_ns == self.birth_ns), None)
                if birth is not None:
                    recent.insert(0, birth)
            session.write_markers(recent)
            if self._audit is not None:
                self._audit.append(
                    "recording_started", session=session.id, reason=reason, trigger=trigger
                )
                session.anchor_audit(*self._audit.head)
        except BaseException:
            self._undo_begin(session, begun)
            raise
        self._dropped_at_start = self._frames_dropped()
        self.recording_until_ns = None
        self.recording_since_ns = self._now()
        self.reason = reason
        self.last_start = {
            "trigger_to_decision_s": round(self._trigger_late_s, 3)
            if automatic and self._trigger_late_s is not None
            else 0.0,
            "decision_to_recording_s": round((self.recording_since_ns - began) / _NS, 4),
        }
        self._trigger_late_s = None
        log.info("session_started", session=session.id, reason=reason, trigger=trigger)

    def _undo_begin(self, session: SessionDirectory, begun: Sequence[CameraOutput]) -> None:
        """A start that failed half-way leaves nothing behind: no open session, no files."""
        log.exception("session_start_failed", session=session.id)
        with self._vitals_lock:
            self._session = None
        for cam in begun:
            cam.recorder.end(discard=True)
        try:
            session.discard()
        except Exception:
            log.exception("session_start_cleanup_failed", session=session.id)

    def _end(self, reason: str, *, discard: bool = False, by_person: bool = False) -> None:
        session = self._session
        if session is None:
            return
        # The stop's media time: each camera writes every frame captured before it (x264 and
        # the interleaver still hold some) before its last segment closes.
        stopped_ns = self._now()
        self.recording_until_ns = stopped_ns
        stop_s = self._clock.seconds(stopped_ns)
        for cam in self._cameras:
            if not cam.recorder.end(discard=discard, at_s=stop_s):
                log.error("segment_close_timeout", camera=cam.name, session=session.id)
        with self._vitals_lock:
            self._session = None
        started = self.recording_since_ns or stopped_ns
        self.recording_since_ns = None
        duration = (stopped_ns - started) / _NS  # to the stop, not to the end of the drain
        segments = session.segments
        destroyed = session.discard() if discard else 0
        if not discard and self._audit is not None:
            self._audit.append(
                "recording_stopped",
                session=session.id,
                reason=reason,
                segments=len(segments),
                bytes=session.bytes_closed,
                duration_s=round(duration, 1),
            )
            # The audit log's head goes into the manifest (encrypted, kept with the recording),
            # so lines later cut from the log's end show against it (``audit verify``).
            session.anchor_audit(*self._audit.head)
        if not discard and not session.close(reason):
            # The disk refused part of the end: what could not be finished is closed as a crash
            # would leave it, once there is room (``_close_unfinished``).
            self._unfinished.append(session.path)
        elif self._closed_files is not None:
            if discard:
                self._closed_files.session_discarded(session.id)
            else:
                self._closed_files.session_closed(session.path)
        # Cameras record side by side: the session lasts as long as its longest camera, not the sum.
        media_by_camera = {cam.name: 0.0 for cam in self._cameras}
        for s in segments:
            media_by_camera[s["camera"]] = media_by_camera.get(s["camera"], 0.0) + s["end_s"] - s["start_s"]
        summary = {
            "session": session.id,
            "path": str(session.path),
            "reason": reason,
            "duration_s": round(duration, 1),
            "segments": 0 if discard else len(segments),
            "media_s": 0.0 if discard else round(max(media_by_camera.values(), default=0.0), 2),
            "media_s_by_camera": {
                name: 0.0 if discard else round(seconds, 2) for name, seconds in media_by_camera.items()
            },
            "bytes": 0 if discard else session.bytes_closed,
            "vitals_samples": session.vitals_written,
            "markers": session.markers_written,
            "frames_dropped": max(0, self._frames_dropped() - self._dropped_at_start),
            "preroll_s": {c.name: round(c.recorder.preroll_s_used, 2) for c in self._cameras},
            "discarded": discard,
        }
        self.last_session = summary
        # A person who stops and at once refuses consent (a long press, or ``discard``) means
        # this recording: keep it at hand for a few seconds.
        self._just_stopped = (session, self._now()) if by_person and not discard else None
        if self._audit is not None and discard:
            self._audit.append(
                "recording_discarded",
                session=session.id,
                reason=reason,
                files=destroyed,
                duration_s=round(duration, 1),
            )
        log.info("session_ended", **summary)

    def _set_do_not_record(self, on: bool, reason: str) -> None:
        for cam in self._cameras:
            cam.recorder.keep_preroll(not on)
        if self._audit is not None:
            self._audit.append("do_not_record_set" if on else "do_not_record_cleared", reason=reason)

    def _session_id(self) -> str | None:
        return self._session.id if self._session is not None else None

    @property
    def session_id(self) -> str | None:
        """The session being recorded, if any."""
        return self._session_id()

    # --- what the overlay and status show ---------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.state.mode is Mode.RECORDING

    def since_birth_s(self, t_ns: int) -> float | None:
        birth = self.birth_ns
        return None if birth is None else (t_ns - birth) / _NS

    def status(self) -> SessionStatus:
        now = self._now()
        since = self.recording_since_ns
        auto_stop = None
        if self.recording and self.state.automatic and since is not None:
            quiet_from = max(since, self.activity.last_activity_ns or 0)
            auto_stop = max(0.0, self.rules.post_roll_s - (now - quiet_from) / _NS)
        session = self._session
        return SessionStatus(
            state=str(self.state.mode),
            do_not_record=self.state.do_not_record,
            auto_start_held=self.state.held,
            automatic=self.state.automatic,
            reason=self.reason if self.recording else None,
            session=session.id if session else None,
            markers=session.markers_written if session else 0,
            last_segment_age_s=None
            if session is None or session.last_segment_ns is None
            else round((now - session.last_segment_ns) / _NS, 1),
            elapsed_s=round((now - since) / _NS, 1) if since is not None else None,
            auto_stop_in_s=None if auto_stop is None else round(auto_stop, 1),
            vitals_valid_for_s=round(self.activity.vitals_valid_for_s(now), 1),
            since_birth_s=None if self.birth_ns is None else round((now - self.birth_ns) / _NS, 1),
            armed_discard=self.armed_discard,
            storage_problem=self.storage_problem,
            writing_failed=self._writing_failed(),
            last_start=self.last_start,
            last_session=self.last_session,
        )


def _marker_kind(label: str) -> str:
    """What the plain-text logs may say of a marker: "birth" or "other", never its label."""
    return BIRTH if label.lower() == BIRTH else "other"


def _segment_opener(session: SessionDirectory, camera: str) -> Callable[[int], SegmentFile]:
    def open_segment(index: int) -> SegmentFile:
        return session.open_segment(camera, index)

    return open_segment


def _segment_logger(
    session: SessionDirectory, camera: str, closed_files: ClosedFiles | None
) -> Callable[[ClosedSegment], None]:
    def closed(segment: ClosedSegment) -> None:
        entry = session.segment_closed(camera, segment)
        if closed_files is not None and entry["sha256"] and not entry["file"].endswith(PARTIAL):
            closed_files.file_closed(session.path / entry["file"], entry["sha256"])
        log.info(
            "segment_closed",
            session=session.id,
            camera=camera,
            index=segment.index,
            duration_s=round(segment.duration_s, 3),
            frames=segment.video_frames,
            audio_packets=segment.audio_packets,
            bytes=entry["bytes"],
            complete=segment.complete,
        )

    return closed
