"""The audit log: chained entries, every kind of tampering found, restarts and crashes survived."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from session.audit import BY, FIELDS, GENESIS, TRIGGERS, AuditLog, main, verify
from session.controller import SOCKET_CLIENTS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def write_some(path: Path, count: int = 5) -> None:
    with AuditLog(path) as audit:
        audit.append("service_started", version="0.1.0", table="table-1")
        for i in range(1, count):
            audit.append("recording_started", session=f"20240101T00000{i}Z-abc123", trigger="vitals")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def rewrite(path: Path, new_lines: list[str]) -> None:
    path.write_text("".join(new_lines))


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def independent_hash(entry: dict[str, Any]) -> str:
    body = json.dumps(
        {k: v for k, v in entry.items() if k != "hash"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def test_append_and_verify_round_trip(path: Path) -> None:
    with AuditLog(path) as audit:
        first = audit.append("service_started", version="0.1.0")
        audit.append("recording_started", session="20240101T000000Z-abc123", trigger="button", by="button")
        audit.append(
            "recording_stopped",
            session="20240101T000000Z-abc123",
            reason="recording stopped",
            files=12,
            bytes=123_456_789,
            duration_s=61.5,
            marker_kinds=["birth", "intubation"],
        )
    assert first["seq"] == 1 and first["prev"] == GENESIS
    written = entries(path)
    assert [e["seq"] for e in written] == [1, 2, 3]
    assert written[2]["marker_kinds"] == ["birth", "intubation"] and written[2]["duration_s"] == 61.5
    # Readable by anyone: the order of a line is for people, the hash is over the sorted form.
    assert list(written[1])[:3] == ["seq", "utc", "event"] and list(written[1])[-2:] == ["prev", "hash"]
    for before, entry in zip([None, *written], written, strict=False):
        assert entry["hash"] == independent_hash(entry)
        assert entry["prev"] == (before["hash"] if before else GENESIS)
        assert entry["utc"].endswith("+00:00")
    assert verify(path) == []


def test_an_empty_or_missing_log_verifies_clean(path: Path) -> None:
    AuditLog(path).close()
    assert path.read_bytes() == b""
    assert verify(path) == []


def test_file_is_opened_for_appending_and_readable_by_its_group(path: Path) -> None:
    audit = AuditLog(path)
    try:
        flags = fcntl.fcntl(audit._fd, fcntl.F_GETFL)
        assert flags & os.O_APPEND
        assert stat.S_IMODE(path.stat().st_mode) & 0o777 == 0o640 & ~_umask()
    finally:
        audit.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_each_append_is_fsynced(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with AuditLog(path) as audit:
        synced.clear()  # creating the file syncs its directory
        audit.append("recording_started", session="s1")
        audit.append("recording_stopped", session="s1")
        assert synced == [audit._fd, audit._fd]


def test_each_entry_goes_to_the_service_log_too(path: Path) -> None:
    with capture_logs() as logs, AuditLog(path) as audit:
        entry = audit.append("recording_discarded", session="s1", by="button")
    assert [(e["event"], e["audit_event"], e["seq"], e["hash"]) for e in logs] == [
        ("audit_entry", "recording_discarded", 1, entry["hash"])
    ]


# -- tampering --------------------------------------------------------------------------------------


def test_an_edited_line_is_found(path: Path) -> None:
    write_some(path)
    text = lines(path)
    text[2] = text[2].replace('"trigger": "vitals"', '"trigger": "button"')
    rewrite(path, text)
    assert verify(path) == ["line 3: hash does not match (edited?)"]


def test_an_edited_and_rehashed_line_breaks_the_next_link(path: Path) -> None:
    write_some(path)
    records = entries(path)
    records[2]["trigger"] = "button"
    records[2]["hash"] = independent_hash(records[2])
    rewrite(path, [json.dumps(r) + "\n" for r in records])
    assert verify(path) == [
        "line 4: does not follow line 3 (that line edited and re-hashed, or this one inserted)"
    ]


def test_a_removed_line_is_found(path: Path) -> None:
    write_some(path)
    text = lines(path)
    del text[2]
    rewrite(path, text)
    assert verify(path) == ["line 3: sequence jumps from 2 to 4 (a line was removed)"]


def test_several_removed_lines_are_found(path: Path) -> None:
    write_some(path)
    text = lines(path)
    del text[1:3]
    rewrite(path, text)
    assert verify(path) == ["line 2: sequence jumps from 1 to 4 (lines were removed)"]


def test_removed_first_lines_are_found(path: Path) -> None:
    write_some(path)
    rewrite(path, lines(path)[2:])
    assert verify(path) == ["line 1: the log starts at sequence 3, not 1 (lines removed)"]


def test_reordered_lines_are_found(path: Path) -> None:
    write_some(path)
    text = lines(path)
    text[2], text[3] = text[3], text[2]
    rewrite(path, text)
    assert verify(path) == [
        "line 3: sequence jumps from 2 to 4 (a line was removed)",
        "line 4: sequence goes back from 4 to 3 (lines reordered?)",
    ]


def test_a_copied_line_is_found(path: Path) -> None:
    write_some(path)
    text = lines(path)
    rewrite(path, [*text, text[1]])
    assert verify(path) == ["line 6: repeats sequence 2 of line 2 (copied?)"]


def test_an_inserted_forgery_is_found(path: Path) -> None:
    write_some(path, count=3)
    records = entries(path)
    forged = {"seq": 3, "utc": records[1]["utc"], "event": "recording_stopped", "prev": "f" * 64}
    forged["hash"] = independent_hash(forged)
    text = lines(path)
    rewrite(path, [*text[:2], json.dumps(forged) + "\n", text[2]])
    assert verify(path) == [
        "line 3: does not follow line 2 (that line edited and re-hashed, or this one inserted)",
        "line 4: repeats sequence 3 of line 3 (copied?)",
    ]


def test_garbage_in_the_middle_is_found(path: Path) -> None:
    write_some(path, count=3)
    text = lines(path)
    rewrite(path, [text[0], "this is not json\n", *text[1:]])
    assert verify(path) == ["line 2: not a valid entry (damaged, or cut short by a crash)"]


# -- restarts and crashes ---------------------------------------------------------------------------


def test_a_restart_continues_the_chain(path: Path) -> None:
    write_some(path, count=3)
    last = entries(path)[-1]
    with AuditLog(path) as audit:
        entry = audit.append("service_started", version="0.1.1")
    assert entry["seq"] == 4 and entry["prev"] == last["hash"]
    assert verify(path) == []


def test_a_line_cut_short_by_a_crash_is_reported_and_appending_goes_on(path: Path) -> None:
    write_some(path, count=3)
    good = entries(path)
    with path.open("a") as f:
        f.write('{"seq": 4, "utc": "2024-01-01T00:00:00.000+00:00", "event": "recor')  # the crash
    assert verify(path) == ["line 4: incomplete (cut short while being written: a crash?)"]
    with capture_logs() as logs, AuditLog(path) as audit:
        entry = audit.append("service_started", version="0.1.0")
        audit.append("recording_started", session="s2")
    assert logs[0]["event"] == "audit_log_incomplete_line"
    assert entry["seq"] == 4 and entry["prev"] == good[-1]["hash"]
    assert verify(path) == ["line 4: not a valid entry (damaged, or cut short by a crash)"]
    assert json.loads(lines(path)[4])["seq"] == 4  # on a line of its own


def test_an_entry_that_lost_only_its_newline_still_counts(path: Path) -> None:
    write_some(path, count=3)
    path.write_bytes(path.read_bytes()[:-1])
    assert verify(path) == []
    with AuditLog(path) as audit:
        entry = audit.append("service_started")
    assert entry["seq"] == 4
    assert verify(path) == []


def test_two_writers_share_one_chain(path: Path) -> None:
    service, tool = AuditLog(path), AuditLog(path)
    try:
        service.append("service_started")
        tool.append("session_deleted", session="s1", by="retention", files=3)
        service.append("recording_started", session="s2")
        tool.append("session_deleted", session="s2", by="retention")
    finally:
        service.close()
        tool.close()
    assert [e["seq"] for e in entries(path)] == [1, 2, 3, 4]
    assert verify(path) == []


def test_appends_from_many_threads_stay_chained(path: Path) -> None:
    with AuditLog(path) as audit:

        def worker(n: int) -> None:
            for i in range(10):
                audit.append("recording_started", session=f"s{n}-{i}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [e["seq"] for e in entries(path)] == list(range(1, 41))
    assert verify(path) == []


# -- what may be written ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"patient_name": "Baby Doe"}, "'patient_name' is not allowed"),
        ({"mrn": "123456"}, "'mrn' is not allowed"),
        ({"note": "born at 03:12"}, "'note' is not allowed"),
        ({"reason": {"nested": "data"}}, "dict values are not accepted"),
        ({"marker_kinds": [{"label": "x"}]}, "dict values are not accepted"),
        ({"duration_s": float("nan")}, "not a number JSON can hold"),
        ({"reason": "x" * 201}, "longer than 200"),
        ({"cameras": list(range(65))}, "at most 64 items"),
    ],
)
def test_fields_that_could_carry_patient_data_are_refused(
    path: Path, fields: dict[str, Any], message: str
) -> None:
    with AuditLog(path) as audit:
        with pytest.raises(ValueError, match=message):
            audit.append("recording_started", **fields)
        assert path.read_bytes() == b""  # nothing written
        assert audit.append("recording_started")["seq"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"by": "Dr. Jansen"}, "'by' takes one of"),
        ({"by": "Baby Doe, MRN 123456"}, "never free text"),
        ({"by": ["button"]}, "'by' takes one of"),
        ({"trigger": "auto"}, "'trigger' takes one of"),
        ({"trigger": "manual"}, "'trigger' takes one of"),
    ],
)
def test_who_asked_and_what_started_it_are_fixed_words(
    path: Path, fields: dict[str, Any], message: str
) -> None:
    with AuditLog(path) as audit:
        with pytest.raises(ValueError, match=message):
            audit.append("recording_started", **fields)
        assert path.read_bytes() == b""


def test_every_fixed_word_is_accepted(path: Path) -> None:
    with AuditLog(path) as audit:
        for by in sorted(BY):
            audit.append("marker", by=by)
        for trigger in sorted(TRIGGERS):
            audit.append("recording_started", trigger=trigger)
    assert [e.get("by") or e.get("trigger") for e in entries(path)] == [*sorted(BY), *sorted(TRIGGERS)]
    assert {"vitals", "motion", "button", "socket"} == TRIGGERS


def test_the_names_a_socket_client_may_give_are_fixed_words() -> None:
    assert SOCKET_CLIENTS <= BY


@pytest.mark.parametrize("event", ["", "Recording Started", "started by Dr. X", "a" * 65, "1st"])
def test_event_names_are_identifiers_not_text(path: Path, event: str) -> None:
    with AuditLog(path) as audit, pytest.raises(ValueError, match="lower_snake_case"):
        audit.append(event)


def test_the_refusal_says_why_and_what_is_allowed(path: Path) -> None:
    with AuditLog(path) as audit, pytest.raises(ValueError) as error:
        audit.append("recording_started", patient="x")
    assert "cannot identify a patient" in str(error.value)
    assert all(name in str(error.value) for name in FIELDS)


def test_appending_to_a_closed_log_fails(path: Path) -> None:
    audit = AuditLog(path)
    audit.close()
    with pytest.raises(ValueError, match="closed"):
        audit.append("service_started")


def test_command_line_check(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_some(path, count=3)
    assert main([str(path)]) == 0
    assert "intact" in capsys.readouterr().out
    text = lines(path)
    del text[1]
    rewrite(path, text)
    assert main([str(path)]) == 1
    assert "line 2: sequence jumps from 1 to 3" in capsys.readouterr().out
    assert main([]) == 2
