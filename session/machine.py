"""The recording state machine: which event moves the recorder where, as a pure function.

Kept free of threads, clocks and I/O so every combination of state and event is a row in a table
test. Triggers (vitals, motion, the bedside button, the control socket, timers) only ever produce
events for this function; they never start or stop anything themselves.

The rules, in the words of the people who use it:
- Never start late: an automatic trigger starts a recording (with its pre-roll) unless the team
  has said "do not record" for this patient.
- Never stop early: a recording someone started by hand ends by hand (or at the maximum
  duration); one that started by itself ends by itself after the post-roll. Asking to start an
  automatic recording that is already running makes it a manual one.
- A stop means stop: after a person stops a recording (or it reaches its maximum duration) the
  sensor is usually still on the baby, and the trigger must not start a new recording at once.
  Automatic starts wait ("held") until the stabilisation has ended; a manual start still works.
- Consent refused: a discard destroys the recording, pre-roll included, and sets "do not
  record", or the still-valid vitals would start a new recording at once.
- "Do not record" suppresses automatic starts and keeps no pre-roll until it is lifted or the
  stabilisation ends; set before the baby came, it lasts until that baby's stabilisation has
  begun and ended (``session.triggers``). A deliberate manual start still records (and lifts
  it): a person asked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Mode(enum.StrEnum):
    IDLE = "idle"
    RECORDING = "recording"


class Event(enum.StrEnum):
    START = "start"  # a person asks to record (button, command line)
    STOP = "stop"  # a person asks to stop, keeping what was recorded
    TOGGLE = "toggle"  # the button's short press: start when idle, stop when recording
    AUTO_START = "auto_start"  # a trigger saw a stabilisation begin (vitals, motion)
    ACTIVITY_ENDED = "activity_ended"  # no trigger activity for the post-roll time
    MAX_DURATION = "max_duration"  # the recording reached its configured limit
    DISCARD = "discard"  # consent refused: destroy the recording, pre-roll included
    DO_NOT_RECORD = "do_not_record"  # suppress automatic starts for this patient
    ALLOW_RECORDING = "allow_recording"  # lift "do not record"
    SHUTDOWN = "shutdown"  # the service is stopping


class Action(enum.StrEnum):
    NONE = "none"
    BEGIN = "begin"  # open a session: pre-roll and live packets go to segments
    END = "end"  # close the session, keeping its files
    DISCARD = "discard"  # close the session and destroy its files; clear the pre-roll
    CLEAR_PREROLL = "clear_preroll"  # forget the pre-roll (nothing was being recorded)


@dataclass(frozen=True, slots=True)
class SessionState:
    mode: Mode = Mode.IDLE
    do_not_record: bool = False
    automatic: bool = False  # the current recording was started by a trigger
    held: bool = False  # stopped by hand while the stabilisation goes on: no automatic start yet

    @property
    def waiting_for_quiet(self) -> bool:
        """Automatic starts are off until the stabilisation ends (do-not-record, or held)."""
        return self.do_not_record or self.held


@dataclass(frozen=True, slots=True)
class Decision:
    state: SessionState
    action: Action
    note: str  # for the person who asked: what happened, or why nothing did


IDLE = SessionState()


def decide(state: SessionState, event: Event) -> Decision:
    recording = state.mode is Mode.RECORDING
    dnr = state.do_not_record

    if event is Event.TOGGLE:
        event = Event.STOP if recording else Event.START

    if event is Event.START:
        if recording:
            if state.automatic:
                # Someone confirms the automatic recording: from now on it ends by hand only.
                return Decision(
                    SessionState(Mode.RECORDING, False, False),
                    Action.NONE,
                    "already recording; it will now only stop when asked",
                )
            return Decision(state, Action.NONE, "already recording")
        note = "recording started" + (" (do-not-record lifted)" if dnr else "")
        return Decision(SessionState(Mode.RECORDING, False, False), Action.BEGIN, note)

    if event is Event.AUTO_START:
        if recording:
            return Decision(state, Action.NONE, "already recording")
        if dnr:
            return Decision(state, Action.NONE, "automatic start suppressed: do not record")
        if state.held:
            return Decision(
                state, Action.NONE, "automatic start waits: stopped by hand during this stabilisation"
            )
        return Decision(
            SessionState(Mode.RECORDING, False, True), Action.BEGIN, "recording started by trigger"
        )

    if event is Event.ACTIVITY_ENDED:
        if recording and state.automatic:
            return Decision(
                SessionState(Mode.IDLE, False, False), Action.END, "recording stopped: post-roll over"
            )
        if not recording and dnr:
            return Decision(IDLE, Action.NONE, "do-not-record lifted: the stabilisation ended")
        if not recording and state.held:
            return Decision(IDLE, Action.NONE, "automatic start re-armed: the stabilisation ended")
        return Decision(state, Action.NONE, "nothing to do")

    if event is Event.DISCARD:
        if recording:
            return Decision(
                SessionState(Mode.IDLE, True, False),
                Action.DISCARD,
                "recording discarded, pre-roll included; do not record is on",
            )
        return Decision(
            SessionState(Mode.IDLE, True, False),
            Action.CLEAR_PREROLL,
            "pre-roll discarded; do not record is on",
        )

    if event is Event.DO_NOT_RECORD:
        if recording:
            # Stopping someone's recording needs a deliberate stop or discard, not this.
            return Decision(state, Action.NONE, "recording: stop or discard it first")
        return Decision(
            SessionState(Mode.IDLE, True, False), Action.CLEAR_PREROLL, "do not record is on"
        )

    if event is Event.ALLOW_RECORDING:
        if not state.waiting_for_quiet:
            return Decision(state, Action.NONE, "recording was not suppressed")
        return Decision(
            SessionState(state.mode, False, state.automatic),
            Action.NONE,
            "do-not-record lifted" if dnr else "automatic start re-armed",
        )

    # STOP, MAX_DURATION, SHUTDOWN: end a recording, keeping it.
    if not recording:
        return Decision(state, Action.NONE, "not recording")
    note = {
        Event.STOP: "recording stopped",
        Event.MAX_DURATION: "recording stopped: maximum duration reached",
        Event.SHUTDOWN: "recording stopped: service shutting down",
    }[event]
    held = event is not Event.SHUTDOWN  # a restart of the service starts afresh
    return Decision(SessionState(Mode.IDLE, dnr, False, held), Action.END, note)
