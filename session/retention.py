"""The sessions kept on this PC: which there are, deleting one, legal holds, and the retention rule.

The privacy officer's side of storage. A session is deleted by hand when consent is withdrawn
after the recording ended (``neoflix-capture delete SESSION``), or by the retention rule. Either
way its files are destroyed as a discard destroys them (truncated, then removed) and the audit
log says so, without patient data. The session being recorded is never touched here: ``discard``
is the way to end that one.

Deletion counts only its own files: only directories named like a session id are considered,
and in them only regular files with the layout's names (``layout.is_session_file``). A link is
never followed, and an entry the recorder did not write is neither counted nor destroyed; the
directory then stays, and the listing, the reply and the audit entry say how many are left.

What retention trusts:

- The wall clock, only as far as it can be checked. A session is due only when BOTH the start its
  id records AND the time this recorder first saw it are older than ``retention_days``. So a
  session named by a wrong clock (2020, until NTP corrected it) is kept for the full period from
  when it was first seen, and one named by a right clock is not aged by a clock that is wrong
  later. A start in the future counts as now; one in the last few minutes is when the recorder
  made the session, so it counts as first seen then. "First seen" is kept in a file beside the storage
  directory (``session.first_seen``: session ids and UTC times only); a missing or damaged file
  means "seen now" for every session, never "old". A time in it is never moved earlier (a clock
  that is now behind cannot age a session), and one this recorder wrote since it started also
  follows the monotonic clock, so a clock step while it runs moves that time with it.
  What it cannot tell: a session both named and first seen while the clock was wrong, with the
  recorder restarted before the clock was corrected; its age then counts from the wrong time.
- A legal hold (``layout.LEGAL_HOLD`` in the session directory, any entry of that name) stops
  every deletion, by hand or by retention.
- Collection: retention destroys a session only once the archive has confirmed it
  (``is_collected``), or when ``storage.delete_uncollected`` allows it (never while collection is
  enabled: the daemon turns it off then). One past its time and not collected is kept, logged and
  listed as a warning. Without collection nothing confirms a session, so with the default
  setting retention destroys nothing.

Threads: the daemon's retention thread calls ``apply_retention``, control-socket threads call
``sessions``, ``delete`` and ``hold``; ``SessionKeeper._lock`` serialises them all.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import structlog

from session.audit import BY
from session.collected import write_deletion_request
from session.directory import destroy_session_files
from session.first_seen import first_seen_times, read_first_seen, write_first_seen
from session.layout import (
    COLLECTED,
    LEGAL_HOLD,
    PARTIAL,
    RECOVERY,
    is_session_file,
    retention_state_path,
    session_started,
)

log = structlog.get_logger()


class Audit(Protocol):
    def append(self, event: str, **fields: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class StoredSession:
    id: str
    path: Path
    started: datetime  # UTC, from the session id
    files: int  # the recorder's own files only
    bytes: int
    complete: bool  # no file left half-written (a crash or power cut leaves ``.partial`` files)
    held: bool = False  # under legal hold: never deleted
    collected: bool = False  # the archive confirmed every file (``is_collected``)
    foreign: int = 0  # entries the recorder did not write (links, other files, folders)


def is_collected(session_dir: Path) -> bool:
    """Whether the archive has confirmed that it holds every file of this session.

    The collector provides the evidence: it writes ``layout.COLLECTED`` into the session
    directory once the archive has confirmed each file's SHA-256 (``collect``). Only a regular
    file of that name with one link counts (a link is never followed).
    """
    try:
        st = os.lstat(session_dir / COLLECTED)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def stored_sessions(root: Path) -> list[StoredSession]:
    """The session directories under ``root``, oldest first. Nothing is followed: a link named
    like a session is not one, and in a session only the recorder's regular files count."""
    found = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        started = session_started(path.name)
        if started is None or path.is_symlink() or not path.is_dir():
            continue
        files = size = foreign = 0
        complete = True
        try:
            names = os.listdir(path)
        except OSError:
            continue  # removed meanwhile
        for name in names:
            try:
                st = os.lstat(path / name)
            except OSError:
                continue  # removed meanwhile
            if not _recorders(name, st):
                foreign += 1
                continue
            files += 1
            size += st.st_size
            # A crash leaves .partial files, and the next start closes them with a record.
            complete = complete and not name.endswith(PARTIAL) and not name.startswith(RECOVERY)
        held = LEGAL_HOLD in names  # any entry of that name holds: in doubt, keep
        found.append(
            StoredSession(
                path.name, path, started, files, size, complete, held, is_collected(path), foreign
            )
        )
    return sorted(found, key=lambda s: (s.started, s.id))


def _recorders(name: str, st: os.stat_result) -> bool:
    # A second hard link means the data is also somewhere else: not the recorder's alone.
    return is_session_file(name) and stat.S_ISREG(st.st_mode) and st.st_nlink == 1


# --- the rule (pure) ---------------------------------------------------------------------------


class Verdict(Enum):
    """What the retention rule says of one session now; the value is what the listing shows."""

    OFF = "kept until deleted by hand"  # retention_days = 0
    WITHIN = "within the retention period"
    DUE = "due for deletion"
    RECORDING = "past retention, kept: being recorded"
    HELD = "past retention, kept: legal hold"
    NOT_COLLECTED = "past retention, kept: not collected"
    FOREIGN_ONLY = "none of the recorder's files left, only entries it did not write"


# Listed as a warning: something for IT to look at.
WARNINGS = frozenset({Verdict.NOT_COLLECTED, Verdict.FOREIGN_ONLY})


def retention_verdict(
    session: StoredSession,
    *,
    now: datetime,
    retention_days: int,
    recording: str | None,
    first_seen: datetime,
    delete_uncollected: bool,
) -> Verdict:
    """The rule for one session (see the module docstring). ``first_seen`` later than ``now``
    is taken as it is: keeping too long is the safe side of a wrong clock."""
    if session.files == 0 and session.foreign:
        return Verdict.FOREIGN_ONLY  # destroying would destroy nothing, every pass again
    if retention_days == 0:
        return Verdict.OFF
    limit = now - timedelta(days=retention_days)
    if not (session.started < limit and first_seen < limit):
        return Verdict.WITHIN
    if session.id == recording:
        return Verdict.RECORDING
    if session.held:
        return Verdict.HELD
    if not (session.collected or delete_uncollected):
        return Verdict.NOT_COLLECTED
    return Verdict.DUE


def due_for_deletion(
    sessions: Iterable[StoredSession],
    now: datetime,
    retention_days: int,
    recording: str | None,
    *,
    first_seen: Mapping[str, datetime] | None = None,
    delete_uncollected: bool = True,
) -> list[StoredSession]:
    """Those the retention rule deletes now. ``first_seen`` lacking a session means seen now;
    None judges by the ids alone (what a start-time estimate wants, never a deletion)."""
    return [
        s
        for s in sessions
        if retention_verdict(
            s,
            now=now,
            retention_days=retention_days,
            recording=recording,
            first_seen=s.started if first_seen is None else first_seen.get(s.id, now),
            delete_uncollected=delete_uncollected,
        )
        is Verdict.DUE
    ]


def deleted_after(started: datetime, first_seen: datetime, retention_days: int) -> datetime | None:
    """The earliest the rule lets a session go (None when it is off)."""
    if retention_days == 0:
        return None
    return max(started, first_seen) + timedelta(days=retention_days)


# --- the keeper --------------------------------------------------------------------------------


class SessionKeeper:
    """Deletes stored sessions, by hand or by the retention rule, and sets legal holds, each with
    its audit entry.

    ``recording`` says which session is being recorded (None when idle). ``monotonic`` is
    ``time.monotonic`` but for tests.
    """

    def __init__(
        self,
        root: Path,
        retention_days: int,
        recording: Callable[[], str | None],
        *,
        audit: Audit | None = None,
        utc_now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        delete_uncollected: bool = False,
        deletion_requests: bool = False,
    ) -> None:
        self.root = root
        self.retention_days = retention_days
        self.delete_uncollected = delete_uncollected
        # With collection on, a session deleted by hand may already be in the archive, which the
        # edge cannot delete from: a deletion request is written for the collector to upload.
        self.deletion_requests = deletion_requests
        self._recording = recording
        self._audit = audit
        self._utc_now = utc_now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Sessions this keeper first wrote into the state file: when, on the monotonic clock.
        self._added_at: dict[str, float] = {}
        self._kept_logged: list[str] = []
        self.deleted_by_retention = 0

    @property
    def kept_not_collected(self) -> list[str]:
        """Sessions past their time that the last retention pass kept for want of collection."""
        return list(self._kept_logged)

    def _first_seen(
        self, stored: Sequence[StoredSession], now: datetime
    ) -> tuple[dict[str, datetime], bool]:
        """First-seen times for ``stored``, and whether they differ from the state file's."""
        known = read_first_seen(retention_state_path(self.root))
        mono = self._monotonic()
        ago = {sid: timedelta(seconds=mono - t) for sid, t in self._added_at.items() if sid in known}
        times = first_seen_times(known, (s.id for s in stored), now, ago)
        # Those new to the file are added now, at the time they get (on the monotonic clock);
        # those it knew when this keeper started are not this keeper's.
        self._added_at = {
            sid: self._added_at[sid] if sid in known else mono - (now - times[sid]).total_seconds()
            for sid in times
            if sid not in known or sid in self._added_at
        }
        return times, times != known

    def _record_first_seen(self, times: Mapping[str, datetime]) -> None:
        # Only a retention pass records: a listing may run as another user than the recorder.
        try:
            write_first_seen(retention_state_path(self.root), times)
        except OSError as exc:  # a full disk: this pass still judged by what it knew
            log.error("retention_state_write_failed", error=str(exc))

    def sessions(self) -> list[dict[str, Any]]:
        """The listing: each session, when the rule lets it go, and what keeps it."""
        with self._lock:
            now = self._utc_now()
            stored = stored_sessions(self.root)
            seen, _ = self._first_seen(stored, now)
            recording = self._recording()
        listed = []
        for s in stored:
            verdict = retention_verdict(
                s,
                now=now,
                retention_days=self.retention_days,
                recording=recording,
                first_seen=seen[s.id],
                delete_uncollected=self.delete_uncollected,
            )
            after = deleted_after(s.started, seen[s.id], self.retention_days)
            listed.append(
                {
                    "session": s.id,
                    "started_utc": s.started.isoformat(),
                    "first_seen_utc": seen[s.id].isoformat(),
                    "files": s.files,
                    "bytes": s.bytes,
                    "complete": s.complete,
                    "legal_hold": s.held,
                    "collected": s.collected,
                    "foreign_entries": s.foreign,
                    "deleted_after_utc": None if after is None else after.isoformat(),
                    "retention": verdict.name.lower(),
                    "warning": verdict.value if verdict in WARNINGS else None,
                }
            )
        return listed

    def delete(self, session_id: str, *, by: str) -> dict[str, Any]:
        """Delete one closed session by hand (consent withdrawn after the recording)."""
        with self._lock:
            if session_id == self._recording():
                return {
                    "ok": False,
                    "error": f"{session_id} is being recorded; 'discard' ends and destroys it",
                }
            found = self._find(session_id)
            if isinstance(found, dict):
                return found
            if found.held:
                return {
                    "ok": False,
                    "error": f"{session_id} is under legal hold, so it cannot be deleted: release "
                    f"the hold first (neoflix-capture release {session_id})",
                }
            if found.files == 0 and found.foreign:
                return {
                    "ok": False,
                    "error": f"none of the recorder's files are left in {session_id}; its "
                    f"{found.foreign} other entries are not the recorder's to delete",
                }
            if self.deletion_requests:
                # First, so a request exists before anything is destroyed: without it the archive
                # would keep a copy nobody asked to remove. No request, no deletion.
                try:
                    write_deletion_request(
                        self.root, session_id, by=by, reason="consent withdrawn", now=self._utc_now()
                    )
                except OSError as exc:
                    return {
                        "ok": False,
                        "error": f"{session_id}: cannot record the archive's deletion request "
                        f"({exc}); nothing was deleted",
                    }
            files, left = self._destroy(found, by=by, reason="deleted by hand")
        note = f"session {session_id} deleted ({files} files destroyed)"
        if self.deletion_requests:
            note += "; a deletion request for the archive is queued for upload"
        if left:
            note += (
                f"; {left} entries the recorder did not write were left in its folder, which "
                "stays: they are not the recorder's to delete"
            )
        return {"ok": True, "note": note, "entries_left": left}

    def hold(self, session_id: str, *, by: str, on: bool = True) -> dict[str, Any]:
        """Set (``on``) or release a legal hold: while it is set, nothing deletes the session.
        The mark holds only when and by whom (a ``BY`` word) it was set."""
        if by not in BY:
            raise ValueError(f"'by' takes one of {', '.join(sorted(BY))}, got {by!r}")
        with self._lock:
            if on and session_id == self._recording():
                return {
                    "ok": False,
                    "error": f"{session_id} is being recorded; set the hold once it has stopped",
                }
            found = self._find(session_id)
            if isinstance(found, dict):
                return found
            try:
                changed = _set_hold(found.path, by, self._utc_now()) if on else _lift_hold(found.path)
            except OSError as exc:
                return {"ok": False, "error": f"{session_id}: cannot change the legal hold: {exc}"}
            if changed:
                event = "legal_hold_set" if on else "legal_hold_released"
                if self._audit is not None:
                    self._audit.append(event, session=session_id, by=by)
                log.info(event, session=session_id, by=by)
        if on:
            word = "under legal hold: nothing deletes it" if changed else "already under legal hold"
        else:
            word = "released from legal hold" if changed else "was not under legal hold"
        return {"ok": True, "note": f"session {session_id} {word}"}

    def apply_retention(self) -> list[str]:
        """Delete every session the retention rule says is due; returns their ids."""
        with self._lock:
            now = self._utc_now()
            stored = stored_sessions(self.root)
            seen, changed = self._first_seen(stored, now)
            recording = self._recording()
            verdicts = {
                s.id: retention_verdict(
                    s,
                    now=now,
                    retention_days=self.retention_days,
                    recording=recording,
                    first_seen=seen[s.id],
                    delete_uncollected=self.delete_uncollected,
                )
                for s in stored
            }
            kept = [sid for sid, v in verdicts.items() if v is Verdict.NOT_COLLECTED]
            if kept != self._kept_logged:  # once per change, not every few minutes
                self._kept_logged = kept
                if kept:
                    log.warning("sessions_kept_not_collected", sessions=kept)
            due = [s for s in stored if verdicts[s.id] is Verdict.DUE]
            for session in due:
                self._destroy(session, by="retention", reason="older than the retention period")
            self.deleted_by_retention += len(due)
            if changed or due:  # a session destroyed is forgotten
                gone = {s.id for s in due}
                self._record_first_seen({k: v for k, v in seen.items() if k not in gone})
        return [s.id for s in due]

    def _find(self, session_id: str) -> StoredSession | dict[str, Any]:
        # Looked up by name among the listed sessions, never joined to a path.
        match = [s for s in stored_sessions(self.root) if s.id == session_id]
        if not match:
            return {"ok": False, "error": f"no session {session_id!r} on this recorder"}
        return match[0]

    def _destroy(self, session: StoredSession, *, by: str, reason: str) -> tuple[int, int]:
        files = destroy_session_files(session.path)
        try:
            left = len(os.listdir(session.path))
        except FileNotFoundError:
            left = 0
        fields: dict[str, Any] = {
            "session": session.id, "by": by, "reason": reason, "files": files, "entries_left": left,
        }  # fmt: skip
        if by == "retention":
            fields["retention_days"] = self.retention_days
        if self._audit is not None:
            self._audit.append("session_deleted", bytes=session.bytes, **fields)
        log.info("session_deleted", bytes=session.bytes, **fields)
        return files, left


def _set_hold(session_dir: Path, by: str, now: datetime) -> bool:
    """Create the hold mark; False when one is there already. Never writes through a link."""
    mark = session_dir / LEGAL_HOLD
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(mark, flags, 0o600)
    except FileExistsError:
        return False
    try:
        try:
            body = json.dumps({"set_utc": now.isoformat(timespec="seconds"), "by": by}) + "\n"
            _write_all(fd, body.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(session_dir)  # a hold must outlast a power cut
    except OSError:
        mark.unlink(missing_ok=True)  # no hold without its audit entry
        raise
    return True


def _lift_hold(session_dir: Path) -> bool:
    """Remove the hold mark (a link is removed, never followed); False when there was none."""
    try:
        (session_dir / LEGAL_HOLD).unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(session_dir)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(sessions: Sequence[dict[str, Any]]) -> str:
    """The ``sessions`` command's table, for a person."""
    if not sessions:
        return "no sessions stored"
    lines = [f"{'session':<24} {'started (UTC)':<20} {'files':>5} {'MiB':>8}  deleted after (UTC)"]
    for s in sessions:
        started = s["started_utc"][:19].replace("T", " ")
        after = "kept until deleted" if s["deleted_after_utc"] is None else s["deleted_after_utc"][:10]
        flags = [] if s["complete"] else ["(cut short)"]
        if s.get("legal_hold"):
            flags.append("LEGAL HOLD")
        if s.get("warning"):
            flags.append(f"WARNING: {s['warning']}")
        if s.get("foreign_entries"):
            flags.append(f"({s['foreign_entries']} entries not the recorder's, never deleted)")
        line = f"{s['session']:<24} {started:<20} {s['files']:>5} {s['bytes'] / 2**20:>8.1f}  {after}"
        lines.append("  ".join([line, *flags]))
    return "\n".join(lines)
