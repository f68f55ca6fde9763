"""The one contract between encoders and everything that stores packets.

Every output (the interleaver, the pre-roll ring, the segment writer) implements ``write(packet)``,
so outputs wrap outputs: pre-roll and segment rotation compose without knowing of each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    kind: Literal["video", "audio"]
    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction
    keyframe: bool

    @property
    def dts_s(self) -> float:
        return float(self.dts * self.time_base)

    @property
    def pts_s(self) -> float:
        return float(self.pts * self.time_base)

    @property
    def end_s(self) -> float:
        return float((self.pts + self.duration) * self.time_base)


class PacketSink(Protocol):
    def write(self, packet: EncodedPacket) -> None: ...
