"""Segment rotation: packets in, independently decodable MPEG-TS segments out.

Why MPEG-TS: it was made for broadcast, where a receiver may tune in or be cut off at any point.
A segment cut short by a crash or power loss decodes up to its last complete 188-byte packet; it
needs no index written at the end (plain MP4 does, and loses everything without it) and no seeking
back (fragmented MP4 and Matroska want it for their headers and cues), so the muxer's bytes can
flow straight into the encryptor. Segments are joined into one MP4 on the review side without
re-encoding.

A new segment starts only on a video keyframe, at the first one on or after each multiple of
the segment length in media time, so all cameras' segments cover the same seconds.
The muxer writes into whatever file object ``open_file`` returns; this module knows nothing of
encryption or where files live.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import av

from capture.packets import EncodedPacket


class SegmentFile(Protocol):
    """What a segment is written into: a write-only binary file that can be kept or thrown away."""

    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamLayout:
    width: int
    height: int
    audio_rate: int | None = None  # None: this camera records no audio
    audio_channels: int = 1


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    index: int
    start_s: float  # media time of the first video frame
    end_s: float  # media time just after the last frame
    video_frames: int
    audio_packets: int
    complete: bool  # False when closed because of a write error (the file may be short)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class _OpenSegment:
    def __init__(self, index: int, file: SegmentFile, layout: StreamLayout, start_s: float) -> None:
        self.index = index
        self.file = file
        self.start_s = start_s
        self.end_s = start_s
        self.boundary_s = math.inf
        self.video_frames = 0
        self.audio_packets = 0
        self.container = av.open(file, "w", format="mpegts")
        self.video = self.container.add_mux_stream(
            "h264", width=layout.width, height=layout.height
        )
        self.audio = (
            self.container.add_mux_stream("aac", rate=layout.audio_rate)
            if layout.audio_rate
            else None
        )

    def mux(self, packet: EncodedPacket) -> None:
        stream = self.video if packet.kind == "video" else self.audio
        if stream is None:
            return
        out = av.Packet(packet.data)
        out.pts = packet.pts
        out.dts = packet.dts
        out.duration = packet.duration
        out.time_base = packet.time_base
        out.stream = stream
        if packet.keyframe:
            out.is_keyframe = True
        self.container.mux(out)
        if packet.kind == "video":
            self.video_frames += 1
        else:
            self.audio_packets += 1
        self.end_s = max(self.end_s, packet.end_s)


class Segmenter:
    """A ``PacketSink`` writing rotating segments. Used from one thread (the camera's writer)."""

    def __init__(
        self,
        open_file: Callable[[int], SegmentFile],
        layout: StreamLayout,
        *,
        segment_s: float,
        on_closed: Callable[[ClosedSegment], None],
        first_index: int = 1,
    ) -> None:
        self._open_file = open_file
        self._layout = layout
        self._segment_s = segment_s
        self._on_closed = on_closed
        self._next_index = first_index
        self._current: _OpenSegment | None = None
        self.packets_before_keyframe = 0

    def write(self, packet: EncodedPacket) -> None:
        starts_gop = packet.kind == "video" and packet.keyframe
        current = self._current
        if starts_gop and (current is None or packet.pts_s >= current.boundary_s):
            self._rotate(packet.pts_s)
            current = self._current
        if current is None:
            self.packets_before_keyframe += 1
            return
        try:
            current.mux(packet)
        except Exception:
            # The file or the disk failed: keep what was written, start afresh at the next
            # keyframe, and let the caller log it.
            self._finish(complete=False)
            raise

    @property
    def writing(self) -> bool:
        """A segment is open (not waiting for a keyframe after a failure)."""
        return self._current is not None

    def close(self) -> None:
        self._finish(complete=True)

    def abort(self) -> None:
        """Throw the open segment away (a discarded recording)."""
        current, self._current = self._current, None
        if current is not None:
            with contextlib.suppress(Exception):
                current.container.close()
            current.file.abort()

    def _rotate(self, start_s: float) -> None:
        self._finish(complete=True)
        index = self._next_index
        self._next_index += 1
        self._current = _OpenSegment(index, self._open_file(index), self._layout, start_s)
        # Segments end on a grid of media time (multiples of segment_s), not segment_s after
        # their own start: keyframes are forced at the first frame at or after each grid
        # point, so "start + segment_s" would sometimes miss one and double the segment.
        self._current.boundary_s = (math.floor(start_s / self._segment_s + 1e-6) + 1) * self._segment_s

    def _finish(self, *, complete: bool) -> None:
        """Close the open segment, whatever state its file is in; never raises.

        A file that fails while closing is reported as incomplete: its complete chunks are
        still readable on the review side, so it is listed, not hidden.
        """
        current, self._current = self._current, None
        if current is None:
            return
        for close in (current.container.close, current.file.close):
            try:
                close()
            except Exception:
                complete = False
        self._on_closed(
            ClosedSegment(
                index=current.index,
                start_s=current.start_s,
                end_s=current.end_s,
                video_frames=current.video_frames,
                audio_packets=current.audio_packets,
                complete=complete,
            )
        )
