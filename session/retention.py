"""The sessions kept on this PC: which there are, deleting one, and the retention rule.

The privacy officer's side of storage. A session is deleted by hand when consent is withdrawn
after the recording ended (``neoflix-capture delete SESSION``), or by the retention rule once it
started more than ``storage.retention_days`` ago. Either way its files are destroyed as a discard
destroys them (truncated, then removed) and the audit log says so, without patient data.

The session being recorded is never touched here: ``discard`` is the way to end that one. Only
directories named like a session id are ever considered, so nothing else under the storage
directory can be deleted by mistake.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from session.directory import destroy_session_files
from session.layout import PARTIAL, RECOVERY, session_started

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

    def as_dict(self, retention_days: int) -> dict[str, Any]:
        return {
            "session": self.id,
            "started_utc": self.started.isoformat(),
            "files": self.files,
            "bytes": self.bytes,
            "complete": self.complete,
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
        found.append(StoredSession(path.name, path, started, files, size, complete))
    return sorted(found, key=lambda s: (s.started, s.id))


def due_for_deletion(
    sessions: Iterable[StoredSession], now: datetime, retention_days: int, recording: str | None
) -> list[StoredSession]:
    """Those the retention rule deletes now: started more than ``retention_days`` before ``now``,
    and not the one being recorded. ``retention_days`` 0 means the rule is off."""
    if retention_days == 0:
        return []
    limit = now - timedelta(days=retention_days)
    return [s for s in sessions if s.started < limit and s.id != recording]


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
    ) -> None:
        self.root = root
        self.retention_days = retention_days
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
            files = self._destroy(match[0], by=by, reason="deleted by hand")
        return {"ok": True, "note": f"session {session_id} deleted ({files} files destroyed)"}

    def apply_retention(self) -> list[str]:
        """Delete every session the retention rule says is due; returns their ids."""
        with self._lock:
            due = due_for_deletion(
                stored_sessions(self.root), self._utc_now(), self.retention_days, self._recording()
            )
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
        lines.append(
            f"{s['session']:<24} {started:<20} {s['files']:>5} {s['bytes'] / 2**20:>8.1f}  {after}{flag}"
        )
    return "\n".join(lines)
