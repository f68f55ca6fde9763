"""The timeline of an export: every camera's MP4 starts at the same media time, so the files agree
by themselves, and session.json says where each camera's first frame is on that clock."""

from __future__ import annotations

import json
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from review.export import export_session
from session.layout import segment_name
from store.keys import Identity
from tests.review.test_export import FPS, SEGMENT_FRAMES, segment_bytes, store


def first_video_pts(path: Path) -> float:
    """When the first frame is presented, as ffprobe (an independent reader) sees the MP4."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=start_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip())


def dts_of(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=dts_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    return [float(x) for x in out.stdout.split()]


def test_cameras_that_start_apart_keep_that_distance_in_their_mp4s(tmp_path: Path) -> None:
    identity = Identity.generate()
    session = tmp_path / "20260301T080000Z-abcdef"
    session.mkdir()
    # Camera "late" delivers its first frame 0.7 s after camera "early": each exported file
    # starting at its own first frame would put them 0.7 s apart when played side by side.
    store(session / segment_name("early", 1), identity, segment_bytes(5, SEGMENT_FRAMES, 60))
    store(session / segment_name("late", 1), identity, segment_bytes(12, SEGMENT_FRAMES, 180))
    result = export_session(session, [identity], tmp_path / "out")
    early, late = first_video_pts(result.videos["early"]), first_video_pts(result.videos["late"])
    assert late - early == pytest.approx(0.7, abs=1 / FPS / 2)
    summary = json.loads((tmp_path / "out" / "session.json").read_text())
    assert summary["media_start_s"] == pytest.approx(0.5, abs=1e-3)
    cameras = summary["cameras"]
    assert cameras["early"]["first_frame_s"] == pytest.approx(0.5, abs=1e-3)
    assert cameras["late"]["first_frame_s"] == pytest.approx(1.2, abs=1e-3)
    for name, pts in (("early", early), ("late", late)):  # what the file says is what the summary says
        assert cameras[name]["first_frame_in_mp4_s"] == pytest.approx(pts, abs=1 / FPS / 2), name
        assert cameras[name]["file"] == f"{name}.mp4"
        assert cameras[name]["spans"], name


def test_segments_that_overlap_by_two_frames_join_with_rising_timestamps(tmp_path: Path) -> None:
    identity = Identity.generate()
    session = tmp_path / "20260301T080000Z-abcdef"
    session.mkdir()
    # The first segment holds two frames more than its share: the same two the next one begins with.
    store(session / segment_name("closeup", 1), identity, segment_bytes(0, SEGMENT_FRAMES + 2, 90))
    store(session / segment_name("closeup", 2), identity, segment_bytes(SEGMENT_FRAMES, SEGMENT_FRAMES, 90))
    result = export_session(session, [identity], tmp_path / "out")
    dts = dts_of(result.videos["closeup"])
    assert len(dts) == 2 * SEGMENT_FRAMES  # each frame once
    assert all(a < b for a, b in pairwise(dts)), dts
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(result.videos["closeup"]), "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )
    assert decoded.stderr == ""
