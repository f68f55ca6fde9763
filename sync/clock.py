"""The one clock every frame, audio chunk and vital sample is stamped on.

``time.monotonic_ns()`` orders everything: it never jumps when NTP steps the wall clock, so a
recording is never reordered or stretched. Wall-clock (UTC) time is only ever derived from a
``UtcAnchor``: a pair of readings of both clocks taken together, recorded when a session starts
and with every segment so a reviewer can map media time to UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

VIDEO_TIME_BASE = Fraction(1, 90_000)  # MPEG-TS native clock; any capture time fits exactly enough


def now_ns() -> int:
    return time.monotonic_ns()


@dataclass(frozen=True, slots=True)
class UtcAnchor:
    mono_ns: int
    utc: datetime  # aware, UTC

    @classmethod
    def take(cls) -> UtcAnchor:
        # Read the wall clock between two monotonic reads and keep the midpoint, so the pair is
        # accurate to a few microseconds even if the thread is preempted between the reads.
        before = time.monotonic_ns()
        wall = time.time_ns()
        after = time.monotonic_ns()
        utc = datetime.fromtimestamp(wall // 1_000_000_000, UTC) + timedelta(
            microseconds=(wall % 1_000_000_000) // 1000
        )
        return cls(mono_ns=(before + after) // 2, utc=utc)

    def utc_at(self, mono_ns: int) -> datetime:
        return self.utc + timedelta(microseconds=(mono_ns - self.mono_ns) / 1000)


@dataclass(frozen=True, slots=True)
class MediaClock:
    """Maps monotonic time to media time: seconds since the pipelines started (PTS zero)."""

    epoch_ns: int

    def seconds(self, mono_ns: int) -> float:
        return (mono_ns - self.epoch_ns) / 1e9

    def video_pts(self, mono_ns: int) -> int:
        return (mono_ns - self.epoch_ns) * 90_000 // 1_000_000_000

    def audio_pts(self, mono_ns: int, sample_rate: int) -> int:
        return (mono_ns - self.epoch_ns) * sample_rate // 1_000_000_000


class AnchorKeeper:
    """The newest ``UtcAnchor`` for drawing and logging UTC, retaken every ``every_s``.

    One anchor kept for a daemon's whole life would draw the overlay's clock off by whatever
    NTP corrected since it was taken (a step, or days of slewing). Retaking it on every frame
    would cost a syscall pair per frame for nothing: every few seconds, from the main loop, is
    enough. Readers take ``current`` (one attribute read, safe from any thread).
    """

    def __init__(
        self, every_s: float = 10.0, take: Callable[[], UtcAnchor] = UtcAnchor.take
    ) -> None:
        self._every_ns = int(every_s * 1e9)
        self._take = take
        self.current = take()

    def refresh_if_due(self, mono_ns: int) -> bool:
        """Retake the anchor when the current one is ``every_s`` old; True when it did."""
        if mono_ns - self.current.mono_ns < self._every_ns:
            return False
        self.current = self._take()
        return True
