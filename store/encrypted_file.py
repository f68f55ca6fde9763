"""A recording file on disk that only ever holds age ciphertext.

Bytes written go through AgeWriter straight to a `<name>.partial` file, which
is renamed to its final name only by close(). So a finished recording is
never half-written under its final name, a crashed one is left as `.partial`
and still decrypts up to its last complete chunk, and plaintext never
touches the disk: at most one 64 KiB chunk of it sits in memory.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from store.age_writer import AgeWriter
from store.errors import NoRecipientError
from store.keys import Recipient

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

PARTIAL_SUFFIX = ".partial"


class _FdSink:
    """Writes straight to the file descriptor, so no ciphertext waits in a user-space buffer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            # os.write may write less than asked; loop until all of it is down.
            done = os.write(self.fd, view)
            view = view[done:]
        self.written += len(data)
        return len(data)


def _fsync_dir(path: Path) -> None:
    # Creating or renaming a file changes its directory; without this the
    # name itself may not survive a power cut even if the data does.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EncryptedFileWriter(io.RawIOBase):
    """Write-only, non-seekable binary file that stores age ciphertext at `final_path`.

    Suitable as a muxer output (`av.open(writer, "w", format="mpegts")`). Data
    is fsynced at most every `fsync_interval_s` seconds while writing, and
    always on close().
    """

    def __init__(
        self,
        final_path: str | os.PathLike[str],
        recipients: Iterable[Recipient],
        fsync_interval_s: float = 2.0,
    ) -> None:
        super().__init__()
        recipient_list = list(recipients)
        if not recipient_list:
            raise NoRecipientError(
                f"{final_path}: refusing to record with zero recipients: nobody could read it"
            )
        self._final = Path(final_path)
        self._partial = self._final.with_name(self._final.name + PARTIAL_SUFFIX)
        self._interval = fsync_interval_s
        self._finished = False  # renamed into place, or aborted
        self._dir_synced = False
        self._plaintext = 0
        if self._final.exists():
            raise FileExistsError(f"{self._final}: a recording with this name already exists")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self._partial, flags, 0o600)
        try:
            # The umask could only narrow 0600, never widen it; fchmod makes it exact.
            os.fchmod(fd, 0o600)
            self._sink = _FdSink(fd)
            self._age = AgeWriter(self._sink, recipient_list)
        except BaseException:
            os.close(fd)
            os.unlink(self._partial)
            raise
        self._fd: int | None = fd
        self._last_sync = time.monotonic()
        # When the oldest plaintext not yet sealed into a chunk arrived (None: nothing held).
        self._unsealed_since: float | None = None

    @property
    def final_path(self) -> Path:
        return self._final

    @property
    def partial_path(self) -> Path:
        return self._partial

    @property
    def bytes_written(self) -> int:
        """Plaintext bytes accepted by write() so far."""
        return self._plaintext

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def unsealed_bytes(self) -> int:
        """Plaintext written but still held for its chunk (lost if the process dies now)."""
        return self._age.unsealed_bytes

    def unsealed_for_s(self, now: float | None = None) -> float:
        """How long the oldest plaintext still held has waited; 0.0 when nothing is held."""
        since = self._unsealed_since
        return 0.0 if since is None else (time.monotonic() if now is None else now) - since

    def seal_with(self, padding: Callable[[int], bytes]) -> int:
        """Push out everything held now by writing ``padding(n)``: at least ``n`` bytes the
        format being written ignores (spaces after a JSON value, MPEG-TS null packets).

        An age chunk is 64 KiB and is written only when full and followed by more bytes, so a
        slow stream (vitals, markers, a small picture) would otherwise keep up to a minute of
        plaintext in memory, lost to a crash. Returns the padding's length (0 if nothing held).
        """
        if self._age.unsealed_bytes == 0:
            return 0
        need = self._age.to_seal
        pad = padding(need)
        if len(pad) < need:
            raise ValueError(f"padding of {len(pad)} bytes cannot seal a chunk that needs {need}")
        return self.write(pad)

    def write(self, b: ReadableBuffer) -> int:
        if self.closed or self._fd is None:
            raise ValueError(f"{self._final}: write to a closed recording")
        held_before = self._age.unsealed_bytes
        size = self._age.write(b)
        self._plaintext += size
        now = time.monotonic()
        held = self._age.unsealed_bytes
        if held == 0:
            self._unsealed_since = None
        elif held_before == 0 or held < held_before + size:
            # All that is held now came with this write (anything older went into a chunk).
            self._unsealed_since = now
        if now - self._last_sync >= self._interval:
            os.fsync(self._fd)
            if not self._dir_synced:
                _fsync_dir(self._partial.parent)
                self._dir_synced = True
            self._last_sync = now
        return size

    def close(self) -> None:
        """Finish the file: final chunk, fsync, rename to the final name, fsync the directory.

        If any step fails the `.partial` file is left where it is (it still
        decrypts up to its last complete chunk) and the error is raised.
        """
        if self.closed:
            return
        try:
            if self._fd is not None and not self._finished:
                try:
                    self._age.close()
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = None
                if self._final.exists():
                    raise FileExistsError(
                        f"{self._final}: a file appeared under the final name; "
                        f"recording kept as {self._partial}"
                    )
                os.rename(self._partial, self._final)
                self._finished = True
                _fsync_dir(self._final.parent)
        finally:
            super().close()

    def abandon(self) -> None:
        """Stop writing and leave the ``.partial`` file as it is, as a crash would: it reads up
        to its last complete chunk. For a file that can no longer be finished (a write failed:
        the disk is full); the recorder's recovery closes it later."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._age.discard()
        self._finished = True
        super().close()

    def abort(self) -> None:
        """Discard the recording: empty the partial file and remove it.

        After a successful close() the recording is kept and this does nothing.
        """
        if self._finished:
            super().close()
            return
        self._age.discard()
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
        elif self._partial.exists():
            os.truncate(self._partial, 0)
        self._partial.unlink(missing_ok=True)
        self._finished = True
        _fsync_dir(self._partial.parent)
        super().close()

    def __del__(self) -> None:
        # Being garbage-collected is not a decision to keep the recording, so
        # unlike io objects in general this does not close() (which would
        # finalize it). The .partial stays, as after a crash.
        fd = getattr(self, "_fd", None)
        if fd is not None:
            self._fd = None
            os.close(fd)
