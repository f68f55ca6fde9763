"""Measures a sync-probe recording: how far apart the pipeline put instants that were one.

With the probe on (``probe_every_s`` on the test pattern and the tone, the monitor simulator's
probe mode), every camera shows an all-white frame, the audio a 1 kHz beep, and the monitor an HR
step at the same instants of the recorder's clock. Their true offset is 0 by construction, so
whatever the recording shows between them is what capture, encoding and muxing added.

This reads a recorded session with the reviewer's identity and finds:

- the flashes of each camera: frames whose mean luma jumps far above the frame before
  (``find_flashes``), at the frame's presentation time;
- the beeps: the onset of the 1 kHz burst in the decoded AAC, to a fraction of a millisecond
  (``find_beeps``); PyAV's decoded frames carry the encoder's timestamps, which already take
  the AAC encoder's priming samples into account;
- the HR steps: the logged time of each changed HR value in the vitals file, and the first frame
  whose overlay shows it: the first frame after the flash whose HR digits (the overlay draws HR
  in its green) differ from the frame before the mark (``first_change``).

Every time is media time (seconds since the recorder's media epoch, as the manifest and the
vitals file use); MPEG-TS muxers add a constant to PTS, removed per segment by comparing its first
frame with the manifest's ``start_s``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from session.layout import MANIFEST, VITALS, parse_segment_name
from store.age_reader import decrypt_file
from store.keys import Identity

__all__ = [
    "Offsets",
    "SyncReport",
    "find_beeps",
    "find_flashes",
    "first_change",
    "frame_times",
    "hr_signature",
    "match",
    "measure_session",
]

Floats = npt.NDArray[np.float64]

# A flash lifts a frame's mean luma this far above the frame before it (a white frame under the
# overlay's panel still averages above 200 of 255; test pictures average about 110).
FLASH_JUMP = 60.0
FLASH_MIN_LUMA = 170.0
BEEP_HZ = 1000.0
# A mark's counterpart in another stream is looked for this close to it.
MATCH_WINDOW_S = 0.5


# --- detectors on plain arrays ----------------------------------------------------------------------


def find_flashes(times: Sequence[float], luma: Sequence[float]) -> list[float]:
    """Times of frames whose mean luma jumps by ``FLASH_JUMP`` over the previous frame to at least
    ``FLASH_MIN_LUMA``: the probe's white frames."""
    out: list[float] = []
    for i in range(1, len(luma)):
        if luma[i] >= FLASH_MIN_LUMA and luma[i] - luma[i - 1] >= FLASH_JUMP:
            out.append(float(times[i]))
    return out


def find_beeps(samples: npt.ArrayLike, rate: int, t0: float = 0.0) -> list[float]:
    """Onset times of tone bursts in mono ``samples`` whose first sample is at ``t0`` seconds.

    The signal's energy is averaged over one period of the 1 kHz beep, centred on each sample,
    which rises linearly from silence to the burst's level over that period whatever the phase;
    the onset is where it crosses half the burst's level, interpolated between samples. Bursts
    closer than 0.2 s to the previous one are the same burst.
    """
    x = np.asarray(samples, np.float64)
    if x.size == 0:
        return []
    w = max(2, round(rate / BEEP_HZ))
    energy = np.convolve(x * x, np.ones(w) / w, mode="same")
    peak = float(energy.max())
    if peak <= 0:
        return []
    loud = energy > 0.1 * peak
    onsets: list[float] = []
    i = 0
    n = energy.size
    settle = round(0.01 * rate)
    while i < n:
        if not loud[i]:
            i += 1
            continue
        start = i
        plateau = float(np.median(energy[min(n - 1, start + settle) : min(n, start + 4 * settle)]))
        half = plateau / 2
        j = start
        while j > 0 and energy[j - 1] >= half:
            j -= 1
        while j < n - 1 and energy[j] < half:
            j += 1
        # energy[j - 1] < half <= energy[j]: interpolate the crossing.
        if j > 0 and energy[j] > energy[j - 1]:
            frac = (half - energy[j - 1]) / (energy[j] - energy[j - 1])
            pos = j - 1 + frac
        else:
            pos = float(j)
        # energy[k] averages x[k - w/2 .. k + w/2 - 1] (mode="same"), so it holds half the
        # burst's level at k = onset for an even window, and half a sample earlier for an odd one.
        pos += 0.5 if w % 2 else 0.0
        t = t0 + pos / rate
        if not onsets or t - onsets[-1] > 0.2:
            onsets.append(t)
        i = start + round(0.2 * rate)
    return onsets


def hr_signature(rgb: npt.NDArray[np.uint8], cells: int = 8) -> npt.NDArray[np.int32]:
    """Where the overlay's HR digits are: counts of HR-green pixels per ``cells``×``cells`` block
    of the frame's right 40 % (the overlay's column; the test pattern's own green bar is left of
    it). Small, so a long recording's frames can all be kept."""
    w = rgb.shape[1]
    part = rgb[:, w * 3 // 5 :].astype(np.int16)
    r, g, b = part[..., 0], part[..., 1], part[..., 2]
    green = (g > 170) & (g - r > 70) & (g - b > 70)
    hh = green.shape[0] // cells * cells
    ww = green.shape[1] // cells * cells
    blocks = green[:hh, :ww].reshape(hh // cells, cells, ww // cells, cells)
    counts: npt.NDArray[np.int32] = blocks.sum(axis=(1, 3), dtype=np.int32)
    return counts


def first_change(
    signatures: Sequence[npt.NDArray[np.int32]], before: int, start: int, *, min_pixels: int = 40
) -> int | None:
    """Index of the first frame from ``start`` whose HR signature differs from frame ``before``'s
    by a tenth of its green pixels, and at least ``min_pixels``; None: never.

    New digits move thousands of pixels; compression noise a few dozen, even on the probe's white
    frame, whose sudden change x264 codes coarsely.
    """
    ref = signatures[before]
    threshold = max(min_pixels, int(ref.sum()) // 10)
    for i in range(start, len(signatures)):
        if int(np.abs(signatures[i] - ref).sum()) >= threshold:
            return i
    return None


def match(
    marks: Sequence[float], others: Sequence[float], window: float = MATCH_WINDOW_S
) -> list[tuple[float, float]]:
    """(mark, other − mark) for each mark with an ``other`` within ``window`` of it."""
    out: list[tuple[float, float]] = []
    if not others:
        return out
    arr = np.asarray(others, np.float64)
    for m in marks:
        k = int(np.argmin(np.abs(arr - m)))
        if abs(arr[k] - m) <= window:
            out.append((m, float(arr[k] - m)))
    return out


# --- figures ------------------------------------------------------------------------------------------


@dataclass
class Offsets:
    """One comparison: (mark time, offset) pairs, in seconds, and their summary."""

    name: str
    pairs: list[tuple[float, float]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.pairs)

    @property
    def mean_s(self) -> float:
        return float(np.mean([o for _, o in self.pairs])) if self.pairs else math.nan

    @property
    def max_abs_s(self) -> float:
        return float(np.max(np.abs([o for _, o in self.pairs]))) if self.pairs else math.nan

    @property
    def drift_s_per_hour(self) -> float:
        """Slope of a straight line fitted to offset against time, per hour."""
        if len(self.pairs) < 3:
            return math.nan
        t = np.array([m for m, _ in self.pairs])
        o = np.array([x for _, x in self.pairs])
        if float(t.max() - t.min()) <= 0:
            return math.nan
        slope = float(np.polyfit(t, o, 1)[0])
        return slope * 3600.0

    def to_json(self) -> dict[str, Any]:
        def ms(v: float) -> float | None:
            return None if math.isnan(v) else round(v * 1000, 3)

        return {
            "marks": self.count,
            "mean_ms": ms(self.mean_s),
            "max_abs_ms": ms(self.max_abs_s),
            "drift_ms_per_hour": ms(self.drift_s_per_hour),
        }


@dataclass
class SyncReport:
    reference: str  # the camera the others are measured against
    fps: dict[str, float]
    flashes: dict[str, list[float]]
    beeps: list[float]
    vitals_logged: list[float]
    vitals_shown: list[float]
    audio_vs_video: Offsets
    vitals_logged_vs_video: Offsets
    vitals_shown_vs_video: Offsets
    vitals_shown_after_arrival: Offsets
    camera_vs_camera: dict[str, Offsets]
    frame_times: dict[str, list[float]] = field(default_factory=dict)  # every frame, media time

    def to_json(self) -> dict[str, Any]:
        return {
            "reference_camera": self.reference,
            "fps": self.fps,
            "marks": {cam: len(f) for cam, f in self.flashes.items()},
            "beeps": len(self.beeps),
            "vitals_steps": len(self.vitals_logged),
            "audio_vs_video": self.audio_vs_video.to_json(),
            "vitals_logged_vs_video": self.vitals_logged_vs_video.to_json(),
            "vitals_shown_vs_video": self.vitals_shown_vs_video.to_json(),
            "vitals_shown_after_arrival": self.vitals_shown_after_arrival.to_json(),
            "camera_vs_camera": {c: o.to_json() for c, o in self.camera_vs_camera.items()},
        }


# --- reading a session --------------------------------------------------------------------------------


@dataclass
class _Camera:
    times: list[float] = field(default_factory=list)
    luma: list[float] = field(default_factory=list)
    hr: list[npt.NDArray[np.int32]] = field(default_factory=list)
    fps: float = 0.0
    audio: list[tuple[float, Floats]] = field(default_factory=list)
    audio_rate: int = 0


def _segments(session: Path, manifest: dict[str, Any]) -> dict[str, list[tuple[Path, float]]]:
    starts = {e["file"]: float(e["start_s"]) for e in manifest.get("segments", [])}
    out: dict[str, list[tuple[Path, float]]] = {}
    for path in sorted(session.iterdir()):
        seg = parse_segment_name(path.name)
        if seg is None or path.name not in starts:
            continue
        out.setdefault(seg.camera, []).append((path, starts[path.name]))
    for entries in out.values():
        entries.sort(key=lambda e: e[1])
    return out


def _read_camera(
    files: list[tuple[Path, float]], identities: Sequence[Identity], with_audio: bool
) -> _Camera:
    cam = _Camera()
    for path, start_s in files:
        ts = decrypt_file(path, identities)
        frames: list[tuple[float, float, npt.NDArray[np.int32]]] = []
        audio: list[tuple[float, Floats]] = []
        with av.open(io.BytesIO(ts), "r", format="mpegts") as container:
            video = container.streams.video[0]
            cam.fps = float(video.average_rate or video.guessed_rate or 0)
            streams: list[Any] = [video]
            if with_audio and container.streams.audio:
                streams.append(container.streams.audio[0])
            for frame in container.decode(*streams):
                if frame.pts is None or frame.time_base is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if isinstance(frame, av.VideoFrame):
                    y = frame.to_ndarray(format="gray")
                    rgb = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
                    frames.append((t, float(y.mean()), hr_signature(rgb)))
                elif isinstance(frame, av.AudioFrame):
                    pcm = frame.to_ndarray().astype(np.float64)
                    mono = pcm.reshape(len(frame.layout.channels), -1).mean(axis=0) if pcm.ndim > 1 else pcm
                    audio.append((t, mono))
                    cam.audio_rate = frame.sample_rate
        if not frames:
            continue
        frames.sort(key=lambda f: f[0])
        # The muxer's constant: the segment's first frame is at start_s in media time.
        shift = frames[0][0] - start_s
        for t, luma, sig in frames:
            cam.times.append(t - shift)
            cam.luma.append(luma)
            cam.hr.append(sig)
        cam.audio.extend((t - shift, pcm) for t, pcm in audio)
    return cam


def _beeps(cam: _Camera) -> list[float]:
    """Beep onsets over every run of contiguous audio frames (a gap starts a new run)."""
    if not cam.audio or not cam.audio_rate:
        return []
    rate = cam.audio_rate
    cam.audio.sort(key=lambda a: a[0])
    onsets: list[float] = []
    run_t0 = cam.audio[0][0]
    run: list[Floats] = []
    expected = run_t0
    for t, pcm in cam.audio:
        if run and abs(t - expected) > 1.5 / rate:
            onsets += find_beeps(np.concatenate(run), rate, run_t0)
            run, run_t0 = [], t
        run.append(pcm)
        expected = t + pcm.size / rate
    if run:
        onsets += find_beeps(np.concatenate(run), rate, run_t0)
    return onsets


def _hr_steps(vitals: list[dict[str, Any]]) -> list[float]:
    """Logged times of heart-rate values that differ from the one before (per monitor)."""
    last: dict[str, float] = {}
    steps: list[float] = []
    for r in vitals:
        if r.get("parameter") not in ("HR", "PR") or not r.get("valid") or r.get("value") is None:
            continue
        key = f"{r.get('monitor')}/{r.get('parameter')}"
        value = float(r["value"])
        if key in last and value != last[key]:
            steps.append(float(r["t"]))
        last[key] = value
    return steps


def measure_session(
    session: Path, identities: Sequence[Identity], *, reference: str | None = None
) -> SyncReport:
    """Every offset of a sync-probe recording (see the module docstring)."""
    manifest = json.loads(decrypt_file(session / MANIFEST, identities))
    by_camera = _segments(session, manifest)
    if not by_camera:
        raise ValueError(f"{session}: no segments listed in the manifest")
    ref = reference or sorted(by_camera)[0]
    cams = {
        name: _read_camera(files, identities, with_audio=name == ref) for name, files in by_camera.items()
    }
    flashes = {name: find_flashes(c.times, c.luma) for name, c in cams.items()}
    ref_cam = cams[ref]
    beeps = _beeps(ref_cam)
    vitals_path = session / VITALS
    vitals = (
        [json.loads(line) for line in decrypt_file(vitals_path, identities).splitlines() if line]
        if vitals_path.exists()
        else []
    )
    steps = _hr_steps(vitals)
    # The first frame showing each step: after the frame before the step's mark.
    shown: list[float] = []
    after_arrival = Offsets("vitals shown − logged")
    times = np.asarray(ref_cam.times)
    for flash, dt in match(flashes[ref], steps):
        step_t = flash + dt
        i = int(np.searchsorted(times, flash))
        if i == 0:
            continue
        j = first_change(ref_cam.hr, i - 1, i)
        if j is None or times[j] - flash > MATCH_WINDOW_S:
            continue
        shown.append(float(times[j]))
        after_arrival.pairs.append((flash, float(times[j]) - step_t))
    return SyncReport(
        reference=ref,
        fps={name: c.fps for name, c in cams.items()},
        flashes=flashes,
        beeps=beeps,
        vitals_logged=steps,
        vitals_shown=shown,
        audio_vs_video=Offsets("audio − video", match(flashes[ref], beeps)),
        vitals_logged_vs_video=Offsets("vitals logged − video", match(flashes[ref], steps)),
        vitals_shown_vs_video=Offsets("vitals shown − video", match(flashes[ref], shown)),
        vitals_shown_after_arrival=after_arrival,
        camera_vs_camera={
            name: Offsets(f"{name} − {ref}", match(flashes[ref], f))
            for name, f in flashes.items()
            if name != ref
        },
        frame_times={name: c.times for name, c in cams.items()},
    )


def frame_times(session: Path, identities: Sequence[Identity]) -> dict[str, list[float]]:
    """Each camera's frame times in media seconds, in order: for the jitter of frame intervals."""
    manifest = json.loads(decrypt_file(session / MANIFEST, identities))
    return {
        name: _read_camera(files, identities, with_audio=False).times
        for name, files in _segments(session, manifest).items()
    }
