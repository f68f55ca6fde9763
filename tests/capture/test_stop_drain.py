"""A stop through real x264 (veryfast, B-frames and lookahead), the interleaver and the writer:
every frame captured before the stop is in the closed segment, whatever x264 still held."""

from __future__ import annotations

import io
import threading

import av
import cv2
import numpy as np
import pytest

from capture.encoder import VideoEncoder
from capture.interleave import Interleaver
from capture.recording import CameraRecorder
from capture.segmenter import ClosedSegment, Segmenter, StreamLayout

FPS = 30
NS = 1_000_000_000


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


@pytest.mark.parametrize("stop_frame", [45, 61, 77])
def test_every_frame_captured_before_the_stop_is_in_the_segment(stop_frame: int) -> None:
    encoder = VideoEncoder(320, 240, FPS, preset="veryfast", keyframe_interval_s=1.0)
    recorder = CameraRecorder("closeup", 2.0)
    recorder.start()
    interleaver = Interleaver(recorder)
    files: list[MemoryFile] = []
    closed: list[ClosedSegment] = []

    def open_file(index: int) -> MemoryFile:
        files.append(MemoryFile())
        return files[-1]

    recorder.begin(Segmenter(open_file, StreamLayout(320, 240), segment_s=60, on_closed=closed.append))
    stop_s = stop_frame / FPS
    done: list[bool] = []
    try:
        for i in range(stop_frame + 40):
            for packet in encoder.encode(frame(i), i * 90_000 // FPS):
                interleaver.write(packet)
            if i == stop_frame:  # the stop comes with x264 still holding the last frames before it
                threading.Thread(target=lambda: done.append(recorder.end(at_s=stop_s))).start()
    finally:
        for _ in range(50):
            if done:
                break
            threading.Event().wait(0.1)
        recorder.stop()
    assert done == [True] and files and files[0].kept
    with av.open(io.BytesIO(bytes(files[0].data)), format="mpegts") as ts:
        shown = [f.pts * f.time_base for f in ts.decode(video=0)]
    # The encoder's very first frames carry negative decode times the muxer drops (in the daemon
    # the encoder runs long before any recording); from the first frame on, none may be missing.
    first = round(min(shown) * FPS)
    before = sorted(n for n in (round(t * FPS) for t in shown) if n < stop_frame)
    assert before == list(range(first, stop_frame)), f"missing: {set(range(first, stop_frame)) - set(before)}"
    assert first <= 2 and closed and closed[0].video_frames >= stop_frame - first
    every = sorted(round(t * FPS) for t in shown)
    assert every == list(range(first, every[-1] + 1)), "a hole at the end of the recording"
