"""Stored sessions: what is listed, what the retention rule deletes, and deleting one by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from session.layout import COLLECTED, retention_state_path, session_started
from session.retention import SessionKeeper, StoredSession, describe, due_for_deletion, stored_sessions

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, event: str, **fields: Any) -> None:
        self.entries.append({"event": event, **fields})


def plant(root: Path, session_id: str, *files: str, size: int = 1000) -> Path:
    path = root / session_id
    path.mkdir(parents=True)
    for name in files or ("closeup-000001.ts.age", "manifest.json.age"):
        (path / name).write_bytes(b"x" * size)
    return path


def sid(days_ago: float, tag: str = "0a0b0c") -> str:
    return f"{NOW - timedelta(days=days_ago):%Y%m%dT%H%M%SZ}-{tag}"


def session(days_ago: float, tag: str = "0a0b0c") -> StoredSession:
    return StoredSession(sid(days_ago, tag), Path("/nowhere"), NOW - timedelta(days=days_ago), 1, 1, True)


def test_session_ids_are_read_as_start_times() -> None:
    assert session_started("20260301T120000Z-0a0b0c") == NOW
    for name in ("20260301T120000Z", "20261399T000000Z-0a0b0c", "notes", "20260301T120000Z-0A0B0C", ""):
        assert session_started(name) is None, name


def test_only_session_directories_are_listed(tmp_path: Path) -> None:
    plant(tmp_path, sid(2, "bbbbbb"))
    plant(tmp_path, sid(5, "aaaaaa"), "room-000001.ts.age.partial")
    plant(tmp_path, "lost+found")
    (tmp_path / "audit.jsonl").write_text("{}\n")
    (tmp_path / sid(9, "cccccc")).symlink_to(tmp_path / "lost+found")  # never followed
    found = stored_sessions(tmp_path)
    assert [s.id for s in found] == [sid(5, "aaaaaa"), sid(2, "bbbbbb")]  # oldest first
    assert [(s.files, s.bytes, s.complete) for s in found] == [(1, 1000, False), (2, 2000, True)]
    assert stored_sessions(tmp_path / "not-there") == []


@pytest.mark.parametrize(
    ("days_ago", "retention_days", "recording", "due"),
    [
        (31, 30, None, True),
        (29.9, 30, None, False),
        (30.001, 30, None, True),
        (400, 30, sid(400), False),  # the session being recorded, however old its id says it is
        (400, 0, None, False),  # the rule is off
        (-1, 30, None, False),  # from the future (the clock was wrong then): kept
    ],
)
def test_retention_rule(days_ago: float, retention_days: int, recording: str | None, due: bool) -> None:
    assert bool(due_for_deletion([session(days_ago)], NOW, retention_days, recording)) is due


def keeper(
    root: Path, recording: str | None = None, days: int = 30, *, delete_uncollected: bool = True
) -> tuple[SessionKeeper, Audit]:
    audit = Audit()
    k = SessionKeeper(
        root, days, lambda: recording, audit=audit, utc_now=lambda: NOW, delete_uncollected=delete_uncollected
    )
    return k, audit


def seen(root: Path, **days_ago: float) -> None:
    """This recorder first saw each session (by id) that many days ago."""
    state = {sid_: (NOW - timedelta(days=d)).isoformat() for sid_, d in days_ago.items()}
    retention_state_path(root).write_text(json.dumps(state))


def test_retention_destroys_old_sessions_and_audits_each(tmp_path: Path) -> None:
    old = plant(tmp_path, sid(45), "closeup-000001.ts.age", "vitals.jsonl.age", "manifest.json.age")
    recent = plant(tmp_path, sid(3, "dddddd"))
    seen(tmp_path, **{old.name: 45, recent.name: 3})
    k, audit = keeper(tmp_path)
    assert k.apply_retention() == [old.name]
    assert not old.exists() and recent.exists()
    assert audit.entries == [
        {
            "event": "session_deleted", "session": old.name, "by": "retention", "files": 3, "bytes": 3000,
            "reason": "older than the retention period", "retention_days": 30,
        }
    ]  # fmt: skip
    assert k.apply_retention() == [] and len(audit.entries) == 1
    assert k.deleted_by_retention == 1


def test_a_session_is_deleted_by_hand_but_never_the_one_being_recorded(tmp_path: Path) -> None:
    done = plant(tmp_path, sid(1, "aaaaaa"))
    current = plant(tmp_path, sid(0, "bbbbbb"), "closeup-000001.ts.age.partial")
    k, audit = keeper(tmp_path, recording=current.name)

    refused = k.delete(current.name, by="command line")
    assert not refused["ok"] and "being recorded" in refused["error"] and "discard" in refused["error"]
    unknown = k.delete("20200101T000000Z-ffffff", by="command line")
    assert not unknown["ok"] and "no session" in unknown["error"]
    outside = k.delete("../etc", by="command line")  # a name is looked up, never joined to a path
    assert not outside["ok"]
    assert audit.entries == [] and current.exists()

    reply = k.delete(done.name, by="command line")
    assert reply["ok"] and "2 files" in reply["note"]
    assert not done.exists()
    assert [(e["event"], e["session"], e["by"], e["files"]) for e in audit.entries] == [
        ("session_deleted", done.name, "command line", 2)
    ]
    assert "retention_days" not in audit.entries[0]


def test_listing_says_when_each_session_goes(tmp_path: Path) -> None:
    plant(tmp_path, sid(2, "aaaaaa"), size=3 * 2**20)
    listed = keeper(tmp_path)[0].sessions()
    assert listed[0]["deleted_after_utc"] == (NOW - timedelta(days=2) + timedelta(days=30)).isoformat()
    table = describe(listed)
    assert sid(2, "aaaaaa") in table and "6.0" in table  # two 3 MiB files
    assert keeper(tmp_path, days=0)[0].sessions()[0]["deleted_after_utc"] is None
    assert "kept until deleted" in describe(keeper(tmp_path, days=0)[0].sessions())
    assert describe([]) == "no sessions stored"


# --- what retention trusts -------------------------------------------------------------------


def test_a_session_named_by_a_wrong_clock_is_kept_for_the_period_from_when_it_was_first_seen(
    tmp_path: Path,
) -> None:
    wrong = plant(tmp_path, "20200101T000000Z-0a0b0c")  # recorded while the clock said 2020
    k, _ = keeper(tmp_path)
    assert k.apply_retention() == [] and wrong.exists()  # first seen now: kept
    state = json.loads(retention_state_path(tmp_path).read_text())
    assert datetime.fromisoformat(state[wrong.name]) == NOW
    seen(tmp_path, **{wrong.name: 31})  # a month on
    assert k.apply_retention() == [wrong.name]


def test_a_damaged_state_file_means_seen_now_never_old(tmp_path: Path) -> None:
    old = plant(tmp_path, sid(400))
    retention_state_path(tmp_path).write_text("{not json")
    assert keeper(tmp_path)[0].apply_retention() == [] and old.exists()


def test_a_legal_hold_stops_every_deletion_until_released(tmp_path: Path) -> None:
    old = plant(tmp_path, sid(45))
    seen(tmp_path, **{old.name: 45})
    k, audit = keeper(tmp_path)
    assert k.hold(old.name, by="command line")["ok"]
    assert k.apply_retention() == [] and old.exists()
    refused = k.delete(old.name, by="command line")
    assert not refused["ok"] and "legal hold" in refused["error"] and "release" in refused["error"]
    assert k.sessions()[0]["legal_hold"] is True
    assert k.hold(old.name, by="command line", on=False)["ok"]
    assert k.apply_retention() == [old.name]
    assert [e["event"] for e in audit.entries] == ["legal_hold_set", "legal_hold_released", "session_deleted"]


def test_an_uncollected_session_is_kept_unless_the_config_says_otherwise(tmp_path: Path) -> None:
    waiting = plant(tmp_path, sid(45, "aaaaaa"))
    collected = plant(tmp_path, sid(45, "bbbbbb"), COLLECTED)
    seen(tmp_path, **{waiting.name: 45, collected.name: 45})
    k, _ = keeper(tmp_path, delete_uncollected=False)
    assert k.apply_retention() == [collected.name]
    assert waiting.exists() and not collected.exists()
    assert keeper(tmp_path, delete_uncollected=True)[0].apply_retention() == [waiting.name]


def test_delete_never_follows_a_link_nor_touches_a_file_it_did_not_write(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    victim = tmp_path / "outside.txt"
    victim.write_text("not the recorder's")
    target = plant(root, sid(1))
    (target / "closeup-000002.ts.age").symlink_to(victim)  # planted under a segment's name
    (target / "notes.txt").write_text("someone's file")
    k, audit = keeper(root)
    reply = k.delete(target.name, by="command line")
    assert reply["ok"]
    assert victim.read_text() == "not the recorder's"  # never followed out of storage
    assert (target / "closeup-000002.ts.age").is_symlink() and (target / "notes.txt").exists()
    assert not (target / "closeup-000001.ts.age").exists() and not (target / "manifest.json.age").exists()
    assert audit.entries[-1]["files"] == 2
