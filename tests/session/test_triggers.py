"""Trigger rules as tables: when a stabilisation begins and ends."""

from __future__ import annotations

import pytest

from session.machine import Event, Mode, SessionState
from session.triggers import ActivityTracker, Moment, TriggerRules, trigger_event
from vitals.sample import Parameter, VitalSample

S = 1_000_000_000
RULES = TriggerRules(vitals=True, vitals_hold_s=5, motion=True, motion_hold_s=3, post_roll_s=300)
idle = SessionState()
dnr = SessionState(Mode.IDLE, True, False)
held = SessionState(Mode.IDLE, False, False, held=True)
auto = SessionState(Mode.RECORDING, False, True)
manual = SessionState(Mode.RECORDING, False, False)


def moment(now: float, *, valid: float = 0, motion: float = 0, activity: float | None = None,
           since: float | None = None, quiet: float | None = None) -> Moment:
    return Moment(
        int(now * S), valid, motion,
        None if activity is None else int(activity * S),
        None if since is None else int(since * S),
        None if quiet is None else int(quiet * S),
    )


@pytest.mark.parametrize(
    ("state", "m", "rules", "expected"),
    [
        (idle, moment(100, valid=4.9), RULES, None),
        (idle, moment(100, valid=5.0), RULES, Event.AUTO_START),
        (idle, moment(100, valid=9, motion=0), TriggerRules(vitals=False), None),
        (idle, moment(100, motion=3.0), RULES, Event.AUTO_START),
        (idle, moment(100, motion=3.0), TriggerRules(motion=False), None),
        (dnr, moment(100, valid=60), RULES, None),  # suppressed
        (dnr, moment(400, activity=101, quiet=50), RULES, None),
        (dnr, moment(402, activity=101, quiet=50), RULES, Event.ACTIVITY_ENDED),
        # Refused before the baby came: no activity since, so no stabilisation has ended.
        (dnr, moment(10000, quiet=0), RULES, None),
        (dnr, moment(10000, activity=None, quiet=50), RULES, None),
        (dnr, moment(10000, activity=40, quiet=50), RULES, None),  # the previous baby's
        (dnr, moment(10000, activity=9000, quiet=50), RULES, Event.ACTIVITY_ENDED),
        (dnr, moment(9200, activity=9000, quiet=50), RULES, None),  # this baby: post-roll runs
        (held, moment(351, quiet=50), RULES, Event.ACTIVITY_ENDED),  # stopped after the sensor came off
        (held, moment(100, valid=60, quiet=50), RULES, None),  # stopped by hand: no restart
        (held, moment(402, activity=101, quiet=50), RULES, Event.ACTIVITY_ENDED),  # re-armed
        (auto, moment(400, activity=150, since=100), RULES, None),  # post-roll still running
        (auto, moment(450, activity=150, since=100), RULES, Event.ACTIVITY_ENDED),
        (auto, moment(450, activity=None, since=100), RULES, Event.ACTIVITY_ENDED),
        (manual, moment(5000, activity=150, since=100), RULES, None),  # never stop early
        (manual, moment(7300, since=100), RULES, Event.MAX_DURATION),
        (auto, moment(7300, activity=7299, since=100), RULES, Event.MAX_DURATION),
    ],
)
def test_trigger_table(state: SessionState, m: Moment, rules: TriggerRules, expected: Event | None) -> None:
    result = trigger_event(state, m, rules)
    assert (result.event if result else None) is expected
    if result:
        assert result.why


@pytest.mark.parametrize(
    ("m", "source"),
    [
        (moment(100, valid=5.0), "vitals"),
        (moment(100, motion=3.0), "motion"),
        (moment(100, valid=6.0, motion=4.0), "vitals"),
    ],
)
def test_an_automatic_start_says_which_trigger_fired(m: Moment, source: str) -> None:
    result = trigger_event(idle, m, RULES)
    assert result is not None and result.event is Event.AUTO_START
    assert result.source == source


def sample(p: Parameter, t: float, valid: bool = True) -> VitalSample:
    return VitalSample(p, 90.0 if valid else None, "%", valid, int(t * S), "ox")


def test_tracker_needs_an_unbroken_run_of_valid_values() -> None:
    tracker = ActivityTracker([Parameter.SPO2, Parameter.HR], stale_after_s=3)
    tracker.on_samples([sample(Parameter.SPO2, t) for t in range(0, 4)])
    tracker.on_samples([sample(Parameter.SPO2, 4, valid=False)])  # sensor slipped
    tracker.on_samples([sample(Parameter.SPO2, t) for t in range(5, 9)])
    assert tracker.vitals_valid_for_s(int(8 * S)) == 3.0
    tracker.on_samples([sample(Parameter.SPO2, t) for t in range(9, 11)])
    assert tracker.vitals_valid_for_s(int(10 * S)) == 5.0
    assert tracker.last_activity_ns == 10 * S


def test_tracker_forgets_a_monitor_that_went_quiet() -> None:
    tracker = ActivityTracker([Parameter.SPO2], stale_after_s=3)
    tracker.on_samples([sample(Parameter.SPO2, t) for t in range(0, 6)])
    assert tracker.vitals_valid_for_s(int(6 * S)) == 6.0
    assert tracker.vitals_valid_for_s(int(9 * S)) == 0.0  # unplugged: no new samples


def test_tracker_ignores_parameters_that_do_not_trigger() -> None:
    tracker = ActivityTracker([Parameter.SPO2])
    tracker.on_samples([sample(Parameter.PI, t) for t in range(0, 10)])
    assert tracker.vitals_valid_for_s(int(9 * S)) == 0.0
    assert tracker.last_activity_ns is None


def test_motion_streak_breaks_on_a_gap() -> None:
    tracker = ActivityTracker([])
    for t in (0.0, 0.5, 1.0, 1.5, 2.0):
        tracker.on_motion(int(t * S))
    assert tracker.motion_for_s(int(2.0 * S)) == 2.0
    tracker.on_motion(int(4.0 * S))  # 2 s without motion, then motion again
    assert tracker.motion_for_s(int(4.0 * S)) == 0.0
    assert tracker.motion_for_s(int(6.0 * S)) == 0.0  # and nothing since
