"""One recorder per storage directory: a lock held for as long as a recorder (or a tool working
on the stored sessions while none runs) uses it.

A second ``neoflix-capture run`` on the same config would take over the control socket, and the
first recorder could then no longer be stopped or asked to discard; two writers would also race
over retention and recovery. So the daemon takes ``<storage>.lock`` (beside the storage
directory, see ``session.layout.lock_path``) with ``flock`` at
start and refuses to run without it; the kernel drops the lock when the process ends, however it
ends (kill -9 included), so a crash never leaves a stale lock. The file holds the holder's pid,
for the message the next one prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from session.layout import lock_path


class StorageBusy(Exception):
    """Another process holds the storage directory's lock."""


class StorageLock:
    """Held from ``acquire`` until ``release`` (or the process ends)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, storage_dir: Path, *, holder: str = "a recorder") -> StorageLock:
        """Take the lock, or raise ``StorageBusy`` saying who holds it. ``OSError`` when the
        storage directory cannot be created or written."""
        path = lock_path(storage_dir)
        # Only the folder the lock lives in: the storage directory itself is made at the first
        # recording (nothing touches it while idle).
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            raise StorageBusy(
                f"{storage_dir}: already in use by {other or 'another process'}; only one recorder "
                "may use a storage directory (stop the running one first: systemctl stop "
                "neoflix-capture)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # who holds it is for messages; a full disk is no bar
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder} (pid {os.getpid()})\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __del__(self) -> None:
        # A holder dropped without release (a test, a failed start) must not keep the storage.
        self.release()
