"""Can this user use the paths the config names? Checked by ``check-config`` and before the
daemon starts, so an unusable storage directory or control socket is a config error (exit 78,
field named), not an "internal error" at every start or a traceback.

Each check is done for real (a file created and removed where the recorder will write), not
read from permission bits: as root, or on a read-only mount, the bits say nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from config.models import Config
from session.layout import audit_log_path


def writable_dir_problem(path: Path) -> str | None:
    """None when ``path`` is a directory this user can write in, or one it can create (the
    nearest existing ancestor takes a new file); otherwise why not."""
    probe = path
    while not probe.exists():
        if probe == probe.parent:
            return f"{path}: no existing parent directory"
        probe = probe.parent
    if not probe.is_dir():
        return f"{path}: {probe} is not a directory"
    try:
        fd, name = tempfile.mkstemp(prefix=".neoflix-check-", dir=probe)
    except OSError as exc:
        return f"{path}: cannot write in {probe} as this user ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(name)
    return None


def path_problems(config: Config) -> list[str]:
    """One line per path the recorder cannot use, each naming its config field."""
    checks = [
        ("storage.directory", config.storage.directory),
        ("station.control_socket", config.station.control_socket.parent),
        ("storage.audit_log", audit_log_path(config.storage.directory, config.storage.audit_log).parent),
    ]
    problems = []
    for field, folder in checks:
        problem = writable_dir_problem(folder)
        if problem is not None:
            problems.append(f"{field}: {problem}")
    return problems
