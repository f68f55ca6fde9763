"""Frame and chunk times from the source: the guard, the stream mapping, the probe's schedule."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import structlog

from capture.audio import PROBE_BEEP_HZ, ToneAudioSource
from capture.camera_reader import CameraReader
from capture.sources import FramePacer, SourceClock, StreamTimeMapper, source_time_ns
from capture.test_pattern import TestPatternSource
from vitals.simulators.masimo import PROBE_HR, MasimoSimulator

MS = 1_000_000


def test_source_times_are_used_when_they_are_on_our_clock_and_in_order() -> None:
    clock = SourceClock("camera c")
    assert clock.time_of(100 * MS, 112 * MS) == 100 * MS
    assert clock.time_of(133 * MS, 171 * MS) == 133 * MS  # read late: still its own time
    assert clock.time_of(166 * MS, 172 * MS) == 166 * MS
    assert clock.time_of(None, 210 * MS) == 210 * MS  # a source that does not know
    assert (clock.from_source, clock.fallbacks) == (3, 0)


@pytest.mark.parametrize(
    ("source_ms", "reason"),
    [
        (90.0, "not after the previous item's"),  # went back
        (100.0, "not after the previous item's"),  # repeated
        (300.0, "after its arrival"),  # from the future
        (1.7e12, "after its arrival"),  # wall-clock time: another clock
        (-400.0, "too old for its arrival: another clock?"),
    ],
)
def test_a_source_time_that_cannot_be_right_falls_back_to_the_arrival_and_logs_once(
    source_ms: float, reason: str
) -> None:
    clock = SourceClock("camera c")
    clock.time_of(100 * MS, 110 * MS)
    with structlog.testing.capture_logs() as logs:
        t1 = clock.time_of(round(source_ms * MS), 143 * MS)
        t2 = clock.time_of(round(source_ms * MS), 176 * MS)
    assert (t1, t2) == (143 * MS, 176 * MS)
    assert clock.fallbacks == 2
    rejected = [e for e in logs if e["event"] == "source_time_rejected"]
    assert len(rejected) == 1 and rejected[0]["reason"] == reason


def test_times_stay_increasing_when_arrival_and_source_times_mix() -> None:
    clock = SourceClock("camera c")
    a = clock.time_of(None, 150 * MS)  # arrival 150
    b = clock.time_of(140 * MS, 160 * MS)  # a source time before the arrival used above
    assert b > a


def test_a_stream_mapping_follows_the_least_delayed_frames() -> None:
    mapper = StreamTimeMapper(creep=0.01)
    base = 5_000 * MS
    # Frames every 40 ms of stream time; the network delays them 30 ms, one frame 80 ms.
    delays = [30, 30, 80, 30, 30]
    mapped = [mapper.map(40.0 * i, base + (40 * i + d) * MS) for i, d in enumerate(delays)]
    # The delayed frame keeps its place: intervals stay 40 ms apart to a fraction of a ms.
    gaps = np.diff(mapped) / MS
    assert np.all(np.abs(gaps - 40) < 0.6), gaps
    # A frame that arrives sooner than the mapping allows pulls the offset down at once.
    t = mapper.map(200.0, base + (200 + 10) * MS)
    assert t == base + 210 * MS


def test_a_stream_that_restarts_its_timestamps_is_mapped_afresh() -> None:
    mapper = StreamTimeMapper()
    mapper.map(1000.0, 10_000 * MS)
    mapper.map(1040.0, 10_040 * MS)
    assert mapper.map(0.0 + 1, 10_080 * MS) == 10_080 * MS  # went back: start over
    assert mapper.restarts == 1


def test_an_aligned_pacer_puts_whole_seconds_on_slots(fake_clock: Any) -> None:
    fake_clock.now = 7_123_456_789
    pacer = FramePacer(30, fake_clock, fake_clock.sleep, aligned=True)
    dues = []
    for _ in range(40):
        pacer.next()
        assert pacer.due_ns is not None
        dues.append(pacer.due_ns)
    assert dues[0] >= 7_123_456_789 and dues[0] - 7_123_456_789 < 1_000_000_000 / 30
    assert 8_000_000_000 in dues  # the whole second is a slot, to the nanosecond
    assert all(b - a in (33_333_333, 33_333_334) for a, b in itertools.pairwise(dues))


def test_the_test_pattern_flashes_on_the_marks_and_says_when_its_frames_were_due(
    fake_clock: Any,
) -> None:
    fake_clock.now = 3_900_000_000
    src = TestPatternSource(64, 48, 30, probe_every_s=2.0, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    white = []
    for _ in range(200):
        frame = src.read()
        assert frame is not None
        t = source_time_ns(src)
        assert t is not None
        if frame.min() == 255:
            white.append(t)
    assert white == [4_000_000_000, 6_000_000_000, 8_000_000_000, 10_000_000_000]
    # Off by default: no white frames.
    plain = TestPatternSource(64, 48, 30, clock_ns=fake_clock, sleep=fake_clock.sleep)
    plain.open()
    assert all(int(plain.render(i).min()) < 255 for i in range(3))
    assert not plain.is_mark(4_000_000_000)


def test_the_tone_beeps_from_the_first_sample_at_each_mark(fake_clock: Any) -> None:
    fake_clock.now = 1_990_000_000  # sample 0 is 10 ms before the mark at 2 s
    src = ToneAudioSource(sample_rate=48000, probe_every_s=1.0, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    chunks = []
    for _ in range(60):  # 1.2 s
        chunk = src.read()
        assert chunk is not None
        chunks.append(chunk.pcm[0])
    pcm = np.concatenate(chunks)
    loud = np.flatnonzero(np.abs(pcm) > 1e-6)
    # 10 ms of silence = 480 samples, then 50 ms of beep (its first sample is sin(0) = 0).
    assert loud[0] == 481
    n = np.arange(2400)
    expected = 0.5 * np.sin(2 * np.pi * PROBE_BEEP_HZ * n / 48000)
    assert np.allclose(pcm[480 : 480 + 2400], expected, atol=1e-6)
    assert not np.any(pcm[480 + 2400 : 48480])  # silence until the next mark at 3 s
    assert np.allclose(pcm[48480 : 48480 + 2400], expected, atol=1e-6)
    # The chunk's time is its last sample's due time, 1.2 s after sample 0.
    assert source_time_ns(src) == 1_990_000_000 + 1_200_000_000


def test_the_simulator_steps_hr_at_each_mark() -> None:
    sim = MasimoSimulator(-1, probe_every_s=2.0)
    assert sim.probe_hr_at(3_999_999_999) != sim.probe_hr_at(4_000_000_000)
    assert sim.probe_hr_at(4_000_000_000) == sim.probe_hr_at(5_999_999_999)
    assert {sim.probe_hr_at(0), sim.probe_hr_at(2_000_000_000)} == set(PROBE_HR)
    with pytest.raises(ValueError, match="whole multiple"):
        MasimoSimulator(-1, probe_every_s=1.5)


def test_the_camera_reader_stamps_frames_with_the_sources_time(wait_for: Any) -> None:
    got: list[int] = []
    src = TestPatternSource(64, 48, 30, probe_every_s=1.0)
    reader = CameraReader("c", src, lambda _f, t: got.append(t), width=64, height=48)
    reader.start()
    try:
        wait_for(lambda: len(got) >= 10, timeout_s=20, what="ten frames")
    finally:
        reader.stop()
    # Slots of the clock's 30 fps grid: whole multiples of 1/30 s, whatever the thread's delays.
    for t in got[:10]:
        off = (t * 30) % 1_000_000_000
        assert min(off, 1_000_000_000 - off) < 30 * 2, t
    assert reader.times.from_source >= 10 and reader.times.fallbacks == 0
