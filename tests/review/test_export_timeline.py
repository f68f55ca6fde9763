"""The timeline of an export: every camera's MP4 starts at the same media time, so the files agree
by themselves, and session.json says where each camera's first frame is on that clock."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from review.export import decrypt, export_session
from session.layout import MANIFEST, segment_name
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


def decode_errors(path: Path) -> str:
    """What ffmpeg's decoder says of every frame. The frames keep their own timestamps
    (``-enc_time_base -1``): a camera's frames are not exactly 1/fps apart, and rounding them to
    that grid would make the null muxer complain of frames that are fine."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-enc_time_base", "-1", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr


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
    assert decode_errors(result.videos["closeup"]) == ""


@pytest.mark.slow
def test_a_recording_started_in_the_recorders_first_second_exports_every_frame_once(
    tmp_path: Path,
) -> None:
    """The first segment the encoder makes decodes from before media time 0 (its B-frames), so the
    MPEG-TS muxer moves that file later and it overlaps the next one by a frame or two. The export
    puts it back where the manifest says its first frame is: each frame once, DTS rising, and
    nothing for a decoder to complain of."""
    identity = Identity.generate()
    config = parse_config(
        f"""
[station]
control_socket = "{tmp_path / "control.sock"}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 30
audio = true
[audio]
source = {{ kind = "tone", frequency_hz = 1000 }}
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{tmp_path / "recordings"}"
segment_seconds = 2
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
"""
    )
    daemon = Daemon(config, [identity.recipient])
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    daemon.start()
    loop.start()
    try:
        daemon.handle_request({"cmd": "start", "by": "command line"})  # at once, in its first second
        assert wait_for_frames(daemon)
        time.sleep(3.0)
        daemon.handle_request({"cmd": "stop", "by": "command line"})
        last = daemon.status().session.last_session
        assert last is not None
        session = Path(last["path"])
    finally:
        stop.set()
        loop.join()
        daemon.shutdown()
    manifest = json.loads(decrypt(session / MANIFEST, [identity])[0])
    assert manifest["segments"][0]["start_s"] < 1.0  # it did start in the first second
    result = export_session(session, [identity], tmp_path / "out")
    video = result.videos["closeup"]
    dts = dts_of(video)
    assert len(dts) == sum(e["video_frames"] for e in manifest["segments"])
    assert all(a < b for a, b in pairwise(dts))
    assert decode_errors(video) == ""
    first = manifest["segments"][0]["start_s"]
    assert result.first_frame_s["closeup"] == pytest.approx(first, abs=0.001)
    assert manifest["cameras"][0]["first_frame_s"] == pytest.approx(first, abs=1e-6)
