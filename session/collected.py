"""The two plain records collection leaves on the edge: the ``collected`` mark in a session, and a
deletion request waiting for upload.

Both hold no patient data (times, counts, a ``by`` word of the audit log) and are written whole
or not at all (a temporary name, fsync, rename, fsync of the folder), so a power cut leaves
either the old state or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from session.layout import COLLECTED, SESSION_ID, deletion_requests_path

REQUEST_FORMAT = 1


class Audit(Protocol):
    def append(self, event: str, **fields: Any) -> Any: ...


def write_atomically(path: Path, body: bytes, *, exclusive: bool = False) -> bool:
    """Write ``path`` whole, durably; never through a link. With ``exclusive`` an existing
    ``path`` is left as it is and False returned.

    One writer per folder (the storage's lock holder): the temporary name is fixed, so one a
    kill left behind is simply written over by the next call."""
    if exclusive and os.path.lexists(path):
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # never write through whatever is there
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return True


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_collected(
    session_dir: Path, *, files: int, bytes_: int, now: datetime, audit: Audit | None
) -> bool:
    """The archive has confirmed every file of this session: write ``layout.COLLECTED`` (when,
    how many files and bytes) and record ``session_collected`` in the audit log. False when the
    mark was there already (nothing is logged twice)."""
    body = json.dumps({"collected_utc": now.isoformat(timespec="seconds"), "files": files, "bytes": bytes_})
    if not write_atomically(session_dir / COLLECTED, (body + "\n").encode(), exclusive=True):
        return False
    if audit is not None:
        audit.append("session_collected", session=session_dir.name, files=files, bytes=bytes_)
    return True


def write_deletion_request(
    storage_dir: Path, session_id: str, *, by: str, reason: str, now: datetime
) -> Path:
    """Record that the archive must delete ``session_id`` (consent withdrawn after upload). The
    collector uploads it as ``layout.DELETION_REQUEST`` and removes it once the archive has it."""
    if not SESSION_ID.fullmatch(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    folder = deletion_requests_path(storage_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{session_id}.json"
    body = {
        "format": REQUEST_FORMAT,
        "session": session_id,
        "requested_utc": now.isoformat(timespec="seconds"),
        "by": by,
        "reason": reason,
    }
    write_atomically(path, (json.dumps(body, sort_keys=True) + "\n").encode())
    return path
