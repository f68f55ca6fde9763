"""A Dräger ventilator on Medibus, ventilating a newborn.

The device side of the conversation (wire format and sources in ``vitals.medibus``): at start it
sends its own ICC and, every ``nop_interval_s``, a NOP, and it counts the host's answers; it
answers the host's ICC, NOP, device-identification and stop commands, and, once the host has
initialised the session, the request for measured data in codepage 1 (and codepage 2, with VTe
and VTi). Other commands are echoed. A command with a bad checksum gets the "corrupt" response.

The values follow a ventilation course for a 3 kg baby: PIP 25 falling to 20 mbar, PEEP 5,
FiO2 21 % stepped to 30 %, rate 40–60 /min, expired tidal volume rising from 4 to 6 mL/kg, a mean
airway pressure from those, a small leak. ``time_scale`` compresses the course.

``sensor_off()`` disconnects the patient: the airway measurements (pressures, volumes, rate,
leak) go out as dashes, while the inspired O2, measured inside the ventilator, stays.
``go_silent()`` makes the device stop answering and forget the session (as after a restart);
``come_back()`` makes it answer again, and data flows once the host has sent ICC anew.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from vitals.medibus import (
    CORRUPT,
    CR,
    ESC,
    ICC,
    NOP,
    REQ_DEVICE_ID,
    REQ_MEASURED_CP1,
    REQ_MEASURED_CP2,
    SOH,
    STOP_COMM,
    command,
    response,
)
from vitals.simulators.device import SimulatedDevice

#: What the ventilator says when asked who it is: id (made up), 'name', revision, in Medibus.java's
#: layout.
VENTILATOR_ID: Final = b"8402'Babylog'" + b"04.03".ljust(11)
_MAX_RX: Final = 4096

Value = float | None  # None goes out as dashes


def value_field(value: Value, decimals: int) -> bytes:
    """A 4-character right-aligned value; dashes for None; fewer decimals when it does not fit."""
    if value is None:
        return b"----"
    for places in range(decimals, -1, -1):
        text = f"{value:4.{places}f}"
        if len(text) <= 4:
            return text.encode("ascii")
    return b"9999" if value > 0 else b"-999"


def measured_data(values: Mapping[int, tuple[Value, int]]) -> bytes:
    """The data part of a measured-data response: code (2 hex digits) + 4-character value each."""
    return b"".join(b"%02X" % code + value_field(v, places) for code, (v, places) in values.items())


@dataclass(frozen=True, slots=True)
class Ventilation:
    """What the ventilator measures at one moment (None = not measurable)."""

    fio2: Value
    pip: Value
    peep: Value
    mean: Value
    rr: Value
    vte: Value
    vti: Value
    mv: Value
    leak_pct: Value

    def cp1(self) -> dict[int, tuple[Value, int]]:
        """Codepage-1 codes → (value, decimals), in the order the device lists them."""
        return {
            0xF0: (self.fio2, 0),
            0x7D: (self.pip, 1),
            0x78: (self.peep, 1),
            0x73: (self.mean, 1),
            0xD6: (self.rr, 0),
            0x88: (self.vte, 1),
            0xB9: (self.mv, 2),
            0xB3: (self.leak_pct, 0),
        }

    def cp2(self) -> dict[int, tuple[Value, int]]:
        return {0x21: (self.vte, 1), 0x22: (self.vti, 1)}


def _approach(start: float, end: float, t_s: float, rise_s: float) -> float:
    # Exponential approach reaching ~95 % of the way after rise_s.
    if rise_s <= 0:
        return end
    return end - (end - start) * math.exp(-3.0 * max(t_s, 0.0) / rise_s)


@dataclass(frozen=True, slots=True)
class VentilationCourse:
    """The scripted course in script seconds since the simulator started; noise off when 0."""

    weight_kg: float = 3.0
    vt_start_ml_kg: float = 4.0
    vt_end_ml_kg: float = 6.0
    vt_rise_s: float = 180.0
    pip_start: float = 25.0
    pip_end: float = 20.0
    pip_fall_s: float = 180.0
    peep: float = 5.0
    fio2_step_s: float = 60.0  # 21 % until then, 30 % after
    leak_fraction: float = 0.1  # (VTi − VTe) / VTi
    noise: float = 1.0

    def at(self, t_s: float, rng: random.Random) -> Ventilation:
        def g(sd: float) -> float:
            return rng.gauss(0.0, sd * self.noise) if self.noise else 0.0

        vte = self.weight_kg * _approach(self.vt_start_ml_kg, self.vt_end_ml_kg, t_s, self.vt_rise_s)
        vte = max(0.0, vte + g(0.3))
        vti = vte / (1.0 - self.leak_fraction)
        pip = _approach(self.pip_start, self.pip_end, t_s, self.pip_fall_s) + g(0.3)
        rr = min(60.0, max(40.0, round(50.0 + 9.0 * math.sin(t_s / 40.0) + g(1.0))))
        return Ventilation(
            fio2=21.0 if t_s < self.fio2_step_s else 30.0,
            pip=pip,
            peep=self.peep,
            mean=self.peep + (pip - self.peep) / 3.0,  # I:E 1:2
            rr=rr,
            vte=vte,
            vti=vti,
            mv=vte * rr / 1000.0,
            leak_pct=round(100.0 * self.leak_fraction),
        )


class MedibusSimulator(SimulatedDevice):
    """The ventilator's side of a Medibus link, on a pty master fd (or a pyserial port).

    ``out`` is a file descriptor read and written with ``os.read``/``os.write``, or an object
    with ``read``/``write``/``in_waiting`` (a pyserial port). ``time_scale`` is script seconds per
    real second.

    Threads: ``start``/``stop``, ``sensor_off``/``sensor_on`` and ``go_silent``/``come_back`` are
    called from the owner's thread; the device thread reads the shared state under ``_lock``.
    Counters (``commands_seen``, ``data_replies``, ``host_answers``, ``corrupt_seen``,
    ``write_errors``) are written by the device thread only.
    """

    def __init__(
        self,
        out: int | Any,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        course: VentilationCourse | None = None,
        nop_interval_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, name="medibus", time_scale=time_scale, clock=clock)
        self.course = course or VentilationCourse()
        self.nop_interval_s = nop_interval_s
        self._rng = random.Random(seed)
        self._connected = True
        self._silent = False
        self._session = False  # the host has sent ICC
        self._rx = bytearray()
        self.commands_seen = 0
        self.data_replies = 0
        self.host_answers = 0
        self.corrupt_seen = 0

    # -- what the ventilator measures ----------------------------------------------------------

    def ventilation_at(self, t_s: float) -> Ventilation:
        v = self.course.at(t_s, self._rng)
        with self._lock:
            connected = self._connected
        if not connected:
            v = Ventilation(v.fio2, None, None, None, None, None, None, None, None)
        return v

    def reply_to(self, cmd: int, t_s: float) -> bytes | None:
        """The response to the host's command ``cmd`` at script time ``t_s``; None: no answer."""
        with self._lock:
            if self._silent:
                return None
            if cmd == ICC:
                self._session = True
            elif cmd == STOP_COMM:
                self._session = False
            session = self._session
        if cmd in (REQ_MEASURED_CP1, REQ_MEASURED_CP2):
            if not session:
                return None  # not initialised: the request is not answered
            v = self.ventilation_at(t_s)
            self.data_replies += 1
            return response(cmd, measured_data(v.cp1() if cmd == REQ_MEASURED_CP1 else v.cp2()))
        if cmd == REQ_DEVICE_ID:
            return response(cmd, VENTILATOR_ID)
        return response(cmd)

    # -- controls ------------------------------------------------------------------------------

    def sensor_off(self) -> None:
        """Disconnect the patient: airway values become dashes."""
        with self._lock:
            self._connected = False

    def sensor_on(self) -> None:
        with self._lock:
            self._connected = True

    def go_silent(self) -> None:
        """Stop answering and sending; the session is forgotten."""
        with self._lock:
            self._silent = True
            self._session = False

    def come_back(self) -> None:
        """Answer again; measured data only after the host's next ICC."""
        with self._lock:
            self._silent = False

    # -- thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        self._write(command(ICC))  # the device opens its side of the session
        next_nop = self._clock() + self.nop_interval_s
        while not self._stop.is_set():
            now = self._clock()
            if now >= next_nop:
                with self._lock:
                    silent = self._silent
                if not silent:
                    self._write(command(NOP))
                next_nop = now + self.nop_interval_s
            data = self._line.read(min(0.05, max(0.0, next_nop - now)))
            if data:
                self._receive(data)

    def _receive(self, data: bytes) -> None:
        for byte in data:
            if byte in (SOH, ESC):
                self._rx = bytearray((byte,))
            elif byte == CR:
                if self._rx:
                    self._frame(bytes(self._rx))
                self._rx.clear()
            elif self._rx and len(self._rx) < _MAX_RX:
                self._rx.append(byte)

    def _frame(self, frame: bytes) -> None:
        kind, payload, cs = frame[0], frame[1:-2], frame[-2:]
        if not payload or cs != b"%02X" % ((kind + sum(payload)) & 0xFF):
            self.corrupt_seen += 1
            if kind == ESC:
                self._write(response(CORRUPT))
            return
        if kind == SOH:
            self.host_answers += 1  # the host answered our ICC or NOP
            return
        self.commands_seen += 1
        reply = self.reply_to(payload[0], self.script_time())
        if reply is not None:
            self._write(reply)


SIMULATOR = MedibusSimulator
