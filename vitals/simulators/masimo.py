"""A Masimo Radical-7 that streams ASCII 1 lines through a newborn's stabilisation.

The script follows what a delivery-room recording shows: the oximeter is on but no sensor is
attached yet (dashes, EXC "no sensor"), then the sensor goes on and the monitor searches for a
pulse for a few seconds (dashes, EXC "pulse search"), then values appear: SpO2 rising from about
60 % towards 90+ % over minutes, heart rate from about 90 to 150 /min, with small beat-to-beat
noise. ``time_scale`` compresses the script so a test sees minutes of physiology in seconds.

``masimo_line`` formats one line; ``MasimoSimulator`` writes one per interval from a thread to a
file descriptor (a pty master) or anything with ``write(bytes)`` (a pyserial port), and can take
the sensor off and put it back on command.

Sync probe (``probe_every_s``): instead of the script, steady values whose heart rate steps
between ``PROBE_HR`` at every whole multiple of ``probe_every_s`` on the monotonic clock, with the
lines sent on the clock's whole intervals, so the step leaves at the instant the test pattern
flashes and the tone beeps (``capture.test_pattern``, ``capture.audio``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from vitals.simulators.device import PacedOximeter

# EXC bits the simulator uses (meanings as in vitals.masimo.EXC_BITS).
EXC_NO_SENSOR = 0x000001
EXC_PULSE_SEARCH = 0x000008
EXC_SENSOR_OFF = 0x000020
EXC_MASIMO_SET = 0x000800  # the normal state of a good signal

# The sync probe's heart rates: every digit differs, so the overlay's HR changes visibly.
PROBE_HR = (90, 175)


class SupportsWrite(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


def _fmt_int(value: float | None, width: int, dashes: str, signed: bool = False) -> str:
    if value is None:
        return dashes
    n = round(value)
    return f"{n:+0{width + 1}d}" if signed else f"{n:0{width}d}"


def _fmt_fixed(value: float | None, width: int, decimals: int, dashes: str) -> str:
    return dashes if value is None else f"{value:0{width}.{decimals}f}"


def masimo_line(
    t: datetime,
    spo2: float | None,
    bpm: float | None,
    pi: float | None,
    *,
    spco: float | None = None,
    spmet: float | None = None,
    desat: float | None = None,
    pidelta: float | None = None,
    pvi: float | None = None,
    alarm: int = 0,
    exc: int = EXC_MASIMO_SET,
    serial_number: str = "0000070986",
) -> bytes:
    """One Radical-7 ASCII 1 line, CR LF terminated; ``None`` prints the field's dashes."""
    fields = (
        t.strftime("%m/%d/%y %H:%M:%S"),
        f"SN={serial_number}",
        f"SPO2={_fmt_int(spo2, 3, '---')}%",
        f"BPM={_fmt_int(bpm, 3, '---')}",
        f"PI={_fmt_fixed(pi, 5, 2, '--.--')}%",
        f"SPCO={_fmt_fixed(spco, 4, 1, '--.-')}%",
        f"SPMET={_fmt_fixed(spmet, 4, 1, '--.-')}%",
        f"DESAT={_fmt_int(desat, 2, '--')}",
        f"PIDELTA={_fmt_int(pidelta, 2, '+--', signed=True)}",
        f"PVI={_fmt_int(pvi, 3, '---')}",
        f"ALARM={alarm & 0xFFFF:04X}",
        f"EXC={exc & 0xFFFFFF:06X}",
    )
    return (" ".join(fields) + "\r\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class Reading:
    """What the oximeter shows at one moment; ``None`` is shown as dashes."""

    spo2: float | None
    bpm: float | None
    pi: float | None
    exc: int


def _approach(start: float, end: float, t_s: float, rise_s: float) -> float:
    # Exponential approach reaching ~95 % of the way after rise_s, the shape of postnatal SpO2
    # and heart-rate curves.
    if rise_s <= 0:
        return end
    return end - (end - start) * math.exp(-3.0 * max(t_s, 0.0) / rise_s)


@dataclass(frozen=True, slots=True)
class StabilisationScript:
    """The scripted course, in script seconds since the simulator started."""

    no_sensor_s: float = 20.0
    acquire_s: float = 8.0  # pulse search after the sensor goes on
    spo2_start: float = 60.0
    spo2_end: float = 93.0
    spo2_rise_s: float = 480.0
    bpm_start: float = 90.0
    bpm_end: float = 150.0
    bpm_rise_s: float = 120.0
    pi_start: float = 0.6
    pi_end: float = 2.5
    spo2_noise: float = 1.0
    bpm_noise: float = 3.0
    pi_noise: float = 0.08

    def course(self, t_s: float) -> tuple[float, float, float]:
        """Noise-free (SpO2, pulse rate, PI) ``t_s`` seconds in; values start at acquisition."""
        since = t_s - self.no_sensor_s - self.acquire_s
        return (
            _approach(self.spo2_start, self.spo2_end, since, self.spo2_rise_s),
            _approach(self.bpm_start, self.bpm_end, since, self.bpm_rise_s),
            _approach(self.pi_start, self.pi_end, since, self.bpm_rise_s),
        )


class MasimoSimulator(PacedOximeter):
    """Writes ASCII 1 lines to ``out`` every ``interval_s`` from its own thread.

    ``out`` is a file descriptor (written with ``os.write``; a pty master) or an object with
    ``write(bytes)`` (a pyserial port). ``time_scale`` is script seconds per real second.

    Threads: ``start``/``stop`` and ``sensor_off``/``sensor_on`` are called from the owner's
    thread; the writer thread reads the sensor state under ``_lock``. Writes that cannot go out
    within a second (nobody reading a full pty) or fail are counted in ``write_errors`` and the
    line is dropped, as a monitor's UART would.
    """

    def __init__(
        self,
        out: int | SupportsWrite,
        *,
        interval_s: float = 1.0,
        time_scale: float = 1.0,
        script: StabilisationScript | None = None,
        start_time: datetime | None = None,
        seed: int = 0,
        serial_number: str = "0000070986",
        clock: Callable[[], float] = time.monotonic,
        probe_every_s: float | None = None,
    ) -> None:
        super().__init__(out, name="masimo", interval_s=interval_s, time_scale=time_scale, clock=clock)
        if probe_every_s is not None and (
            probe_every_s < interval_s or round(probe_every_s / interval_s, 9) % 1
        ):
            raise ValueError("probe_every_s must be a whole multiple of the line interval")
        self.probe_every_s = probe_every_s
        self.script = script or StabilisationScript()
        self.serial_number = serial_number
        self._start_time = start_time or datetime.now().replace(microsecond=0)
        self._rng = random.Random(seed)
        self._sensor_off_exc = EXC_SENSOR_OFF
        self.lines_written = 0

    # -- script ------------------------------------------------------------------------------

    def reading_at(self, t_s: float) -> Reading:
        """What the monitor shows ``t_s`` script seconds in, given the sensor state, with noise."""
        with self._lock:
            attached, off_exc, attached_at = (
                self._sensor_attached,
                self._sensor_off_exc,
                self._attached_at_s,
            )
        sc = self.script
        if not attached:
            return Reading(None, None, None, off_exc)
        if t_s < sc.no_sensor_s:
            return Reading(None, None, None, EXC_NO_SENSOR)
        searching_until = max(sc.no_sensor_s, attached_at) + sc.acquire_s
        if t_s < searching_until:
            return Reading(None, None, None, EXC_PULSE_SEARCH)
        spo2, bpm, pi = sc.course(t_s)
        g = self._rng.gauss
        return Reading(
            spo2=min(100.0, max(0.0, spo2 + g(0.0, sc.spo2_noise))),
            bpm=max(0.0, bpm + g(0.0, sc.bpm_noise)),
            pi=min(20.0, max(0.02, pi + g(0.0, sc.pi_noise))),
            exc=EXC_MASIMO_SET,
        )

    def line_at(self, t_s: float, when: datetime | None = None) -> bytes:
        """The line the monitor sends ``t_s`` script seconds in, stamped ``when`` (its clock)."""
        r = self.reading_at(t_s)
        stamp = when or self._start_time + timedelta(seconds=t_s)
        return masimo_line(stamp, r.spo2, r.bpm, r.pi, exc=r.exc, serial_number=self.serial_number)

    # -- sensor ------------------------------------------------------------------------------

    def sensor_off(self, *, unplugged: bool = False) -> None:
        """Take the sensor off the baby (EXC "sensor off") or unplug it (EXC "no sensor")."""
        with self._lock:
            self._sensor_off_exc = EXC_NO_SENSOR if unplugged else EXC_SENSOR_OFF
        super().sensor_off()

    # -- thread ------------------------------------------------------------------------------

    def probe_hr_at(self, t_ns: int) -> int:
        """The probe's heart rate at monotonic time ``t_ns``: it steps at every mark."""
        assert self.probe_every_s is not None
        return PROBE_HR[(t_ns // round(self.probe_every_s * 1e9)) % 2]

    def _run(self) -> None:
        if self.probe_every_s is None:
            super()._run()
            return
        # Lines on the monotonic clock's whole intervals, so each mark has a line leaving at it.
        interval_ns = round(self.interval_s * 1e9)
        due = -(-time.monotonic_ns() // interval_ns) * interval_ns
        while not self._stop.is_set():
            while (left := due - time.monotonic_ns()) > 0:
                if self._stop.wait(left / 1e9):
                    return
            elapsed = self._clock() - self._t0
            stamp = self._start_time + timedelta(seconds=elapsed)
            line = masimo_line(
                stamp, 95, self.probe_hr_at(due), 2.0, serial_number=self.serial_number
            )
            if self._write(line):
                self.lines_written += 1
            due += interval_ns

    def _emit(self) -> None:
        # Real time drives the monitor clock; scaled time drives the physiology.
        elapsed = self._clock() - self._t0
        line = self.line_at(elapsed * self.time_scale, self._start_time + timedelta(seconds=elapsed))
        if self._write(line):
            self.lines_written += 1


SIMULATOR = MasimoSimulator
