"""The pre-roll ring: the last seconds of encoded packets, kept in memory while idle.

Like a dashcam: encoding never stops, so when a recording starts it begins with the seconds before
the trigger. The ring always starts on a video keyframe (a recording must be decodable from its
first packet), holds at least ``seconds`` of media when that much has been encoded, and never
touches the disk.
"""

from __future__ import annotations

from collections import deque

from capture.packets import EncodedPacket


class PrerollBuffer:
    """A ``PacketSink`` that keeps whole GOPs covering at least ``seconds``. One thread only."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._packets: deque[EncodedPacket] = deque()
        self._keyframes: deque[float] = deque()  # dts of each video keyframe in the ring
        self.bytes = 0

    def write(self, packet: EncodedPacket) -> None:
        if not self._packets and not (packet.kind == "video" and packet.keyframe):
            return  # nothing decodable starts before a keyframe
        self._packets.append(packet)
        self.bytes += len(packet.data)
        if packet.kind == "video" and packet.keyframe:
            self._keyframes.append(packet.dts_s)
        self._trim(packet.dts_s)

    def _trim(self, newest_s: float) -> None:
        # Drop the oldest GOP while the ring would still cover `seconds` from the next keyframe.
        while len(self._keyframes) >= 2 and newest_s - self._keyframes[1] >= self.seconds:
            self._keyframes.popleft()
            second = self._keyframes[0]
            while self._packets:
                head = self._packets[0]
                if head.kind == "video" and head.keyframe and head.dts_s >= second:
                    break
                self._packets.popleft()
                self.bytes -= len(head.data)

    @property
    def duration_s(self) -> float:
        if not self._packets:
            return 0.0
        return self._packets[-1].dts_s - self._packets[0].dts_s

    def drain(self) -> list[EncodedPacket]:
        """Hand over everything, oldest first, and start empty."""
        out = list(self._packets)
        self.clear()
        return out

    def clear(self) -> None:
        self._packets.clear()
        self._keyframes.clear()
        self.bytes = 0
