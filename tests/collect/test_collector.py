"""The collector in-process against the real SeaweedFS: bytes damaged on their way are refused by
the server (BadDigest) and sent again whole; retention then destroys the collected session and
keeps, with a warning, the one the archive has not confirmed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seaweed_kit import Seaweed, wait_for

from collect.collector import Collector
from collect.queue import UploadQueue
from config.models import CollectionConfig
from session.first_seen import write_first_seen
from session.layout import (
    COLLECTED,
    MANIFEST,
    VITALS,
    collect_queue_path,
    retention_state_path,
    segment_name,
)
from session.retention import SessionKeeper
from store.age_format import VERSION_LINE


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def append(self, event: str, **fields: Any) -> None:
        self.entries.append((event, fields))


def old_session(storage: Path, hex6: str) -> Path:
    folder = storage / f"20200101T000000Z-{hex6}"
    folder.mkdir(parents=True)
    for name in (segment_name("closeup", 1), VITALS, MANIFEST):
        # Ciphertext to the collector: opaque after the age header (which it checks is there).
        (folder / name).write_bytes(VERSION_LINE + os.urandom(50_000))
    return folder


def test_damaged_bytes_are_refused_by_the_server_and_sent_again_then_retention_knows(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    storage = tmp_path / "recordings"
    first = old_session(storage, "aaaaaa")
    config = CollectionConfig(
        enabled=True,
        endpoint=seaweed.endpoint,
        bucket=seaweed.bucket,
        site=seaweed.site,
        table=seaweed.table,
        credentials_file=seaweed.write_credentials(tmp_path / "keys"),
    )
    client = seaweed.table_client()
    damaged: list[str] = []

    def flip_a_bit_once(request: Any, **_: Any) -> None:
        if not damaged:  # one bit, on the way, in the first PUT: what a bad link or NIC does
            data = bytearray(request.body.read())
            data[len(data) // 2] ^= 0x01
            request.body = io.BytesIO(bytes(data))
            damaged.append(request.url)

    client.meta.events.register("before-send.s3.PutObject", flip_a_bit_once)
    audit = Audit()
    collector = Collector(config, storage, audit=audit, recording=lambda: None, client=client)
    collector.start()
    try:
        wait_for("the first session collected", lambda: (first / COLLECTED).exists())
        errors = collector.stats().last_error
    finally:
        collector.stop()
    assert len(damaged) == 1
    assert errors is not None and "BadDigest" in errors, errors
    reviewer = seaweed.reviewer()
    for name in os.listdir(first):
        if name == COLLECTED:
            continue
        head = reviewer.head_object(
            Bucket=seaweed.bucket, Key=f"unit/table-1/{first.name}/{name}", ChecksumMode="ENABLED"
        )
        expected = base64.b64encode(hashlib.sha256((first / name).read_bytes()).digest()).decode()
        assert head["ChecksumSHA256"] == expected
    assert [e for e, f in audit.entries if e == "session_collected" and f["session"] == first.name]

    # A second old session the collector was never told about: not collected.
    second = old_session(storage, "bbbbbb")
    long_ago = datetime.now(UTC) - timedelta(days=400)
    write_first_seen(retention_state_path(storage), {first.name: long_ago, second.name: long_ago})
    keeper = SessionKeeper(storage, 30, lambda: None, audit=audit, delete_uncollected=False)
    assert keeper.apply_retention() == [first.name]
    assert not first.exists() and second.exists()
    [listed] = keeper.sessions()
    assert listed["session"] == second.name and listed["warning"] == "past retention, kept: not collected"


def test_with_collection_on_an_uncollected_session_is_kept_and_a_delete_by_hand_queues_a_request(
    tmp_path: Path,
) -> None:
    """With the recorder down, on the storage directly: ``delete_uncollected`` does not apply
    while collection is enabled, and ``delete`` leaves a deletion request for the archive."""
    import json
    import subprocess
    import sys

    from fault_kit import ROOT

    from session.layout import deletion_requests_path
    from store.keys import Identity

    storage = tmp_path / "recordings"
    kept, deleted = old_session(storage, "cccccc"), old_session(storage, "dddddd")
    long_ago = datetime.now(UTC) - timedelta(days=400)
    write_first_seen(retention_state_path(storage), {kept.name: long_ago, deleted.name: long_ago})
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
audit_log = "{tmp_path / "audit.jsonl"}"
recipients = ["{Identity.generate().recipient}"]
delete_uncollected = true
[collection]
enabled = true
endpoint = "http://127.0.0.1:9"
bucket = "archive"
site = "unit"
table = "table-1"
"""
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args, "--config", str(config)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    listed = cli("sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    verdicts = {s["session"]: s["retention"] for s in json.loads(listed.stdout)["sessions"]}
    assert verdicts == {kept.name: "not_collected", deleted.name: "not_collected"}

    gone = cli("delete", deleted.name)
    assert gone.returncode == 0, gone.stderr
    assert "deletion request for the archive is queued" in gone.stdout
    assert not deleted.exists() and kept.exists()
    request = json.loads((deletion_requests_path(storage) / f"{deleted.name}.json").read_text())
    assert request["session"] == deleted.name and request["by"] == "command line"


def test_only_the_recorders_own_files_leave_and_one_the_archive_refuses_holds_no_one_else_up(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    """A link and a plain file placed among a session's files are never sent (a link could point
    at anything the service user may read); a file the archive refuses for good waits for the
    next start instead of standing in front of every later file; neither session is marked
    collected, so retention keeps both."""
    storage = tmp_path / "recordings"
    planted = old_session(storage, "eeeeee")
    secret = tmp_path / "collection.credentials"
    secret.write_text("[default]\naws_secret_access_key = not-for-the-archive\n")
    (planted / segment_name("closeup", 2)).symlink_to(secret)
    (planted / segment_name("closeup", 3)).write_text("plain text where ciphertext belongs\n")
    refused = old_session(storage, "ffffff")
    later = old_session(storage, "ffffff".replace("f", "1"))
    config = CollectionConfig(
        enabled=True,
        endpoint=seaweed.endpoint,
        bucket=seaweed.bucket,
        site=seaweed.site,
        table=seaweed.table,
        credentials_file=seaweed.write_credentials(tmp_path / "keys"),
    )
    # A file whose bytes on the disk changed after it closed (bit rot, a hand): queued with the
    # SHA-256 recorded at close, as session control queues it; the archive refuses other bytes.
    changed = refused / VITALS
    queue = UploadQueue(collect_queue_path(storage))
    queue.add(
        refused.name, VITALS, hashlib.sha256(b"as it closed").hexdigest(), _size(changed), datetime.now(UTC)
    )
    client = seaweed.table_client()
    collector = Collector(config, storage, audit=Audit(), recording=lambda: None, client=client)
    collector.start()
    try:
        wait_for("the later session collected", lambda: (later / COLLECTED).exists())
        wait_for("three files held", lambda: collector.stats().files_held == 3)
        error = collector.stats().last_error
    finally:
        collector.stop()
    assert not (planted / COLLECTED).exists() and not (refused / COLLECTED).exists()
    assert error is not None and "no longer has the SHA-256 recorded at close" in error, error
    listed = seaweed.reviewer().list_objects_v2(Bucket=seaweed.bucket, Prefix="unit/table-1/")
    keys = {
        o["Key"].rsplit("/", 2)[-2] + "/" + o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])
    }
    assert f"{planted.name}/{segment_name('closeup', 1)}" in keys  # its own files went
    assert not {f"{planted.name}/{segment_name('closeup', n)}" for n in (2, 3)} & keys
    for name in os.listdir(later):
        assert name == COLLECTED or f"{later.name}/{name}" in keys

    # The next start tries each held file once more (someone may have fixed it); these are
    # held again, and neither session is ever marked collected: retention keeps them.
    again = Collector(config, storage, audit=Audit(), recording=lambda: None, client=seaweed.table_client())
    again.start()
    try:
        wait_for(
            "the three held again", lambda: again.stats().files_held == 3 and not again.stats().backlog_files
        )
    finally:
        again.stop()
    assert not (planted / COLLECTED).exists() and not (refused / COLLECTED).exists()


def _size(path: Path) -> int:
    return path.stat().st_size
