"""A stop through real x264 (veryfast, B-frames and lookahead), AAC, the interleaver and the
writer: every frame captured before the stop is in the closed segment, whatever x264 still held,
and so is every audio packet before the stop. The muxed segment is read back with PyAV."""

from __future__ import annotations

import io
import threading
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from capture.encoder import AudioEncoder, VideoEncoder
from capture.interleave import Interleaver
from capture.packets import EncodedPacket
from capture.recording import CameraRecorder
from capture.segmenter import ClosedSegment, Segmenter, StreamLayout

FPS = 30
RATE = 48_000
SAMPLES_PER_FRAME = RATE // FPS


class MemoryFile(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.kept = False

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        view = memoryview(b)  # type: ignore[arg-type]
        self.data += view
        return len(view)

    def close(self) -> None:
        self.kept = True
        super().close()

    def abort(self) -> None:
        super().close()


def frame(i: int) -> np.ndarray:
    picture = np.zeros((240, 320, 3), dtype=np.uint8)
    cv2.putText(picture, str(i), (40, 160), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
    picture[:, (i * 7) % 320] = 200  # motion, so x264 uses P- and B-frames
    return cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420)


def tone(i: int) -> np.ndarray:
    """Frame ``i``'s 1/30 s of a 440 Hz tone, mono float32."""
    t = np.arange(i * SAMPLES_PER_FRAME, (i + 1) * SAMPLES_PER_FRAME) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]


@pytest.mark.parametrize("stop_frame", [45, 61, 77])
def test_every_frame_captured_before_the_stop_is_in_the_segment(stop_frame: int) -> None:
    encoder = VideoEncoder(320, 240, FPS, preset="veryfast", keyframe_interval_s=1.0)
    audio = AudioEncoder(RATE, 1, 64_000)
    recorder = CameraRecorder("closeup", 2.0)
    recorder.start()
    interleaver = Interleaver(recorder)
    files: list[MemoryFile] = []
    closed: list[ClosedSegment] = []
    emitted: list[EncodedPacket] = []

    def open_file(index: int) -> MemoryFile:
        files.append(MemoryFile())
        return files[-1]

    def send(packets: list[EncodedPacket]) -> None:
        emitted.extend(packets)
        for packet in packets:
            interleaver.write(packet)

    layout = StreamLayout(320, 240, audio_rate=RATE)
    recorder.begin(Segmenter(open_file, layout, segment_s=60, on_closed=closed.append))
    stop_s = stop_frame / FPS
    done: list[bool] = []
    try:
        for i in range(stop_frame + 40):
            send(audio.encode(tone(i), i * SAMPLES_PER_FRAME))
            send(encoder.encode(frame(i), i * 90_000 // FPS))
            if i == stop_frame:  # the stop comes with x264 still holding the last frames before it
                threading.Thread(target=lambda: done.append(recorder.end(at_s=stop_s))).start()
    finally:
        for _ in range(50):
            if done:
                break
            threading.Event().wait(0.1)
        recorder.stop()
    assert done == [True] and len(files) == 1 and files[0].kept
    with av.open(io.BytesIO(bytes(files[0].data)), format="mpegts") as ts:
        muxed = [(p.stream.type, p.pts) for p in ts.demux() if p.pts is not None]
    with av.open(io.BytesIO(bytes(files[0].data)), format="mpegts") as ts:
        decoded = [f.pts for f in ts.decode(video=0) if f.pts is not None]
    # The muxer moves every time stamp on by x264's B-frame delay, so that the first decode time
    # is 0; frame 0 is the first (and a keyframe), so its time is that shift.
    shift = min(decoded)
    frames = sorted((pts - shift) * FPS // 90_000 for pts in decoded)
    before = [n for n in frames if n < stop_frame]
    assert before == list(range(stop_frame)), f"missing: {set(range(stop_frame)) - set(before)}"
    assert frames == list(range(len(frames))), "a hole at the end of the recording"
    # After the stop only what the rule lets in: decoded before it, or shown before such a frame.
    video = [p for p in emitted if p.kind == "video"]
    newest = max(p.pts for p in video if p.dts_s < stop_s)
    allowed = {p.pts * FPS // 90_000 for p in video if p.dts_s < stop_s or p.pts < newest}
    assert set(frames) - set(before) <= allowed
    assert closed[0].video_frames == len(frames)
    # Audio: every packet decoded before the stop, none after (the interleaver ordered them).
    ticks = Fraction(90_000, RATE)
    wanted = [p.pts * ticks for p in emitted if p.kind == "audio" and p.dts_s < stop_s]
    assert sorted(pts - shift for kind, pts in muxed if kind == "audio") == wanted
