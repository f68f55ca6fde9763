"""A Nellcor N-595 that prints its real-time table through a newborn's stabilisation.

It prints what ``vitals.nellcor`` reads: the three heading rows at start and every 25 data rows,
then one data row per interval (2 s on the device). The course is the same stabilisation script
as the Masimo simulator: sensor not yet on (``---`` with ``SD``), pulse search (``---`` with
``PS``), then SpO2 rising from about 60 % and the pulse rate from about 90 /min; values outside
the alarm limits carry ``*`` and the matching status code (``SL``, ``PH`` ...).

Like the monitor's data port it honours XON/XOFF from the host: XOFF (0x13) pauses the output,
XON (0x11) resumes it. ``stall()`` makes it stop sending as the manual says the port sometimes
does, until an XON arrives; the parser's greeting is that XON, so a link that reconnects after
the silence brings the data back. Formats and sources: see ``vitals.nellcor``. The version
number and CRC printed in the heading are made up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from vitals.simulators.device import PacedOximeter
from vitals.simulators.masimo import StabilisationScript

XON = 0x11
XOFF = 0x13

_STATUS_NO_SENSOR = ("SD",)
_STATUS_SENSOR_OFF = ("SO",)
_STATUS_PULSE_SEARCH = ("PS",)


def _column(value: float | None, limits: tuple[float, float] | None) -> str:
    if value is None:
        return "---"
    n = round(value)
    star = "*" if limits is not None and not limits[0] <= n <= limits[1] else ""
    return f"{n}{star}"


def heading_rows(
    model: str, version: str, crc: str, spo2_limits: tuple[int, int], pr_limits: tuple[int, int]
) -> bytes:
    """The three heading rows: version and limits, patient mode, column names; CR LF each."""
    rows = (
        f"{model}   VERSION {version}   CRC:{crc}   SpO2 Limit: {spo2_limits[0]}-{spo2_limits[1]}%"
        f"   PR Limit: {pr_limits[0]}-{pr_limits[1]}BPM",
        f"{'':40}NEO   0SAT-S   SPO2 RESP MODE: NORMAL",
        f"TIME{'':17}%SPO2  BPM   PA  Status",
    )
    return "".join(row + "\r\n" for row in rows).encode("ascii")


def nellcor_row(
    t: datetime,
    spo2: float | None,
    pulse_rate: float | None,
    pulse_amplitude: float | None,
    *,
    status: tuple[str, ...] = (),
    spo2_limits: tuple[int, int] | None = None,
    pr_limits: tuple[int, int] | None = None,
) -> bytes:
    """One data row, CR LF terminated; ``None`` prints dashes, a value outside its limits a ``*``.

    Status codes for limit violations are not added here: pass them in ``status``.
    """
    stamp = t.strftime("%d-") + t.strftime("%b").title() + t.strftime("-%y %H:%M:%S")
    line = (
        f"{stamp}  {_column(spo2, spo2_limits):>5}  {_column(pulse_rate, pr_limits):>4}"
        f"  {_column(pulse_amplitude, None):>3}  {' '.join(status)}"
    )
    return (line.rstrip() + "\r\n").encode("ascii")


class NellcorSimulator(PacedOximeter):
    """Writes N-595 rows to ``out`` every ``interval_s`` from its own thread; reads XON/XOFF.

    ``out`` is a file descriptor (a pty master: written with ``os.write``, read for flow
    control) or a pyserial port (``write``; ``read``/``in_waiting`` for flow control).
    ``time_scale`` is script seconds per real second; the row interval stays real time.

    Threads: ``start``/``stop``, ``sensor_off``/``sensor_on`` and ``stall`` are called from the
    owner's thread; the writer thread reads that state under ``_lock``.
    """

    def __init__(
        self,
        out: int | Any,
        *,
        interval_s: float = 2.0,
        time_scale: float = 1.0,
        script: StabilisationScript | None = None,
        start_time: datetime | None = None,
        seed: int = 0,
        model: str = "N-595",
        version: str = "1.2.0.0",
        crc: str = "A1B2",
        spo2_limits: tuple[int, int] = (85, 95),
        pr_limits: tuple[int, int] = (100, 180),
        heading_every: int = 25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, name="nellcor", interval_s=interval_s, time_scale=time_scale, clock=clock)
        self.script = script or StabilisationScript()
        self.model, self.version, self.crc = model, version, crc
        self.spo2_limits = spo2_limits
        self.pr_limits = pr_limits
        self.heading_every = heading_every
        self._start_time = start_time or datetime.now().replace(microsecond=0)
        self._rng = random.Random(seed)
        self._off_status = _STATUS_SENSOR_OFF
        self._paused = False  # XOFF received or stalled: no output until XON
        self._rows_since_heading: int | None = None  # None: the headings are due
        self.rows_written = 0

    # -- script ------------------------------------------------------------------------------

    def reading_at(self, t_s: float) -> tuple[float | None, float | None, float | None, tuple[str, ...]]:
        """(SpO2, pulse rate, pulse amplitude, status codes) ``t_s`` script seconds in."""
        with self._lock:
            attached, off_status, attached_at = (
                self._sensor_attached,
                self._off_status,
                self._attached_at_s,
            )
        sc = self.script
        if not attached:
            return None, None, None, off_status
        if t_s < sc.no_sensor_s:
            return None, None, None, _STATUS_NO_SENSOR
        if t_s < max(sc.no_sensor_s, attached_at) + sc.acquire_s:
            return None, None, None, _STATUS_PULSE_SEARCH
        spo2, rate, pi = sc.course(t_s)
        g = self._rng.gauss
        spo2 = min(100.0, max(0.0, spo2 + g(0.0, sc.spo2_noise)))
        rate = max(0.0, rate + g(0.0, sc.bpm_noise))
        # Pulse amplitude is in the monitor's relative units; scaled from PI for a plausible size.
        amplitude = min(254.0, max(1.0, 20.0 * (pi + g(0.0, sc.pi_noise))))
        status: list[str] = []
        if round(spo2) < self.spo2_limits[0]:
            status.append("SL")
        elif round(spo2) > self.spo2_limits[1]:
            status.append("SH")
        if round(rate) < self.pr_limits[0]:
            status.append("PL")
        elif round(rate) > self.pr_limits[1]:
            status.append("PH")
        return spo2, rate, amplitude, tuple(status)

    def row_at(self, t_s: float, when: datetime | None = None) -> bytes:
        """The data row ``t_s`` script seconds in, stamped ``when`` (the monitor's clock)."""
        spo2, rate, amplitude, status = self.reading_at(t_s)
        stamp = when or self._start_time + timedelta(seconds=t_s)
        return nellcor_row(
            stamp,
            spo2,
            rate,
            amplitude,
            status=status,
            spo2_limits=self.spo2_limits,
            pr_limits=self.pr_limits,
        )

    def headings(self) -> bytes:
        return heading_rows(self.model, self.version, self.crc, self.spo2_limits, self.pr_limits)

    # -- controls ----------------------------------------------------------------------------

    def sensor_off(self, *, unplugged: bool = False) -> None:
        """Take the sensor off the baby (``SO``) or unplug it (``SD``)."""
        with self._lock:
            self._off_status = _STATUS_NO_SENSOR if unplugged else _STATUS_SENSOR_OFF
        super().sensor_off()

    def stall(self) -> None:
        """Stop sending, as a data port that hung does, until the host sends an XON."""
        with self._lock:
            self._paused = True

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused

    # -- thread ------------------------------------------------------------------------------

    def _starting(self) -> None:
        super()._starting()
        self._rows_since_heading = None  # a restarted port prints its headings first

    def _emit(self) -> None:
        self._read_flow_control(0.0)
        if self.paused:
            return
        elapsed = self._clock() - self._t0
        data = b""
        if self._rows_since_heading is None or self._rows_since_heading >= self.heading_every:
            data += self.headings()
            self._rows_since_heading = 0
        data += self.row_at(elapsed * self.time_scale, self._start_time + timedelta(seconds=elapsed))
        if self._write(data):
            self.rows_written += 1
            self._rows_since_heading += 1

    def _idle(self, wait_s: float) -> None:
        # Listen for XON/XOFF while waiting for the next row.
        self._read_flow_control(max(0.0, wait_s))

    def _read_flow_control(self, wait_s: float) -> None:
        """Take XON/XOFF bytes from the host for up to ``wait_s``; other bytes are ignored."""
        deadline = self._clock() + wait_s
        while not self._stop.is_set():
            # Short reads, so stop() is prompt even with a 2 s row interval.
            data = self._line.read(min(max(0.0, deadline - self._clock()), 0.05))
            for byte in data:
                if byte == XOFF:
                    with self._lock:
                        self._paused = True
                elif byte == XON:
                    with self._lock:
                        self._paused = False
            if self._clock() >= deadline:
                return


SIMULATOR = NellcorSimulator
