"""The collector's durable queue: what is still to upload, and what the archive has confirmed.

One small JSON record per file, written whole (temporary name, fsync, rename, fsync of the
folder), in a folder beside the storage directory (``layout.collect_queue_path``):

    pending/<session>+<file>.json     to upload: session, file, sha256, bytes, queued_utc
    done/<session>+<file>.json        the archive confirmed it: the same, with how and when
    closed/<session>                  every file of the session is final: confirm it, then mark it
    held/<session>+<file>.json        not sent, and not tried again until the next start: the file
                                      is not one of ours (a link, not an age file) or the archive
                                      refuses it for good; ``how`` says why. Its session is never
                                      marked collected, so retention keeps it.

A record only ever goes pending → done, and the done record is written before the pending one
is removed: a kill -9 between the two leaves both, and the done one wins when read. Records hold
names, sizes and digests only, never content. The queue is bounded by the disk alone, and losing
it loses nothing: the collector rescans storage at start for every session not yet marked
collected (``collect.collector``), and the archive's If-None-Match keeps a second PUT of a file
from storing anything twice.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from session.collected import fsync_dir, write_atomically

_SEP = "+"


@dataclass(frozen=True)
class Record:
    session: str
    file: str
    sha256: str
    bytes: int
    queued_utc: str
    how: str = ""  # once done: "put", "verified" or "present" (collect.uploader.Stored)
    confirmed_utc: str = ""

    @property
    def name(self) -> str:
        return f"{self.session}{_SEP}{self.file}.json"


@dataclass(frozen=True)
class Backlog:
    files: int
    bytes: int
    oldest_utc: str | None


class UploadQueue:
    """See the module docstring. One thread (the collector's) changes it; ``backlog`` may be read
    from any thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pending = folder / "pending"
        self._done = folder / "done"
        self._closed = folder / "closed"
        self._held = folder / "held"
        for d in (self._pending, self._done, self._closed, self._held):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._tidy()
        # The pending records, also in memory: the disk is read once, at start.
        self._records = {r.name: r for r in (_read(p) for p in self._pending.iterdir()) if r is not None}
        self._backlog = self._count()
        self.held_count = 0  # may be read from any thread, like ``backlog``

    def _tidy(self) -> None:
        """After a kill: a file both pending and done is done; half-written temporaries go."""
        for d in (self._pending, self._done, self._closed):
            for entry in d.iterdir():
                if entry.name.startswith("."):
                    entry.unlink(missing_ok=True)
        for entry in self._pending.iterdir():
            if (self._done / entry.name).exists():
                entry.unlink()
        # A start tries every held file once more: someone may have fixed what stopped it (the
        # archive's operator removed a conflicting object, a file was restored).
        for entry in self._held.iterdir():
            if not (self._pending / entry.name).exists():
                os.replace(entry, self._pending / entry.name)
            else:
                entry.unlink()
        fsync_dir(self._pending)
        fsync_dir(self._held)

    def add(self, session: str, file: str, sha256: str, size: int, now: datetime) -> bool:
        """Queue one closed file; False when it is queued or done already (nothing changes)."""
        record = Record(session, file, sha256, size, now.isoformat(timespec="seconds"))
        if (self._done / record.name).exists():
            return False
        if record.name in self._records:
            return False
        if not write_atomically(self._pending / record.name, _encode(record), exclusive=True):
            return False
        self._records[record.name] = record
        self._backlog = self._count()
        return True

    def pending(self) -> list[Record]:
        """Oldest first, so a backlog drains in the order it was recorded."""
        return sorted(self._records.values(), key=lambda r: (r.queued_utc, r.session, r.file))

    def confirm(self, record: Record, how: str, now: datetime) -> None:
        done = Record(**{**asdict(record), "how": how, "confirmed_utc": now.isoformat(timespec="seconds")})
        write_atomically(self._done / record.name, _encode(done))
        self.drop(record)

    def drop(self, record: Record) -> None:
        """Forget a pending file (its session was deleted on the edge before it was sent)."""
        with contextlib.suppress(FileNotFoundError):
            (self._pending / record.name).unlink()
        fsync_dir(self._pending)
        self._records.pop(record.name, None)
        self._backlog = self._count()

    def hold(self, record: Record, why: str, now: datetime) -> None:
        """Stop trying a pending file until the next start (see the module docstring), so one
        file the archive will never take does not stand in front of every later one."""
        held = Record(**{**asdict(record), "how": why, "confirmed_utc": now.isoformat(timespec="seconds")})
        write_atomically(self._held / record.name, _encode(held))
        self.drop(record)
        self.held_count = len(self.held())

    def held(self) -> list[Record]:
        return [r for r in (_read(p) for p in sorted(self._held.iterdir())) if r is not None]

    def held_of(self, session: str) -> dict[str, Record]:
        return {r.file: r for r in self.held() if r.session == session}

    def done(self, session: str) -> dict[str, Record]:
        prefix = session + _SEP
        found = {}
        for path in self._done.iterdir():
            if path.name.startswith(prefix):
                record = _read(path)
                if record is not None:
                    found[record.file] = record
        return found

    def pending_of(self, session: str) -> int:
        return sum(1 for r in self._records.values() if r.session == session)

    def close_session(self, session: str) -> None:
        write_atomically(self._closed / session, b"")

    def closed_sessions(self) -> list[str]:
        return sorted(p.name for p in self._closed.iterdir() if not p.name.startswith("."))

    def forget_session(self, session: str) -> None:
        """The session is marked collected (or gone): its records are no longer needed."""
        prefix = session + _SEP
        for d in (self._pending, self._done, self._held):
            for path in d.iterdir():
                if path.name.startswith(prefix):
                    path.unlink(missing_ok=True)
            fsync_dir(d)
        self._records = {k: r for k, r in self._records.items() if r.session != session}
        (self._closed / session).unlink(missing_ok=True)
        fsync_dir(self._closed)
        self.held_count = len(self.held())
        self._backlog = self._count()

    @property
    def backlog(self) -> Backlog:
        return self._backlog

    def _count(self) -> Backlog:
        records = self.pending()
        return Backlog(
            len(records), sum(r.bytes for r in records), records[0].queued_utc if records else None
        )


def _encode(record: Record) -> bytes:
    return (json.dumps(asdict(record), sort_keys=True) + "\n").encode()


def _read(path: Path) -> Record | None:
    if path.name.startswith("."):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Record(**data)
    except (OSError, ValueError, TypeError):
        # A record is written whole or not at all; one that cannot be read is not ours. The
        # rescan at start still finds its file.
        return None


def safe_name(name: str) -> bool:
    """Whether a session or file name can be part of a record's name."""
    return bool(name) and _SEP not in name and os.sep not in name and not name.startswith(".")
