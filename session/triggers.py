"""Automatic triggers: when a stabilisation has begun, and when it has ended.

A sensor going on a newborn shows as a pulse oximeter that starts reporting valid values; a
team at work shows as motion over the table. ``ActivityTracker`` follows both (fed by the serial
and camera threads, times passed in); ``trigger_event`` turns what it knows into at most one
event for the state machine. Both are free of clocks and I/O, so the rules are table tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from session.machine import Event, Mode, SessionState
from vitals.sample import Parameter, VitalSample

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TriggerRules:
    vitals: bool = True
    vitals_hold_s: float = 5.0  # valid for this long → a sensor is on a baby, not a glitch
    motion: bool = False
    motion_hold_s: float = 3.0
    motion_gap_s: float = 1.0  # motion detections further apart than this break a streak
    post_roll_s: float = 300.0
    max_duration_s: float = 7200.0


class ActivityTracker:
    """What the triggers know, fed as samples and motion arrive.

    Threads: serial threads call ``on_samples``, a camera thread ``on_motion``, the daemon's
    main loop reads; one lock, O(parameters) work.
    """

    def __init__(self, parameters: Iterable[Parameter], stale_after_s: float = 3.0) -> None:
        self._parameters = frozenset(parameters)
        self._stale_ns = int(stale_after_s * _NS)
        self._lock = threading.Lock()
        self._streak_start: dict[Parameter, int] = {}  # first valid sample of the current run
        self._last_valid: dict[Parameter, int] = {}
        self._motion_start: int | None = None
        self._last_motion: int | None = None
        self.last_activity_ns: int | None = None

    def on_samples(self, samples: Iterable[VitalSample]) -> None:
        with self._lock:
            for s in samples:
                if s.parameter not in self._parameters:
                    continue
                if s.valid:
                    last = self._last_valid.get(s.parameter)
                    if last is None or s.host_ns - last > self._stale_ns:
                        self._streak_start[s.parameter] = s.host_ns
                    self._last_valid[s.parameter] = s.host_ns
                    self._bump(s.host_ns)
                else:
                    self._streak_start.pop(s.parameter, None)
                    self._last_valid.pop(s.parameter, None)

    def on_motion(self, t_ns: int, gap_s: float = 1.0) -> None:
        with self._lock:
            if self._last_motion is None or t_ns - self._last_motion > gap_s * _NS:
                self._motion_start = t_ns
            self._last_motion = t_ns
            self._bump(t_ns)

    def _bump(self, t_ns: int) -> None:
        if self.last_activity_ns is None or t_ns > self.last_activity_ns:
            self.last_activity_ns = t_ns

    def vitals_valid_for_s(self, now_ns: int) -> float:
        """How long any trigger parameter has been valid without a break (0 if it is not now)."""
        best = 0.0
        with self._lock:
            for parameter, start in self._streak_start.items():
                last = self._last_valid.get(parameter)
                if last is None or now_ns - last > self._stale_ns:
                    continue  # the monitor went quiet: not evidence of a baby any more
                best = max(best, (now_ns - start) / _NS)
        return best

    def motion_for_s(self, now_ns: int, gap_s: float = 1.0) -> float:
        with self._lock:
            if self._motion_start is None or self._last_motion is None:
                return 0.0
            if now_ns - self._last_motion > gap_s * _NS:
                return 0.0
            return (now_ns - self._motion_start) / _NS


@dataclass(frozen=True, slots=True)
class Moment:
    """Everything ``trigger_event`` looks at, read at one instant."""

    now_ns: int
    vitals_valid_for_s: float
    motion_for_s: float
    last_activity_ns: int | None
    recording_since_ns: int | None  # when the current recording began
    # When automatic starts were held off. Held (stopped by hand) resumes after a quiet post-roll
    # from then; "do not record" only once activity seen since then has been quiet that long.
    quiet_since_ns: int | None


TriggerSource = Literal["vitals", "motion", "timer"]


class Fired(NamedTuple):
    """What a trigger said: the event, why (a fixed phrase), and which trigger it was."""

    event: Event
    why: str
    source: TriggerSource


def trigger_event(state: SessionState, m: Moment, rules: TriggerRules) -> Fired | None:
    if state.mode is Mode.RECORDING:
        assert m.recording_since_ns is not None
        if (m.now_ns - m.recording_since_ns) / _NS >= rules.max_duration_s:
            return Fired(Event.MAX_DURATION, f"maximum duration {rules.max_duration_s:.0f} s", "timer")
        if state.automatic:
            since = max(m.recording_since_ns, m.last_activity_ns or 0)
            if (m.now_ns - since) / _NS >= rules.post_roll_s:
                return Fired(Event.ACTIVITY_ENDED, f"no activity for {rules.post_roll_s:.0f} s", "timer")
        return None
    if state.waiting_for_quiet:
        quiet_since = m.quiet_since_ns or 0
        last = m.last_activity_ns
        if state.do_not_record and (last is None or last <= quiet_since):
            # "Do not record" set before the baby came: the stabilisation it refuses has not
            # begun, so it cannot have ended. Only activity seen since, then quiet, lifts it.
            return None
        since = max(quiet_since, last or 0)
        if (m.now_ns - since) / _NS >= rules.post_roll_s:
            return Fired(Event.ACTIVITY_ENDED, f"no activity for {rules.post_roll_s:.0f} s", "timer")
        return None
    if rules.vitals and m.vitals_valid_for_s >= rules.vitals_hold_s:
        return Fired(Event.AUTO_START, f"vitals valid for {rules.vitals_hold_s:g} s", "vitals")
    if rules.motion and m.motion_for_s >= rules.motion_hold_s:
        return Fired(Event.AUTO_START, f"motion for {rules.motion_hold_s:g} s", "motion")
    return None
