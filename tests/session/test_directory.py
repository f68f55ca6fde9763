"""A session directory maps each segment to UTC with an anchor of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from capture.segmenter import ClosedSegment
from review.export import decrypt
from session.directory import CameraProfile, SessionDirectory
from session.layout import MANIFEST
from store.keys import Identity
from sync.clock import MediaClock, UtcAnchor

S = 1_000_000_000
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class SteppingWallClock:
    """Anchors as a host whose wall clock NTP steps forward by a minute at 15 s."""

    def __init__(self) -> None:
        self.mono_ns = 100 * S

    def take(self) -> UtcAnchor:
        step = timedelta(minutes=1) if self.mono_ns >= 115 * S else timedelta(0)
        return UtcAnchor(self.mono_ns, T0 + timedelta(seconds=(self.mono_ns - 100 * S) / S) + step)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Iterator[SteppingWallClock]:
    clock = SteppingWallClock()
    monkeypatch.setattr(UtcAnchor, "take", clock.take)
    yield clock


def test_each_segment_carries_its_own_utc_anchor(tmp_path: Path, wall: SteppingWallClock) -> None:
    identity = Identity.generate()
    media = MediaClock(epoch_ns=100 * S)  # media time 0 = the session's first monotonic reading
    session = SessionDirectory(
        tmp_path,
        recipients=[identity.recipient],
        fsync_interval_s=1.0,
        table="T",
        cameras=[CameraProfile("closeup", 640, 360, 30, True, False)],
        clock=media,
        reason="test",
    )
    for index in range(3):  # segments at media 0-10, 10-20 and 20-30 s
        wall.mono_ns = (100 + 10 * index) * S
        session.open_segment("closeup", index).close()
        wall.mono_ns += 10 * S
        session.segment_closed(
            "closeup", ClosedSegment(index, 10.0 * index, 10.0 * (index + 1), 300, 0, True)
        )
    session.close("stop")

    plain, complete = decrypt(session.path / MANIFEST, [identity])
    assert complete
    entries = json.loads(plain)["segments"]
    assert [e["utc_anchor"]["media_s"] for e in entries] == [0.0, 10.0, 20.0]
    starts = [datetime.fromisoformat(e["utc_start"]) for e in entries]
    # Before the step, UTC as it was then; after it, the corrected UTC: the third segment starts
    # a minute "later" in wall time, yet media time (order and length) is untouched.
    assert starts == [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20, minutes=1)]
    assert [datetime.fromisoformat(e["utc_anchor"]["utc"]) for e in entries] == starts


def test_vitals_and_markers_held_past_the_limit_reach_the_disk_before_a_crash(tmp_path: Path) -> None:
    from session.directory import Marker
    from session.layout import MARKERS, PARTIAL, VITALS
    from vitals.sample import Parameter, VitalSample

    identity = Identity.generate()
    media = MediaClock(epoch_ns=100 * S)
    session = SessionDirectory(
        tmp_path,
        recipients=[identity.recipient],
        fsync_interval_s=1.0,
        table="T",
        cameras=[CameraProfile("closeup", 640, 360, 30, True, False)],
        clock=media,
        reason="test",
    )
    session.write_vitals([VitalSample(Parameter.HR, 140.0 + i, "bpm", True, (101 + i) * S, "pox")
        for i in range(3)
    ])
    session.write_markers([Marker(102 * S, "birth", "button")])
    session.seal_held(0.0)
    session.write_vitals([VitalSample(Parameter.HR, 150.0, "bpm", True, 105 * S, "pox")])
    session.seal_held(60.0)  # not held long enough: stays in memory, and a crash loses it
    # The process dies here: nothing is closed. What reached the disk reads back whole.
    vitals, complete = decrypt(session.path / (VITALS + PARTIAL), [identity])
    assert not complete
    assert [json.loads(line)["value"] for line in vitals.splitlines()] == [140.0, 141.0, 142.0]
    markers, _ = decrypt(session.path / (MARKERS + PARTIAL), [identity])
    assert [json.loads(line)["label"] for line in markers.splitlines()] == ["birth"]
    session.close("stop")
    vitals, complete = decrypt(session.path / VITALS, [identity])
    assert complete and vitals.endswith(b"\n")
    assert [json.loads(line)["value"] for line in vitals.splitlines()] == [140.0, 141.0, 142.0, 150.0]


def test_a_small_picture_reaches_the_disk_within_the_limit_and_still_plays(tmp_path: Path) -> None:
    """320x240 at a low bitrate fills a 64 KiB chunk only every few seconds: sealed with MPEG-TS
    null packets, every frame muxed before a crash is in the file, and the file still demuxes."""
    from fractions import Fraction

    import av
    import numpy as np

    from session.layout import PARTIAL, segment_name

    identity = Identity.generate()
    session = SessionDirectory(
        tmp_path,
        recipients=[identity.recipient],
        fsync_interval_s=1.0,
        table="T",
        cameras=[CameraProfile("closeup", 320, 240, 15, True, False)],
        clock=MediaClock(epoch_ns=0),
        reason="test",
        durable_within_s=0.5,
    )
    segment = session.open_segment("closeup", 1)
    segment._seal_after_s = 0.0  # seal after every packet, so the test needs no waiting
    out = av.open(segment, "w", format="mpegts")
    stream = out.add_stream("libx264", rate=15, options={"preset": "veryfast", "tune": "zerolatency"})
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 15)
    muxed = 0
    for i in range(30):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 8 * i, dtype=np.uint8), format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
            muxed += 1
    assert muxed >= 25 and segment.padding_bytes > 0
    # The process dies here: the muxer is never closed, the file stays .partial.
    plain, complete = decrypt(session.path / (segment_name("closeup", 1) + PARTIAL), [identity])
    assert not complete
    (tmp_path / "cut.ts").write_bytes(plain)
    with av.open(str(tmp_path / "cut.ts")) as cut:
        frames = sum(1 for _ in cut.decode(video=0))
    assert frames == muxed
