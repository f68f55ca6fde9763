"""What every supervised device reports, in one vocabulary, and how long it waits between tries.

A device is in one of four states, the same words in status, doctor and the logs:

- ``connecting``: started, nothing delivered yet;
- ``live``: it delivers (a frame, a chunk of sound, bytes from a monitor, a readable button);
- ``lost``: it failed or went silent; the loop is trying again, backing off;
- ``stopped``: the loop has ended (the recorder is shutting down).

A device that opens but delivers nothing (a USB serial adapter whose monitor is switched off)
stays ``connecting`` or ``lost``: opening is not delivering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

DeviceState = Literal["connecting", "live", "lost", "stopped"]
STATES: tuple[DeviceState, ...] = ("connecting", "live", "lost", "stopped")


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """A snapshot of one supervised device. Times ending in ``_ns`` are on the supervisor's
    monotonic clock."""

    kind: str  # "camera", "audio", "monitor", "button"
    name: str  # the configured name
    source: str  # what is read, in words ("test pattern 1280x720@30", "/dev/ttyUSB0", ...)
    state: DeviceState
    since_ns: int  # when the device entered this state
    lost_since_ns: int | None  # set while lost
    lost_since_utc: datetime | None
    reconnects: int  # recoveries after a loss
    last_error: str | None  # why it was last lost
    delivered: int  # items handed over since start: frames, sound chunks, byte bursts, polls
    rate: float  # items per second over the last few seconds; 0.0 when nothing arrived
    callback_errors: int  # deliveries the receiving side failed on (counted, logged sparingly)


class Backoff:
    """Waits between tries: ``initial`` doubling up to ``maximum``; back to ``initial`` after a
    connection that delivered, so a device that opens and dies at once is not hammered while
    one that worked for a while is retried promptly."""

    def __init__(self, initial_s: float = 0.5, maximum_s: float = 10.0) -> None:
        if initial_s <= 0 or maximum_s < initial_s:
            raise ValueError("need 0 < initial_s <= maximum_s")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._next = initial_s

    def next(self) -> float:
        """The wait before the next try; the one after it is twice as long (capped)."""
        wait = self._next
        self._next = min(self._next * 2, self.maximum_s)
        return wait

    def reset(self) -> None:
        self._next = self.initial_s
