"""Every state × command combination of the recording state machine."""

from __future__ import annotations

import pytest

from control.session import Action, Command, State, decide

TABLE = [
    (State.IDLE, Command.START, State.RECORDING, Action.BEGIN),
    (State.IDLE, Command.STOP, State.IDLE, Action.NONE),
    (State.IDLE, Command.MAX_DURATION, State.IDLE, Action.NONE),
    (State.IDLE, Command.SHUTDOWN, State.IDLE, Action.NONE),
    (State.RECORDING, Command.START, State.RECORDING, Action.NONE),
    (State.RECORDING, Command.STOP, State.IDLE, Action.END),
    (State.RECORDING, Command.MAX_DURATION, State.IDLE, Action.END),
    (State.RECORDING, Command.SHUTDOWN, State.IDLE, Action.END),
]


@pytest.mark.parametrize(("state", "command", "new_state", "action"), TABLE)
def test_transition(state: State, command: Command, new_state: State, action: Action) -> None:
    decision = decide(state, command)
    assert (decision.state, decision.action) == (new_state, action)
    assert decision.note


def test_table_covers_every_combination() -> None:
    assert {(s, c) for s, c, *_ in TABLE} == {(s, c) for s in State for c in Command}
