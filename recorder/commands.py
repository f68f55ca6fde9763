"""What the control socket's commands do: one request in, one reply out.

``neoflix-capture start|stop|status|mark|discard|...`` send one JSON object naming a command; this
module turns it into a session-control event (``session.controller``), a marker, a question or
order to the session keeper (``sessions``, ``delete``, ``hold``, ``release``) or the daemon's
status, and says what happened.
Who asked (``by``) is recorded only as one of a few known client names, never as free text.

Threads: ``handle`` runs on a control-socket thread per connection; session control carries out
the events on its own thread and this thread waits for the reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.status import RecorderStatus
from session.controller import SessionController, socket_client
from session.machine import Event
from session.retention import SessionKeeper

# Commands that are one event of the state machine.
EVENTS = {
    "start": Event.START,
    "stop": Event.STOP,
    "toggle": Event.TOGGLE,
    "discard": Event.DISCARD,
    "do-not-record": Event.DO_NOT_RECORD,
    "allow-recording": Event.ALLOW_RECORDING,
}
COMMANDS = frozenset({*EVENTS, "delete", "hold", "mark", "release", "sessions", "status"})


class ControlCommands:
    """The control socket's handler: ``handle(request) -> reply``."""

    def __init__(
        self,
        controller: SessionController,
        keeper: SessionKeeper,
        status: Callable[[], RecorderStatus],
    ) -> None:
        self._controller = controller
        self._keeper = keeper
        self._read_status = status

    def _status(self) -> dict[str, Any]:
        return self._read_status().to_json()  # the wire format

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        by = socket_client(request.get("by"))  # a known client's name, never free text
        if cmd == "status":
            return {"ok": True, **self._status()}
        if cmd == "mark":
            reply = self._controller.mark(str(request.get("label", "")), by=by)
            return {**reply, **self._status()}
        if cmd == "sessions":
            keeper = self._keeper
            return {"ok": True, "retention_days": keeper.retention_days, "sessions": keeper.sessions()}
        if cmd == "delete":
            return self._keeper.delete(str(request.get("session", "")), by=by)
        if cmd in ("hold", "release"):  # a legal hold: nothing deletes the session while it holds
            return self._keeper.hold(str(request.get("session", "")), by=by, on=cmd == "hold")
        if cmd == "discard":  # also destroys a recording a person stopped moments ago
            return {**self._controller.discard(by=by), **self._status()}
        event = EVENTS.get(cmd)
        if event is None:
            return {"ok": False, "error": f"unknown command {cmd!r} (known: {', '.join(sorted(COMMANDS))})"}
        return {**self._controller.handle(event, by=by), **self._status()}
