"""``composite.mp4``: the session as one video to share without the page.

The cameras side by side on the session's common clock, scaled to one height, above a strip of
the vitals (heart rate and SpO2 with its target band, the markers) and a cursor that moves with
the picture. Every exported MP4 starts at the same media time (``review.export``), so a camera's
frame for output time t is simply its latest frame at or before t; a camera with nothing yet (or
in a gap) shows black there. Re-encoded with x264 on the review workstation; the sound is copied
unchanged from the camera that recorded it.

The strip is drawn once (numpy/OpenCV); each output frame copies it and draws the cursor and the
values at that time, which keeps the cost per frame to the scaling and the encoding.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

HEIGHT = 360  # of the camera row; enough to read a face and the burned-in vitals, cheap to encode
STRIP_H = 140
MARGIN = 56  # left of the strip's plot: the axis labels
HR_RANGE = (40.0, 220.0)
SPO2_RANGE = (40.0, 100.0)
HR_BGR = (40, 40, 214)
SPO2_BGR = (180, 119, 31)
BAND_BGR = (44, 160, 44)
BIRTH_BGR = (43, 24, 178)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Trace:
    t: list[float]  # seconds of the exported MP4s
    v: list[float | None]  # None: no valid value (a break in the line)


@dataclass(frozen=True)
class StripData:
    duration: float
    hr: Trace | None
    spo2: Trace | None
    band: list[tuple[float, float, float]]  # (t, low, high) corners
    markers: list[tuple[float, str]]


def strip_data(page: Mapping[str, Any]) -> StripData:
    """The strip's content from the viewer page's data (``review.viewer.page_data``): the first
    monitor's HR (else PR) and SpO2, the band and the markers, all in MP4 seconds."""

    def trace(*parameters: str) -> Trace | None:
        for parameter in parameters:
            for panel in page["panels"]:
                for s in panel["series"]:
                    if s["label"].split(" ")[0] == parameter:
                        return Trace(list(s["t"]), list(s["v"]))
        return None

    return StripData(
        duration=float(page["duration"]),
        hr=trace("HR", "PR"),
        spo2=trace("SpO2"),
        band=[(float(t), float(lo), float(hi)) for t, lo, hi in page["band"]],
        markers=[(float(m["t"]), str(m["label"])) for m in page["markers"]],
    )


class _Strip:
    """The vitals strip: a background drawn once, and the cursor and values drawn per frame."""

    def __init__(self, data: StripData, width: int) -> None:
        self.data = data
        self.width = width
        self.x0, self.x1 = MARGIN, width - 12
        self.y0, self.y1 = 8, STRIP_H - 22
        img: np.ndarray = np.full((STRIP_H, width, 3), 255, np.uint8)
        cv2.rectangle(img, (self.x0, self.y0), (self.x1, self.y1), (200, 200, 200), 1)
        if data.band:
            top = [(self.x(t), self.y(hi, SPO2_RANGE)) for t, _lo, hi in data.band]
            bottom = [(self.x(t), self.y(lo, SPO2_RANGE)) for t, lo, _hi in reversed(data.band)]
            shade = img.copy()
            cv2.fillPoly(shade, [np.array(top + bottom, np.int32)], BAND_BGR)
            img = cv2.addWeighted(shade, 0.2, img, 0.8, 0)
        for trace, rng, colour in ((data.spo2, SPO2_RANGE, SPO2_BGR), (data.hr, HR_RANGE, HR_BGR)):
            if trace is None:
                continue
            run: list[tuple[int, int]] = []
            for t, v in [*zip(trace.t, trace.v, strict=True), (0.0, None)]:
                if v is None:
                    if len(run) > 1:
                        cv2.polylines(img, [np.array(run, np.int32)], False, colour, 2, cv2.LINE_AA)
                    run = []
                else:
                    run.append((self.x(t), self.y(v, rng)))
        for t, label in data.markers:
            colour = BIRTH_BGR if label.lower() == "birth" else (90, 90, 90)
            x = self.x(t)
            cv2.line(img, (x, self.y0), (x, self.y1), colour, 1)
            cv2.putText(img, label[:24], (x + 3, self.y0 + 12), FONT, 0.4, colour, 1, cv2.LINE_AA)
        # Two traces share the plot, each on its own fixed scale, said beside its name.
        cv2.putText(img, "HR", (6, 26), FONT, 0.5, HR_BGR, 1, cv2.LINE_AA)
        cv2.putText(img, f"{HR_RANGE[0]:.0f}-{HR_RANGE[1]:.0f}", (6, 40), FONT, 0.33, HR_BGR, 1, cv2.LINE_AA)
        cv2.putText(img, "SpO2", (6, 64), FONT, 0.5, SPO2_BGR, 1, cv2.LINE_AA)
        cv2.putText(
            img, f"{SPO2_RANGE[0]:.0f}-{SPO2_RANGE[1]:.0f}%", (6, 78), FONT, 0.33, SPO2_BGR, 1, cv2.LINE_AA
        )
        self.background = img

    def x(self, t: float) -> int:
        return round(self.x0 + (self.x1 - self.x0) * t / max(self.data.duration, 1e-6))

    def y(self, v: float, rng: tuple[float, float]) -> int:
        f = (min(max(v, rng[0]), rng[1]) - rng[0]) / (rng[1] - rng[0])
        return round(self.y1 - (self.y1 - self.y0) * f)

    def at(self, t: float) -> np.ndarray:
        img = self.background.copy()
        x = self.x(t)
        cv2.line(img, (x, self.y0), (x, self.y1), (0, 0, 0), 2)
        text = f"{_mmss(t)}   HR {_value_at(self.data.hr, t)}   SpO2 {_value_at(self.data.spo2, t)}"
        cv2.putText(img, text, (self.x0, STRIP_H - 6), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        return img


def _mmss(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:04.1f}"


def _value_at(trace: Trace | None, t: float) -> str:
    """The latest value at or before t, as the monitor showed it then ("--" when invalid)."""
    if trace is None:
        return "--"
    i = bisect.bisect_right(trace.t, t) - 1
    v = trace.v[i] if i >= 0 else None
    return "--" if v is None else f"{v:.0f}"


class _CameraFrames:
    """One camera's decoded frames, scaled to the row's height, handed out by output time."""

    def __init__(self, path: Path, height: int) -> None:
        self.container = av.open(str(path))
        stream = self.container.streams.video[0]
        self.width = max(2, round(stream.codec_context.width * height / stream.codec_context.height / 2) * 2)
        self.height = height
        self._frames: Iterator[av.VideoFrame] = self.container.decode(stream)
        self._next: av.VideoFrame | None = next(self._frames, None)
        self.current: np.ndarray = np.zeros((height, self.width, 3), np.uint8)  # black until its first frame

    def at(self, t: float) -> np.ndarray:
        while self._next is not None and self._next.time is not None and self._next.time <= t + 1e-6:
            self.current = self._next.to_ndarray(format="bgr24", width=self.width, height=self.height)
            self._next = next(self._frames, None)
        return self.current

    def close(self) -> None:
        self.container.close()


def write_composite(
    videos: Sequence[Path],
    audio_from: Path | None,
    strip: StripData,
    target: Path,
    *,
    fps: float,
    height: int = HEIGHT,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Write the composite; returns the number of frames written."""
    cameras = [_CameraFrames(p, height) for p in videos]
    audio_in = av.open(str(audio_from)) if audio_from is not None else None
    try:
        width = sum(c.width for c in cameras)
        bar = _Strip(strip, width)
        rate = Fraction(fps).limit_denominator(1001)
        out = av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height + STRIP_H, "yuv420p"
            video.options = {"preset": "veryfast", "crf": "23"}
            audio_out = None
            audio_packets: Iterator[Any] = iter(())
            if audio_in is not None and audio_in.streams.audio:
                audio_out = out.add_stream_from_template(audio_in.streams.audio[0])
                audio_packets = audio_in.demux(audio_in.streams.audio[0])
            pending_audio = next(audio_packets, None)
            frames = max(1, int(strip.duration * fps))
            for n in range(frames):
                t = n / fps
                row = np.hstack([c.at(t) for c in cameras])
                picture = np.vstack([row, bar.at(t)])
                frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
                frame.pts = n
                frame.time_base = 1 / rate
                for packet in video.encode(frame):
                    out.mux(packet)
                # The sound goes in beside the pictures of its time, so players need no big buffer.
                while pending_audio is not None and (
                    pending_audio.dts is None or float(pending_audio.dts * pending_audio.time_base) <= t
                ):
                    if pending_audio.dts is not None and audio_out is not None:
                        pending_audio.stream = audio_out
                        out.mux(pending_audio)
                    pending_audio = next(audio_packets, None)
                if progress is not None and n % 15 == 0:
                    progress(n / frames)
            for packet in video.encode(None):
                out.mux(packet)
            while pending_audio is not None and audio_out is not None:
                if pending_audio.dts is not None:
                    pending_audio.stream = audio_out
                    out.mux(pending_audio)
                pending_audio = next(audio_packets, None)
        finally:
            out.close()
        if progress is not None:
            progress(1.0)
        return frames
    finally:
        for c in cameras:
            c.close()
        if audio_in is not None:
            audio_in.close()

