"""Audio timestamps from the sample count, anchored to the one clock and corrected for drift.

A sound card's sample clock and the host's monotonic clock disagree by tens of ppm, and chunk
arrival times jitter by milliseconds. Counting samples gives smooth timestamps; comparing the
count with arrival times (smoothed) tells when the two clocks have drifted apart by more than a
few milliseconds, and then the count is re-anchored. The encoder fills the resulting small gap
with silence or drops the overlap, so audio never slides against video, and a dropped video frame
never shifts the audio (they do not share a counter).
"""

from __future__ import annotations

from sync.clock import MediaClock


class AudioTimeline:
    """Assigns each chunk the stream position (in samples since the media epoch) of its first sample.

    Called from the audio thread only.
    """

    def __init__(
        self,
        clock: MediaClock,
        sample_rate: int,
        *,
        max_drift_s: float = 0.02,
        restart_after_s: float = 0.5,
        smoothing: float = 0.05,
    ) -> None:
        self._clock = clock
        self._rate = sample_rate
        self._max_drift = max_drift_s * sample_rate
        self._restart = restart_after_s * sample_rate
        self._alpha = smoothing
        self._next: int | None = None
        self._error = 0.0
        self.corrections = 0  # how often drift made us re-anchor (reported in status)
        self.restarts = 0  # how often a gap (device lost, stall) made us start over

    def place(self, n_samples: int, arrival_ns: int) -> int:
        # The chunk's last sample arrived at arrival_ns, so its first was captured n/rate earlier.
        measured = self._clock.audio_pts(arrival_ns, self._rate) - n_samples
        if self._next is None or abs(measured - self._next) > self._restart:
            if self._next is not None:
                self.restarts += 1
            self._next = measured
            self._error = 0.0
        else:
            self._error += self._alpha * ((measured - self._next) - self._error)
            if abs(self._error) > self._max_drift:
                self._next += round(self._error)
                self._error = 0.0
                self.corrections += 1
        pts = self._next
        self._next = pts + n_samples
        return pts
