"""The lamp: which pattern for which state (every combination), and how each pattern blinks."""

from __future__ import annotations

import itertools

import pytest

from control.lamp import LampPattern, lamp_level, lamp_pattern

MS = 1_000_000

# (recording, armed_discard, do_not_record) → pattern
PATTERNS = [
    (False, False, False, "off"),
    (False, False, True, "blink_slow"),
    (True, False, False, "on"),
    (True, False, True, "on"),  # started by hand despite "do not record": it records, so it shows
    (False, True, False, "blink_fast"),
    (False, True, True, "blink_fast"),
    (True, True, False, "blink_fast"),
    (True, True, True, "blink_fast"),
]


@pytest.mark.parametrize(("recording", "armed", "do_not_record", "pattern"), PATTERNS)
def test_pattern_for_state(recording: bool, armed: bool, do_not_record: bool, pattern: LampPattern) -> None:
    assert lamp_pattern(recording, armed, do_not_record) == pattern


def test_table_covers_every_state() -> None:
    assert {row[:3] for row in PATTERNS} == set(itertools.product([False, True], repeat=3))


STATES = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize(("recording", "armed", "do_not_record"), STATES)
def test_cannot_record_shows_unless_recording_or_armed(
    recording: bool, armed: bool, do_not_record: bool
) -> None:
    pattern = lamp_pattern(recording, armed, do_not_record, cannot_record=True)
    if armed or recording:
        assert pattern == lamp_pattern(recording, armed, do_not_record)
    else:
        assert pattern == "flash_twice"


def test_flash_twice_is_two_short_flashes_every_two_seconds() -> None:
    lit = [lamp_level("flash_twice", t * 10 * MS) for t in range(200)]  # 2 s in 10 ms steps
    changes = sum(1 for a, b in itertools.pairwise(lit) if a != b)
    assert lit[0] and changes == 3 and sum(lit) == 30  # on, off, on, off: 300 ms lit of 2 s


LEVELS = [
    ("off", 0, False),
    ("off", 1234 * MS, False),
    ("on", 0, True),
    ("on", 1234 * MS, True),
    ("blink_slow", 0, True),
    ("blink_slow", 999 * MS, True),
    ("blink_slow", 1000 * MS, False),
    ("blink_slow", 1999 * MS, False),
    ("blink_slow", 2000 * MS, True),
    ("blink_fast", 0, True),
    ("blink_fast", 199 * MS, True),
    ("blink_fast", 200 * MS, False),
    ("blink_fast", 399 * MS, False),
    ("blink_fast", 400 * MS, True),
]


@pytest.mark.parametrize(("pattern", "t_ns", "lit"), LEVELS)
def test_level(pattern: LampPattern, t_ns: int, lit: bool) -> None:
    assert lamp_level(pattern, t_ns) is lit


@pytest.mark.parametrize(("pattern", "flashes"), [("blink_slow", 5), ("blink_fast", 25)])
def test_flashes_per_ten_seconds(pattern: LampPattern, flashes: int) -> None:
    levels = [lamp_level(pattern, t * MS) for t in range(0, 10_000, 10)]
    rising = sum(1 for a, b in itertools.pairwise([False, *levels]) if b and not a)
    assert rising == flashes  # fast stays under 3 a second


def test_unknown_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lamp pattern"):
        lamp_level("strobe", 0)  # type: ignore[arg-type]
