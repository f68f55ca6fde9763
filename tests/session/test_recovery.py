"""A session a crash left open is closed at the next start: truncated files under their final
names, a record of them with their hashes, an ``unclean_end`` in the audit log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from review.export import decrypt
from session.audit import AuditLog
from session.directory import CameraProfile, Marker, SessionDirectory
from session.layout import MANIFEST, MARKERS, PARTIAL, RECOVERY, VITALS, chain_value, segment_name
from session.recovery import recover_all, unfinished_sessions
from store.keys import Identity
from sync.clock import MediaClock, now_ns


def crashed_session(root: Path, identity: Identity) -> SessionDirectory:
    """A session as a kill -9 leaves it: a segment, vitals and markers still open."""
    session = SessionDirectory(
        root,
        recipients=[identity.recipient],
        fsync_interval_s=1.0,
        table="T",
        cameras=[CameraProfile("closeup", 320, 240, 15, True, False)],
        clock=MediaClock(now_ns()),
        reason="test",
    )
    segment = session.open_segment("closeup", 1)
    segment.write(bytes(200_000))  # three full chunks reach the disk, the rest dies with the process
    session.write_markers([Marker(now_ns(), "birth", "button")])
    session.seal_held(0.0)
    return session


def test_a_crashed_session_is_closed_recorded_and_audited(tmp_path: Path) -> None:
    identity = Identity.generate()
    root = tmp_path / "recordings"
    session = crashed_session(root, identity)
    audit = AuditLog(tmp_path / "audit.jsonl")
    assert unfinished_sessions(root) == [session.path]

    done = recover_all(root, [identity.recipient], audit)

    assert [r.session for r in done] == [session.id]
    names = sorted(p.name for p in session.path.iterdir())
    assert not any(n.endswith(PARTIAL) for n in names)
    assert {segment_name("closeup", 1), VITALS, MARKERS, MANIFEST, RECOVERY} <= set(names)
    record = json.loads(decrypt(session.path / RECOVERY, [identity])[0])
    files = {f["file"]: f for f in record["files"]}
    assert set(files) == {segment_name("closeup", 1), VITALS, MARKERS}
    chain = ""
    for entry in record["files"]:
        data = (session.path / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        assert entry["truncated"] is True
        chain = chain_value(entry, chain)
        assert entry["chain"] == chain
    # The truncated files read up to their last whole chunk; the marker was sealed in time.
    segment, complete = decrypt(session.path / segment_name("closeup", 1), [identity])
    assert not complete and len(segment) == 3 * 65536
    markers, _ = decrypt(session.path / MARKERS, [identity])
    assert json.loads(markers.splitlines()[0])["label"] == "birth"
    rows = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["event"], r.get("session"), r.get("files")) for r in rows] == [("unclean_end", session.id, 3)]
    # A second start finds nothing left to do.
    assert unfinished_sessions(root) == [] and recover_all(root, [identity.recipient], audit) == []


def test_recovery_touches_no_link_and_nothing_that_is_not_a_session(tmp_path: Path) -> None:
    identity = Identity.generate()
    root = tmp_path / "recordings"
    session = crashed_session(root, identity)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    (session.path / ("planted.ts.age" + PARTIAL)).symlink_to(outside)
    stranger = root / "not-a-session"
    stranger.mkdir()
    (stranger / ("x" + PARTIAL)).write_text("x")
    recover_all(root, [identity.recipient], None)
    assert (session.path / ("planted.ts.age" + PARTIAL)).is_symlink()
    assert outside.read_text() == "not ours"
    assert (stranger / ("x" + PARTIAL)).exists()


def test_a_manifest_written_whole_but_not_renamed_takes_the_manifests_place(tmp_path: Path) -> None:
    identity = Identity.generate()
    root = tmp_path / "recordings"
    session = crashed_session(root, identity)
    newer = session.path / (MANIFEST + ".new")
    (session.path / MANIFEST).rename(newer)  # the crash came between the write and the rename
    (session.path / MANIFEST).write_bytes(b"older")
    recover_all(root, [identity.recipient], None)
    assert not newer.exists()
    manifest = json.loads(decrypt(session.path / MANIFEST, [identity])[0])
    assert manifest["session"] == session.id
