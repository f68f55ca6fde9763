"""A Nonin pulse oximeter that prints ``SPO2=XXX HR=YYY`` once a second through a stabilisation.

The course is the Masimo simulator's stabilisation script: dashes while no sensor is on and
while the pulse is searched for, then SpO2 rising from about 60 % and the pulse rate from about
90 /min. ``mark_event()`` adds the ``*`` the ON/STANDBY button puts at the end of a line;
``fast=True`` prints the ``F`` of the fast-responding format. Values are printed zero-padded to
three digits (the manuals write ``XXX``; the padding is not stated). No power-up header is sent:
its layout is not published. Formats and sources: see ``vitals.nonin``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from vitals.simulators.device import PacedOximeter
from vitals.simulators.masimo import StabilisationScript


def nonin_line(
    spo2: float | None, heart_rate: float | None, *, fast: bool = False, event: bool = False
) -> bytes:
    """One line, CR LF terminated; ``None`` prints ``---``."""

    def fmt(value: float | None) -> str:
        return "---" if value is None else f"{round(value):03d}"

    line = f"SPO2={fmt(spo2)} HR={fmt(heart_rate)}" + (" F" if fast else "") + ("*" if event else "")
    return (line + "\r\n").encode("ascii")


class NoninSimulator(PacedOximeter):
    """Writes Nonin lines to ``out`` every ``interval_s`` from its own thread.

    ``out`` is a file descriptor (a pty master, written with ``os.write``) or a pyserial port
    (``write``). ``time_scale`` is script seconds per real second; the line interval stays real
    time. The host never talks to a Nonin, so nothing is read.

    Threads: ``start``/``stop``, ``sensor_off``/``sensor_on`` and ``mark_event`` are called from
    the owner's thread; the writer thread reads that state under ``_lock``.
    """

    def __init__(
        self,
        out: int | Any,
        *,
        interval_s: float = 1.0,
        time_scale: float = 1.0,
        script: StabilisationScript | None = None,
        seed: int = 0,
        fast: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, name="nonin", interval_s=interval_s, time_scale=time_scale, clock=clock)
        self.script = script or StabilisationScript()
        self.fast = fast
        self._rng = random.Random(seed)
        self._event_pending = False
        self.lines_written = 0

    def reading_at(self, t_s: float) -> tuple[float | None, float | None]:
        """(SpO2, pulse rate) ``t_s`` script seconds in; None while there is nothing to show."""
        with self._lock:
            attached, attached_at = self._sensor_attached, self._attached_at_s
        sc = self.script
        if not attached or t_s < max(sc.no_sensor_s, attached_at) + sc.acquire_s:
            return None, None
        spo2, rate, _ = sc.course(t_s)
        g = self._rng.gauss
        return min(100.0, max(0.0, spo2 + g(0.0, sc.spo2_noise))), max(0.0, rate + g(0.0, sc.bpm_noise))

    def line_at(self, t_s: float) -> bytes:
        """The line printed ``t_s`` script seconds in; takes a pending event marker."""
        spo2, rate = self.reading_at(t_s)
        with self._lock:
            event, self._event_pending = self._event_pending, False
        return nonin_line(spo2, rate, fast=self.fast, event=event)


    def mark_event(self) -> None:
        """Press ON/STANDBY: the next line ends with ``*``."""
        with self._lock:
            self._event_pending = True

    def _emit(self) -> None:
        if self._write(self.line_at(self.script_time())):
            self.lines_written += 1


SIMULATOR = NoninSimulator
