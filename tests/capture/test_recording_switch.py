"""The camera recorder's switch from pre-roll to recording, through its real writer thread.

``CameraRecorder`` takes begin, end, discard and "keep no pre-roll" through the same queue as
the packets; these tests feed it packets and commands as the daemon does and look at what a
segmenter (an in-memory stand-in) received: pre-roll + live must be the continuous stream from
a keyframe, and a discard or "do not record" must leave nothing to begin with.
"""

from __future__ import annotations

import threading
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


# --- a stop ends at a media time -------------------------------------------------------------


def b_frames(first: int, last: int) -> list[EncodedPacket]:
    """Frames ``first..last`` in x264's decode order: I/P first, then the two B-frames before it
    (decode time runs ahead of the frames shown after it)."""
    out = []
    decode = first
    for anchor in range(first, last + 1, 3):
        for i in (anchor + 2, anchor, anchor + 1):  # P shown later, decoded first; then its B-frames
            if i > last:
                continue
            out.append(EncodedPacket("video", i.to_bytes(4, "big"), i * 3000, (decode - 2) * 3000, 3000, TB,
                                     i % GOP == 0))  # fmt: skip
            decode += 1
    return out


def test_a_stop_writes_every_frame_shown_before_it_even_those_x264_still_holds(
    recorder: CameraRecorder,
) -> None:
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    packets = b_frames(0, 59)  # frames 0-59: 2 s at 30 fps
    for p in packets[:30]:
        recorder.write(p)
    stop_s = 40 / FPS  # the stop is at frame 40's capture time; frames up to 39 are shown before it
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(recorder.end(at_s=stop_s)))
    waiter.start()  # the stop reaches the writer while x264 still holds frames 30-59
    for p in packets[30:]:
        recorder.write(p)
    waiter.join(5)
    assert done == [True] and seg.closed
    shown = sorted(int.from_bytes(p.data[:4], "big") for p in seg.packets if p.kind == "video")
    assert set(range(40)) <= set(shown)  # nothing shown before the stop is lost
    assert all(p.dts_s < stop_s for p in seg.packets)  # and nothing decoded after it is written


def test_a_stop_with_nothing_more_coming_closes_after_the_drain_timeout(
    recorder: CameraRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capture.recording as recording

    monkeypatch.setattr(recording, "_DRAIN_TIMEOUT_S", 0.2)
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    for p in b_frames(0, 10):
        recorder.write(p)
    assert recorder.end(at_s=5.0, timeout=3.0)  # the camera stopped delivering at frame 10
    assert seg.closed


def test_a_discard_does_not_wait(recorder: CameraRecorder) -> None:
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    for p in b_frames(0, 10):
        recorder.write(p)
    assert recorder.end(discard=True, at_s=5.0, timeout=0.5)
    assert seg.aborted and recorder.preroll.bytes == 0
