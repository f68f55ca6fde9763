"""The camera recorder's switch from pre-roll to recording, through its real writer thread.

``CameraRecorder`` takes begin, end, discard and "keep no pre-roll" through the same queue as
the packets; these tests feed it packets and commands as the daemon does and look at what a
segmenter (an in-memory stand-in) received: pre-roll + live must be the continuous stream from
a keyframe, and a discard or "do not record" must leave nothing to begin with.
"""

from __future__ import annotations

import errno
import itertools
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import cast

import pytest
from structlog.testing import capture_logs

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
#
# The stop is queued with ``end(at_s=..., timeout=0)``, which returns at once, before the packets
# x264 still holds are written: the writer sees them in the same order as in the daemon, with no
# thread racing the test. A later ``end()`` is a barrier: it returns once all before it is done.

STOP_FRAME = 40  # the stop comes at frame 40's capture time: frames 0-39 are owed to the recording


def x264_order(frames: int) -> list[EncodedPacket]:
    """Video as x264 emits it with two B-frames and a closed GOP: each keyframe first, then each
    P-frame before the two B-frames shown ahead of it; decode times run two frames behind, so
    DTS <= PTS. Audio every ~21 ms is interleaved by decode time, as the interleaver does."""
    shown: list[int] = []
    for gop in range(0, frames, GOP):
        shown.append(gop)
        n = gop + 1
        while n + 2 < min(gop + GOP, frames):
            shown += [n + 2, n, n + 1]
            n += 3
        shown += range(min(gop + GOP, frames) - 1, n - 1, -1)  # the GOP's last frames, as P-frames
    video = [
        EncodedPacket("video", i.to_bytes(4, "big"), i * 3000, (d - 2) * 3000, 3000, TB, i % GOP == 0)
        for d, i in enumerate(shown)
    ]
    out: list[EncodedPacket] = []
    audio_t = 0.0
    for packet in video:
        while audio_t < packet.dts_s:
            ticks = int(audio_t * 90_000)
            out.append(EncodedPacket("audio", b"a" * 40, ticks, ticks, 1920, TB, True))
            audio_t += 1024 / 48_000
        out.append(packet)
    return out


def frame_of(packet: EncodedPacket) -> int:
    return int.from_bytes(packet.data[:4], "big")


def test_x264_order_is_what_the_stop_relies_on() -> None:
    video = [p for p in x264_order(90) if p.kind == "video"]
    assert sorted(frame_of(p) for p in video) == list(range(90))
    assert all(p.dts <= p.pts for p in video)
    assert all(a.dts < b.dts for a, b in itertools.pairwise(video))
    assert any(a.pts > b.pts for a, b in itertools.pairwise(video))  # reordered


def test_a_stop_writes_every_packet_decoded_before_it_even_those_x264_still_holds(
    recorder: CameraRecorder,
) -> None:
    packets = x264_order(90)
    stop_s = STOP_FRAME / FPS
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    held = next(i for i, p in enumerate(packets) if p.kind == "video" and frame_of(p) >= 30)
    for p in packets[:held]:
        recorder.write(p)
    assert not recorder.end(at_s=stop_s, timeout=0)  # queued; x264 still holds frames 30 on
    for p in packets[held:]:
        recorder.write(p)
    assert recorder.end()  # the barrier

    assert seg.closed and not seg.aborted
    decoded_before = [p for p in packets if p.dts_s < stop_s]
    assert all(p in seg.packets for p in decoded_before)  # video and audio, references included
    video = [p for p in seg.packets if p.kind == "video"]
    shown = sorted(frame_of(p) for p in video)
    assert shown == list(range(len(shown))) and shown[-1] >= STOP_FRAME - 1  # all owed, no hole
    assert video == [p for p in packets if p.kind == "video"][: len(video)]  # in decode order
    assert all(p.dts_s < stop_s for p in seg.packets if p.kind == "audio")  # audio up to the stop
    # The rest went to the pre-roll, from its first keyframe (frame 60) on.
    rest = [p for p in packets if p not in seg.packets]
    keyframe = next(i for i, p in enumerate(rest) if p.keyframe and p.kind == "video")
    assert frame_of(rest[keyframe]) == 60
    assert recorder.preroll.drain() == rest[keyframe:]
    assert recorder.frames_late_for_stop == 0 and recorder.write_errors == 0


def test_a_stop_between_a_p_frame_and_its_b_frames_ends_without_a_hole(recorder: CameraRecorder) -> None:
    packets = x264_order(90)
    video = [p for p in packets if p.kind == "video"]
    # A P-frame decoded before the stop whose B-frames are decoded after it (shown after it too).
    p_frame = next(v for v, b in itertools.pairwise(video) if 40 <= frame_of(b) < frame_of(v))
    stop_s = (p_frame.dts + 1500) * TB  # between the P-frame's decode time and its B-frames'
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    at = packets.index(p_frame) + 1
    for p in packets[:at]:
        recorder.write(p)
    assert not recorder.end(at_s=float(stop_s), timeout=0)  # the P-frame is in, the stop comes
    for p in packets[at:]:
        recorder.write(p)
    assert recorder.end()
    shown = sorted(frame_of(p) for p in seg.packets if p.kind == "video")
    assert shown == list(range(frame_of(p_frame) + 1))  # its B-frames went in with it


def test_a_stop_that_reaches_the_writer_after_its_frames_closes_at_once(
    recorder: CameraRecorder,
) -> None:
    packets = x264_order(90)
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    for p in packets[:200]:  # well past frame 40: a writer that was behind
        recorder.write(p)
    assert recorder.end(at_s=STOP_FRAME / FPS, timeout=1.0)
    assert seg.closed and set(range(STOP_FRAME)) <= {frame_of(p) for p in seg.packets if p.kind == "video"}


def test_a_stop_whose_frames_do_not_come_closes_after_the_timeout_and_counts_the_late_ones(
    recorder: CameraRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capture.recording as recording

    monkeypatch.setattr(recording, "_DRAIN_TIMEOUT_S", 0.2)
    packets = x264_order(90)
    stop_s = STOP_FRAME / FPS
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    held = next(i for i, p in enumerate(packets) if p.kind == "video" and frame_of(p) >= 30)
    for p in packets[:held]:
        recorder.write(p)
    with capture_logs() as logs:
        began = time.monotonic()
        assert recorder.end(at_s=stop_s, timeout=3.0)  # x264 stalled: nothing more comes
        waited = time.monotonic() - began
        assert seg.closed and 0.15 <= waited < 2.0
        in_segment = len(seg.packets)
        for p in packets[held:]:  # the encoder catches up, too late for the recording
            recorder.write(p)
        assert recorder.end()
    assert len(seg.packets) == in_segment  # a closed segment takes nothing more
    events = [e for e in logs if e["log_level"] == "warning"]
    assert events[0]["event"] == "stop_drain_timeout" and events[0]["stop_s"] == round(stop_s, 3)
    late = sum(1 for p in packets[held:] if p.kind == "video" and p.pts_s < stop_s)
    assert late > 0 and recorder.frames_late_for_stop == late
    assert events[1] == {
        "event": "stop_frames_late", "log_level": "warning", "camera": "closeup", "frames": late,
        "stop_s": round(stop_s, 3),
    }  # fmt: skip
    # Every frame captured before the stop is in the segment or counted.
    owed = {frame_of(p) for p in seg.packets if p.kind == "video" and p.pts_s < stop_s}
    assert len(owed) + recorder.frames_late_for_stop == STOP_FRAME


def test_a_stop_with_no_frame_in_its_segment_closes_after_the_timeout(
    recorder: CameraRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capture.recording as recording

    monkeypatch.setattr(recording, "_DRAIN_TIMEOUT_S", 0.1)
    for p in x264_order(10):  # the camera delivered, then was lost before the recording began
        recorder.write(p)
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg), with_preroll=False)
    with capture_logs() as logs:
        assert recorder.end(at_s=5.0, timeout=3.0)
    assert seg.closed and seg.packets == []
    assert [(e["event"], e["newest_frame_s"]) for e in logs] == [("stop_drain_timeout", None)]


def test_a_discard_does_not_wait_for_what_x264_still_holds(recorder: CameraRecorder) -> None:
    packets = x264_order(90)
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    held = next(i for i, p in enumerate(packets) if p.kind == "video" and frame_of(p) >= 30)
    for p in packets[:held]:
        recorder.write(p)
    began = time.monotonic()
    assert recorder.end(discard=True, at_s=STOP_FRAME / FPS, timeout=0.5)
    assert time.monotonic() - began < 0.5
    assert seg.aborted and not seg.closed and recorder.preroll.bytes == 0
    written = len(seg.packets)
    for p in packets[held:]:
        recorder.write(p)
    assert recorder.end()
    assert len(seg.packets) == written  # nothing more is written into what was refused


def test_do_not_record_during_a_stop_does_not_cut_it_short(recorder: CameraRecorder) -> None:
    packets = x264_order(90)
    seg = MemorySegmenter()
    recorder.begin(cast(Segmenter, seg))
    held = next(i for i, p in enumerate(packets) if p.kind == "video" and frame_of(p) >= 30)
    for p in packets[:held]:
        recorder.write(p)
    assert not recorder.end(at_s=STOP_FRAME / FPS, timeout=0)
    recorder.keep_preroll(False)
    for p in packets[held:]:
        recorder.write(p)
    assert recorder.end()
    assert set(range(STOP_FRAME)) <= {frame_of(p) for p in seg.packets if p.kind == "video"}
    assert recorder.preroll.bytes == 0


class FailingClose(MemorySegmenter):
    def close(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_close_that_fails_after_the_wait_does_not_stop_the_writer(
    recorder: CameraRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capture.recording as recording

    monkeypatch.setattr(recording, "_DRAIN_TIMEOUT_S", 0.1)
    packets = x264_order(90)
    seg = FailingClose()
    recorder.begin(cast(Segmenter, seg))
    for p in packets[:50]:
        recorder.write(p)
    assert recorder.end(at_s=STOP_FRAME / FPS, timeout=3.0)  # the wait runs out, the close fails
    assert recorder.write_errors == 1 and recorder.disk_full
    # The writer is alive: the next recording gets its packets.
    after = MemorySegmenter()
    recorder.begin(cast(Segmenter, after))
    for p in packets[50:]:
        recorder.write(p)
    assert recorder.end()
    assert after.closed and after.packets
