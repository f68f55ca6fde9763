"""Stored sessions: what is listed, what the retention rule deletes (and what it trusts), legal
holds, and deleting one by hand."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from session.layout import COLLECTED, LEGAL_HOLD, retention_state_path, session_started
from session.retention import (
    SessionKeeper,
    StoredSession,
    Verdict,
    describe,
    due_for_deletion,
    is_collected,
    retention_verdict,
    stored_sessions,
)

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


def test_session_ids_are_read_as_start_times() -> None:
    assert session_started("20260301T120000Z-0a0b0c") == NOW
    for name in ("20260301T120000Z", "20261399T000000Z-0a0b0c", "notes", "20260301T120000Z-0A0B0C", ""):
        assert session_started(name) is None, name


def test_only_session_directories_and_the_recorders_own_files_are_counted(tmp_path: Path) -> None:
    plant(tmp_path, sid(2, "bbbbbb"))
    cut = plant(tmp_path, sid(5, "aaaaaa"), "room-000001.ts.age.partial")
    plant(tmp_path, "lost+found")
    (tmp_path / "audit.jsonl").write_text("{}\n")
    (tmp_path / sid(9, "cccccc")).symlink_to(tmp_path / "lost+found")  # never followed
    (cut / "notes.txt").write_bytes(b"x" * 5000)  # not the recorder's: neither counted nor sized
    (cut / "vitals.jsonl.age").symlink_to(tmp_path / "audit.jsonl")  # a link under one of its names
    (cut / "markers.jsonl.age").mkdir()
    found = stored_sessions(tmp_path)
    assert [s.id for s in found] == [sid(5, "aaaaaa"), sid(2, "bbbbbb")]  # oldest first
    assert [(s.files, s.bytes, s.complete, s.foreign) for s in found] == [
        (1, 1000, False, 3),
        (2, 2000, True, 0),
    ]
    assert stored_sessions(tmp_path / "not-there") == []


def test_only_the_collectors_own_mark_counts_as_collected(tmp_path: Path) -> None:
    marked = plant(tmp_path, sid(45, "aaaaaa"), "closeup-000001.ts.age", COLLECTED)
    assert is_collected(marked) and stored_sessions(tmp_path)[0].collected
    assert not is_collected(plant(tmp_path, sid(45, "bbbbbb")))
    linked = plant(tmp_path, sid(45, "cccccc"))
    (linked / COLLECTED).symlink_to(marked / COLLECTED)  # never followed
    assert not is_collected(linked)
    twice = plant(tmp_path, sid(45, "dddddd"))
    (twice / COLLECTED).hardlink_to(marked / COLLECTED)
    assert not is_collected(twice) and not is_collected(marked)  # a second link: not its own
    folder = plant(tmp_path, sid(45, "eeeeee"))
    (folder / COLLECTED).mkdir()
    assert not is_collected(folder)


# --- the rule, as a table ----------------------------------------------------------------------


def stored(
    id_days_ago: float = 45,
    *,
    held: bool = False,
    collected: bool = True,
    files: int = 2,
    foreign: int = 0,
) -> StoredSession:
    return StoredSession(
        sid(id_days_ago), Path("/nowhere"), NOW - timedelta(days=id_days_ago), files, 1, True,
        held, collected, foreign,
    )  # fmt: skip


R = Verdict
CASES = [
    # id days ago, first seen days ago, retention days, the session, delete_uncollected, verdict
    (45, 45, 30, stored(45), False, R.DUE),
    (31, 31, 30, stored(31), False, R.DUE),
    (29.9, 45, 30, stored(29.9), False, R.WITHIN),  # first seen long ago, but the id is recent
    (45, 29.9, 30, stored(45), False, R.WITHIN),  # an old id, first seen recently: kept
    (2200, 0, 30, stored(2200), False, R.WITHIN),  # named 2020 by a wrong clock, seen now: kept
    (2200, 31, 30, stored(2200), False, R.DUE),  # ... and a month on it goes
    (-1, 0, 30, stored(-1), False, R.WITHIN),  # an id in the future counts as started now
    (-1, 400, 30, stored(-1), False, R.WITHIN),
    (45, -400, 30, stored(45), False, R.WITHIN),  # first seen "in the future": kept, the safe side
    (400, 400, 0, stored(400), False, R.OFF),  # the rule is off
    (45, 45, 30, stored(45, held=True), False, R.HELD),
    (45, 45, 30, stored(45, held=True, collected=False), True, R.HELD),
    (45, 45, 30, stored(45, collected=False), False, R.NOT_COLLECTED),
    (45, 45, 30, stored(45, collected=False), True, R.DUE),
    (3, 3, 30, stored(3, collected=False), False, R.WITHIN),  # not collected, not yet due: no warning
    (45, 45, 30, stored(45, files=0, foreign=2), True, R.FOREIGN_ONLY),  # nothing of ours to destroy
    (45, 45, 30, stored(45, files=0, foreign=0), True, R.DUE),  # an empty folder is removed
]


@pytest.mark.parametrize(("id_ago", "seen_ago", "days", "session", "delete_uncollected", "verdict"), CASES)
def test_retention_rule(
    id_ago: float,
    seen_ago: float,
    days: int,
    session: StoredSession,
    delete_uncollected: bool,
    verdict: Verdict,
) -> None:
    del id_ago  # in the session; named in the table for the reader
    got = retention_verdict(
        session,
        now=NOW,
        retention_days=days,
        recording=None,
        first_seen=NOW - timedelta(days=seen_ago),
        delete_uncollected=delete_uncollected,
    )
    assert got is verdict


def test_the_session_being_recorded_is_never_due_however_old() -> None:
    old = stored(400)
    args: dict[str, Any] = {"now": NOW, "retention_days": 30, "first_seen": NOW - timedelta(days=400)}
    assert retention_verdict(old, recording=old.id, delete_uncollected=True, **args) is Verdict.RECORDING
    assert due_for_deletion([old], NOW, 30, old.id, first_seen={old.id: NOW - timedelta(days=400)}) == []


def test_a_session_the_first_seen_times_do_not_know_counts_as_seen_now() -> None:
    old = stored(400)
    assert due_for_deletion([old], NOW, 30, None, first_seen={}) == []
    assert due_for_deletion([old], NOW, 30, None, first_seen={old.id: NOW - timedelta(days=31)}) == [old]


# --- the keeper ------------------------------------------------------------------------------


class Clocks:
    """A wall clock and a monotonic clock that tests step on their own."""

    def __init__(self, utc: datetime = NOW) -> None:
        self.utc = utc
        self.mono = 1000.0

    def advance(self, seconds: float, *, wall_step: timedelta = timedelta(0)) -> None:
        self.mono += seconds
        self.utc += timedelta(seconds=seconds) + wall_step


def keeper(
    root: Path,
    recording: str | None = None,
    days: int = 30,
    *,
    delete_uncollected: bool = True,
    clocks: Clocks | None = None,
) -> tuple[SessionKeeper, Audit]:
    audit = Audit()
    c = clocks or Clocks()
    k = SessionKeeper(
        root,
        days,
        lambda: recording,
        audit=audit,
        utc_now=lambda: c.utc,
        monotonic=lambda: c.mono,
        delete_uncollected=delete_uncollected,
    )
    return k, audit


def seen(root: Path, **days_ago: float) -> None:
    """This recorder first saw each session (by id) that many days ago."""
    state = {sid_: (NOW - timedelta(days=d)).isoformat() for sid_, d in days_ago.items()}
    retention_state_path(root).write_text(json.dumps(state))


def state(root: Path) -> dict[str, datetime]:
    raw = json.loads(retention_state_path(root).read_text())
    return {k: datetime.fromisoformat(v) for k, v in raw.items()}


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
            "reason": "older than the retention period", "retention_days": 30, "entries_left": 0,
        }
    ]  # fmt: skip
    assert k.apply_retention() == [] and len(audit.entries) == 1
    assert k.deleted_by_retention == 1
    assert list(state(tmp_path)) == [recent.name]  # a session gone is forgotten


def test_a_session_named_2020_on_a_2026_clock_is_kept_and_one_seen_31_days_ago_goes(tmp_path: Path) -> None:
    wrong = plant(tmp_path, "20200101T000000Z-0a0b0c", "closeup-000001.ts.age")  # the clock said 2020
    known = plant(tmp_path, "20200101T000000Z-1a1b1c", "closeup-000001.ts.age")
    seen(tmp_path, **{known.name: 31})  # this one the recorder has known for a month
    k, _ = keeper(tmp_path)
    assert k.apply_retention() == [known.name]
    assert wrong.exists() and not known.exists()
    assert state(tmp_path) == {wrong.name: NOW}  # first seen now; the one destroyed forgotten
    mode = stat.S_IMODE(os.stat(retention_state_path(tmp_path)).st_mode)
    assert mode == 0o600 and not retention_state_path(tmp_path).with_name("recordings.seen.json.new").exists()
    listed = k.sessions()[0]
    assert listed["deleted_after_utc"] == (NOW + timedelta(days=30)).isoformat()  # from first seen


@pytest.mark.parametrize(
    "damage",
    ["{not json", "[]", '{"x": 1}', "", '{"20200101T000000Z-0a0b0c": "2020-01-01T00:00:00"}'],
)
def test_a_damaged_or_missing_state_file_means_seen_now_never_old(tmp_path: Path, damage: str) -> None:
    old = plant(tmp_path, "20200101T000000Z-0a0b0c")
    k, _ = keeper(tmp_path)
    assert k.apply_retention() == [] and old.exists()  # missing
    retention_state_path(tmp_path).write_text(damage)  # damaged, or a time without its zone
    assert k.apply_retention() == [] and old.exists()
    assert state(tmp_path) == {old.name: NOW}


def test_a_clock_now_behind_never_makes_a_session_old(tmp_path: Path) -> None:
    # Seen on 2026-02-20 (the clock was right); the PC restarts with its clock at 2020.
    named = plant(tmp_path, "20200101T000000Z-0a0b0c")
    seen(tmp_path, **{named.name: 9})
    clocks = Clocks(datetime(2020, 1, 1, tzinfo=UTC))
    k, _ = keeper(tmp_path, clocks=clocks)
    assert k.apply_retention() == []
    assert state(tmp_path)[named.name] == NOW - timedelta(days=9)  # not moved back to 2020
    clocks.utc = NOW  # NTP corrects it: 9 days are 9 days
    assert k.apply_retention() == [] and named.exists()


def test_a_clock_step_while_the_recorder_runs_moves_what_it_first_saw(tmp_path: Path) -> None:
    # The PC started with its clock at 2020, recorded, and retention saw the session then.
    clocks = Clocks(datetime(2020, 1, 1, 0, 5, tzinfo=UTC))
    named = plant(tmp_path, "20200101T000000Z-0a0b0c")
    k, _ = keeper(tmp_path, clocks=clocks)
    assert k.apply_retention() == []
    assert state(tmp_path)[named.name] == datetime(2020, 1, 1, tzinfo=UTC)  # made 5 minutes ago
    clocks.advance(3600, wall_step=NOW - clocks.utc)  # an hour later NTP steps it to 2026
    assert k.apply_retention() == [] and named.exists()
    assert clocks.utc == NOW + timedelta(hours=1)
    # 65 minutes before the corrected clock, not 2020.
    assert state(tmp_path)[named.name] == NOW - timedelta(minutes=5)
    clocks.advance(31 * 86400)  # a month later by both clocks
    assert k.apply_retention() == [named.name]


def test_slewing_does_not_rewrite_the_state_file(tmp_path: Path) -> None:
    clocks = Clocks()
    plant(tmp_path, sid(1))
    k, _ = keeper(tmp_path, clocks=clocks)
    k.apply_retention()
    written = retention_state_path(tmp_path).stat().st_mtime_ns
    clocks.advance(300, wall_step=timedelta(seconds=0.2))  # NTP slewing, not a step
    os.utime(retention_state_path(tmp_path), ns=(1, 1))
    k.apply_retention()
    assert retention_state_path(tmp_path).stat().st_mtime_ns == 1 != written


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
    assert reply["ok"] and "2 files" in reply["note"] and reply["entries_left"] == 0
    assert not done.exists()
    assert [(e["event"], e["session"], e["by"], e["files"]) for e in audit.entries] == [
        ("session_deleted", done.name, "command line", 2)
    ]
    assert "retention_days" not in audit.entries[0]


def test_listing_says_when_each_session_goes(tmp_path: Path) -> None:
    plant(tmp_path, sid(2, "aaaaaa"), size=3 * 2**20)
    seen(tmp_path, **{sid(2, "aaaaaa"): 2})
    k = keeper(tmp_path)[0]
    listed = k.sessions()
    assert listed[0]["deleted_after_utc"] == (NOW - timedelta(days=2) + timedelta(days=30)).isoformat()
    assert listed[0]["retention"] == "within" and listed[0]["warning"] is None
    table = describe(listed)
    assert sid(2, "aaaaaa") in table and "6.0" in table  # two 3 MiB files
    assert keeper(tmp_path, days=0)[0].sessions()[0]["deleted_after_utc"] is None
    assert "kept until deleted" in describe(keeper(tmp_path, days=0)[0].sessions())
    assert describe([]) == "no sessions stored"


def test_a_listing_writes_nothing(tmp_path: Path) -> None:
    plant(tmp_path, sid(2))
    keeper(tmp_path)[0].sessions()
    assert not retention_state_path(tmp_path).exists()  # it may run as another user than the recorder


# --- legal hold --------------------------------------------------------------------------------


def test_a_legal_hold_stops_every_deletion_until_released(tmp_path: Path) -> None:
    old = plant(tmp_path, sid(45))
    seen(tmp_path, **{old.name: 45})
    k, audit = keeper(tmp_path)
    assert k.hold(old.name, by="command line")["ok"]
    mark = old / LEGAL_HOLD
    assert json.loads(mark.read_text()) == {"set_utc": "2026-03-01T12:00:00+00:00", "by": "command line"}
    assert stat.S_IMODE(mark.stat().st_mode) == 0o600
    assert k.apply_retention() == [] and old.exists()
    refused = k.delete(old.name, by="command line")
    assert not refused["ok"] and "legal hold" in refused["error"] and "release" in refused["error"]
    listed = k.sessions()[0]
    assert listed["legal_hold"] is True and listed["retention"] == "held"
    assert "LEGAL HOLD" in describe([listed])
    assert "already" in k.hold(old.name, by="control socket")["note"]  # no second entry
    assert k.hold(old.name, by="command line", on=False)["ok"]
    assert "was not" in k.hold(old.name, by="command line", on=False)["note"]
    assert k.apply_retention() == [old.name]
    assert [(e["event"], e.get("by")) for e in audit.entries] == [
        ("legal_hold_set", "command line"),
        ("legal_hold_released", "command line"),
        ("session_deleted", "retention"),
    ]


def test_a_hold_takes_only_a_known_word_for_who_and_not_the_session_being_recorded(tmp_path: Path) -> None:
    current = plant(tmp_path, sid(0))
    k, audit = keeper(tmp_path, recording=current.name)
    with pytest.raises(ValueError, match="by"):
        k.hold(current.name, by="Dr. Jansen")
    refused = k.hold(current.name, by="command line")
    assert not refused["ok"] and "being recorded" in refused["error"]
    assert not k.hold("20200101T000000Z-ffffff", by="command line")["ok"]
    assert audit.entries == [] and not (current / LEGAL_HOLD).exists()


def test_a_link_named_like_the_hold_holds_and_is_never_written_through(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    old = plant(root, sid(45))
    seen(root, **{old.name: 45})
    victim = tmp_path / "outside.txt"
    (old / LEGAL_HOLD).symlink_to(victim)  # dangling: a write would create the victim
    k, audit = keeper(root)
    assert k.apply_retention() == [] and old.exists()  # in doubt, kept
    assert "already" in k.hold(old.name, by="command line")["note"]
    assert not victim.exists()
    assert k.hold(old.name, by="command line", on=False)["ok"]  # the link removed, nothing followed
    assert k.apply_retention() == [old.name]
    assert [e["event"] for e in audit.entries] == ["legal_hold_released", "session_deleted"]


# --- collection ------------------------------------------------------------------------------


def test_an_uncollected_session_is_kept_and_listed_unless_the_config_says_otherwise(tmp_path: Path) -> None:
    waiting = plant(tmp_path, sid(45, "aaaaaa"))
    other = plant(tmp_path, sid(40, "bbbbbb"))
    collected = plant(tmp_path, sid(45, "cccccc"), "closeup-000001.ts.age", COLLECTED)
    recent = plant(tmp_path, sid(3, "dddddd"))
    seen(tmp_path, **{waiting.name: 45, other.name: 40, collected.name: 45, recent.name: 3})
    k, audit = keeper(tmp_path, delete_uncollected=False)
    with capture_logs() as logs:
        assert k.apply_retention() == [collected.name]
        assert k.apply_retention() == []
    assert waiting.exists() and other.exists() and not collected.exists()
    assert [(e["session"], e["files"]) for e in audit.entries] == [(collected.name, 2)]  # and the mark
    warned = [e for e in logs if e["event"] == "sessions_kept_not_collected"]
    assert len(warned) == 1 and warned[0]["sessions"] == [waiting.name, other.name]  # once, not every pass
    listed = {s["session"]: s for s in k.sessions()}
    assert listed[waiting.name]["warning"] == "past retention, kept: not collected"
    assert listed[waiting.name]["retention"] == "not_collected"
    assert listed[recent.name]["warning"] is None
    assert "WARNING: past retention, kept: not collected" in describe(list(listed.values()))
    assert keeper(tmp_path, delete_uncollected=True)[0].apply_retention() == [waiting.name, other.name]


# --- only the recorder's own files -----------------------------------------------------------


def test_delete_never_follows_a_link_nor_touches_a_file_it_did_not_write(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    victim = tmp_path / "outside.txt"
    victim.write_text("not the recorder's")
    target = plant(root, sid(1))
    (target / "closeup-000002.ts.age").symlink_to(victim)  # planted under a segment's name
    (target / "notes.txt").write_text("someone's file")
    (target / "vitals.jsonl.age").hardlink_to(victim)  # the data is also outside: not ours alone
    os.mkfifo(target / "markers.jsonl.age")  # opening it for writing would wait forever
    k, audit = keeper(root)
    reply = k.delete(target.name, by="command line")
    assert reply["ok"] and reply["entries_left"] == 4 and "left in its folder" in reply["note"]
    assert victim.read_text() == "not the recorder's"  # never followed out of storage
    assert (target / "closeup-000002.ts.age").is_symlink() and (target / "notes.txt").exists()
    assert (target / "vitals.jsonl.age").read_text() == "not the recorder's"
    assert not (target / "closeup-000001.ts.age").exists() and not (target / "manifest.json.age").exists()
    assert (audit.entries[-1]["files"], audit.entries[-1]["entries_left"]) == (2, 4)

    # What is left is not deleted again at every pass, and the listing says why it stays.
    seen(root, **{target.name: 45})
    assert k.apply_retention() == [] and len(audit.entries) == 1
    again = k.delete(target.name, by="command line")
    assert not again["ok"] and "not the recorder's" in again["error"]
    listed = k.sessions()[0]
    assert listed["retention"] == "foreign_only" and listed["foreign_entries"] == 4
    assert "4 entries not the recorder's" in describe([listed])
