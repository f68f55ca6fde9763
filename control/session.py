"""The recording state machine: which command moves the recorder where, as a pure function.

Kept free of threads and I/O so every combination of state and command is a row in a table
test. Triggers (vitals, motion, the bedside button) only ever produce commands for this function;
they never start or stop anything themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    IDLE = "idle"
    RECORDING = "recording"


class Command(enum.StrEnum):
    START = "start"  # someone or something asks to record
    STOP = "stop"  # someone asks to stop, keeping what was recorded
    MAX_DURATION = "max_duration"  # the recording reached its configured limit
    SHUTDOWN = "shutdown"  # the service is stopping


class Action(enum.StrEnum):
    NONE = "none"
    BEGIN = "begin"  # open a session: pre-roll and live packets go to segments
    END = "end"  # close the session, keeping its files


@dataclass(frozen=True, slots=True)
class Decision:
    state: State
    action: Action
    note: str  # for the person who asked: what happened, or why nothing did


def decide(state: State, command: Command) -> Decision:
    if state is State.IDLE:
        if command is Command.START:
            return Decision(State.RECORDING, Action.BEGIN, "recording started")
        return Decision(State.IDLE, Action.NONE, "not recording")
    if command is Command.START:
        return Decision(State.RECORDING, Action.NONE, "already recording")
    note = {
        Command.STOP: "recording stopped",
        Command.MAX_DURATION: "recording stopped: maximum duration reached",
        Command.SHUTDOWN: "recording stopped: service shutting down",
    }[command]
    return Decision(State.IDLE, Action.END, note)
