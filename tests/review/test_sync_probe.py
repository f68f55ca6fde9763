"""The sync probe's detectors on arrays with known answers, and the AAC round trip they rely on."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from capture.encoder import AudioEncoder
from review.sync_probe import (
    Offsets,
    find_beeps,
    find_flashes,
    first_change,
    hr_signature,
    match,
)

RATE = 48000


def beep(n: int, onset: float, seconds: float = 0.05, amplitude: float = 0.5) -> np.ndarray:
    """``n`` samples of silence with a 1 kHz burst starting at sample position ``onset``."""
    k = np.arange(n, dtype=np.float64)
    t = (k - onset) / RATE
    x = amplitude * np.sin(2 * np.pi * 1000 * t)
    x[(t < 0) | (t >= seconds)] = 0
    return x


def test_a_flash_is_found_at_its_frame() -> None:
    times = [i / 30 for i in range(90)]
    luma = [100.0 + (i % 7) for i in range(90)]  # a moving picture's small changes
    luma[31] = 235.0
    luma[61] = 220.0
    assert find_flashes(times, luma) == [times[31], times[61]]


def test_a_bright_scene_that_builds_up_is_no_flash() -> None:
    times = [i / 30 for i in range(30)]
    luma = [100.0 + 5 * i for i in range(30)]  # lights slowly brought up to 245
    assert find_flashes(times, luma) == []


@pytest.mark.parametrize("onset", [4800.0, 4800.25, 12345.6, 30000.9])
def test_a_beep_is_found_within_a_sample(onset: float) -> None:
    x = beep(48000, onset)
    found = find_beeps(x, RATE, t0=2.0)
    assert len(found) == 1
    assert abs(found[0] - (2.0 + onset / RATE)) <= 1.0 / RATE


def test_beeps_are_found_under_noise_and_each_once() -> None:
    rng = np.random.default_rng(1)
    onsets = [10_000.0, 58_000.0, 106_000.0]
    x = sum(beep(150_000, o) for o in onsets) + rng.normal(0, 0.005, 150_000)
    found = find_beeps(x, RATE)
    assert len(found) == 3
    for f, o in zip(found, onsets, strict=True):
        assert abs(f - o / RATE) < 0.0002  # 0.2 ms


def test_silence_has_no_beeps() -> None:
    assert find_beeps(np.zeros(48000), RATE) == []


def test_a_beep_keeps_its_time_through_the_aac_encoder() -> None:
    """The AAC encoder delays its output by its priming samples; the packets' timestamps account
    for that, so a beep decoded from them starts where it was put (to well under a ms)."""
    start = 480_000  # stream position of the first sample: 10 s in
    onset = 24_321.0
    pcm = beep(96_000, onset).astype(np.float32)[None, :]
    encoder = AudioEncoder(RATE, 1, 96000)
    packets = []
    for i in range(0, pcm.shape[1], 960):  # 20 ms chunks, as the sources deliver them
        packets += encoder.encode(pcm[:, i : i + 960], start + i)
    packets += encoder.flush()
    decoder = av.CodecContext.create("aac", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    runs: list[tuple[float, np.ndarray]] = []
    for p in packets:
        packet = av.Packet(p.data)
        packet.pts = p.pts
        packet.time_base = Fraction(1, RATE)
        for frame in decoder.decode(packet):
            assert frame.pts is not None and frame.time_base is not None
            runs.append((float(frame.pts * frame.time_base), frame.to_ndarray()[0]))
    t0 = runs[0][0]
    samples = np.concatenate([r for _, r in runs])
    found = find_beeps(samples, RATE, t0)
    assert len(found) == 1
    assert abs(found[0] - (start + onset) / RATE) < 0.0005


def test_the_first_frame_with_new_hr_digits() -> None:
    def frame(digits_at: int | None) -> np.ndarray:
        img = np.full((360, 640, 3), 40, np.uint8)
        img[100:200, 200:260] = (0, 191, 0)  # the test pattern's green bar, left of the column
        if digits_at is not None:
            img[40:90, digits_at : digits_at + 60] = (90, 235, 90)  # RGB of the overlay's HR
        return img

    sigs = [hr_signature(frame(500)) for _ in range(5)]
    noisy = frame(500)
    noisy[40:42, 500:510] = 40  # a little compression noise on the flash frame
    sigs.append(hr_signature(noisy))
    sigs += [hr_signature(frame(440)) for _ in range(3)]
    assert first_change(sigs, before=4, start=5) == 6
    assert first_change(sigs[:6], before=4, start=5) is None


def test_match_pairs_each_mark_with_the_nearest_event() -> None:
    pairs = match([1.0, 2.0, 3.0], [1.010, 2.2, 9.0])
    assert pairs == [(1.0, pytest.approx(0.010)), (2.0, pytest.approx(0.2))]


def test_offsets_summarise_mean_max_and_drift() -> None:
    # 10 ms at the start, growing 1 ms per minute: 60 ms per hour.
    pairs = [(t, 0.010 + t / 60 * 0.001) for t in range(0, 600, 2)]
    o = Offsets("audio − video", [(float(t), v) for t, v in pairs])
    assert o.mean_s == pytest.approx(0.010 + 299 / 60 * 0.001)
    assert o.max_abs_s == pytest.approx(0.010 + 598 / 60 * 0.001)
    assert o.drift_s_per_hour == pytest.approx(0.060)
    assert o.to_json()["drift_ms_per_hour"] == pytest.approx(60.0)
    assert math.isnan(Offsets("none").mean_s)
    assert Offsets("none").to_json()["mean_ms"] is None
