"""Every state × event combination of the recording state machine, as a table."""

from __future__ import annotations

import pytest

from session.machine import Action, Decision, Event, Mode, SessionState, decide

idle = SessionState(Mode.IDLE, False, False)
idle_dnr = SessionState(Mode.IDLE, True, False)
idle_held = SessionState(Mode.IDLE, False, False, held=True)  # stopped by hand, vitals go on
manual = SessionState(Mode.RECORDING, False, False)
auto = SessionState(Mode.RECORDING, False, True)

# (state, event) → (new state, action)
TABLE: list[tuple[SessionState, Event, SessionState, Action]] = [
    # a person starts
    (idle, Event.START, manual, Action.BEGIN),
    (idle_dnr, Event.START, manual, Action.BEGIN),  # a deliberate start lifts do-not-record
    (manual, Event.START, manual, Action.NONE),
    (auto, Event.START, manual, Action.NONE),  # taken over: ends by hand only
    # the button's short press
    (idle, Event.TOGGLE, manual, Action.BEGIN),
    (idle_dnr, Event.TOGGLE, manual, Action.BEGIN),
    (manual, Event.TOGGLE, idle_held, Action.END),
    (auto, Event.TOGGLE, idle_held, Action.END),
    # a person stops
    (idle, Event.STOP, idle, Action.NONE),
    (idle_dnr, Event.STOP, idle_dnr, Action.NONE),
    (manual, Event.STOP, idle_held, Action.END),
    (auto, Event.STOP, idle_held, Action.END),
    # a trigger sees a stabilisation begin
    (idle, Event.AUTO_START, auto, Action.BEGIN),
    (idle_dnr, Event.AUTO_START, idle_dnr, Action.NONE),  # suppressed
    (manual, Event.AUTO_START, manual, Action.NONE),
    (auto, Event.AUTO_START, auto, Action.NONE),
    # the post-roll ran out
    (idle, Event.ACTIVITY_ENDED, idle, Action.NONE),
    (idle_dnr, Event.ACTIVITY_ENDED, idle, Action.NONE),  # the stabilisation ended: lifted
    (manual, Event.ACTIVITY_ENDED, manual, Action.NONE),  # never stop a manual one early
    (auto, Event.ACTIVITY_ENDED, idle, Action.END),
    # limits and shutdown keep what was recorded
    (idle, Event.MAX_DURATION, idle, Action.NONE),
    (idle_dnr, Event.MAX_DURATION, idle_dnr, Action.NONE),
    (manual, Event.MAX_DURATION, idle_held, Action.END),
    (auto, Event.MAX_DURATION, idle_held, Action.END),
    (idle, Event.SHUTDOWN, idle, Action.NONE),
    (idle_dnr, Event.SHUTDOWN, idle_dnr, Action.NONE),
    (manual, Event.SHUTDOWN, idle, Action.END),
    (auto, Event.SHUTDOWN, idle, Action.END),
    # consent refused
    (idle, Event.DISCARD, idle_dnr, Action.CLEAR_PREROLL),
    (idle_dnr, Event.DISCARD, idle_dnr, Action.CLEAR_PREROLL),
    (manual, Event.DISCARD, idle_dnr, Action.DISCARD),
    (auto, Event.DISCARD, idle_dnr, Action.DISCARD),  # and no instant restart by the trigger
    # do not record
    (idle, Event.DO_NOT_RECORD, idle_dnr, Action.CLEAR_PREROLL),
    (idle_dnr, Event.DO_NOT_RECORD, idle_dnr, Action.CLEAR_PREROLL),
    (manual, Event.DO_NOT_RECORD, manual, Action.NONE),
    (auto, Event.DO_NOT_RECORD, auto, Action.NONE),
    (idle, Event.ALLOW_RECORDING, idle, Action.NONE),
    (idle_dnr, Event.ALLOW_RECORDING, idle, Action.NONE),
    (manual, Event.ALLOW_RECORDING, manual, Action.NONE),
    (auto, Event.ALLOW_RECORDING, auto, Action.NONE),
    # stopped by hand while the stabilisation goes on: no automatic restart until it ends
    (idle_held, Event.START, manual, Action.BEGIN),
    (idle_held, Event.TOGGLE, manual, Action.BEGIN),
    (idle_held, Event.STOP, idle_held, Action.NONE),
    (idle_held, Event.AUTO_START, idle_held, Action.NONE),
    (idle_held, Event.ACTIVITY_ENDED, idle, Action.NONE),
    (idle_held, Event.MAX_DURATION, idle_held, Action.NONE),
    (idle_held, Event.SHUTDOWN, idle_held, Action.NONE),
    (idle_held, Event.DISCARD, idle_dnr, Action.CLEAR_PREROLL),
    (idle_held, Event.DO_NOT_RECORD, idle_dnr, Action.CLEAR_PREROLL),
    (idle_held, Event.ALLOW_RECORDING, idle, Action.NONE),
]


@pytest.mark.parametrize(("state", "event", "new_state", "action"), TABLE)
def test_transition(state: SessionState, event: Event, new_state: SessionState, action: Action) -> None:
    decision = decide(state, event)
    assert (decision.state, decision.action) == (new_state, action)
    assert decision.note


def test_table_covers_every_combination() -> None:
    states = {idle, idle_dnr, idle_held, manual, auto}
    assert {(s, e) for s, e, *_ in TABLE} == {(s, e) for s in states for e in Event}


def test_discard_then_trigger_does_not_record_again_until_the_stabilisation_ends() -> None:
    d: Decision = decide(auto, Event.DISCARD)
    d = decide(d.state, Event.AUTO_START)
    assert d.action is Action.NONE and "suppressed" in d.note
    d = decide(d.state, Event.ACTIVITY_ENDED)
    assert decide(d.state, Event.AUTO_START).action is Action.BEGIN


def test_a_stop_by_hand_is_not_undone_by_the_trigger() -> None:
    d = decide(auto, Event.STOP)
    assert decide(d.state, Event.AUTO_START).action is Action.NONE
    d = decide(d.state, Event.ACTIVITY_ENDED)  # the baby left the table; the next one may come
    assert decide(d.state, Event.AUTO_START).action is Action.BEGIN


def test_a_restarted_service_is_not_held() -> None:
    assert decide(auto, Event.SHUTDOWN).state == idle
