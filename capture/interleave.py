"""Put one camera's video and audio packets in decode-time order before they are stored.

Video leaves the encoder later than audio (x264 looks ahead), so audio packets are held until the
video has caught up with them. That keeps the muxer's buffers small and puts every audio packet
in the segment its time belongs to.
"""

from __future__ import annotations

import threading
from collections import deque

from capture.packets import EncodedPacket, PacketSink


class Interleaver:
    """A ``PacketSink`` that orders two streams. Called from the camera and audio threads."""

    def __init__(self, downstream: PacketSink, *, max_hold_s: float = 3.0) -> None:
        self._down = downstream
        self._max_hold = max_hold_s
        self._audio: deque[EncodedPacket] = deque()
        self._lock = threading.Lock()  # one writer at a time into downstream, in order

    def write(self, packet: EncodedPacket) -> None:
        with self._lock:
            if packet.kind == "video":
                while self._audio and self._audio[0].dts_s < packet.dts_s:
                    self._down.write(self._audio.popleft())
                self._down.write(packet)
            else:
                self._audio.append(packet)
                # If video stalls (the encoder is behind), don't hold audio without limit.
                while self._audio and self._audio[-1].dts_s - self._audio[0].dts_s > self._max_hold:
                    self._down.write(self._audio.popleft())

    def flush(self) -> None:
        with self._lock:
            while self._audio:
                self._down.write(self._audio.popleft())
