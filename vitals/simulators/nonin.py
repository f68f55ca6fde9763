"""A Nonin pulse oximeter that prints ``SPO2=XXX HR=YYY`` once a second through a stabilisation.

The course is the Masimo simulator's stabilisation script: dashes while no sensor is on and
while the pulse is searched for, then SpO2 rising from about 60 % and the pulse rate from about
90 /min. ``mark_event()`` adds the ``*`` the ON/STANDBY button puts at the end of a line;
``fast=True`` prints the ``F`` of the fast-responding format. Values are printed zero-padded to
three digits (the manuals write ``XXX``; the padding is not stated). No power-up header is sent:
its layout is not published. Formats and sources: see ``vitals.nonin``.
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from vitals.simulators.masimo import StabilisationScript


def nonin_line(
    spo2: float | None, heart_rate: float | None, *, fast: bool = False, event: bool = False
) -> bytes:
    """One line, CR LF terminated; ``None`` prints ``---``."""

    def fmt(value: float | None) -> str:
        return "---" if value is None else f"{round(value):03d}"

    line = f"SPO2={fmt(spo2)} HR={fmt(heart_rate)}" + (" F" if fast else "") + ("*" if event else "")
    return (line + "\r\n").encode("ascii")


class NoninSimulator:
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
        self._out = out
        self.interval_s = interval_s
        self.time_scale = time_scale
        self.script = script or StabilisationScript()
        self.fast = fast
        self._rng = random.Random(seed)
        self._clock = clock
        self._lock = threading.Lock()
        self._sensor_attached = True
        self._attached_at_s = 0.0
        self._event_pending = False
        self._t0 = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines_written = 0
        self.write_errors = 0

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

    def script_time(self) -> float:
        return (self._clock() - self._t0) * self.time_scale

    def sensor_off(self) -> None:
        """Take the sensor off: dashes until it is back on and the pulse is found again."""
        with self._lock:
            self._sensor_attached = False

    def sensor_on(self) -> None:
        now = self.script_time()
        with self._lock:
            if not self._sensor_attached:
                self._sensor_attached = True
                self._attached_at_s = now

    def mark_event(self) -> None:
        """Press ON/STANDBY: the next line ends with ``*``."""
        with self._lock:
            self._event_pending = True

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._t0 = self._clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nonin-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> NoninSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            if self._write(self.line_at(self.script_time())):
                self.lines_written += 1
            else:
                self.write_errors += 1
            tick += 1
            delay = self._t0 + tick * self.interval_s - self._clock()
            if delay > 0:
                self._stop.wait(delay)

    def _write(self, data: bytes) -> bool:
        out = self._out
        try:
            if isinstance(out, int):
                view = memoryview(data)
                while view:
                    _, ready, _ = select.select([], [out], [], 1.0)
                    if not ready or self._stop.is_set():
                        return False
                    view = view[os.write(out, view) :]
            else:
                out.write(data)
        except Exception:
            # A closed fd or a vanished port: the line is lost, the cadence continues.
            return False
        return True


SIMULATOR = NoninSimulator
