"""scripts/install's judgement about a recorder that is running now, against a fake one: which
programs an upgrade may prune, and whether it may restart the service.

The script is sourced (it then only defines its helpers); systemd is a shell function standing
in for ``systemctl``, and the running recorder is a real process whose argv[0] is the python of
the virtualenv it was started from, as the service's is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[2] / "scripts" / "install"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_helpers(prefix: Path, script: str, pid: int = 0) -> subprocess.CompletedProcess[str]:
    harness = f"""
source {INSTALL}
prefix={prefix}
config={prefix}/config.toml
live_systemd() {{ true; }}
systemctl() {{ [ "$*" = "show -p MainPID --value neoflix-capture.service" ] && echo {pid}; }}
{script}
"""
    done = subprocess.run(["bash", "-c", harness], capture_output=True, text=True, timeout=60, check=False)
    print(done.stdout + done.stderr)
    return done


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    return tmp_path / "opt" / "neoflix-capture"


def make_venvs(prefix: Path, names: list[str]) -> None:
    """Virtualenv folders, oldest first; the last is the active one."""
    for age, name in enumerate(reversed(names)):
        venv = prefix / "venvs" / name
        (venv / "bin").mkdir(parents=True)
        when = time.time() - 3600 * (age + 1)
        os.utime(venv, (when, when))
    (prefix / "venv").symlink_to(f"venvs/{names[-1]}")


def started_from(prefix: Path, name: str, started: list[subprocess.Popen[bytes]]) -> int:
    argv0 = str(prefix / "venvs" / name / "bin" / "python")
    proc = subprocess.Popen(["bash", "-c", 'exec -a "$0" sleep 60', argv0])
    started.append(proc)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until exec has replaced bash's argv
        if Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(argv0.encode()):
            break
        time.sleep(0.01)
    return proc.pid


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_the_program_a_running_recorder_uses_is_never_pruned(
    prefix: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    # Two upgrades during recordings, no restart: the recorder still runs from the first program.
    make_venvs(prefix, ["0.1-a", "0.1-b", "0.1-c", "0.1-d"])
    pid = started_from(prefix, "0.1-a", started)
    done = run_helpers(prefix, "running_venv; prune_venvs", pid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "venvs/0.1-a"
    kept = sorted(p.name for p in (prefix / "venvs").iterdir())
    assert kept == ["0.1-a", "0.1-c", "0.1-d"]  # running, the one before the active, the active


def test_without_a_running_recorder_the_active_and_the_one_before_stay(prefix: Path) -> None:
    make_venvs(prefix, ["0.1-a", "0.1-b", "0.1-c", "0.1-d"])
    done = run_helpers(prefix, "prune_venvs", pid=0)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (prefix / "venvs").iterdir()) == ["0.1-c", "0.1-d"]


@pytest.mark.parametrize(
    ("answer", "exit_code", "restart", "unanswered"),
    [
        ('{"ok": true, "state": "idle"}', 0, True, "0"),
        ('{"ok": true, "state": "recording"}', 0, False, "0"),
        # No answer from a service that is active: busy or stuck, it may be recording.
        ('{"ok": false, "state": "unreachable", "error": "timed out"}', 69, False, "1"),
    ],
)
def test_an_upgrade_restarts_only_a_recorder_known_not_to_be_recording(
    prefix: Path, answer: str, exit_code: int, restart: bool, unanswered: str
) -> None:
    make_venvs(prefix, ["0.1-a"])
    program = prefix / "venvs" / "0.1-a" / "bin" / "neoflix-capture"
    program.write_text(f"#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\nexit {exit_code}\n")
    program.chmod(0o755)
    done = run_helpers(
        prefix, 'if recording_now; then echo "keep $unanswered"; else echo "restart $unanswered"; fi'
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["restart" if restart else "keep", unanswered]


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder any user can reach (pytest's own tmp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="neoflix-install-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="running a check as another user needs root")
def test_the_config_is_checked_as_the_service_user(open_folder: Path) -> None:
    prefix = open_folder / "opt" / "neoflix-capture"
    make_venvs(prefix, ["0.1-a"])
    (prefix / "venvs").chmod(0o755)
    program = prefix / "venvs" / "0.1-a" / "bin" / "neoflix-capture"
    # Stands in for check-config: reads the config as whoever runs it, says who that is.
    program.write_text('#!/bin/sh\nid -un\ncat "$2" >/dev/null\n')
    program.chmod(0o755)
    config = prefix / "config.toml"
    config.write_text("[station]\n")
    script = f'user=nobody; if check_config {prefix}/venv; then echo passed; else echo refused; fi'

    config.chmod(0o600)  # root's alone: root could read it, the service cannot
    assert run_helpers(prefix, script).stdout.split() == ["nobody", "refused"]
    config.chmod(0o644)
    assert run_helpers(prefix, script).stdout.split() == ["nobody", "passed"]


def test_the_table_options_render_as_strings_whatever_they_look_like(tmp_path: Path) -> None:
    # A table slug "3" or an overlay name "true" must not become a number or a boolean.
    harness = f"""
source {INSTALL} --table-name 'Resus "3" \\ east' --site 7 --table 3 --set storage.retention_days=14
config={tmp_path}/none.toml
out="$(render_config)"; cat "$out"; rm -f "$out"
"""
    done = subprocess.run(["bash", "-c", harness], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(done.stdout)
    assert data["station"]["table"] == 'Resus "3" \\ east'
    assert (data["collection"]["site"], data["collection"]["table"]) == ("7", "3")
    assert data["storage"]["retention_days"] == 14
    assert data["cameras"][0]["name"] == "closeup"  # the rest is the example's
