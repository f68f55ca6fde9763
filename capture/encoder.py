"""Encoders: raw frames and PCM in, ``EncodedPacket``s out (libx264 and AAC through PyAV).

They know nothing of containers or files. Video timestamps come from capture times, never from
frame counts, so a dropped frame leaves a gap in time instead of shifting everything after it.
``estimated_bits_per_second`` says roughly how much they produce, so free space can be told in
minutes.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

from capture.packets import EncodedPacket
from config.models import Config
from sync.clock import VIDEO_TIME_BASE

_AAC_FRAME = 1024  # samples per AAC-LC frame
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
# x264 at CRF 23 spends about 0.08 bit per pixel on a table scene; each 6 CRF steps halve or
# double it. A rough figure: it only turns free bytes into minutes of recording.
_BITS_PER_PIXEL_AT_CRF_23 = 0.08
_CONTAINER_OVERHEAD = 1.05  # MPEG-TS packetisation and age framing on top of the streams


class VideoEncoder:
    """libx264 with keyframes forced on a fixed time grid, so segments cut at the same seconds."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: int,
        *,
        preset: str = "veryfast",
        crf: int = 23,
        keyframe_interval_s: float = 2.0,
        threads: int = 0,
    ) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = Fraction(fps)
        keyint = max(1, round(fps * keyframe_interval_s))
        ctx.options = {
            "preset": preset,
            "crf": str(crf),
            # repeat-headers: SPS/PPS before every keyframe, so every segment decodes on its own.
            # keyint is a ceiling; keyframes are forced by capture time in encode().
            "x264-params": f"repeat-headers=1:keyint={keyint * 2}:min-keyint={keyint}",
        }
        if threads:
            ctx.thread_count = threads
        ctx.open()
        self._ctx = ctx
        self._width = width
        self._height = height
        self._key_every = int(keyframe_interval_s * 90_000)
        self._next_key_pts = 0
        self._last_pts = -1
        self._frame_ticks = 90_000 // fps  # nominal duration, so a segment's end is its last frame's end
        self.frames_in = 0

    def encode(self, i420: np.ndarray, pts: int) -> list[EncodedPacket]:
        """Encode one frame given as planar I420 (height*3/2 x width), stamped in 1/90000 s."""
        if pts <= self._last_pts:
            pts = self._last_pts + 1  # two frames stamped in the same tick: keep order
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        if pts >= self._next_key_pts:
            frame.pict_type = av.video.frame.PictureType.I
            self._next_key_pts = (pts // self._key_every + 1) * self._key_every
        self.frames_in += 1
        return self._packets(self._ctx.encode(frame))

    def flush(self) -> list[EncodedPacket]:
        return self._packets(self._ctx.encode(None))

    def _packets(self, packets: list[av.Packet[Any]]) -> list[EncodedPacket]:
        out = []
        for p in packets:
            if p.pts is None:
                continue
            out.append(
                EncodedPacket(
                    kind="video",
                    data=bytes(p),
                    pts=p.pts,
                    dts=p.dts if p.dts is not None else p.pts,
                    duration=p.duration or self._frame_ticks,
                    time_base=VIDEO_TIME_BASE,
                    keyframe=p.is_keyframe,
                )
            )
        return out


class AudioEncoder:
    """AAC-LC from float PCM placed on the stream by ``sync.audio_timeline``.

    The timeline may move a chunk's position to correct drift: a gap is filled with silence and
    an overlap is dropped here, so the AAC stream stays continuous. Packets carry ADTS headers so
    each one describes itself in MPEG-TS without stream-level extradata.
    """

    def __init__(self, sample_rate: int, channels: int, bitrate: int) -> None:
        if sample_rate not in _ADTS_RATES:
            raise ValueError(f"AAC cannot carry a sample rate of {sample_rate} Hz")
        ctx = av.CodecContext.create("aac", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = sample_rate
        ctx.layout = "mono" if channels == 1 else "stereo"
        ctx.format = "fltp"
        ctx.bit_rate = bitrate
        ctx.time_base = Fraction(1, sample_rate)
        ctx.open()
        self._ctx = ctx
        self._rate = sample_rate
        self._channels = channels
        self._time_base = Fraction(1, sample_rate)
        self._pending = np.zeros((channels, 0), dtype=np.float32)
        self._pending_pts: int | None = None  # stream position of _pending[:, 0]
        self._adts_fixed = _adts_fixed_header(sample_rate, channels)
        self.samples_padded = 0
        self.samples_dropped = 0

    def encode(self, pcm: np.ndarray, pts: int) -> list[EncodedPacket]:
        """``pcm`` is float32 planar (channels, n); ``pts`` the position of its first sample."""
        if self._pending_pts is None:
            self._pending_pts = pts
        end = self._pending_pts + self._pending.shape[1]
        if pts > end:
            gap = pts - end
            self.samples_padded += gap
            pcm = np.concatenate([np.zeros((self._channels, gap), np.float32), pcm], axis=1)
        elif pts < end:
            overlap = min(end - pts, pcm.shape[1])
            self.samples_dropped += overlap
            pcm = pcm[:, overlap:]
        self._pending = np.concatenate([self._pending, pcm.astype(np.float32, copy=False)], axis=1)
        out: list[EncodedPacket] = []
        while self._pending.shape[1] >= _AAC_FRAME:
            chunk = np.ascontiguousarray(self._pending[:, :_AAC_FRAME])
            self._pending = self._pending[:, _AAC_FRAME:]
            out.extend(self._encode_frame(chunk, self._pending_pts))
            self._pending_pts += _AAC_FRAME
        return out

    def flush(self) -> list[EncodedPacket]:
        return self._packets(self._ctx.encode(None))

    def _encode_frame(self, chunk: np.ndarray, pts: int) -> list[EncodedPacket]:
        frame = av.AudioFrame.from_ndarray(
            chunk, format="fltp", layout="mono" if self._channels == 1 else "stereo"
        )
        frame.sample_rate = self._rate
        frame.pts = pts
        frame.time_base = self._time_base
        return self._packets(self._ctx.encode(frame))

    def _packets(self, packets: list[av.Packet[Any]]) -> list[EncodedPacket]:
        out = []
        for p in packets:
            if p.pts is None:
                continue
            payload = bytes(p)
            out.append(
                EncodedPacket(
                    kind="audio",
                    data=_adts_header(self._adts_fixed, len(payload)) + payload,
                    pts=p.pts,
                    dts=p.dts if p.dts is not None else p.pts,
                    duration=p.duration or _AAC_FRAME,
                    time_base=self._time_base,
                    keyframe=True,
                )
            )
        return out


def estimated_bits_per_second(config: Config) -> float:
    """About how many bits a second ``config``'s encoders produce, all cameras together, as
    stored: each camera's video, its audio where it carries the microphone, container framing."""
    bpp = _BITS_PER_PIXEL_AT_CRF_23 * 2 ** ((23 - config.encoding.crf) / 6)
    video = sum(c.width * c.height * c.fps * bpp for c in config.cameras)
    audio = sum(config.audio.bitrate for c in config.cameras if c.audio and config.audio)
    return (video + audio) * _CONTAINER_OVERHEAD


def _adts_fixed_header(sample_rate: int, channels: int) -> int:
    # ISO 14496-3 ADTS, 56 bits: sync 0xFFF, MPEG-4, layer 0, no CRC, AAC-LC (profile 1),
    # sampling index, channel configuration; the frame length is filled in per packet.
    index = _ADTS_RATES.index(sample_rate)
    header = 0xFFF << 44 | 0 << 43 | 0 << 41 | 1 << 40 | 1 << 38 | index << 34 | channels << 30
    return header | 0x7FF << 2  # buffer fullness 0x7FF = variable bit rate


def _adts_header(fixed: int, payload_len: int) -> bytes:
    return (fixed | (payload_len + 7) << 13).to_bytes(7, "big")
