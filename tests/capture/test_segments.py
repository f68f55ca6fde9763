"""Real encoders into the segmenter: every segment decodes on its own, and together they hold all."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.encoder import AudioEncoder, VideoEncoder
from capture.interleave import Interleaver
from capture.segmenter import ClosedSegment, Segmenter, StreamLayout

W, H, FPS, RATE = 320, 240, 30, 48_000


class MemoryFile(io.BytesIO):
    """A segment file kept in memory; ``close`` keeps the bytes for the test to look at."""

    def __init__(self, store: dict[int, bytes], index: int, fail_after: int | None = None) -> None:
        super().__init__()
        self.store, self.index, self.fail_after = store, index, fail_after

    def write(self, data: bytes, /) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.tell() + len(data) > self.fail_after:
            raise OSError(28, "No space left on device")
        return super().write(data)

    def close(self) -> None:
        self.store[self.index] = self.getvalue()

    def abort(self) -> None:
        self.store.pop(self.index, None)


def record(seconds: float, segment_s: float, *, audio: bool, gap_at: int | None = None,
           fail_segment: int | None = None) -> tuple[dict[int, bytes], list[ClosedSegment]]:
    files: dict[int, bytes] = {}
    closed: list[ClosedSegment] = []

    def open_file(index: int) -> MemoryFile:
        return MemoryFile(files, index, fail_after=20_000 if index == fail_segment else None)

    layout = StreamLayout(W, H, RATE if audio else None, 1)
    segmenter = Segmenter(open_file, layout, segment_s=segment_s, on_closed=closed.append)
    sink = Interleaver(segmenter)
    video = VideoEncoder(W, H, FPS, keyframe_interval_s=1.0)
    sound = AudioEncoder(RATE, 1, 64_000)
    frame = np.zeros((H, W, 3), np.uint8)
    position = 0
    errors = 0
    for i in range(int(seconds * FPS)):
        frame[:] = (i * 7) % 255
        cv2.putText(frame, str(i), (20, 150), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
        t = i / FPS + (0.5 if gap_at is not None and i >= gap_at else 0.0)
        packets = video.encode(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), int(t * 90_000))
        if audio:
            while position < (i + 1) * RATE // FPS:
                n = 960
                tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(position, position + n) / RATE)
                packets += sound.encode(tone.astype(np.float32)[None, :], position)
                position += n
        for p in sorted(packets, key=lambda p: p.kind != "audio"):
            try:
                sink.write(p)
            except OSError:
                errors += 1
    for p in video.flush() + (sound.flush() if audio else []):
        sink.write(p)
    sink.flush()
    segmenter.close()
    return files, closed


def probe(data: bytes, tmp: Path) -> dict[str, object]:
    path = tmp / "segment.ts"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    info: dict[str, object] = json.loads(out.stdout)
    return info


def test_each_segment_decodes_alone_and_together_they_hold_every_frame(tmp_path: Path) -> None:
    files, closed = record(7.0, 2.0, audio=True)
    assert [c.index for c in closed] == [1, 2, 3, 4]
    assert sum(c.video_frames for c in closed) == 7 * FPS
    for c in closed:
        info = probe(files[c.index], tmp_path)
        streams = {s["codec_type"]: s for s in info["streams"]}  # type: ignore[attr-defined]
        assert streams["video"]["codec_name"] == "h264"
        assert streams["audio"]["codec_name"] == "aac"
        assert int(streams["video"]["nb_read_frames"]) == c.video_frames
        assert streams["audio"]["sample_rate"] == str(RATE)
        duration = float(info["format"]["duration"])  # type: ignore[index]
        assert abs(duration - c.duration_s) < 0.1
    # Cut on keyframes once a segment reached its length: 2 s each, the rest in the last one.
    assert [round(c.duration_s, 2) for c in closed] == [2.0, 2.0, 2.0, 1.0]


def test_video_only_camera_has_no_audio_stream(tmp_path: Path) -> None:
    files, closed = record(2.0, 10.0, audio=False)
    info = probe(files[closed[0].index], tmp_path)
    assert [s["codec_type"] for s in info["streams"]] == ["video"]  # type: ignore[attr-defined]


def test_a_dropped_moment_leaves_a_gap_in_time_not_a_shift(tmp_path: Path) -> None:
    _files, closed = record(3.0, 10.0, audio=False, gap_at=45)
    assert closed[0].video_frames == 90
    assert abs(closed[0].duration_s - 3.5) < 0.05  # timestamps from capture times


def test_a_failing_file_is_closed_and_the_next_keyframe_starts_a_new_segment() -> None:
    _files, closed = record(6.0, 2.0, audio=False, fail_segment=2)
    assert [c.complete for c in closed][:2] == [True, False]
    assert closed[2].index == 3 and closed[2].video_frames > 0


@pytest.mark.parametrize("fps", [25, 30])
def test_keyframes_follow_the_time_grid(fps: int) -> None:
    video = VideoEncoder(W, H, fps, keyframe_interval_s=1.0)
    frame = np.zeros((H * 3 // 2, W), np.uint8)
    packets = []
    for i in range(fps * 4):
        packets += video.encode(frame, i * 90_000 // fps)
    packets += video.flush()
    keys = sorted(p.pts_s for p in packets if p.keyframe)
    assert keys[:4] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1 / fps)
