"""Privacy masks: a configured polygon is black in the recording, and the vitals panel stays.

Judged on what a reviewer sees: the frames are encoded by the real pipeline (masks, overlay,
libx264) and decoded again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import av
import cv2
import numpy as np

from capture.encoder import VideoEncoder
from capture.overlay import OverlayRenderer, OverlayState, ShownValue
from capture.packets import EncodedPacket
from capture.pipeline import CameraPipeline
from sync.clock import MediaClock

W, H, FPS, FRAMES = 640, 360, 10, 6
GREY = 200
STATE = OverlayState(
    table="Table 1",
    camera="room",
    utc=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
    recording=True,
    elapsed_s=12.0,
    since_birth_s=None,
    values=(ShownValue("HR", "142", "/min", "pleth"), ShownValue("SpO2", "91", "%", "pleth")),
)


class Packets:
    def __init__(self) -> None:
        self.packets: list[EncodedPacket] = []

    def write(self, packet: EncodedPacket) -> None:
        self.packets.append(packet)


def record(frame: np.ndarray, masks: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Run FRAMES copies of ``frame`` through the pipeline; the last decoded frame and the panel."""
    sink = Packets()
    overlay = OverlayRenderer(W, H)
    pipeline = CameraPipeline(
        "room",
        width=W,
        height=H,
        fps=FPS,
        encoder=VideoEncoder(W, H, FPS, crf=18, keyframe_interval_s=1.0),
        sink=sink,
        clock=MediaClock(0),
        overlay=overlay,
        overlay_state=lambda _t: STATE,
        lost_since=lambda: None,
        masks=masks,
        queue_frames=FRAMES,
    )
    pipeline.start()
    for i in range(FRAMES):
        pipeline.on_frame(frame.copy(), i * 1_000_000_000 // FPS)
    deadline = time.monotonic() + 20
    while pipeline.frames_encoded < FRAMES and time.monotonic() < deadline:
        time.sleep(0.01)
    pipeline.stop()
    assert pipeline.frames_encoded == FRAMES
    decoder = av.CodecContext.create("h264", "r")
    decoded = [
        f.to_ndarray(format="bgr24")
        for p in sink.packets
        for f in decoder.decode(av.Packet(p.data))
    ]
    decoded += [f.to_ndarray(format="bgr24") for f in decoder.decode(None)]
    assert len(decoded) == FRAMES
    return decoded[-1], overlay.panel_rect


def inside(polygon: np.ndarray, erode_px: int) -> np.ndarray:
    """Pixels well inside the polygon (codec blur at the edge left out)."""
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [polygon], 255)
    kernel = np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)
    shrunk = np.asarray(cv2.erode(mask, kernel), np.uint8)
    return np.greater(shrunk, 0)


def outside(polygons: list[np.ndarray], grow_px: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, polygons, 255)
    kernel = np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8)
    grown = np.asarray(cv2.dilate(mask, kernel), np.uint8)
    return np.equal(grown, 0)


def test_a_masked_polygon_is_black_after_encoding_and_the_panel_is_drawn_over_any_mask() -> None:
    picture = np.full((H, W, 3), GREY, np.uint8)
    # A person at the side of the table, and a mask that (carelessly) also covers the panel.
    person = np.array([[30, 40], [220, 60], [180, 320], [50, 300]], np.int32)
    unmasked, (px, py, pw, ph) = record(picture, [])
    left, bottom = px - 20, py + ph + 20
    over_panel = np.array([[left, 0], [W - 1, 0], [W - 1, bottom], [left, bottom]], np.int32)
    masked, _ = record(picture, [person, over_panel])

    hidden = masked[inside(person, 4)]
    assert hidden.max() <= 12, hidden.max()  # black, not dark grey
    panel = np.zeros((H, W), bool)
    panel[py : py + ph, px : px + pw] = True
    seen = outside([person, over_panel], 4) & ~panel
    assert np.abs(masked[seen].astype(int) - GREY).max() <= 12  # the rest of the picture is kept

    # The panel is drawn after the masks: its text is all there, over a black background where
    # the mask lies (not blacked out with it).
    reference_frame = picture.copy()
    cv2.fillPoly(reference_frame, [over_panel], (0, 0, 0))
    reference, _ = record(reference_frame, [])
    region = (slice(py, py + ph), slice(px, px + pw))
    bright = masked[region].max(axis=2) > 200
    assert bright.sum() > 500  # HR, SpO2, the clock and REC in light text
    diff = np.abs(masked[region].astype(int) - reference[region].astype(int))
    assert diff.mean() < 2.0
    # And without masks, the same text on the lighter background.
    assert (unmasked[region].max(axis=2) > 200).sum() > 500
