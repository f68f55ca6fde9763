"""Closing what a crash left open: the sessions a recorder that died (kill, power cut, a crash)
never finished.

Such a session has files still under their ``.partial`` name (the segment each camera was
writing, the vitals and markers logs) and a manifest that lists only the segments closed before
the end. The recorder cannot finish those files as it would have (it holds no key that reads
them, and the chunk each was filling died with the process), so at start it:

- renames each ``.partial`` file to its final name: a truncated age file, which the review side
  reads up to its last complete chunk and reports as cut short;
- writes ``recovery.json.age`` (encrypted like everything else) listing each file it closed,
  its size and the SHA-256 of its ciphertext, chained as the manifest's segments are, so the
  review side can tell the files found after the crash from files added later;
- records an ``unclean_end`` entry in the audit log (the session, how many files).

A half-written manifest update (``manifest.json.age.new.partial``) is removed: the manifest it
was to replace is whole, because the manifest is only ever replaced by a rename; a whole one the
crash kept from its rename (``manifest.json.age.new``) takes the manifest's place.

Only directories named like a session id are considered, only regular files are touched (never a
link), and a session that fails to recover is logged and left as it is: recording must start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from session.directory import file_sha256
from session.layout import CHAIN_START, MANIFEST, PARTIAL, RECOVERY, chain_value, session_started
from store.encrypted_file import EncryptedFileWriter
from store.keys import Recipient
from sync.clock import UtcAnchor

log = structlog.get_logger()


class Audit(Protocol):
    def append(self, event: str, **fields: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Recovered:
    session: str
    files: list[str]  # final names of the files closed


def unfinished_sessions(root: Path) -> list[Path]:
    """Session directories under ``root`` that a crash left open, oldest first."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    found = []
    for path in entries:
        if session_started(path.name) is None or path.is_symlink() or not path.is_dir():
            continue
        try:
            names = [f.name for f in path.iterdir()]
        except OSError:
            continue
        if any(n.endswith(PARTIAL) or n == MANIFEST + ".new" for n in names):
            found.append(path)
    return found


def recover_session(path: Path, recipients: Sequence[Recipient]) -> Recovered:
    """Close what the crash left open in one session directory; see the module docstring."""
    closed: list[dict[str, Any]] = []
    chain = CHAIN_START
    for f in sorted(path.iterdir()):
        if f.is_symlink() or not f.is_file():
            continue
        if f.name == MANIFEST + ".new":
            os.replace(f, path / MANIFEST)  # written whole, the crash came before its rename
            continue
        if f.name == MANIFEST + ".new" + PARTIAL:
            f.unlink()  # an update the crash interrupted; the manifest it was to replace is whole
            continue
        if not f.name.endswith(PARTIAL):
            continue
        final = f.with_name(f.name.removesuffix(PARTIAL))
        if final.exists():
            continue  # never overwrite: both stay for the review side to judge
        digest, size = file_sha256(f)
        os.rename(f, final)
        entry: dict[str, Any] = {"file": final.name, "bytes": size, "sha256": digest, "truncated": True}
        entry["chain"] = chain = chain_value(entry, chain)
        closed.append(entry)
    _fsync_dir(path)
    record = {
        "session": path.name,
        "recovered_utc": UtcAnchor.take().utc.isoformat(),
        "reason": "the recorder ended without closing this session (a crash, a kill or a power cut)",
        "files": closed,
        "chain": chain,
    }
    target = path / RECOVERY
    if target.exists():  # a second crash of the same session: keep each record
        n = 2
        while (path / f"{RECOVERY}.{n}").exists():
            n += 1
        target = path / f"{RECOVERY}.{n}"
    writer = EncryptedFileWriter(target, recipients, fsync_interval_s=60)
    try:
        writer.write(json.dumps(record, indent=1).encode())
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return Recovered(path.name, [e["file"] for e in closed])


def recover_all(root: Path, recipients: Sequence[Recipient], audit: Audit | None) -> list[Recovered]:
    """Recover every unfinished session under ``root``; each in the audit log as ``unclean_end``."""
    done = []
    for path in unfinished_sessions(root):
        try:
            recovered = recover_session(path, recipients)
        except OSError as exc:  # a full or failing disk: record what can be, and start recording
            log.error("session_recovery_failed", session=path.name, error=str(exc))
            continue
        done.append(recovered)
        log.warning("session_recovered", session=recovered.session, files=len(recovered.files))
        if audit is not None:
            try:
                audit.append("unclean_end", session=recovered.session, files=len(recovered.files))
            except OSError as exc:
                log.error("audit_write_failed", event="unclean_end", error=str(exc))
    return done


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
