"""Audio sources and the audio reader: format, pace, tone quality, files, supervision."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from capture.audio import (
    AudioChunk,
    AudioReader,
    AudioSource,
    FileAudioSource,
    ToneAudioSource,
)
from capture.sources import SourceError

Wait = Callable[..., None]


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    return float(np.argmax(np.abs(np.fft.rfft(x)))) * rate / len(pcm)


# --- tone -----------------------------------------------------------------------------------------


def test_tone_chunks_are_float32_planar(fake_clock: Any) -> None:
    src = ToneAudioSource(440, 48000, channels=2, chunk_ms=20, clock_ns=fake_clock, sleep=fake_clock.sleep)
    assert isinstance(src, AudioSource)
    src.open()
    chunk = src.read()
    assert chunk is not None
    assert chunk.pcm.dtype == np.float32 and chunk.pcm.shape == (2, 960)
    assert chunk.sample_rate == 48000 and chunk.channels == 2 and chunk.duration_s == 0.02
    assert np.array_equal(chunk.pcm[0], chunk.pcm[1])
    assert float(np.max(np.abs(chunk.pcm))) == pytest.approx(0.2, abs=1e-3)


def test_tone_is_phase_continuous_and_on_frequency(fake_clock: Any) -> None:
    rate, freq = 48000, 1000.0
    src = ToneAudioSource(freq, rate, chunk_ms=10, amplitude=0.5, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    chunks = [src.read() for _ in range(100)]  # one second
    pcm = np.concatenate([c.pcm[0] for c in chunks if c is not None])
    n = np.arange(len(pcm))
    ideal = 0.5 * np.sin(2 * np.pi * freq * n / rate)
    # Matches one continuous sine everywhere, including across the 99 chunk boundaries.
    assert float(np.max(np.abs(pcm - ideal))) < 1e-5
    max_step = 0.5 * 2 * np.pi * freq / rate
    assert float(np.max(np.abs(np.diff(pcm)))) <= max_step * 1.0001
    assert dominant_hz(pcm, rate) == pytest.approx(freq, abs=2)


def test_tone_schedule_is_exact(fake_clock: Any) -> None:
    src = ToneAudioSource(440, 44100, chunk_ms=20, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    start = fake_clock.now
    total = sum(c.samples for c in (src.read() for _ in range(500)) if c is not None)
    # Each chunk is handed over when its last sample is due: no drift over 10 s.
    assert fake_clock.now - start == total * 10**9 // 44100


def test_tone_real_time_pace() -> None:
    src = ToneAudioSource(440, 48000)
    src.open()
    t0 = time.monotonic()
    samples = 0
    while time.monotonic() - t0 < 1.0:
        chunk = src.read()
        assert chunk is not None
        samples += chunk.samples
    assert samples == pytest.approx(48000, rel=0.1)


# --- files ----------------------------------------------------------------------------------------


def test_file_audio_is_converted_to_the_asked_format(tone_file: Path, fake_clock: Any) -> None:
    src = FileAudioSource(tone_file, 48000, 1, loop=False, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    chunks: list[AudioChunk] = []
    while (chunk := src.read()) is not None:
        chunks.append(chunk)
    assert all(c.pcm.dtype == np.float32 and c.channels == 1 and c.sample_rate == 48000 for c in chunks)
    assert all(c.samples == 960 for c in chunks[:-1])
    pcm = np.concatenate([c.pcm[0] for c in chunks])
    assert len(pcm) == pytest.approx(48000, abs=100)  # 1 s of 44.1 kHz, resampled
    assert dominant_hz(pcm, 48000) == pytest.approx(1000, abs=3)
    assert fake_clock.slept == pytest.approx(len(pcm) / 48000, abs=1e-3)
    src.close()


def test_file_audio_loops(tone_file: Path, fake_clock: Any) -> None:
    src = FileAudioSource(tone_file, 16000, 2, loop=True, clock_ns=fake_clock, sleep=fake_clock.sleep)
    src.open()
    total = 0
    while total < 3 * 16000:
        chunk = src.read()
        assert chunk is not None and chunk.pcm.shape == (2, 320)
        total += chunk.samples
    assert src.loops >= 2


def test_file_audio_real_time_pace(tone_file: Path) -> None:
    src = FileAudioSource(tone_file, 48000, 1)
    src.open()
    t0 = time.monotonic()
    samples = 0
    while time.monotonic() - t0 < 0.5:
        chunk = src.read()
        assert chunk is not None
        samples += chunk.samples
    assert samples == pytest.approx(24000, rel=0.1)


def test_file_audio_missing(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open audio file"):
        FileAudioSource(tmp_path / "none.wav").open()


def test_file_without_audio_is_refused(video_file: Path) -> None:
    with pytest.raises(SourceError, match="no audio stream"):
        FileAudioSource(video_file).open()


# --- reader ---------------------------------------------------------------------------------------


def test_audio_reader_delivers_stamped_chunks(wait_for: Wait) -> None:
    got: list[tuple[AudioChunk, int]] = []
    reader = AudioReader(ToneAudioSource(440, 48000, chunk_ms=10), lambda c, t: got.append((c, t)))
    before = time.monotonic_ns()
    reader.start()
    wait_for(lambda: len(got) >= 10)
    health = reader.health()
    t0 = time.monotonic()
    assert reader.stop()
    assert time.monotonic() - t0 < 0.5
    assert health.state == "live" and health.delivered >= 10
    stamps = [t for _, t in got]
    assert stamps == sorted(stamps) and stamps[0] >= before
    # Chunks arrive when their last sample is due: 10 ms apart.
    gaps = np.diff(stamps[:10]) / 1e6
    assert float(np.median(gaps)) == pytest.approx(10, abs=3)


class DroppingAudio:
    """A tone that is lost after a few chunks and comes back when allowed."""

    def __init__(self) -> None:
        self.tone = ToneAudioSource(440, 8000, chunk_ms=5)
        self.reads = 0
        self.back = threading.Event()

    def describe(self) -> str:
        return "dropping tone"

    def open(self) -> None:
        if self.reads >= 3 and not self.back.is_set():
            raise SourceError("USB microphone unplugged")
        self.tone.open()

    def read(self) -> AudioChunk | None:
        self.reads += 1
        return None if self.reads == 4 else self.tone.read()

    def close(self) -> None:
        self.tone.close()


def test_audio_reader_recovers_and_logs_once(wait_for: Wait) -> None:
    source = DroppingAudio()
    with capture_logs() as logs:
        reader = AudioReader(
            source, lambda c, t: None, name="mic", backoff_initial_s=0.01, backoff_max_s=0.02
        )
        reader.start()
        wait_for(lambda: reader.health().state == "lost")
        time.sleep(0.1)  # several failed retries
        assert reader.lost_since() is not None
        source.back.set()
        wait_for(lambda: reader.health().state == "live" and reader.health().reconnects == 1)
        reader.stop()
    events = [e["event"] for e in logs]
    assert events.count("audio_lost") == 1 and events.count("audio_recovered") == 1
    assert next(e for e in logs if e["event"] == "audio_lost")["audio"] == "mic"
