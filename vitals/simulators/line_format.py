"""A device that prints ``key=value`` lines, as the ``line_format`` family reads them by config.

What stands behind a configured line format is any device IT adds; this one prints what a blender
with an oximeter might, once a second: ``SPO2=095 HR=140 FIO2=30``, following the Masimo
simulator's stabilisation script (dashes while no sensor is on and while the pulse is searched
for), with FiO2 steady at the blender's setting. ``DEMO_FORMAT`` is the line format that reads it,
and ``DEMO_TABLE`` the same as the ``[monitors.line_format]`` table a config would hold.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Final

from vitals.line_format import LineFormat, line_format_from_mapping
from vitals.simulators.device import PacedOximeter
from vitals.simulators.masimo import StabilisationScript

#: The table a config would hold for this device (``[monitors.line_format]``).
DEMO_TABLE: Final[dict[str, Any]] = {
    "mode": "key_value",
    "line_ending": "crlf",
    "fields": [
        {"name": "SPO2", "parameter": "SpO2", "unit": "%", "source": "pleth"},
        {"name": "HR", "parameter": "HR", "unit": "/min", "source": "pleth"},
        {"name": "FIO2", "parameter": "FiO2", "unit": "%", "source": "blender"},
    ],
}
DEMO_FORMAT: Final[LineFormat] = line_format_from_mapping(DEMO_TABLE)


def demo_line(spo2: float | None, heart_rate: float | None, fio2: float | None) -> bytes:
    """One line, CR LF terminated; ``None`` prints ``---``."""

    def fmt(value: float | None) -> str:
        return "---" if value is None else f"{round(value):03d}"

    return f"SPO2={fmt(spo2)} HR={fmt(heart_rate)} FIO2={fmt(fio2)}\r\n".encode("ascii")


class LineFormatSimulator(PacedOximeter):
    """Writes ``demo_line`` lines to ``out`` every ``interval_s`` from its own thread.

    ``out`` is a file descriptor (a pty master) or a pyserial port. ``time_scale`` is script
    seconds per real second; the line interval stays real time. Nothing is read.

    Threads: ``start``/``stop`` and ``sensor_off``/``sensor_on`` are called from the owner's
    thread; the writer thread reads that state under ``_lock``.
    """

    def __init__(
        self,
        out: int | Any,
        *,
        interval_s: float = 1.0,
        time_scale: float = 1.0,
        script: StabilisationScript | None = None,
        fio2: float = 30.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, name="line_format", interval_s=interval_s, time_scale=time_scale, clock=clock)
        self.script = script or StabilisationScript()
        self.fio2 = fio2
        self._rng = random.Random(seed)
        self.lines_written = 0

    def line_at(self, t_s: float) -> bytes:
        """The line printed ``t_s`` script seconds in."""
        with self._lock:
            attached, attached_at = self._sensor_attached, self._attached_at_s
        sc = self.script
        if not attached or t_s < max(sc.no_sensor_s, attached_at) + sc.acquire_s:
            return demo_line(None, None, self.fio2)
        spo2, rate, _ = sc.course(t_s)
        g = self._rng.gauss
        return demo_line(
            min(100.0, max(0.0, spo2 + g(0.0, sc.spo2_noise))),
            max(0.0, rate + g(0.0, sc.bpm_noise)),
            self.fio2,
        )


    def _emit(self) -> None:
        if self._write(self.line_at(self.script_time())):
            self.lines_written += 1


SIMULATOR = LineFormatSimulator
