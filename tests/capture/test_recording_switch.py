"""The camera recorder's switch from pre-roll to recording, through its real writer thread.

``CameraRecorder`` takes begin, end, discard and "keep no pre-roll" through the same queue as
the packets; these tests feed it packets and commands as the daemon does and look at what a
segmenter (an in-memory stand-in) received: pre-roll + live must be the continuous stream from
a keyframe, and a discard or "do not record" must leave nothing to begin with.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import cast

import pytest

from capture.packets import EncodedPacket
from capture.recording import CameraRecorder
from capture.segmenter import Segmenter

TB = Fraction(1, 90_000)
FPS = 30
GOP = 30  # a keyframe every second
PREROLL_S = 3.0


class MemorySegmenter:
    """Keeps what it is given, and whether it was closed or thrown away."""

    def __init__(self) -> None:
        self.packets: list[EncodedPacket] = []
        self.closed = False
        self.aborted = False

    def write(self, packet: EncodedPacket) -> None:
        self.packets.append(packet)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def stream(seconds: float, start_frame: int = 0) -> list[EncodedPacket]:
    """Video at 30 fps with a keyframe every second, and an audio packet every ~21 ms."""
    out: list[EncodedPacket] = []
    audio_t = start_frame / FPS
    for i in range(start_frame, start_frame + int(seconds * FPS)):
        t = i / FPS
        while audio_t < t:
            ticks = int(audio_t * 90_000)
            out.append(EncodedPacket("audio", b"a" * 40, ticks, ticks, 1920, TB, True))
            audio_t += 1024 / 48_000
        ticks = i * 3000
        out.append(EncodedPacket("video", i.to_bytes(4, "big") * 100, ticks, ticks, 3000, TB, i % GOP == 0))
    return out


@pytest.fixture
def recorder() -> Iterator[CameraRecorder]:
    rec = CameraRecorder("closeup", PREROLL_S)
    rec.start()
    yield rec
    rec.stop()


def begin(rec: CameraRecorder) -> MemorySegmenter:
    sink = MemorySegmenter()
    rec.begin(cast(Segmenter, sink))
    return sink


def test_preroll_plus_live_is_the_continuous_stream_from_a_keyframe(recorder: CameraRecorder) -> None:
    packets = stream(12)
    trigger = next(i for i, p in enumerate(packets) if p.dts_s >= 8.5)  # mid-GOP
    for p in packets[:trigger]:
        recorder.write(p)
    sink = begin(recorder)
    for p in packets[trigger:]:
        recorder.write(p)
    assert recorder.end()

    got = sink.packets
    assert got[0].kind == "video" and got[0].keyframe
    start = packets.index(got[0])
    assert got == packets[start:]  # nothing lost, nothing repeated, in order
    assert packets[trigger].dts_s - got[0].dts_s >= PREROLL_S
    assert sink.closed and not sink.aborted
    assert recorder.preroll_s_used >= PREROLL_S - 1 / FPS
    assert recorder.write_errors == 0


def test_after_a_recording_the_next_preroll_starts_afresh(recorder: CameraRecorder) -> None:
    first, second = stream(6), stream(6, start_frame=6 * FPS)
    for p in first[:50]:
        recorder.write(p)
    begin(recorder)
    for p in first[50:]:
        recorder.write(p)
    assert recorder.end()
    for p in second:
        recorder.write(p)
    sink = begin(recorder)
    assert recorder.end()
    assert sink.packets and all(p in second for p in sink.packets)  # nothing of the first again


def test_a_discard_destroys_the_recording_and_leaves_no_preroll(recorder: CameraRecorder) -> None:
    packets = stream(8)
    for p in packets[:150]:
        recorder.write(p)
    sink = begin(recorder)
    for p in packets[150:]:
        recorder.write(p)
    assert recorder.end(discard=True)
    assert sink.aborted and not sink.closed
    assert recorder.preroll.bytes == 0 and recorder.preroll.duration_s == 0.0

    after = begin(recorder)
    assert recorder.end()
    assert after.packets == []  # a start right after the discard brings none of it back


def test_do_not_record_keeps_no_preroll_until_lifted(recorder: CameraRecorder) -> None:
    before, during, lifted = stream(5), stream(5, start_frame=5 * FPS), stream(5, start_frame=10 * FPS)
    for p in before:
        recorder.write(p)
    recorder.keep_preroll(False)
    for p in during:
        recorder.write(p)
    sink = begin(recorder)
    assert recorder.end()
    assert sink.packets == []
    assert recorder.preroll.bytes == 0

    recorder.keep_preroll(True)
    for p in lifted:
        recorder.write(p)
    sink = begin(recorder)
    assert recorder.end()
    assert sink.packets and all(p in lifted for p in sink.packets)
    assert sink.packets[0].keyframe
