"""``hold`` and ``release`` through the control socket reach the session keeper, and who asked is
recorded only as a known client's name, in the audit entry and in the hold mark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recorder.commands import COMMANDS, ControlCommands
from session.layout import LEGAL_HOLD
from session.retention import SessionKeeper

SESSION = "20261204T010000Z-abcdef"


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, event: str, **fields: Any) -> None:
        self.entries.append({"event": event, **fields})


def test_hold_and_release_through_the_control_socket(tmp_path: Path) -> None:
    (tmp_path / SESSION).mkdir()
    (tmp_path / SESSION / "closeup-000001.ts.age").write_bytes(b"x")
    audit = Audit()
    keeper = SessionKeeper(tmp_path, 30, lambda: None, audit=audit)
    handler = ControlCommands(None, keeper, None)  # type: ignore[arg-type]  # neither is asked
    assert {"hold", "release"} <= COMMANDS

    held = handler.handle({"cmd": "hold", "session": SESSION, "by": "Dr. Jansen, NICU"})
    assert held["ok"] and json.loads((tmp_path / SESSION / LEGAL_HOLD).read_text())["by"] == "control socket"
    listed = handler.handle({"cmd": "sessions"})
    assert listed["sessions"][0]["legal_hold"] is True
    refused = handler.handle({"cmd": "delete", "session": SESSION, "by": "command line"})
    assert not refused["ok"] and "legal hold" in refused["error"]
    assert handler.handle({"cmd": "release", "session": SESSION, "by": "command line"})["ok"]
    assert not (tmp_path / SESSION / LEGAL_HOLD).exists()
    assert [(e["event"], e["by"]) for e in audit.entries] == [
        ("legal_hold_set", "control socket"),
        ("legal_hold_released", "command line"),
    ]
    unknown = handler.handle({"cmd": "hold", "session": "../etc", "by": "command line"})
    assert not unknown["ok"] and "no session" in unknown["error"]
