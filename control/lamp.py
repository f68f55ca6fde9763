"""What the button's lamp shows, so the bedside team always sees whether it records.

Two pure functions: ``lamp_pattern`` picks a pattern from the recorder's state, ``lamp_level``
says whether the lamp is lit at a given time. The phase comes from the clock alone, so any
thread can ask at any moment and every lamp on the same clock blinks in step.
"""

from __future__ import annotations

from typing import Literal

LampPattern = Literal["off", "on", "blink_slow", "blink_fast", "flash_twice"]

# Slow: one second on, one off, calm enough for a standing state ("do not record").
_SLOW_PERIOD_NS = 2_000_000_000
# Fast: 2.5 flashes a second, urgent ("release now to discard") yet under the three flashes a
# second that photosensitivity guidelines put as the limit; people with epilepsy work here too.
_FAST_PERIOD_NS = 400_000_000
_FLASH_NS = 150_000_000  # one flash of "cannot record", in a slow period


def lamp_pattern(
    recording: bool, armed_discard: bool, do_not_record: bool, cannot_record: bool = False
) -> LampPattern:
    """Armed discard wins (it is a question to the person holding the button), then recording
    (whatever started it, the team must see it), then "cannot record" (the disk is full: a press
    would do nothing, and the team must know before the baby comes), then "do not record";
    otherwise dark."""
    if armed_discard:
        return "blink_fast"
    if recording:
        return "on"
    if cannot_record:
        return "flash_twice"
    if do_not_record:
        return "blink_slow"
    return "off"


def lamp_level(pattern: LampPattern, t_ns: int) -> bool:
    """Whether the lamp is lit at ``t_ns`` (monotonic); a blink starts lit at each period."""
    if pattern == "off":
        return False
    if pattern == "on":
        return True
    if pattern == "blink_slow":
        return t_ns % _SLOW_PERIOD_NS < _SLOW_PERIOD_NS // 2
    if pattern == "blink_fast":
        return t_ns % _FAST_PERIOD_NS < _FAST_PERIOD_NS // 2
    if pattern == "flash_twice":
        # Two short flashes, then dark: unlike any other pattern even to someone who sees it
        # from the corner of an eye.
        phase = t_ns % _SLOW_PERIOD_NS
        return phase < _FLASH_NS or _FLASH_NS * 2 <= phase < _FLASH_NS * 3
    raise ValueError(f"unknown lamp pattern {pattern!r}")
