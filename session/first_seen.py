"""When this recorder first saw each stored session: the retention rule's second clock.

A session's id records its start by the wall clock of that moment, which may have been wrong
(a PC that said 2020 until NTP corrected it). So the retention rule (``session.retention``) also
asks when the recorder first saw the session, and keeps it until both are past the period.

The times live in one small JSON file beside the storage directory
(``layout.retention_state_path``): ``{"<session id>": "<UTC time>"}``, nothing else, mode 0600,
replaced whole (temporary file, fsync, rename, fsync of the folder). A missing or damaged file,
or an entry that is not a session id with a UTC time, means "seen now", never "old".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from session.layout import session_started

# A session whose id puts its start this little before now was made moments ago, by this
# recorder (a retention pass runs every five minutes): its start is when it was first seen, and
# that is never more than this much earlier than "now", whatever the clock says.
JUST_MADE = timedelta(minutes=10)
# Smaller differences between the two clocks are NTP slewing the wall clock, not a step: left
# alone, so the file is not rewritten at every pass.
CLOCK_STEP = timedelta(minutes=1)
_MAX_BYTES = 1 << 22  # some 50,000 sessions; a bigger file is not one this recorder wrote


def first_seen_times(
    known: Mapping[str, datetime],
    present: Iterable[str],
    now: datetime,
    seen_ago: Mapping[str, timedelta],
) -> dict[str, datetime]:
    """When each present session was first seen: as ``known`` says, or ``now`` for one it does
    not know (its id's start when that lies within ``JUST_MADE`` before now). A known time is
    never moved earlier: a clock that is now behind cannot make a session old. ``seen_ago``
    holds, for sessions this recorder added since it started, how long ago that was on the
    monotonic clock; their time is raised to ``now - seen_ago`` when that is later by more than
    ``CLOCK_STEP``, which undoes a forward step of the wall clock since (NTP correcting 2020 to
    2026)."""
    times = {}
    for sid in present:
        first = known.get(sid)
        if first is None:
            start = session_started(sid)
            first = start if start is not None and now - JUST_MADE <= start <= now else now
        else:
            ago = seen_ago.get(sid)
            if ago is not None and now - ago - first > CLOCK_STEP:
                first = now - ago
        times[sid] = first
    return times


def read_first_seen(path: Path) -> dict[str, datetime]:
    """The times in the file; {} when it is missing or damaged. A link is not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
        raw = json.loads(data)
    except (OSError, ValueError):
        return {}
    if len(data) > _MAX_BYTES or not isinstance(raw, dict):
        return {}
    known = {}
    for sid, value in raw.items():
        if session_started(sid) is None or not isinstance(value, str):
            continue
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            continue
        if when.tzinfo is not None:  # a time without its zone is not a UTC time
            known[sid] = when.astimezone(UTC)
    return known


def write_first_seen(path: Path, times: Mapping[str, datetime]) -> None:
    """Replace the file whole, so a crash leaves the old file or the new one. Raises OSError."""
    fresh = path.with_name(path.name + ".new")
    body = json.dumps({k: v.isoformat() for k, v in sorted(times.items())}, indent=1) + "\n"
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a temporary file left by a crash keeps its mode through O_CREAT
        view = memoryview(body.encode())
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(fresh, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
