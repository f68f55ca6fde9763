"""The control socket's commands: each maps to one event, a marker or a question, and who asked is
only ever a known client's name."""

from __future__ import annotations

from typing import Any

from recorder.commands import COMMANDS, ControlCommands
from session.machine import Event


class FakeController:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, str]] = []

    def handle(self, event: Event, *, by: str) -> dict[str, Any]:
        self.calls.append(("handle", event, by))
        return {"ok": True, "note": str(event)}

    def mark(self, label: str, *, by: str) -> dict[str, Any]:
        self.calls.append(("mark", label, by))
        return {"ok": True, "note": "marked"}

    def discard(self, *, by: str) -> dict[str, Any]:
        self.calls.append(("discard", None, by))
        return {"ok": True, "note": "discarded"}


class FakeKeeper:
    retention_days = 30

    def __init__(self) -> None:
        self.deleted: list[tuple[str, str]] = []

    def sessions(self) -> list[dict[str, Any]]:
        return [{"session": "20261204T010000Z-abcdef"}]

    def delete(self, session: str, *, by: str) -> dict[str, Any]:
        self.deleted.append((session, by))
        return {"ok": True}


class Idle:
    """A status whose wire format is just the state."""

    def to_json(self) -> dict[str, Any]:
        return {"state": "idle"}


def commands() -> tuple[ControlCommands, FakeController, FakeKeeper]:
    controller, keeper = FakeController(), FakeKeeper()
    handler = ControlCommands(controller, keeper, Idle)  # type: ignore[arg-type]
    return handler, controller, keeper


def test_each_state_command_is_one_event_and_the_reply_carries_the_status() -> None:
    handler, controller, _ = commands()
    for cmd, event in [("start", Event.START), ("stop", Event.STOP), ("toggle", Event.TOGGLE),
                       ("do-not-record", Event.DO_NOT_RECORD), ("allow-recording", Event.ALLOW_RECORDING)]:
        reply = handler.handle({"cmd": cmd, "by": "command line"})
        assert reply == {"ok": True, "note": str(event), "state": "idle"}
        assert controller.calls[-1] == ("handle", event, "command line")


def test_free_text_in_by_is_recorded_as_the_control_socket() -> None:
    handler, controller, keeper = commands()
    handler.handle({"cmd": "mark", "label": "birth", "by": "Baby Jansen, MRN 123456"})
    handler.handle({"cmd": "discard", "by": "Baby Jansen"})
    handler.handle({"cmd": "delete", "session": "20261204T010000Z-abcdef", "by": "MRN 123456"})
    assert controller.calls == [("mark", "birth", "control socket"), ("discard", None, "control socket")]
    assert keeper.deleted == [("20261204T010000Z-abcdef", "control socket")]


def test_sessions_and_status_are_answered_without_an_event() -> None:
    handler, controller, _ = commands()
    assert handler.handle({"cmd": "status"}) == {"ok": True, "state": "idle"}
    listed = handler.handle({"cmd": "sessions"})
    assert listed["retention_days"] == 30 and len(listed["sessions"]) == 1
    assert controller.calls == []


def test_an_unknown_command_is_refused_with_the_known_ones() -> None:
    handler, controller, _ = commands()
    reply = handler.handle({"cmd": "format-disk"})
    assert reply["ok"] is False and "format-disk" in reply["error"]
    assert all(name in reply["error"] for name in COMMANDS)
    assert controller.calls == []
