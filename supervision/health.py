"""What every supervised device reports, in one vocabulary.

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
