"""The camera writer says how long it has been on one item, so a write that blocks (a hung USB
disk) is seen in seconds, not once 4000 packets have piled up behind it."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from typing import cast

from capture.packets import EncodedPacket
from capture.recording import CameraRecorder
from capture.segmenter import Segmenter

TB = Fraction(1, 90_000)


class StuckDisk:
    """A segmenter whose writes block until ``release`` is set, as on a disk that stopped."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written = 0

    def write(self, packet: EncodedPacket) -> None:
        self.release.wait(10)
        self.written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def packet(i: int) -> EncodedPacket:
    return EncodedPacket("video", b"x" * 100, i * 3000, i * 3000, 3000, TB, i == 0)


def test_busy_time_grows_while_a_write_blocks_and_clears_after() -> None:
    recorder = CameraRecorder("closeup", 2.0)
    recorder.start()
    disk = StuckDisk()
    try:
        assert recorder.busy_s == 0.0  # waiting for work is not being busy
        recorder.begin(cast(Segmenter, disk), with_preroll=False)
        for i in range(5):
            recorder.write(packet(i))
        time.sleep(0.5)
        first = recorder.busy_s
        time.sleep(0.3)
        assert first >= 0.4 and recorder.busy_s >= first + 0.25
        assert recorder.backlog > 0 and disk.written == 0
        disk.release.set()
        deadline = time.monotonic() + 5
        while (recorder.backlog or disk.written < 5) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        assert disk.written == 5
        assert recorder.busy_s == 0.0
    finally:
        disk.release.set()
        recorder.end()
        recorder.stop()
