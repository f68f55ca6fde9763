"""Pre-roll invariants, with in-memory packets: no encoder, no files."""

from __future__ import annotations

from fractions import Fraction

from capture.packets import EncodedPacket
from capture.preroll import PrerollBuffer

TB = Fraction(1, 90_000)
FPS = 30
GOP = 60  # a keyframe every 2 s


def stream(seconds: float) -> list[EncodedPacket]:
    """Video at 30 fps with a keyframe every 2 s, and an audio packet every ~21 ms."""
    out: list[EncodedPacket] = []
    frames = int(seconds * FPS)
    audio_t = 0.0
    for i in range(frames):
        t = i / FPS
        while audio_t < t:
            ticks = int(audio_t * 90_000)
            out.append(EncodedPacket("audio", b"a" * 50, ticks, ticks, 1920, TB, True))
            audio_t += 1024 / 48_000
        ticks = i * 3000
        out.append(EncodedPacket("video", b"v" * 1000, ticks, ticks, 3000, TB, i % GOP == 0))
    return out


def test_ring_starts_on_a_keyframe_and_covers_the_configured_seconds() -> None:
    ring = PrerollBuffer(seconds=5.0)
    packets = stream(30)
    for p in packets:
        ring.write(p)
    held = ring.drain()
    assert held[0].kind == "video" and held[0].keyframe
    covered = held[-1].dts_s - held[0].dts_s
    assert 5.0 <= covered < 5.0 + 2.0  # at most one GOP more than asked for
    assert held == packets[packets.index(held[0]):]  # the newest packets, in order, none missing


def test_ring_memory_is_bounded() -> None:
    ring = PrerollBuffer(seconds=4.0)
    peak = 0
    for p in stream(60):
        ring.write(p)
        peak = max(peak, ring.bytes)
    # 4 s plus at most one GOP of video + audio, not 60 s worth.
    assert peak <= (6 * FPS + 1) * 1000 + 6 * 50 * 48
    assert ring.bytes == sum(len(p.data) for p in ring.drain())


def test_zero_seconds_still_keeps_the_current_gop() -> None:
    ring = PrerollBuffer(seconds=0.0)
    for p in stream(5):
        ring.write(p)
    held = ring.drain()
    assert held[0].keyframe and held[0].dts_s == 4.0


def test_preroll_plus_live_equals_continuous_recording() -> None:
    """Switching from the ring to a live sink loses nothing and repeats nothing."""
    packets = stream(40)
    continuous = list(packets)
    ring = PrerollBuffer(seconds=10.0)
    trigger = 900  # the start command arrives mid-GOP
    for p in packets[:trigger]:
        ring.write(p)
    recording = ring.drain() + packets[trigger:]
    start = continuous.index(recording[0])
    assert recording == continuous[start:]
    assert recording[0].keyframe
    assert packets[trigger].dts_s - recording[0].dts_s >= 10.0


def test_packets_before_the_first_keyframe_are_not_kept() -> None:
    ring = PrerollBuffer(seconds=10.0)
    for p in stream(3)[5:]:  # begins mid-GOP
        ring.write(p)
    held = ring.drain()
    assert held[0].keyframe and held[0].dts_s == 2.0
