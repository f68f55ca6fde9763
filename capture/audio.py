"""Where sound comes from: audio sources delivering float32 planar PCM, and their reader thread.

Every source hands over ``AudioChunk``s already converted to the configured rate and channel
count, so the encoder sees one format whatever the device does natively. The reader stamps each
chunk with the clock when it arrives; that stamp belongs to the chunk's *last* sample, and
``sync.audio_timeline`` turns stamps plus sample counts into stream positions.

Sources: an ALSA device through PyAV (the real thing), a file, and a synthetic tone. File and tone
are paced in real time like a sound card: a chunk is handed over when its last sample is "due".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import av.error
import numpy as np
import structlog
from av.audio.stream import AudioStream

from capture.sources import SourceClock, SourceError, sleep_until, source_time_ns
from capture.supervisor import SupervisedReader
from supervision.health import DeviceHealth

__all__ = [
    "AlsaAudioSource",
    "AudioChunk",
    "AudioReader",
    "AudioSource",
    "FileAudioSource",
    "ToneAudioSource",
    "ensure_alsa_config",
]

log = structlog.get_logger()

PROBE_BEEP_HZ = 1000.0  # the sync probe's beep: far from mains hum, easy to find in AAC

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


@dataclass(frozen=True)
class AudioChunk:
    pcm: np.ndarray  # float32, planar, shape (channels, n), nominally in [-1, 1]
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.pcm.shape[0])

    @property
    def samples(self) -> int:
        return int(self.pcm.shape[1])

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


@runtime_checkable
class AudioSource(Protocol):
    """A microphone. Used from one thread only (its reader's)."""

    def open(self) -> None:
        """Connect; raises ``SourceError`` saying why when it cannot."""

    def read(self) -> AudioChunk | None:
        """Block until the next chunk. ``None`` (or ``SourceError``) means the source is lost."""

    def close(self) -> None:
        """Release the device. Safe to call when not open, and more than once."""

    def describe(self) -> str:
        """What this source is, for log lines."""


def channel_layout(channels: int) -> str:
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


class _ToFloatPlanar:
    """Converts decoded frames of any sample format, layout and rate to float32 planar."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.channels = channels
        self._resampler = av.AudioResampler(
            format="fltp", layout=channel_layout(channels), rate=sample_rate
        )

    def convert(self, frame: av.AudioFrame | None) -> np.ndarray:
        """PCM for ``frame`` (a few samples short at first: resampler delay); None drains."""
        arrays = [f.to_ndarray() for f in self._resampler.resample(frame)]
        if not arrays:
            return np.zeros((self.channels, 0), np.float32)
        out = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)
        return np.ascontiguousarray(out, dtype=np.float32)


# --- ALSA -----------------------------------------------------------------------------------------


def ensure_alsa_config() -> str | None:
    """Point the ALSA library at the system configuration; returns ``ALSA_CONFIG_PATH``.

    PyAV's wheels bundle their own libasound, built to look for ``alsa.conf`` under a prefix that
    does not exist on the installed system; without the system file it knows no device names
    beyond raw ``hw:``, and no ``.asoundrc``. ``ALSA_CONFIG_PATH`` is read on each open, so
    setting it in the process environment before opening is enough. A value someone set is left
    alone (it may list extra files, separated by ``:``).
    """
    current = os.environ.get("ALSA_CONFIG_PATH")
    if not current and SYSTEM_ALSA_CONF.is_file():
        os.environ["ALSA_CONFIG_PATH"] = str(SYSTEM_ALSA_CONF)
        current = str(SYSTEM_ALSA_CONF)
    return current or None


class AlsaAudioSource:
    """An ALSA capture device (``default``, ``hw:CARD=USB,DEV=0``, ``plughw:1,0``, a PCM from
    ``.asoundrc`` ...) through PyAV. Each chunk is what arrived, gathered to at least ``chunk_ms``,
    so its arrival stamp belongs to its last sample.
    """

    def __init__(
        self, device: str, sample_rate: int = 48000, channels: int = 1, *, chunk_ms: float = 20.0
    ) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.chunk_ms = chunk_ms
        self._container: av.container.InputContainer | None = None
        self._packets: Iterator[av.Packet[AudioStream]] | None = None
        self._decoder: av.AudioCodecContext | None = None
        self._converter: _ToFloatPlanar | None = None
        self._chunk_bytes = 1

    def describe(self) -> str:
        return f"alsa:{self.device} {self.sample_rate} Hz x{self.channels}"

    def open(self) -> None:
        self.close()
        config = ensure_alsa_config()
        try:
            container = av.open(
                self.device,
                format="alsa",
                options={"sample_rate": str(self.sample_rate), "channels": str(self.channels)},
            )
        except (av.error.FFmpegError, OSError) as exc:
            where = config or f"unset, and {SYSTEM_ALSA_CONF} does not exist"
            raise SourceError(
                f"cannot open ALSA capture device {self.device!r}: {exc}. Check the name "
                "('arecord -L' lists them), that the device is plugged in and not held by another "
                "program, that the service user is in the 'audio' group, and that "
                f"ALSA_CONFIG_PATH names the system alsa.conf (now: {where}; install the "
                "libasound2-data package if it is missing)"
            ) from exc
        if not container.streams.audio:
            container.close()
            raise SourceError(f"ALSA device {self.device!r} opened but offers no audio stream")
        stream = container.streams.audio[0]
        decoder = stream.codec_context
        if not decoder.name.startswith("pcm_"):
            container.close()
            raise SourceError(f"ALSA device {self.device!r} delivers {decoder.name}, not PCM")
        # What the device actually runs at (it may have refused the rate or channel count asked).
        frame_bytes = decoder.format.bytes * decoder.channels
        self._chunk_bytes = max(1, int(decoder.sample_rate * self.chunk_ms / 1000)) * frame_bytes
        if (decoder.sample_rate, decoder.channels) != (self.sample_rate, self.channels):
            log.info(
                "audio_device_format_differs",
                source=self.describe(),
                device_rate=decoder.sample_rate,
                device_channels=decoder.channels,
                note="converted in software",
            )
        self._container = container
        self._packets = container.demux(stream)
        self._decoder = decoder
        self._converter = _ToFloatPlanar(self.sample_rate, self.channels)

    def read(self) -> AudioChunk | None:
        if self._packets is None or self._decoder is None or self._converter is None:
            return None
        try:
            while True:
                # FFmpeg's ALSA input asks the device for its smallest period, which can be a
                # handful of samples; decoding and converting each such packet costs more than
                # real time. The packets are raw PCM, so their bytes are joined and decoded once.
                parts: list[bytes] = []
                size = 0
                while size < self._chunk_bytes:
                    packet = next(self._packets, None)
                    if packet is None:
                        return None  # device gone (unplugged, or an error it could not recover)
                    parts.append(bytes(packet))
                    size += packet.size
                frames = self._decoder.decode(av.Packet(b"".join(parts)))
                pcm = [self._converter.convert(f) for f in frames]
                out = pcm[0] if len(pcm) == 1 else np.concatenate(pcm, axis=1)
                if out.shape[1]:
                    return AudioChunk(out, self.sample_rate)
        except av.error.FFmpegError as exc:
            raise SourceError(f"ALSA device {self.device!r} failed: {exc}") from exc

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._packets = None
        self._decoder = None
        self._converter = None


# --- files ----------------------------------------------------------------------------------------


class _SamplePacer:
    """Real-time pacing by sample count, on a schedule fixed at the first chunk.

    Unlike video, late chunks are not skipped: a sound card keeps every sample and hands over the
    backlog at once, and the audio timeline counts on the sample count matching time.
    """

    def __init__(
        self, sample_rate: int, clock_ns: Callable[[], int], sleep: Callable[[float], None]
    ) -> None:
        self._rate = sample_rate
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._start_ns: int | None = None
        self._samples = 0
        self.due_ns: int | None = None  # when the last sample handed over was "captured"

    def start_ns(self) -> int:
        """When sample 0 is "captured": the clock at the first call of this or ``wait_for``."""
        if self._start_ns is None:
            self._start_ns = self._clock_ns()
        return self._start_ns

    @property
    def samples(self) -> int:
        """Samples handed over so far."""
        return self._samples

    def wait_for(self, n: int) -> None:
        """Wait until ``n`` more samples have "been captured" since the previous call."""
        start = self.start_ns()
        self._samples += n
        self.due_ns = start + self._samples * 1_000_000_000 // self._rate
        sleep_until(self.due_ns, self._clock_ns, self._sleep)


class FileAudioSource:
    """Any audio file PyAV reads, played as if it were a microphone, looping by default."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int = 48000,
        channels: int = 1,
        loop: bool = True,
        *,
        chunk_ms: float = 20.0,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.loop = loop
        self._chunk = max(1, int(sample_rate * chunk_ms / 1000))
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.AudioFrame] | None = None
        self._converter: _ToFloatPlanar | None = None
        self._pacer: _SamplePacer | None = None
        self._buffer = np.zeros((channels, 0), np.float32)
        self._ended = False
        self.loops = 0

    def describe(self) -> str:
        return f"audio-file:{self.path.name}"

    def _open_container(self) -> None:
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open audio file {self.path}: {exc}") from exc
        if not container.streams.audio:
            container.close()
            raise SourceError(f"{self.path} has no audio stream")
        self._container = container
        self._frames = container.decode(container.streams.audio[0])

    def open(self) -> None:
        self.close()
        self._open_container()
        self._converter = _ToFloatPlanar(self.sample_rate, self.channels)
        self._pacer = _SamplePacer(self.sample_rate, self._clock_ns, self._sleep)
        self._buffer = np.zeros((self.channels, 0), np.float32)
        self._ended = False

    def _next_frame(self) -> av.AudioFrame | None:
        """The next decoded frame; at the end of the file, the first again when looping."""
        frame = next(self._frames, None) if self._frames is not None else None
        if frame is None and self.loop:
            assert self._container is not None
            self._container.close()
            self._open_container()
            self.loops += 1
            # A file without a single frame ends even when looping, rather than spinning.
            frame = next(self._frames, None) if self._frames is not None else None
        return frame

    def _fill(self) -> None:
        """Top up the buffer to at least one chunk (less only at the end of a non-looping file)."""
        conv = self._converter
        assert conv is not None
        parts = [self._buffer]
        have = self._buffer.shape[1]
        while have < self._chunk and not self._ended:
            frame = self._next_frame()
            if frame is None:
                self._ended = True
            pcm = conv.convert(frame)  # None drains the resampler at the end
            parts.append(pcm)
            have += pcm.shape[1]
        self._buffer = np.concatenate(parts, axis=1)

    def read(self) -> AudioChunk | None:
        if self._converter is None or self._pacer is None:
            return None
        self._fill()
        if self._buffer.shape[1] == 0:
            return None
        pcm, self._buffer = self._buffer[:, : self._chunk], self._buffer[:, self._chunk :]
        self._pacer.wait_for(pcm.shape[1])
        return AudioChunk(np.ascontiguousarray(pcm), self.sample_rate)

    def chunk_time_ns(self) -> int | None:
        """When the last chunk's last sample was due in the paced playback."""
        return self._pacer.due_ns if self._pacer is not None else None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
        self._converter = None
        self._pacer = None


# --- synthetic ------------------------------------------------------------------------------------


class ToneAudioSource:
    """A sine tone for the demo and tests; phase-continuous across chunks, paced in real time.

    ``probe_every_s`` turns it into the sync probe's audio: silence, and a ``probe_beep_s`` beep
    of ``PROBE_BEEP_HZ`` starting at every whole multiple of ``probe_every_s`` on the monotonic
    clock, the instants the test pattern flashes and the monitor simulator steps its heart rate
    (sample ``k`` is taken at the pacer's start + k / rate, so the beep's first sample is the
    first one at or after the mark).
    """

    def __init__(
        self,
        frequency_hz: float = 440.0,
        sample_rate: int = 48000,
        channels: int = 1,
        chunk_ms: float = 20.0,
        amplitude: float = 0.2,
        *,
        probe_every_s: float | None = None,
        probe_beep_s: float = 0.05,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < frequency_hz < sample_rate / 2:
            raise ValueError(f"frequency must be between 0 and {sample_rate / 2} Hz")
        if probe_every_s is not None and not 0 < probe_beep_s < probe_every_s:
            raise ValueError("the probe's beep must be shorter than the time between marks")
        self.probe_every_ns = round(probe_every_s * 1e9) if probe_every_s is not None else None
        self.probe_beep_samples = max(1, round(probe_beep_s * sample_rate))
        self.frequency_hz = frequency_hz
        self.sample_rate = sample_rate
        self.channels = channels
        self.amplitude = amplitude
        self._chunk = max(1, int(sample_rate * chunk_ms / 1000))
        self._step = 2 * np.pi * frequency_hz / sample_rate  # radians per sample
        self._ramp = np.arange(self._chunk, dtype=np.float64) * self._step
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._phase = 0.0
        self._pacer: _SamplePacer | None = None

    def describe(self) -> str:
        return f"tone {self.frequency_hz:g} Hz {self.sample_rate} Hz x{self.channels}"

    def open(self) -> None:
        self._pacer = _SamplePacer(self.sample_rate, self._clock_ns, self._sleep)
        self._phase = 0.0

    def read(self) -> AudioChunk | None:
        if self._pacer is None:
            return None
        if self.probe_every_ns is not None:
            wave = self._probe_chunk(self._pacer.start_ns(), self._pacer.samples)
        else:
            wave = (self.amplitude * np.sin(self._phase + self._ramp)).astype(np.float32)
            # Keep the running phase small so float precision does not decay over days.
            self._phase = (self._phase + self._chunk * self._step) % (2 * np.pi)
        pcm = np.repeat(wave[None, :], self.channels, axis=0)
        self._pacer.wait_for(self._chunk)
        return AudioChunk(pcm, self.sample_rate)

    def _probe_chunk(self, start_ns: int, first: int) -> np.ndarray:
        """Samples ``first`` .. ``first + chunk`` of the probe: beeps from each mark, else 0."""
        assert self.probe_every_ns is not None
        rate, every = self.sample_rate, self.probe_every_ns
        out = np.zeros(self._chunk, np.float32)
        # Sample k is taken at start + k/rate; the beep of a mark m starts at the first sample at
        # or after m. Marks whose beep overlaps this chunk: from the one before its first sample.
        t_first = start_ns + first * 1_000_000_000 // rate
        mark = (t_first // every) * every
        last = first + self._chunk
        while True:
            k0 = -(-(mark - start_ns) * rate // 1_000_000_000)  # first sample at or after the mark
            if k0 >= last:
                break
            k1 = k0 + self.probe_beep_samples
            a, b = max(k0, first), min(k1, last)
            if a < b:
                n = np.arange(a - k0, b - k0, dtype=np.float64)
                out[a - first : b - first] = 0.5 * np.sin(2 * np.pi * PROBE_BEEP_HZ * n / rate)
            mark += every
        return out

    def chunk_time_ns(self) -> int | None:
        """When the last chunk's last sample was "captured", on the pacer's schedule."""
        return self._pacer.due_ns if self._pacer is not None else None

    def close(self) -> None:
        self._pacer = None


# --- reader ---------------------------------------------------------------------------------------


class AudioReader:
    """The audio reader thread: chunks from any ``AudioSource``, stamped on arrival, to a callback.

    Threads: ``on_audio`` runs on this reader's thread and must return quickly; ``health`` and
    ``lost_since`` may be called from any thread.
    """

    def __init__(
        self,
        source: AudioSource,
        on_audio: Callable[[AudioChunk, int], None],
        *,
        name: str = "audio",
        clock_ns: Callable[[], int] = time.monotonic_ns,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.name = name
        self.source = source
        self._on_audio = on_audio
        self.times = SourceClock(f"audio {name}")
        self._reader = SupervisedReader[AudioChunk](
            name,
            "audio",
            source,
            self._deliver,
            clock_ns=clock_ns,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )

    def _deliver(self, chunk: AudioChunk, arrival_ns: int) -> None:
        # A source that knows when its chunk's last sample was taken (the paced file and tone)
        # says so; a sound card's chunk is stamped on arrival and smoothed by the audio timeline.
        self._on_audio(chunk, self.times.time_of(source_time_ns(self.source), arrival_ns))

    def start(self) -> None:
        self._reader.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        return self._reader.stop(timeout_s)

    def health(self) -> DeviceHealth:
        return self._reader.health()

    def lost_since(self) -> datetime | None:
        return self._reader.lost_since()

    @property
    def running(self) -> bool:
        return self._reader.running
