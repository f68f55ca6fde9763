"""A pseudo-terminal pair standing in for a monitor's serial cable.

A simulator writes on the master side; the recorder opens the slave path with pyserial exactly as
it would open ``/dev/ttyUSB0``. The slave is put in raw mode before anyone opens it, so bytes
written before the reader arrives are neither echoed back nor CR/LF-translated (pyserial sets raw
mode itself on open, but only from then on).

A pty has no modem lines, and its slave path disappears when the master closes, after which the
kernel may hand the same ``/dev/pts/N`` to any other program. Like a USB adapter behind a udev
symlink, a pty that must come back under the same name is reached through a symlink the caller
repoints.
"""

from __future__ import annotations

import contextlib
import os
import tty
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(slots=True)
class PtyPair:
    """An open pty: ``master_fd`` for the simulator, ``slave_path`` for the reader."""

    master_fd: int
    slave_path: str
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Close the master; the slave path vanishes and readers see end of file. Idempotent."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self.master_fd)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_pty_pair() -> PtyPair:
    """Open a pty pair with its slave in raw mode; the caller owns (and closes) the master."""
    master_fd, slave_fd = os.openpty()
    try:
        slave_path = os.ttyname(slave_fd)
        # Raw: no echo (an echo would fill the master's unread output queue), no CR→LF or
        # LF→CR LF rewriting, 8-bit clean. The setting outlives this descriptor while the master
        # stays open.
        tty.setraw(slave_fd)
    except BaseException:
        os.close(master_fd)
        raise
    finally:
        os.close(slave_fd)
    return PtyPair(master_fd, slave_path)
