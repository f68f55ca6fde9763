"""When the recorder first saw each session: the pure update, and the state file's reading
(damage means "seen now") and writing (whole, private)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from session.first_seen import CLOCK_STEP, JUST_MADE, first_seen_times, read_first_seen, write_first_seen

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
A, B = "20260301T110000Z-0a0b0c", "20200101T000000Z-1a1b1c"
SOON, JUST = "20260301T115700Z-5a5b5c", "20260301T115000Z-2a2b2c"
EARLIER, LATER = "20260301T114959Z-3a3b3c", "20260301T120001Z-4a4b4c"
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("known", "present", "seen_ago", "expected"),
    [
        ({}, [A, B], {}, {A: NOW, B: NOW}),  # unknown: seen now, whatever the id says
        ({}, [SOON], {}, {SOON: NOW - timedelta(minutes=3)}),  # ... but one made minutes ago: then
        ({}, [JUST], {}, {JUST: NOW - JUST_MADE}),
        ({}, [EARLIER], {}, {EARLIER: NOW}),
        ({}, [LATER], {}, {LATER: NOW}),  # a start in the future counts as now
        ({A: NOW - 40 * H}, [A], {}, {A: NOW - 40 * H}),  # known: kept as it is
        ({A: NOW + 400 * H}, [A], {}, {A: NOW + 400 * H}),  # clock now behind: never moved earlier
        ({A: NOW - 40 * H}, [], {}, {}),  # a session gone is forgotten
        # Added by this recorder when its clock said 2020; an hour ago by the monotonic clock.
        ({B: datetime(2020, 1, 1, tzinfo=UTC)}, [B], {B: H}, {B: NOW - H}),
        ({A: NOW - H}, [A], {A: 3 * H}, {A: NOW - H}),  # the monotonic clock never moves it back
        ({A: NOW - H}, [A], {A: H - CLOCK_STEP / 2}, {A: NOW - H}),  # slewing, not a step
        ({A: NOW - H}, [A], {A: H - 2 * CLOCK_STEP}, {A: NOW - H + 2 * CLOCK_STEP}),
        ({}, [A], {A: 40 * H}, {A: NOW}),  # the file forgot it: seen now, never old
    ],
)
def test_first_seen_times(
    known: dict[str, datetime],
    present: list[str],
    seen_ago: dict[str, timedelta],
    expected: dict[str, datetime],
) -> None:
    assert first_seen_times(known, present, NOW, seen_ago) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("", {}),
        ("{not json", {}),
        ("[]", {}),
        ('"2020-01-01T00:00:00+00:00"', {}),
        (json.dumps({A: "2026-02-01T00:00:00+00:00"}), {A: datetime(2026, 2, 1, tzinfo=UTC)}),
        (json.dumps({A: "2026-02-01T01:00:00+01:00"}), {A: datetime(2026, 2, 1, tzinfo=UTC)}),
        (json.dumps({A: "2026-02-01T00:00:00"}), {}),  # no zone: not a UTC time
        (json.dumps({A: "yesterday", B: 5}), {}),
        (json.dumps({"notes": "2026-02-01T00:00:00+00:00"}), {}),  # not a session id
    ],
)
def test_reading_takes_only_session_ids_with_utc_times(
    tmp_path: Path, text: str | None, expected: dict[str, datetime]
) -> None:
    path = tmp_path / "recordings.seen.json"
    if text is not None:
        path.write_text(text)
    assert read_first_seen(path) == expected


def test_a_link_is_not_read(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    real.write_text(json.dumps({A: "2020-01-01T00:00:00+00:00"}))
    (tmp_path / "recordings.seen.json").symlink_to(real)
    assert read_first_seen(tmp_path / "recordings.seen.json") == {}


def test_writing_replaces_the_file_whole_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "recordings.seen.json"
    leftover = tmp_path / "recordings.seen.json.new"  # a crash mid-write, readable by all
    leftover.write_text("{")
    os.chmod(leftover, 0o644)
    write_first_seen(path, {B: datetime(2026, 2, 1, tzinfo=UTC), A: NOW})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not leftover.exists()
    assert json.loads(path.read_text()) == {B: "2026-02-01T00:00:00+00:00", A: "2026-03-01T12:00:00+00:00"}
    assert read_first_seen(path) == {A: NOW, B: datetime(2026, 2, 1, tzinfo=UTC)}
