"""The audit log for the privacy officer: every start, stop, discard and deletion, tamper-evident.

One JSON object per line, in plain text: IT reads it without keys, and it outlives the
recordings it describes. Each entry is ``{seq, utc, event, <fields>..., prev, hash}``, where
``hash`` is the SHA-256 of the entry's canonical JSON without ``hash`` (keys sorted, no spaces,
UTF-8) and ``prev`` is the previous entry's ``hash`` (64 zeros for the first). So ``verify``
finds a line removed, reordered, copied or edited; a line edited and re-hashed breaks the link
of the line after it. What a chain cannot show is lines cut from the end, or a log rewritten
whole; each entry's seq and hash also go to the service's own log (the journal) for that.

No patient data, ever: the file is readable without keys and kept for years, so it must not
hold what identifies a baby or a family (names, record numbers, birth times, notes). Only the
field names in ``FIELDS`` are accepted, values are short scalars or lists of them (no nested
objects to carry anything else in), and the rest is refused with ``ValueError``, so a careless
call fails in a test instead of leaking in use. ``reason`` is a fixed phrase from the code;
``by`` and ``trigger`` are words from ``BY`` and ``TRIGGERS``.

Durability: entries are rare, so each is one ``write`` to a file opened with ``O_APPEND``,
then ``fsync``. A crash mid-write leaves an incomplete last line: ``verify`` reports it, and the
next append ends it with a newline and carries the chain on from the last complete entry.
Writers in other processes (a command-line tool beside the service) take the same ``flock``
and pick up the chain where the file ends, so the chain never forks.

A full or failing disk never loses an entry and never stops the recorder: an entry that cannot
be written is held in memory (with the time it happened) and written, in order and chained as
usual, by the next ``append`` or ``retry_held`` that finds room; a write cut short is cut back
first, so no half line stays behind. ``held`` says how many wait.

Threads: ``append`` may be called from any thread; ``_lock`` serializes appends in a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

GENESIS = "0" * 64

# Field names an entry may carry, and what they hold.
FIELDS = frozenset(
    {
        "session",  # session id: start time and random hex, nothing about the patient
        "table",  # the station's configured name
        "camera",  # a configured camera name
        "cameras",  # camera names, or how many
        "reason",  # why, as a fixed phrase from the code ("maximum duration reached")
        "by",  # who or what asked: one of BY
        "trigger",  # what started a recording: one of TRIGGERS
        "files",  # how many files
        # how many entries the recorder did not write were left in a deleted session's folder
        # (deletion counts only its own files; the folder then stays)
        "entries_left",
        "bytes",  # how many bytes
        "duration_s",  # how long, in seconds
        "segments",  # how many segments
        "marker_kinds",  # the kinds of markers set ("birth", "intubation"), never their labels
        "retention_days",  # the retention rule applied
        "version",  # the recorder's version, at service start
    }
)
# ``by`` and ``trigger`` take only these words: a control socket client names itself, and its
# text must never reach this file (the recorder maps unknown names to "control socket").
BY = frozenset(
    {
        "button",  # the bedside button
        "trigger",  # vitals or motion, or a timer (post-roll, maximum duration)
        "service",  # the service starting or stopping
        "retention",  # the retention rule
        "command line",  # neoflix-capture, on the recorder
        "demo",  # neoflix-capture demo
        "doctor",  # neoflix-capture doctor
        "control socket",  # any other local client of the control socket
    }
)
TRIGGERS = frozenset({"vitals", "motion", "button", "socket"})
_CHOICES = {"by": BY, "trigger": TRIGGERS}
_EVENT = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_TEXT = 200
_MAX_ITEMS = 64
_REQUIRED = ("seq", "utc", "event", "prev", "hash")
_TAIL_BYTES = 1 << 20  # the last entry is found in the last MiB (entries are a few hundred bytes)

log = structlog.get_logger()


class AuditLog:
    """Appends chained entries to ``path`` (created with mode 0640); see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        if created:
            _fsync_dir(self.path.parent)  # the file itself must survive a power cut, too
        self._lock = threading.Lock()
        self._seq = 0
        self._hash = GENESIS
        self._size = -1  # what we believe the file's size is; differs when another writer wrote
        self._needs_newline = False
        # Entries not yet on the disk (no room): (utc, event, fields), oldest first.
        self._held: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._hold_logged = False
        with self._lock:
            self._flock()
            try:
                self._resume(os.fstat(self._fd).st_size)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    @property
    def head(self) -> tuple[int, str]:
        """The last entry on the disk: (seq, hash); (0, 64 zeros) for an empty log."""
        return self._seq, self._hash

    @property
    def held(self) -> int:
        """Entries waiting in memory for room on the disk."""
        return len(self._held)

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Writes one entry and returns it (``{"held": True, ...}`` while it waits for room on the
        disk). Raises ValueError for a field not in ``FIELDS`` or a value that is not a short
        scalar or list; nothing is written or held then."""
        if not isinstance(event, str) or not _EVENT.fullmatch(event):
            raise ValueError(f"audit event names are lower_snake_case words, got {event!r}")
        clean = {name: _checked(name, value) for name, value in sorted(fields.items())}
        utc = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            self._held.append((utc, event, clean))
            written = self._write_held()
        for entry in written:
            # The journal keeps its own copy of the chain's head: lines cut from the end show there.
            log.info("audit_entry", audit_event=entry["event"], seq=entry["seq"], hash=entry["hash"])
        if written and written[-1]["event"] == event and not self._held:
            return written[-1]
        return {"held": True, "utc": utc, "event": event, **clean}

    def retry_held(self) -> int:
        """Write what waits for room (the daemon calls this every few seconds); how many still wait."""
        with self._lock:
            if not self._held:
                return 0
            written = self._write_held()
        for entry in written:
            log.info("audit_entry", audit_event=entry["event"], seq=entry["seq"], hash=entry["hash"])
        return len(self._held)

    def _write_held(self) -> list[dict[str, Any]]:
        """Write the held entries in order, as far as the disk lets (under ``_lock``)."""
        written: list[dict[str, Any]] = []
        self._flock()
        try:
            while self._held:
                utc, event, clean = self._held[0]
                size = os.fstat(self._fd).st_size
                if size != self._size:  # another writer appended since: go on from its entry
                    self._resume(size)
                entry: dict[str, Any] = {
                    "seq": self._seq + 1,
                    "utc": utc,
                    "event": event,
                    **clean,
                    "prev": self._hash,
                }
                entry["hash"] = entry_hash(entry)
                data = json.dumps(entry, ensure_ascii=False, allow_nan=False).encode() + b"\n"
                if self._needs_newline:
                    data = b"\n" + data  # end the line a crash left incomplete
                self._size = -1  # unknown until the write has succeeded
                try:
                    _write_all(self._fd, data)
                    os.fsync(self._fd)
                except OSError as exc:
                    # No room (or the disk failed): cut back what got written, keep the entry.
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, size)
                    if not self._hold_logged:
                        self._hold_logged = True
                        log.error("audit_entry_held", audit_event=event, error=str(exc))
                    break
                self._needs_newline = False
                self._size = size + len(data)
                self._seq, self._hash = entry["seq"], entry["hash"]
                self._held.popleft()
                written.append(entry)
            if not self._held:
                self._hold_logged = False
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return written

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flock(self) -> None:
        if self._fd < 0:
            raise ValueError("the audit log is closed")
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def _resume(self, size: int) -> None:
        """Take the chain from the last complete entry in the file (called under the locks)."""
        start = max(0, size - _TAIL_BYTES)
        tail = os.pread(self._fd, size - start, start)
        lines = tail.split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first piece may begin mid-line
        # The piece after the last newline is empty, or what a crash left: it counts only if it
        # is a whole entry that lost nothing but its newline.
        unfinished = lines[-1] if lines else b""
        self._seq, self._hash = 0, GENESIS
        for raw in reversed(lines):
            entry = _parse(raw)
            if entry is not None:
                self._seq, self._hash = entry["seq"], entry["hash"]
                break
        if unfinished and _parse(unfinished) is None and not self._needs_newline:
            log.warning("audit_log_incomplete_line", path=str(self.path), resumes_after_seq=self._seq)
        self._needs_newline = bool(unfinished)
        self._size = size


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``entry`` without its ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def verify(
    path: str | os.PathLike[str], anchors: Sequence[tuple[str, int, str]] = ()
) -> list[str]:
    """Problems with the log at ``path``, one plain sentence each; empty when the chain holds.

    ``anchors`` are ``(where, seq, hash)`` taken from outside the log (each session's manifest
    records the head of the chain as it began and ended, encrypted): an anchor the log does not
    hold, or holds with another hash, shows lines cut from its end, or the log rewritten.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    problems: list[str] = []
    seen: dict[int, tuple[str, int]] = {}  # seq → (hash, line number)
    top = 0  # the highest seq so far
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        entry = _parse(raw)
        if entry is None:
            if number == len(lines) and not data.endswith(b"\n"):
                problems.append(f"line {number}: incomplete (cut short while being written: a crash?)")
            else:
                problems.append(f"line {number}: not a valid entry (damaged, or cut short by a crash)")
            continue
        seq, stored = entry["seq"], entry["hash"]
        if entry_hash(entry) != stored:
            problems.append(f"line {number}: hash does not match (edited?)")
        if seq in seen:
            problems.append(f"line {number}: repeats sequence {seq} of line {seen[seq][1]} (copied?)")
        elif seq <= top:
            problems.append(f"line {number}: sequence goes back from {top} to {seq} (lines reordered?)")
        elif seq > top + 1:
            if not seen:
                problems.append(f"line {number}: the log starts at sequence {seq}, not 1 (lines removed)")
            else:
                removed = "a line was removed" if seq == top + 2 else "lines were removed"
                problems.append(f"line {number}: sequence jumps from {top} to {seq} ({removed})")
        else:
            before = seen.get(seq - 1)
            expected = GENESIS if seq == 1 else (before[0] if before else None)
            if expected is not None and entry["prev"] != expected:
                where = f"line {before[1]}" if before else "the start"
                problems.append(
                    f"line {number}: does not follow {where} (that line edited and re-hashed, "
                    "or this one inserted)"
                )
        seen.setdefault(seq, (stored, number))
        top = max(top, seq)
    for where, seq, digest in anchors:
        held = seen.get(seq)
        if held is None:
            problems.append(
                f"{where} recorded entry {seq}, but the log ends at {top}: lines were cut from its end"
                if seq > top
                else f"{where} recorded entry {seq}, which the log does not hold (lines removed)"
            )
        elif held[0] != digest:
            problems.append(f"{where} recorded entry {seq} with another hash: the log was rewritten")
    return problems


def _parse(raw: bytes) -> dict[str, Any] | None:
    """An entry with the fields every entry has, or None."""
    try:
        entry = json.loads(raw)
    except ValueError:  # includes bytes that are not UTF-8
        return None
    if not isinstance(entry, dict) or any(k not in entry for k in _REQUIRED):
        return None
    seq, digest = entry["seq"], entry["hash"]
    if type(seq) is not int or seq < 1 or not isinstance(digest, str) or not isinstance(entry["prev"], str):
        return None
    return entry


def _checked(name: str, value: Any) -> Any:
    if name not in FIELDS:
        raise ValueError(
            f"audit field {name!r} is not allowed: the audit log is readable without keys, so it "
            f"takes only fields that cannot identify a patient ({', '.join(sorted(FIELDS))})"
        )
    choices = _CHOICES.get(name)
    if choices is not None and not (isinstance(value, str) and value in choices):
        raise ValueError(
            f"audit field {name!r} takes one of {', '.join(sorted(choices))}, got {value!r}: "
            "never free text from a client"
        )
    if isinstance(value, list | tuple):
        if len(value) > _MAX_ITEMS:
            raise ValueError(f"audit field {name!r}: at most {_MAX_ITEMS} items")
        return [_scalar(name, item) for item in value]
    return _scalar(name, value)


def _scalar(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit field {name!r}: {value} is not a number JSON can hold")
        return value
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise ValueError(f"audit field {name!r}: text longer than {_MAX_TEXT} characters")
        return value
    raise ValueError(f"audit field {name!r}: {type(value).__name__} values are not accepted")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m session.audit FILE``: check a log; exit 1 if it shows tampering or damage."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m session.audit AUDIT_LOG", file=sys.stderr)
        return 2
    problems = verify(args[0])
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args[0]}: the chain is intact")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
