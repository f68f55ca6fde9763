"""The one clock: UTC anchors, media time, and audio placed by sample count with drift correction."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sync.audio_timeline import AudioTimeline
from sync.clock import AnchorKeeper, MediaClock, UtcAnchor

RATE = 48_000
CHUNK = 960  # 20 ms


def test_anchor_maps_monotonic_time_to_utc() -> None:
    anchor = UtcAnchor(mono_ns=5_000_000_000, utc=datetime(2026, 1, 1, tzinfo=UTC))
    assert anchor.utc_at(6_500_000_000) == datetime(2026, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    taken = UtcAnchor.take()
    assert abs(taken.utc - datetime.now(UTC)) < timedelta(seconds=1)


def test_media_clock_pts() -> None:
    clock = MediaClock(epoch_ns=1_000_000_000)
    assert clock.video_pts(2_000_000_000) == 90_000
    assert clock.audio_pts(1_500_000_000, RATE) == 24_000
    assert clock.seconds(4_000_000_000) == 3.0


def run(timeline: AudioTimeline, chunks: int, *, ppm: float = 0.0, jitter_ns: int = 0,
        start_ns: int = 0, clock_epoch: int = 0) -> list[int]:
    """Feed chunks whose arrival follows a sound card clock off by ``ppm``."""
    out = []
    for i in range(chunks):
        true_end = start_ns + int((i + 1) * CHUNK / RATE * 1e9 * (1 + ppm / 1e6))
        arrival = true_end + (jitter_ns if i % 2 else 0)
        out.append(timeline.place(CHUNK, arrival))
    return out


def test_timeline_counts_samples_when_clocks_agree() -> None:
    timeline = AudioTimeline(MediaClock(0), RATE)
    pts = run(timeline, 500, jitter_ns=3_000_000, start_ns=2_000_000_000)
    assert pts[0] == 2 * RATE
    assert all(b - a == CHUNK for a, b in itertools.pairwise(pts))
    assert timeline.corrections == 0


def test_timeline_corrects_drift_in_small_steps() -> None:
    timeline = AudioTimeline(MediaClock(0), RATE, max_drift_s=0.02)
    chunks = 60 * 50  # one minute
    pts = run(timeline, chunks, ppm=1000)  # a badly slow card: 60 ms over the minute
    assert timeline.corrections >= 2
    steps = [b - a - CHUNK for a, b in itertools.pairwise(pts)]
    assert max(steps) <= 0.03 * RATE  # never a big jump
    # At the end, the placed position agrees with the clock within the tolerance.
    true_start_last = (chunks - 1) * CHUNK / RATE * (1 + 1000 / 1e6)
    assert abs(pts[-1] / RATE - true_start_last) < 0.03


def test_timeline_restarts_after_a_gap() -> None:
    timeline = AudioTimeline(MediaClock(0), RATE)
    first = run(timeline, 10)
    later = timeline.place(CHUNK, 5_000_000_000)  # the device was gone for seconds
    assert later == 5 * RATE - CHUNK
    assert timeline.restarts == 1
    assert first[-1] < later


def test_anchor_keeper_retakes_the_anchor_every_interval_only() -> None:
    taken: list[UtcAnchor] = []

    def take() -> UtcAnchor:
        anchor = UtcAnchor(len(taken) * 4_000_000_000, datetime(2026, 1, 1, tzinfo=UTC))
        taken.append(anchor)
        return anchor

    keeper = AnchorKeeper(every_s=10.0, take=take)
    assert keeper.current is taken[0]
    assert not keeper.refresh_if_due(9_999_999_999)
    assert keeper.refresh_if_due(10_000_000_000)
    assert keeper.current is taken[1] and len(taken) == 2
    assert not keeper.refresh_if_due(13_000_000_000)  # the new anchor (at 4 s) is 9 s old
