"""The folder one session's export goes into: private, all or nothing, one session.

Private: the folder is 0700 and every file 0600, whatever the umask, from the moment each file is
created (plaintext of a patient's resuscitation never sits readable by others, even briefly).
All or nothing: each output is written under a temporary name in the folder and renamed only when
the whole export has succeeded; on any failure the temporaries are removed, and a folder this
export created is removed with them. One session: a folder that holds anything but this
session's earlier export is refused; re-exporting the same session replaces its files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from types import TracebackType

# The names an export writes besides one MP4 per camera; only these (and *.mp4) are replaced.
SUMMARY = "session.json"
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"
COMPOSITE = "composite.mp4"  # only with export --composite; an *.mp4 like the cameras'
_OUTPUTS = {SUMMARY, REPORT_JSON, REPORT_TXT, "vitals.csv", "markers.csv", "trends.svg", "viewer.html"}
_TEMPORARY = ".export-tmp"  # ".<name>.<random>.export-tmp"


class ExportError(Exception):
    """The session cannot be exported there (and says why)."""


class ExportFolder:
    """Use as a context manager; ``commit()`` before leaving it, or everything written is removed.

    Not thread-safe: one export, one thread.
    """

    def __init__(self, path: Path, session: str) -> None:
        self.path = path
        self.session = session
        self._created = False
        self._pending: dict[str, Path] = {}  # final name → temporary path

    def __enter__(self) -> ExportFolder:
        _refuse_another_session(self.path, self.session)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir(mode=0o700)
            self._created = True
        os.chmod(self.path, 0o700)  # mkdir's mode passes through the umask; an old folder may be wider
        for left in self.path.glob(f".*{_TEMPORARY}"):  # from an export that was killed
            left.unlink(missing_ok=True)
        return self

    def new_file(self, name: str) -> Path:
        """A fresh, empty, 0600 file to write ``name`` into; it takes that name on ``commit()``."""
        if name in self._pending or "/" in name:
            raise ValueError(f"{name}: not a fresh output name")
        path = self.path / f".{name}.{secrets.token_hex(4)}{_TEMPORARY}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask may have taken the owner's bits too
        finally:
            os.close(fd)
        self._pending[name] = path
        return path

    def drop(self, name: str) -> None:
        """Forget an output that turned out to have nothing to hold."""
        temporary = self._pending.pop(name, None)
        if temporary is not None:
            temporary.unlink(missing_ok=True)

    def being_written(self, name: str) -> Path:
        """Where an output is until ``commit()`` (to read back one written earlier in the export)."""
        return self._pending[name]

    def final(self, name: str) -> Path:
        return self.path / name

    def commit(self) -> None:
        """Give every output its name (the summary last: it says whose export the folder holds),
        and remove what an earlier export of this session made that this one did not."""
        order = sorted(self._pending, key=lambda n: n == SUMMARY)
        for name in order:
            temporary = self._pending[name]
            os.chmod(temporary, 0o600)  # a writer may have replaced the file it was given
            os.replace(temporary, self.path / name)
            del self._pending[name]
        for stale in self.path.iterdir():
            earlier = _is_output(stale.name) and stale.name not in order
            if earlier and stale.is_file() and not stale.is_symlink():
                stale.unlink(missing_ok=True)
        _fsync_dir(self.path)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for temporary in self._pending.values():
            temporary.unlink(missing_ok=True)
        self._pending.clear()
        if error is not None and self._created:
            with contextlib.suppress(OSError):  # only when empty: it holds nothing but this export's
                self.path.rmdir()


def _refuse_another_session(path: Path, session: str) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ExportError(f"{path}: not a folder (give a folder of its own for this export)")
    if not path.exists():
        return
    present = [p.name for p in path.iterdir() if not p.name.endswith(_TEMPORARY)]
    if not present:
        return
    other = None
    for name in (SUMMARY, REPORT_JSON):
        try:
            other = json.loads((path / name).read_text()).get("session")
        except (OSError, ValueError, AttributeError):
            continue
        break
    if other == session:
        return
    raise ExportError(
        f"{path}: already holds "
        + (f"the export of session {other}" if other else f"other files ({len(present)})")
        + "; export each session into a folder of its own"
    )


def _is_output(name: str) -> bool:
    return name in _OUTPUTS or name.endswith(".mp4")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
