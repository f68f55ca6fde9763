"""The sessions kept on this PC: which there are, deleting one, and the retention rule.

The privacy officer's side of storage. A session is deleted by hand when consent is withdrawn
after the recording ended (``neoflix-capture delete SESSION``), or by the retention rule once it
started more than ``storage.retention_days`` ago. Either way its files are destroyed as a discard
destroys them (truncated, then removed) and the audit log says so, without patient data.

The session being recorded is never touched here: ``discard`` is the way to end that one. Only
directories named like a session id are ever considered, so nothing else under the storage
directory can be deleted by mistake.

What retention trusts, and what it does not:

- the wall clock, only as far as it can be checked: a session is due only when both the start
  its id records AND the time this recorder first saw it are older than the retention period.
  A PC whose clock was wrong (2020) until NTP corrected it names a fresh session 2020; it is
  then kept for the full period from when it was first seen, never destroyed at once. "First
  seen" is kept in ``<storage>.seen.json`` (session ids and times only); a missing or damaged
  file means "seen now", never "old", and a start in the future counts as now;
- a legal hold (``neoflix-capture hold SESSION``) stops every deletion, by hand or by retention;
- collection: a session is destroyed by retention only once the archive has confirmed every
  file (the collector writes ``collected`` into it), unless ``storage.delete_uncollected`` says
  otherwise; one past its time and not collected is kept, and ``sessions`` says so.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from session.directory import destroy_session_files
from session.layout import (
    COLLECTED,
    LEGAL_HOLD,
    PARTIAL,
    RECOVERY,
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
    files: int
    bytes: int
    complete: bool  # no file left half-written (a crash or power cut leaves ``.partial`` files)
    held: bool = False  # under legal hold: never deleted
    collected: bool = False  # the archive confirmed every file

    def as_dict(self, retention_days: int) -> dict[str, Any]:
        return {
            "session": self.id,
            "started_utc": self.started.isoformat(),
            "files": self.files,
            "bytes": self.bytes,
            "complete": self.complete,
            "legal_hold": self.held,
            "collected": self.collected,
            "deleted_after_utc": None
            if retention_days == 0
            else (self.started + timedelta(days=retention_days)).isoformat(),
        }


def stored_sessions(root: Path) -> list[StoredSession]:
    """The session directories under ``root``, oldest first."""
    found = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        started = session_started(path.name)
        if started is None or not path.is_dir() or path.is_symlink():
            continue
        files = size = 0
        complete = True
        for f in path.iterdir():
            try:
                size += f.stat().st_size
            except OSError:
                continue  # removed meanwhile
            files += 1
            # A crash leaves .partial files, and the next start closes them with a record.
            complete = complete and not f.name.endswith(PARTIAL) and not f.name.startswith(RECOVERY)
        held = (path / LEGAL_HOLD).is_file()
        collected = (path / COLLECTED).is_file()
        found.append(StoredSession(path.name, path, started, files, size, complete, held, collected))
    return sorted(found, key=lambda s: (s.started, s.id))


def due_for_deletion(
    sessions: Iterable[StoredSession],
    now: datetime,
    retention_days: int,
    recording: str | None,
    *,
    first_seen: Mapping[str, datetime] | None = None,
    delete_uncollected: bool = True,
) -> list[StoredSession]:
    """Those the retention rule deletes now (see the module docstring): past the period both by
    their id and by when first seen (``first_seen``; None judges by the id alone), not the one
    being recorded, not held, and collected unless ``delete_uncollected``. ``retention_days`` 0
    means the rule is off."""
    if retention_days == 0:
        return []
    limit = now - timedelta(days=retention_days)
    return [
        s
        for s in sessions
        if s.started < limit
        and (first_seen is None or first_seen.get(s.id, now) < limit)
        and s.id != recording
        and not s.held
        and (s.collected or delete_uncollected)
    ]


def past_retention_uncollected(
    sessions: Iterable[StoredSession], now: datetime, retention_days: int, first_seen: Mapping[str, datetime]
) -> list[StoredSession]:
    """Past their time but kept because the archive has not confirmed them: a warning for IT."""
    if retention_days == 0:
        return []
    limit = now - timedelta(days=retention_days)
    return [
        s for s in sessions if s.started < limit and first_seen.get(s.id, now) < limit and not s.collected
    ]


def update_first_seen(path: Path, sessions: Iterable[StoredSession], now: datetime) -> dict[str, datetime]:
    """When each stored session was first seen, this one included; kept in ``path`` (written
    whole under a temporary name, then renamed). Sessions gone are forgotten."""
    try:
        raw = json.loads(path.read_text())
        known = {str(k): datetime.fromisoformat(str(v)) for k, v in dict(raw).items()}
    except (OSError, ValueError, TypeError):
        known = {}  # missing or damaged: every session counts as seen now, never as old
    seen: dict[str, datetime] = {}
    for s in sessions:
        first = known.get(s.id)
        if first is None or first.tzinfo is None or first > now:
            first = now
        seen[s.id] = first
    if seen != known:
        fresh = path.with_name(path.name + ".new")
        try:
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({k: v.isoformat() for k, v in seen.items()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(fresh, path)
        except OSError as exc:  # a full disk: retention still works on what it knows now
            log.error("retention_state_write_failed", error=str(exc))
    return seen


class SessionKeeper:
    """Deletes stored sessions, by hand or by the retention rule, each with its audit entry.

    ``recording`` says which session is being recorded (None when idle). One lock serialises
    deletions, so a retention pass and a command never destroy the same directory twice.
    """

    def __init__(
        self,
        root: Path,
        retention_days: int,
        recording: Callable[[], str | None],
        *,
        audit: Audit | None = None,
        utc_now: Callable[[], datetime] = lambda: datetime.now(UTC),
        delete_uncollected: bool = False,
    ) -> None:
        self.root = root
        self.retention_days = retention_days
        self.delete_uncollected = delete_uncollected
        self._recording = recording
        self._audit = audit
        self._utc_now = utc_now
        self._lock = threading.Lock()
        self.deleted_by_retention = 0

    def sessions(self) -> list[dict[str, Any]]:
        return [s.as_dict(self.retention_days) for s in stored_sessions(self.root)]

    def delete(self, session_id: str, *, by: str) -> dict[str, Any]:
        """Delete one closed session by hand (consent withdrawn after the recording)."""
        with self._lock:
            if session_id == self._recording():
                return {
                    "ok": False,
                    "error": f"{session_id} is being recorded; 'discard' ends and destroys it",
                }
            match = [s for s in stored_sessions(self.root) if s.id == session_id]
            if not match:
                return {"ok": False, "error": f"no session {session_id!r} on this recorder"}
            if match[0].held:
                return {
                    "ok": False,
                    "error": f"{session_id} is under legal hold: release it first "
                    f"(neoflix-capture release {session_id})",
                }
            files = self._destroy(match[0], by=by, reason="deleted by hand")
        return {"ok": True, "note": f"session {session_id} deleted ({files} files destroyed)"}

    def hold(self, session_id: str, *, by: str, on: bool = True) -> dict[str, Any]:
        """Set (or release) a legal hold: while it is set, nothing deletes the session."""
        with self._lock:
            match = [s for s in stored_sessions(self.root) if s.id == session_id]
            if not match:
                return {"ok": False, "error": f"no session {session_id!r} on this recorder"}
            marker = match[0].path / LEGAL_HOLD
            if on:
                if not marker.exists():
                    marker.write_text(f"legal hold set {self._utc_now().isoformat()} by {by}\n")
                    marker.chmod(0o600)
            else:
                marker.unlink(missing_ok=True)
        event = "legal_hold_set" if on else "legal_hold_released"
        if self._audit is not None:
            self._audit.append(event, session=session_id, by=by)
        log.info(event, session=session_id, by=by)
        word = "under legal hold: nothing deletes it" if on else "released from legal hold"
        return {"ok": True, "note": f"session {session_id} {word}"}

    def apply_retention(self) -> list[str]:
        """Delete every session the retention rule says is due; returns their ids."""
        with self._lock:
            now = self._utc_now()
            stored = stored_sessions(self.root)
            first_seen = update_first_seen(retention_state_path(self.root), stored, now)
            due = due_for_deletion(
                stored,
                now,
                self.retention_days,
                self._recording(),
                first_seen=first_seen,
                delete_uncollected=self.delete_uncollected,
            )
            kept = past_retention_uncollected(stored, now, self.retention_days, first_seen)
            if kept and not self.delete_uncollected:
                log.warning("sessions_kept_uncollected", sessions=len(kept))
            for session in due:
                self._destroy(session, by="retention", reason="older than the retention period")
            self.deleted_by_retention += len(due)
        return [s.id for s in due]

    def _destroy(self, session: StoredSession, *, by: str, reason: str) -> int:
        files = destroy_session_files(session.path)
        fields: dict[str, Any] = {"session": session.id, "by": by, "reason": reason, "files": files}
        if by == "retention":
            fields["retention_days"] = self.retention_days
        if self._audit is not None:
            self._audit.append("session_deleted", bytes=session.bytes, **fields)
        log.info("session_deleted", bytes=session.bytes, **fields)
        return files


def describe(sessions: Sequence[dict[str, Any]]) -> str:
    """The ``sessions`` command's table, for a person."""
    if not sessions:
        return "no sessions stored"
    lines = [f"{'session':<24} {'started (UTC)':<20} {'files':>5} {'MiB':>8}  deleted after (UTC)"]
    for s in sessions:
        started = s["started_utc"][:19].replace("T", " ")
        after = "kept until deleted" if s["deleted_after_utc"] is None else s["deleted_after_utc"][:10]
        flag = "" if s["complete"] else "  (cut short)"
        if s.get("legal_hold"):
            flag += "  LEGAL HOLD"
        elif (
            not s.get("collected", True)
            and s["deleted_after_utc"] is not None
            and datetime.fromisoformat(s["deleted_after_utc"]) < datetime.now(UTC)
        ):
            flag += "  (past retention, kept: not collected)"
        lines.append(
            f"{s['session']:<24} {started:<20} {s['files']:>5} {s['bytes'] / 2**20:>8.1f}  {after}{flag}"
        )
    return "\n".join(lines)
