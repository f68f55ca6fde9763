"""Export: each camera's segments, exactly its own, joined into one playable MP4."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from review.export import export_session
from session.layout import segment_name
from store.encrypted_file import EncryptedFileWriter
from store.keys import Identity

FPS = 10
SEGMENT_FRAMES = 20  # 2 s


def segment_bytes(first_frame: int, frames: int, shade: int, *, noisy: bool = False) -> bytes:
    """An MPEG-TS segment of H.264 whose frames all have one grey level (the camera's mark)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, 90_000)
        # No B-frames: each segment here has an encoder of its own, so DTS must not reach back
        # into the previous segment (the daemon keeps one encoder across its segments).
        stream.options = {"g": str(FPS), "bf": "0", "crf": "10" if noisy else "30"}
        rng = np.random.default_rng(first_frame)
        for i in range(frames):
            img = np.full((240, 320, 3), shade, np.uint8)
            if noisy:  # big enough to span several 64 KiB chunks
                img[:, :160] = rng.integers(0, 256, (240, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = (first_frame + i) * 90_000 // FPS
            frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def store(path: Path, identity: Identity, data: bytes) -> None:
    writer = EncryptedFileWriter(path, [identity.recipient], 1.0)
    writer.write(data)
    writer.close()


def frames_and_shades(path: Path) -> list[int]:
    with av.open(str(path)) as f:
        return [int(np.median(fr.to_ndarray(format="rgb24")[:, 160:])) for fr in f.decode(video=0)]


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


def test_a_camera_never_takes_the_segments_of_a_camera_whose_name_extends_it(
    tmp_path: Path, identity: Identity
) -> None:
    session = tmp_path / "20260301T080000Z-abcdef"
    session.mkdir()
    for index in range(2):
        first = index * SEGMENT_FRAMES
        store(session / segment_name("room", index), identity, segment_bytes(first, SEGMENT_FRAMES, 40))
        store(session / segment_name("room-2", index), identity, segment_bytes(first, SEGMENT_FRAMES, 200))
    result = export_session(session, [identity], tmp_path / "out")
    assert set(result.videos) == {"room", "room-2"}
    for camera, shade in (("room", 40), ("room-2", 200)):
        shades = frames_and_shades(result.videos[camera])
        assert len(shades) == 2 * SEGMENT_FRAMES, camera  # its own two segments, no more
        assert all(abs(s - shade) < 10 for s in shades), camera
        assert result.video_seconds[camera] == pytest.approx(2 * SEGMENT_FRAMES / FPS, abs=0.15)


def test_a_segment_cut_short_by_a_crash_is_exported_up_to_its_last_complete_chunk(
    tmp_path: Path, identity: Identity
) -> None:
    session = tmp_path / "20260301T080000Z-abcdef"
    session.mkdir()
    store(session / segment_name("closeup", 0), identity, segment_bytes(0, SEGMENT_FRAMES, 90))
    store(session / segment_name("closeup", 1), identity, segment_bytes(SEGMENT_FRAMES, 40, 90, noisy=True))
    # The writer crashed while segment 1 was open: its file stays ".partial", cut mid-chunk.
    whole = session / segment_name("closeup", 1)
    cut = whole.with_name(whole.name + ".partial")
    data = whole.read_bytes()
    assert len(data) > 3 * 65536
    cut.write_bytes(data[: len(data) * 2 // 3])
    whole.unlink()

    result = export_session(session, [identity], tmp_path / "out")
    video = result.videos["closeup"]
    frames = len(frames_and_shades(video))
    assert SEGMENT_FRAMES < frames < SEGMENT_FRAMES + 40  # segment 0 whole, then part of 1
    assert any(cut.name in w and "cut short" in w for w in result.warnings), result.warnings
    summary = json.loads((tmp_path / "out" / "session.json").read_text())
    assert summary["warnings"] == result.warnings
    if shutil.which("ffmpeg"):  # what was exported decodes without an error
        decoded = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(video), "-f", "null", "-"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert decoded.stderr == ""
