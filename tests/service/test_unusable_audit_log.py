"""A recorder that cannot write its audit log refuses to start with a plain reason and exit 78,
which the unit's RestartPreventExitStatus=78 takes as final, instead of a traceback and a restart
every 5 seconds that could never succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.keys import Identity

EX_CONFIG = 78


def station(tmp: Path, audit_log: Path) -> Path:
    path = tmp / "station.toml"
    path.write_text(
        f"""
[station]
control_socket = "{tmp / "control.sock"}"

[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15

[storage]
directory = "{tmp / "recordings"}"
audit_log = "{audit_log}"
recipients = ["{Identity.generate().recipient}"]
"""
    )
    return path


def run_recorder(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_an_audit_log_that_cannot_be_created_is_a_config_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "audit"
    blocker.write_text("")  # a file where the audit log's folder should be
    done = run_recorder(station(tmp_path, blocker / "audit.jsonl"))
    assert done.returncode == EX_CONFIG, done.stderr
    assert f"storage.audit_log: {blocker}: {blocker} is not a directory" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_audit_folder_without_write_access_is_a_config_problem(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = run_recorder(station(tmp_path, locked / "audit.jsonl"))
    assert done.returncode == EX_CONFIG, done.stderr
    assert "Permission denied" in done.stderr and "Traceback" not in done.stderr
