"""How far a monitor's own clock is from ours, and whether it drifts.

Monitors stamp their values with their own clock (Masimo to the second, local time and no zone;
IntelliVue relative ticks; GE Unix seconds). We never use it for the timeline: every value is
placed by its arrival on our clock. But a reviewer comparing a monitor's own printout with the
recording needs the offset, and a monitor clock that walks away from ours tells IT something is
off, so it is estimated here and logged once when first known and again whenever it moves.

Naive monitor times are read as local wall time (how bedside monitors are set); aware ones as
what they say. The estimate is the median of the last records' offsets, which shrugs off the
one-second resolution and a late line or two.
"""

from __future__ import annotations

import statistics
from collections import deque
from datetime import UTC, datetime, timedelta


class MonitorClock:
    """Per monitor. ``observe`` is called from that monitor's serial thread only."""

    def __init__(self, *, window: int = 15, report_step_s: float = 2.0) -> None:
        self._offsets: deque[float] = deque(maxlen=window)
        self._last_time: datetime | None = None
        self._report_step = report_step_s
        self.offset_s: float | None = None  # monitor clock minus ours, in seconds
        self.reported_s: float | None = None  # what was last logged

    def observe(self, monitor_time: datetime, host_utc: datetime) -> float | None:
        """Feed one record's time; returns the new offset when it should be logged, else None."""
        if monitor_time == self._last_time:
            return None  # several values of one record share its time: count the record once
        self._last_time = monitor_time
        if monitor_time.tzinfo is None:
            ours = host_utc.astimezone().replace(tzinfo=None)  # local wall time, as the monitor's
        else:
            ours = host_utc
            monitor_time = monitor_time.astimezone(UTC)
        self._offsets.append((monitor_time - ours) / timedelta(seconds=1))
        if len(self._offsets) < 3:
            return None
        self.offset_s = statistics.median(self._offsets)
        if self.reported_s is None or abs(self.offset_s - self.reported_s) >= self._report_step:
            self.reported_s = self.offset_s
            return self.offset_s
        return None
