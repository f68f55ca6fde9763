"""``sessions``, ``hold``, ``release`` and ``delete`` work on the storage directly when no recorder
answers, under the storage's lock, and are audited like through the recorder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from store.keys import Identity


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_sessions_hold_release_and_delete_with_the_recorder_down(tmp_path: Path) -> None:
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
    listed = cli("sessions", "--json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert [s["session"] for s in json.loads(listed.stdout)["sessions"]] == [session.name]
    assert cli("hold", session.name, "--config", str(config)).returncode == 0
    refused = cli("delete", session.name, "--config", str(config))
    assert refused.returncode == 1 and "legal hold" in refused.stderr and session.exists()
    assert "LEGAL HOLD" in cli("sessions", "--config", str(config)).stdout
    assert cli("release", session.name, "--config", str(config)).returncode == 0
    deleted = cli("delete", session.name, "--config", str(config))
    assert deleted.returncode == 0, deleted.stderr
    assert not session.exists()
    events = [json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert events == ["legal_hold_set", "legal_hold_released", "session_deleted"]
