"""The real daemon, on synthetic sources, collecting into a real SeaweedFS on loopback: a session
arrives whole and verifies from the archive; the table's keys can neither read nor delete; the
archive down during a recording loses nothing and stores nothing twice; kill -9 while the
backlog drains resumes after the restart; a deletion request reaches the archive and the review
side applies it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_kit import ROOT, Station
from seaweed_kit import REVIEW_KEY, Seaweed, wait_for

from collect.collector import uploadable
from control.socket import request
from session.layout import COLLECTED, DELETION_REQUEST, collect_queue_path, deletion_requests_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def station(seaweed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    folder = tmp_path_factory.mktemp("station")
    keys = seaweed.write_credentials(folder / "collection.credentials")
    s = Station(folder, extra_config=seaweed.collection_toml(keys))
    s.start()
    try:
        yield s
    finally:
        s.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def archive_flags(seaweed: Seaweed, folder: Path) -> list[str]:
    keys = seaweed.write_credentials(folder / "reviewer.credentials", REVIEW_KEY)
    return ["--endpoint", seaweed.endpoint, "--bucket", seaweed.bucket, "--credentials", str(keys)]


def record(station: Station, seconds: float) -> str:
    session = str(request(station.socket, "start", by="command line")["session"])
    # A marker proves the markers file travels too.
    request(station.socket, "mark", label="birth", by="command line")
    wait_for("the recording's length", lambda: (_status(station).get("elapsed_s") or 0) >= seconds)
    request(station.socket, "stop", by="command line")
    return session


def _status(station: Station) -> dict[str, Any]:
    return request(station.socket, "status", timeout=10)


def local_files(station: Station, session: str) -> list[str]:
    return sorted(n for n in os.listdir(station.recordings / session) if uploadable(n))


def keys_of(seaweed: Seaweed, session: str) -> list[str]:
    prefix = f"{seaweed.site}/{seaweed.table}/{session}/"
    return [k.removeprefix(prefix) for k in seaweed.keys_under(prefix)]


def collected(station: Station, session: str) -> bool:
    return (station.recordings / session / COLLECTED).exists()


def audit_events(station: Station, event: str, session: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in station.audit.read_text().splitlines()]
    return [e for e in lines if e["event"] == event and e.get("session") == session]


def verify_from_archive(station: Station, seaweed: Seaweed, session: str, tmp: Path) -> None:
    flags = archive_flags(seaweed, tmp)
    where = f"{seaweed.site}/{seaweed.table}/{session}"
    fetched = cli("archive", "fetch", where, str(tmp / "fetched"), *flags)
    assert fetched.returncode == 0, fetched.stderr
    identity = tmp / "identity.txt"
    identity.write_text(str(station.identity) + "\n")
    checked = cli("verify", str(tmp / "fetched" / session), "--identity", str(identity))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sorted(os.listdir(tmp / "fetched" / session)) == local_files(station, session)


def test_a_recorded_session_arrives_whole_verifies_and_the_table_cannot_read_or_delete_it(
    station: Station, seaweed: Seaweed, tmp_path: Path
) -> None:
    session = record(station, 5.0)
    wait_for("the collected mark", lambda: collected(station, session))
    files = local_files(station, session)
    assert keys_of(seaweed, session) == files
    assert {"manifest.json.age", "vitals.jsonl.age", "markers.jsonl.age"} <= set(files)
    assert [e["files"] for e in audit_events(station, "session_collected", session)] == [len(files)]
    status = _status(station)["collection"]
    assert status["backlog_files"] == 0 and status["last_success_utc"], status
    verify_from_archive(station, seaweed, session, tmp_path)
    # Straight from the archive to a verified export, in one command.
    url = f"s3://{seaweed.bucket}/{seaweed.site}/{seaweed.table}/{session}"
    exported = cli(
        "export", url, "--identity", str(tmp_path / "identity.txt"), "--out", str(tmp_path / "export"),
        *archive_flags(seaweed, tmp_path),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert (tmp_path / "export" / "closeup.mp4").stat().st_size > 0
    report = (tmp_path / "export" / "report.txt").read_text()
    assert "whole: every file is the one the manifest lists" in report

    # The table's own keys: write-only. Nothing it sent can be read back, listed or deleted.
    table = seaweed.table_client()
    key = f"{seaweed.site}/{seaweed.table}/{session}/{files[0]}"
    for attempt in (
        lambda: table.get_object(Bucket=seaweed.bucket, Key=key),
        lambda: table.delete_object(Bucket=seaweed.bucket, Key=key),
        lambda: table.list_objects_v2(Bucket=seaweed.bucket),
    ):
        with pytest.raises(Exception, match="AccessDenied"):
            attempt()
    assert keys_of(seaweed, session) == files


def test_the_archive_down_during_a_recording_loses_nothing_and_stores_nothing_twice(
    station: Station, seaweed: Seaweed, tmp_path: Path
) -> None:
    seaweed.stop()
    try:
        session = record(station, 6.0)
        waiting = wait_for(
            "the backlog and its error in status",
            lambda: (c := _status(station)["collection"])["backlog_files"] and c["last_error"] and c,
        )
        assert waiting["oldest_queued_utc"] is not None
        assert not collected(station, session)
    finally:
        seaweed.start()
    wait_for("the collected mark after the outage", lambda: collected(station, session), timeout_s=180)
    assert keys_of(seaweed, session) == local_files(station, session)
    assert len(audit_events(station, "session_collected", session)) == 1
    verify_from_archive(station, seaweed, session, tmp_path)


def test_a_deletion_request_reaches_the_archive_and_the_review_side_applies_it(
    station: Station, seaweed: Seaweed, tmp_path: Path
) -> None:
    session = record(station, 3.0)
    wait_for("the collected mark", lambda: collected(station, session))
    sent = len(keys_of(seaweed, session))
    deleted = request(station.socket, "delete", session=session, by="command line")
    assert deleted["ok"], deleted
    assert not (station.recordings / session).exists()
    wait_for("the deletion request in the archive", lambda: DELETION_REQUEST in keys_of(seaweed, session))

    # Consent refused during a recording whose first segment has left already: a discard asks too.
    discarded = str(request(station.socket, "start", by="command line")["session"])
    wait_for("a segment of it in the archive", lambda: keys_of(seaweed, discarded))
    assert request(station.socket, "discard", by="command line")["ok"]
    wait_for("its deletion request", lambda: DELETION_REQUEST in keys_of(seaweed, discarded))
    assert not list(deletion_requests_path(station.recordings).iterdir())
    request(station.socket, "allow-recording", by="command line")
    left_by_discard = len(keys_of(seaweed, discarded)) - 1

    flags = archive_flags(seaweed, tmp_path)
    listed = cli("archive", "list", "--json", *flags)
    assert listed.returncode == 0, listed.stderr
    entry = [s for s in json.loads(listed.stdout) if s["session"].endswith(session)]
    assert entry and entry[0]["deletion_requested"] and entry[0]["files"] == sent
    applied = cli("archive", "apply-deletions", "--json", *flags)
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)
    removed = {r["session"].rsplit("/", 1)[1]: r["objects_deleted"] for r in report}
    assert removed == {session: sent, discarded: left_by_discard}
    assert keys_of(seaweed, session) == [] and keys_of(seaweed, discarded) == []


def test_kill_9_while_the_backlog_drains_resumes_after_the_restart(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    keys = seaweed.write_credentials(tmp_path / "collection.credentials")
    # A narrow link, so the kill lands while files are still waiting.
    station = Station(tmp_path, extra_config=seaweed.collection_toml(keys, bandwidth_mbit_s=0.5))
    try:
        station.start()
        session = record(station, 4.0)
        wait_for(
            "some files sent and some waiting",
            lambda: (c := _status(station)["collection"])["uploaded_files"] >= 1 and c["backlog_files"] >= 1,
        )
        assert station.process is not None
        os.kill(station.process.pid, signal.SIGKILL)
        station.process.wait(10)
        station.process = None
        assert not collected(station, session)
        assert list((collect_queue_path(station.recordings) / "pending").iterdir())
        station.start()
        wait_for("the collected mark after the restart", lambda: collected(station, session), timeout_s=180)
        assert keys_of(seaweed, session) == local_files(station, session)
        assert not list((collect_queue_path(station.recordings) / "pending").iterdir())
        verify_from_archive(station, seaweed, session, tmp_path)
    finally:
        station.close()
