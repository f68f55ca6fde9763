"""The real daemon starts and stops by itself with the stabilisation, and forgets on request.

A simulated Masimo oximeter on a pty: the sensor goes on (valid values) → a recording starts
by itself, beginning with its pre-roll; the sensor comes off → it stops after the post-roll; a
discard destroys a recording entirely and "do not record" keeps the trigger from starting again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from session.layout import COLLECTED, retention_state_path
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

pytestmark = pytest.mark.slow

PREROLL_S = 3
POST_ROLL_S = 10
HOLD_S = 2


def cli(sock: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "--socket", str(sock)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(out.stdout) if "--json" in args else {"text": out.stdout}


def status(sock: Path) -> dict[str, Any]:
    return cli(sock, "status", "--json")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def station(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, MasimoSimulator, Path]]:
    options: dict[str, Any] = getattr(request, "param", {})
    identity = tmp_path / "id.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()
    pty = open_pty_pair()
    # Sensor on after 1 s, values after a 1 s pulse search: a stabilisation compressed.
    script = StabilisationScript(no_sensor_s=1.0, acquire_s=1.0)
    simulator = MasimoSimulator(pty.master_fd, interval_s=0.5, script=script)
    sock = tmp_path / "control.sock"
    config = tmp_path / "station.toml"
    config.write_text(
        f"""
[station]
control_socket = "{sock}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{pty.slave_path}"
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{tmp_path / 'recordings'}"
segment_seconds = 4
recipients = ["{recipient}"]
[session]
preroll_s = {PREROLL_S}
[triggers]
vitals_hold_s = {HOLD_S}
post_roll_s = {POST_ROLL_S}
[logging]
format = "json"
"""
    )
    seen = {}
    for name in options.get("stored_sessions", ()):  # left from earlier recordings
        old = tmp_path / "recordings" / name
        old.mkdir(parents=True)
        (old / "closeup-000001.ts.age").write_bytes(b"age-encryption.org/v1\n" + bytes(4096))
        (old / COLLECTED).write_text("")  # the archive has it: retention may destroy it
        seen[name] = "2020-01-01T00:00:00+00:00"  # and this recorder has known it that long
    if seen:
        retention_state_path(tmp_path / "recordings").write_text(json.dumps(seen))
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "run", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(sock.exists, 30, "the control socket")
        # Let the pre-roll fill before the sensor goes on.
        time.sleep(PREROLL_S + 1)
        yield sock, simulator, tmp_path
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        simulator.stop()
        pty.close()
        log.close()


def age_decrypt(path: Path, identity: Path) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], capture_output=True, check=True
    ).stdout


def test_sensor_on_starts_with_preroll_and_sensor_off_stops_after_post_roll(
    station: tuple[Path, MasimoSimulator, Path],
) -> None:
    sock, simulator, tmp = station
    assert status(sock)["state"] == "idle"
    simulator.start()
    took = wait_until(lambda: status(sock)["state"] == "recording", 20, "the automatic start")
    now = status(sock)
    assert now["automatic"] and "vitals valid" in now["reason"]
    assert took < 1.0 + 1.0 + HOLD_S + 3.0  # sensor on + pulse search + hold, plus slack

    time.sleep(3)
    simulator.sensor_off()
    stop_wait = wait_until(lambda: status(sock)["state"] == "idle", POST_ROLL_S + 15, "the stop")
    assert stop_wait >= POST_ROLL_S - 1.5  # not before the post-roll ...
    last = status(sock)["last_session"]
    assert "activity_ended" in last["reason"]
    assert not last["discarded"]

    manifest = json.loads(age_decrypt(Path(last["path"]) / "manifest.json.age", tmp / "id.txt"))
    first = min(s["start_s"] for s in manifest["segments"])
    assert manifest["started_s"] - first >= PREROLL_S  # the recording begins before the trigger
    vitals = [
        json.loads(line)
        for line in age_decrypt(Path(last["path"]) / "vitals.jsonl.age", tmp / "id.txt").splitlines()
    ]
    # The vitals of the pre-roll are there, including the "no sensor" lines before the trigger.
    assert any(not v["valid"] for v in vitals if v["t"] < manifest["started_s"])
    assert any(v["valid"] and v["parameter"] == "SpO2" for v in vitals)


def test_discard_destroys_the_recording_and_do_not_record_holds_off_the_trigger(
    station: tuple[Path, MasimoSimulator, Path],
) -> None:
    sock, simulator, tmp = station
    simulator.start()
    wait_until(lambda: status(sock)["state"] == "recording", 20, "the automatic start")
    time.sleep(5)  # at least one segment closed
    session = Path(status(sock)["session"] and (tmp / "recordings" / status(sock)["session"]))
    assert any(session.iterdir())

    reply = cli(sock, "discard")
    assert "discarded" in reply["text"]
    assert not session.exists()
    after = status(sock)
    assert after["state"] == "idle" and after["do_not_record"]
    assert after["last_session"]["discarded"]

    # Valid vitals keep coming, yet nothing starts again while "do not record" holds.
    time.sleep(HOLD_S + 3)
    assert status(sock)["state"] == "idle"
    assert not any((tmp / "recordings").iterdir())

    cli(sock, "allow-recording")
    wait_until(lambda: status(sock)["state"] == "recording", HOLD_S + 10, "the trigger again")

    # The audit log says what happened, holds no patient data, and its chain is intact.
    audit = tmp / "audit.jsonl"
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    events = [e["event"] for e in entries]
    assert events[:5] == [
        "service_started", "recording_started", "recording_discarded", "do_not_record_set",
        "do_not_record_cleared",
    ]
    discarded = entries[2]
    assert discarded["session"] == session.name and discarded["files"] >= 3
    verified = subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", "verify", str(audit)],
        capture_output=True, text=True, check=False,
    )
    assert verified.returncode == 0 and "chain intact" in verified.stdout


def test_markers_and_birth_time_are_recorded(station: tuple[Path, MasimoSimulator, Path]) -> None:
    sock, _simulator, tmp = station
    cli(sock, "mark", "birth")
    time.sleep(1.0)
    cli(sock, "start")
    cli(sock, "mark", "intubation")
    assert status(sock)["since_birth_s"] >= 1.0
    time.sleep(2)
    cli(sock, "stop")
    last = status(sock)["last_session"]
    markers = [
        json.loads(line)
        for line in age_decrypt(Path(last["path"]) / "markers.jsonl.age", tmp / "id.txt").splitlines()
    ]
    assert [m["label"] for m in markers] == ["birth", "intubation"]
    assert markers[0]["t"] < markers[1]["t"] - 1.0

    out = tmp / "export"
    subprocess.run(
        [sys.executable, "-m", "cli.main", "export", last["path"], "--identity",
         str(tmp / "id.txt"), "--out", str(out)],
        check=True, capture_output=True,
    )
    rows = (out / "markers.csv").read_text().splitlines()
    assert rows[0].split(",") == ["utc", "t_since_start_s", "t_since_birth_s", "label", "by"]
    birth, intubation = (r.split(",") for r in rows[1:])
    assert birth[3] == "birth" and float(birth[2]) == 0.0
    assert intubation[3] == "intubation" and float(intubation[2]) >= 1.0
    assert float(intubation[1]) >= 0.0  # after the recording's first frame (pre-roll included)


OLD_SESSION = "20200101T000000Z-0a0b0c"


@pytest.mark.parametrize("station", [{"stored_sessions": [OLD_SESSION]}], indirect=True)
def test_retention_and_withdrawn_consent_delete_stored_sessions(
    station: tuple[Path, MasimoSimulator, Path],
) -> None:
    sock, _simulator, tmp = station
    recordings = tmp / "recordings"
    # A session from years ago is past the retention period (30 days by default): gone at start.
    wait_until(lambda: not (recordings / OLD_SESSION).exists(), 10, "the retention rule")

    cli(sock, "start")
    time.sleep(2)
    cli(sock, "stop")
    last = status(sock)["last_session"]
    listed = cli(sock, "sessions", "--json")
    assert listed["retention_days"] == 30
    assert [s["session"] for s in listed["sessions"]] == [last["session"]]
    stored = listed["sessions"][0]
    assert stored["complete"] and stored["files"] >= 4  # a segment, vitals, markers, manifest
    started = datetime.fromisoformat(stored["started_utc"])
    assert datetime.fromisoformat(stored["deleted_after_utc"]) - started == timedelta(days=30)
    assert last["session"] in cli(sock, "sessions")["text"]

    # Exported for review where it was recorded: the audit log says so.
    subprocess.run(
        [sys.executable, "-m", "cli.main", "export", last["path"], "--identity",
         str(tmp / "id.txt"), "--out", str(tmp / "export")],
        check=True, capture_output=True,
    )  # fmt: skip

    # The one being recorded cannot be deleted, only discarded.
    cli(sock, "start")
    current = status(sock)["session"]
    refused = subprocess.run(
        [sys.executable, "-m", "cli.main", "delete", current, "--socket", str(sock)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "being recorded" in refused.stderr
    assert (recordings / current).is_dir()

    # Consent withdrawn after the recording: the stored session is destroyed.
    deleted = cli(sock, "delete", last["session"])
    assert "deleted" in deleted["text"]
    assert not Path(last["path"]).exists()
    assert [s["session"] for s in cli(sock, "sessions", "--json")["sessions"]] == [current]

    audit = [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]
    gone = [e for e in audit if e["event"] == "session_deleted"]
    assert [(e["session"], e["by"]) for e in gone] == [
        (OLD_SESSION, "retention"),
        (last["session"], "command line"),
    ]
    assert gone[0]["retention_days"] == 30 and gone[0]["files"] == 2  # the segment and the mark
    assert gone[1]["files"] == stored["files"]
    exported = [e for e in audit if e["event"] == "session_exported"]
    assert len(exported) == 1 and exported[0]["session"] == last["session"]
    assert exported[0]["cameras"] == ["closeup"]
