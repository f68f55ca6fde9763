"""``sessions``, ``hold``, ``release`` and ``delete`` work on the storage directly when no recorder
answers, under the storage's lock, and are audited like through the recorder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from session.layout import LEGAL_HOLD, retention_state_path
from session.lock import StorageLock
from store.keys import Identity


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60, check=False
    )


def station(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose recorder is not running, and one stored session."""
    storage = tmp_path / "recordings"
    session = storage / "20261204T010000Z-abcdef"
    session.mkdir(parents=True)
    (session / "closeup-000001.ts.age").write_bytes(b"x" * 100)
    config = tmp_path / "station.toml"
    config.write_text(
        f"""
[station]
control_socket = "{tmp_path / "control.sock"}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
[storage]
directory = "{storage}"
recipients = ["{Identity.generate().recipient}"]
"""
    )
    return config, session


def test_sessions_hold_release_and_delete_with_the_recorder_down(tmp_path: Path) -> None:
    config, session = station(tmp_path)
    listed = cli("sessions", "--json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert "does not answer" in listed.stderr  # said on stderr: stdout stays JSON
    assert [s["session"] for s in json.loads(listed.stdout)["sessions"]] == [session.name]
    assert not retention_state_path(session.parent).exists() and not (tmp_path / "audit.jsonl").exists()
    held = cli("hold", session.name, "--config", str(config))
    assert held.returncode == 0 and "under legal hold" in held.stdout
    assert json.loads((session / LEGAL_HOLD).read_text())["by"] == "command line"
    refused = cli("delete", session.name, "--config", str(config))
    assert refused.returncode == 1 and "legal hold" in refused.stderr and session.exists()
    assert "LEGAL HOLD" in cli("sessions", "--config", str(config)).stdout
    assert cli("release", session.name, "--config", str(config)).returncode == 0
    deleted = cli("delete", session.name, "--config", str(config))
    assert deleted.returncode == 0, deleted.stderr
    assert not session.exists()
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e["event"], e["session"], e["by"]) for e in audit] == [
        ("legal_hold_set", session.name, "command line"),
        ("legal_hold_released", session.name, "command line"),
        ("session_deleted", session.name, "command line"),
    ]


def test_nothing_is_changed_while_another_process_holds_the_storage(tmp_path: Path) -> None:
    config, session = station(tmp_path)
    lock = StorageLock.acquire(session.parent, holder="a recorder")  # alive, its socket not answering
    try:
        for cmd in ("hold", "delete"):
            refused = cli(cmd, session.name, "--config", str(config))
            assert refused.returncode == 69 and "in use" in refused.stderr, refused.stderr
    finally:
        lock.release()
    assert (session / "closeup-000001.ts.age").exists() and not (session / LEGAL_HOLD).exists()
    assert not (tmp_path / "audit.jsonl").exists()
