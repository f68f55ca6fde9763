"""The collector: a low-priority thread that sends every closed file to the archive and marks a
session collected once the archive has confirmed all of it.

What it is told (``session.controller.ClosedFiles``): a segment closed (with the SHA-256 the
manifest records for it), a session closed (then its vitals, markers, final manifest and any
recovery record are final too), a session discarded (a deletion request is written). Being told
only queues; the thread does the rest, oldest first:

1. deletion requests waiting in ``layout.deletion_requests_path`` go first (consent withdrawn);
2. each queued file: one PUT with its digest and If-None-Match (``collect.uploader``), then its
   record moves to done (``collect.queue``);
3. a closed session whose every file is confirmed gets the ``collected`` mark and an audit entry
   (``session.collected``); retention may then destroy it once its time has passed.

The manifest is sent once, at the session's end: it is rewritten after every segment, and a
copy sent earlier would hold the key that If-None-Match keeps for the final one. Until the end,
the archive holds the session's segments without a manifest; a session cut by a crash is closed
at the next start (``session.recovery``) and sent then, with its recovery record.

Errors: every failed try is retried with exponential back-off (``supervision.backoff``, 1 s to
5 min), logged once per change of reason, and shown in ``status`` (backlog, last success, last
error). Nothing is dropped for an error: a file leaves the queue only once the archive has it,
or once its session has been deleted on the edge (then a deletion request follows it).

At start the thread rescans storage for closed sessions not marked collected and queues their
files again (the queue skips what it has): so nothing is forgotten even without the queue's
folder. The thread runs at the lowest CPU priority (nice 19, on its own thread id), and can be
held to a bandwidth, so recording never waits for it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import structlog

from collect.archive import ArchiveUnavailable, make_client, read_keys
from collect.queue import Backlog, Record, UploadQueue, safe_name
from collect.uploader import NotOurs, Stored, UploadFailed, open_own, put_file, still_matches
from config.models import CollectionConfig
from session.collected import Audit, mark_collected, write_deletion_request
from session.directory import file_sha256
from session.layout import (
    COLLECTED,
    DELETION_REQUEST,
    LEGAL_HOLD,
    MANIFEST,
    PARTIAL,
    SESSION_ID,
    archive_key,
    collect_queue_path,
    deletion_requests_path,
    is_session_file,
)
from session.retention import stored_sessions
from supervision.backoff import Backoff

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = structlog.get_logger()

#: How often the thread looks again with nothing queued (deletion requests written while the
#: recorder was down, a session closed late).
IDLE_LOOK_S = 5.0


def uploadable(name: str) -> bool:
    """Whether a file of a session directory goes to the archive: every closed file the recorder
    wrote, but not the local marks (legal hold, collected) nor a manifest being replaced."""
    return (
        is_session_file(name)
        and not name.endswith(PARTIAL)
        and name not in (LEGAL_HOLD, COLLECTED, MANIFEST + ".new")
    )


@dataclass(frozen=True)
class CollectorStats:
    backlog_files: int
    backlog_bytes: int
    oldest_queued_utc: str | None
    deletion_requests_waiting: int
    uploaded_files: int
    uploaded_bytes: int
    sessions_collected: int
    last_success_utc: str | None
    last_error: str | None
    last_error_utc: str | None
    # Files not sent and not tried again until the next start (``UploadQueue.hold``).
    files_held: int = 0


class Collector:
    def __init__(
        self,
        config: CollectionConfig,
        storage_dir: Path,
        *,
        audit: Audit | None,
        recording: Callable[[], str | None],
        client: S3Client | None = None,
        utc_now: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff: Backoff | None = None,
        bandwidth_mbit_s: float = 0.0,
    ) -> None:
        assert config.bucket and config.site and config.table and config.endpoint
        self._config = config
        self._bucket = config.bucket
        self._storage = storage_dir
        self._audit = audit
        self._recording = recording
        self._client = client
        self._utc_now = utc_now
        self._backoff = backoff or Backoff(1.0, 300.0)
        self._bytes_per_s = bandwidth_mbit_s * 1e6 / 8
        self._queue: UploadQueue | None = None  # opened by ``start``, under the storage's lock
        self._inbox: queue.SimpleQueue[tuple[str, Path, str]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._at_start: list[Path] = []
        self._lock = threading.Lock()
        self.uploaded_files = 0
        self.uploaded_bytes = 0
        self.sessions_collected = 0
        self.last_success_utc: str | None = None
        self.last_error: str | None = None
        self.last_error_utc: str | None = None
        self._logged_error: str | None = None

    # --- told by session control (any thread; returns at once) ---------------------------------

    def file_closed(self, path: Path, sha256: str) -> None:
        self._inbox.put(("file", path, sha256))
        self._wake.set()

    def session_closed(self, session_dir: Path) -> None:
        self._inbox.put(("session", session_dir, ""))
        self._wake.set()

    def session_discarded(self, session_id: str) -> None:
        """Its segments may be in the archive already: ask for their deletion (durably, now)."""
        try:
            write_deletion_request(
                self._storage, session_id, by="service", reason="recording discarded", now=self._utc_now()
            )
        except (OSError, ValueError) as exc:
            log.error("deletion_request_write_failed", session=session_id, error=str(exc))
            return
        self._wake.set()

    # --- the thread ----------------------------------------------------------------------------

    @property
    def queue(self) -> UploadQueue:
        assert self._queue is not None, "the collector is not started"
        return self._queue

    def start(self) -> None:
        """Open the queue and start the thread; call it holding the storage's lock, before
        anything records."""
        self._queue = UploadQueue(collect_queue_path(self._storage))
        # Only the sessions on the disk now are rescanned: one begun later is told about.
        self._at_start = [s.path for s in stored_sessions(self._storage) if not s.collected]
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the file being sent (what is left stays queued for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        _lower_priority()
        try:
            self._rescan()
        except Exception:  # the queue still works; the next start rescans again
            log.exception("collect_rescan_failed")
        while not self._stop.is_set():
            try:
                busy = self._step()
            except Exception as exc:  # never let the thread die: back off and try again
                log.exception("collect_step_failed")
                self._failed(f"unexpected: {exc}")
                busy = False
                self._stop.wait(self._backoff.next())
                continue
            if not busy:
                self._wake.wait(IDLE_LOOK_S)
                self._wake.clear()

    def _step(self) -> bool:
        """One piece of work; False when there was none."""
        self._take_inbox()
        for request in sorted(deletion_requests_path(self._storage).glob("*.json")):
            if self._stop.is_set():
                return True
            return self._send_request(request)
        pending = self.queue.pending()
        if pending:
            return self._send(pending[0])
        self._finish_sessions()
        return False

    def _take_inbox(self) -> None:
        while True:
            try:
                kind, path, sha = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "file":
                self._add(path.parent.name, path, sha)
            else:
                self._queue_session(path)

    def _rescan(self) -> None:
        recording = self._recording()
        for path in self._at_start:
            if path.name != recording:
                self._queue_session(path)

    def _queue_session(self, session_dir: Path) -> None:
        """Queue every closed file of a session that has ended, and note it as closed."""
        try:
            names = sorted(os.listdir(session_dir))
        except FileNotFoundError:
            return  # deleted meanwhile
        if COLLECTED in names:
            return
        if any(n.endswith(PARTIAL) for n in names):
            # Recovery closes what a crash left open before anything is sent; until then the
            # session is not whole, and its manifest not final.
            log.warning("collect_session_not_closed", session=session_dir.name)
            return
        for name in names:
            if uploadable(name):
                self._add(session_dir.name, session_dir / name, "")
        self.queue.close_session(session_dir.name)
        self._wake.set()

    def _add(self, session: str, path: Path, sha256: str) -> None:
        if not (safe_name(session) and safe_name(path.name)):
            log.error("collect_name_refused", session=session, file=path.name)
            return
        try:
            if sha256:
                size = path.stat().st_size
            else:
                sha256, size = file_sha256(path)
            self.queue.add(session, path.name, sha256, size, self._utc_now())
        except FileNotFoundError:
            return  # destroyed meanwhile (discarded or deleted): nothing to send
        except OSError as exc:
            # Not queued now; the session's end (or the next start) queues it again.
            log.error("collect_queue_failed", session=session, file=path.name, error=str(exc))

    # --- sending -------------------------------------------------------------------------------

    def _client_now(self) -> S3Client:
        if self._client is None:
            keys = read_keys(self._config.credentials_file)
            assert self._config.endpoint is not None
            self._client = make_client(self._config.endpoint, self._config.region, keys)
        return self._client

    def _key(self, session: str, name: str) -> str:
        assert self._config.site and self._config.table
        return archive_key(self._config.site, self._config.table, session, name)

    def _send(self, record: Record) -> bool:
        path = self._storage / record.session / record.file
        try:
            # Sent from the open file (botocore reads it in blocks): a long segment is never
            # held in memory whole.
            body = open_own(path)
        except NotOurs as exc:
            # A link, a device or plain text where the recorder writes age files: never sent,
            # whatever it is (it could be anything readable by the service user).
            self._hold(record, f"{record.session}/{record.file} is not sent: {exc}")
            return True
        except FileNotFoundError:
            # Deleted or discarded on the edge after it was queued: a deletion request covers
            # whatever of it reached the archive.
            log.info("collect_file_gone", session=record.session, file=record.file)
            self.queue.drop(record)
            return True
        except OSError as exc:
            self._failed(f"cannot read {record.session}/{record.file}: {exc}")
            self._stop.wait(self._backoff.next())
            return True
        with body:
            size = os.fstat(body.fileno()).st_size
            stored = self._put(
                self._key(record.session, record.file), body, record.sha256, path, size, record
            )
        if stored is None:
            return True
        self.queue.confirm(record, stored.how, self._utc_now())
        self._succeeded(size)
        if stored.how != "put":
            log.info("collect_already_in_archive", session=record.session, file=record.file, how=stored.how)
        return True

    def _send_request(self, request: Path) -> bool:
        session = request.stem
        if not SESSION_ID.fullmatch(session):
            log.error("deletion_request_name_refused", file=request.name)
            request.rename(request.with_name("." + request.name + ".refused"))
            return True
        try:
            body = request.read_bytes()
        except OSError as exc:
            self._failed(f"cannot read the deletion request of {session}: {exc}")
            self._stop.wait(self._backoff.next())
            return True
        digest = hashlib.sha256(body).hexdigest()
        stored = self._put(self._key(session, DELETION_REQUEST), body, digest, request, len(body))
        if stored is None:
            return True
        request.unlink(missing_ok=True)
        self._succeeded(len(body))
        log.info("deletion_request_sent", session=session, how=stored.how)
        if self._audit is not None:
            self._audit.append("deletion_request_sent", session=session)
        return True

    def _put(
        self,
        key: str,
        body: bytes | BinaryIO,
        sha256: str,
        source: Path,
        size: int,
        record: Record | None = None,
    ) -> Stored | None:
        """One PUT; None (after logging and backing off) when the archive did not take it. A
        refusal that trying again cannot help holds ``record`` instead: the queue goes on."""
        started = time.monotonic()
        try:
            stored = put_file(self._client_now(), self._bucket, key, body, sha256)
        except ArchiveUnavailable as exc:
            self._failed(str(exc))
            self._stop.wait(self._backoff.next())
            return None
        except UploadFailed as exc:
            reason = exc.reason
            refused = "BadDigest" in reason or "SHA-256" in reason
            changed = refused and source.exists() and not still_matches(source, sha256)
            if changed:
                reason += f"; {source.name} on the disk no longer has the SHA-256 recorded at close"
            if record is not None and (changed or not exc.retry):
                self._hold(record, f"{key}: {reason}")
                return None
            self._failed(f"{key}: {reason}")
            self._stop.wait(self._backoff.next())
            return None
        self._pace(size, time.monotonic() - started)
        return stored

    def _hold(self, record: Record, reason: str) -> None:
        self.queue.hold(record, reason, self._utc_now())
        self._failed(reason)
        log.error("collect_file_held", session=record.session, file=record.file, reason=reason)

    def _pace(self, size: int, took_s: float) -> None:
        if self._bytes_per_s > 0:
            self._stop.wait(max(0.0, size / self._bytes_per_s - took_s))

    def _succeeded(self, size: int) -> None:
        self._backoff.reset()
        with self._lock:
            self.uploaded_files += 1
            self.uploaded_bytes += size
            self.last_success_utc = self._utc_now().isoformat(timespec="seconds")
        if self._logged_error is not None:
            log.info("collect_resumed", after=self._logged_error)
            self._logged_error = None

    def _failed(self, reason: str) -> None:
        with self._lock:
            self.last_error = reason
            self.last_error_utc = self._utc_now().isoformat(timespec="seconds")
        # Once per change of reason: an archive down for a day is one line, not thousands.
        if _kind(reason) != _kind(self._logged_error):
            log.error("collect_failed", reason=reason, backlog_files=self.queue.backlog.files)
        self._logged_error = reason

    # --- confirming ----------------------------------------------------------------------------

    def _finish_sessions(self) -> None:
        for session in self.queue.closed_sessions():
            if self.queue.pending_of(session):
                continue
            self._finish(session)

    def _finish(self, session: str) -> None:
        folder = self._storage / session
        try:
            names = [n for n in os.listdir(folder) if uploadable(n)]
        except FileNotFoundError:
            self.queue.forget_session(session)  # deleted on the edge
            return
        done = self.queue.done(session)
        held = self.queue.held_of(session)
        if any(n in held for n in names):
            return  # not whole in the archive: never marked collected, so retention keeps it
        missing = [n for n in names if n not in done or done[n].bytes != _size(folder / n)]
        if missing:
            # A file the archive has not confirmed (closed late, or changed): queue it.
            for name in missing:
                if name not in done:
                    self._add(session, folder / name, "")
                else:
                    log.error("collect_file_changed", session=session, file=name)
            return
        total = sum(done[n].bytes for n in names)
        try:
            marked = mark_collected(
                folder, files=len(names), bytes_=total, now=self._utc_now(), audit=self._audit
            )
        except OSError as exc:
            self._failed(f"cannot mark {session} collected: {exc}")
            return
        if marked:
            with self._lock:
                self.sessions_collected += 1
            log.info("session_collected", session=session, files=len(names), bytes=total)
        self.queue.forget_session(session)

    # --- status --------------------------------------------------------------------------------

    def stats(self) -> CollectorStats:
        backlog = self._queue.backlog if self._queue is not None else Backlog(0, 0, None)
        try:
            waiting = sum(1 for _ in deletion_requests_path(self._storage).glob("*.json"))
        except OSError:
            waiting = 0
        with self._lock:
            return CollectorStats(
                backlog_files=backlog.files,
                backlog_bytes=backlog.bytes,
                oldest_queued_utc=backlog.oldest_utc,
                deletion_requests_waiting=waiting,
                uploaded_files=self.uploaded_files,
                uploaded_bytes=self.uploaded_bytes,
                sessions_collected=self.sessions_collected,
                last_success_utc=self.last_success_utc,
                last_error=self.last_error,
                last_error_utc=self.last_error_utc,
                files_held=self._queue.held_count if self._queue is not None else 0,
            )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _kind(reason: str | None) -> str | None:
    # The same failure on another file is the same kind of failure.
    return None if reason is None else reason.split(": ", 1)[-1][:80]


# ioprio_set(2) has no wrapper in Python or glibc: its number per architecture, and the idle class.
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}
_IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread alone
_IOPRIO_IDLE = 3 << 13


def _lower_priority() -> None:
    """Nice 19 and the idle I/O class for this thread alone (Linux applies both to a thread id):
    the cameras' threads and the segment writers keep every core and every disk slot they need."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 19)
    except (OSError, AttributeError) as exc:
        log.warning("collect_priority_unchanged", error=str(exc))
    number = _IOPRIO_SET.get(os.uname().machine)
    if number is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(number, _IOPRIO_WHO_PROCESS, tid, _IOPRIO_IDLE) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        log.warning("collect_io_priority_unchanged", error=str(exc))


__all__ = ["Collector", "CollectorStats", "uploadable"]
