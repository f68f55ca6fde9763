"""A GE Datex-Ohmeda S/5 / CARESCAPE monitor's Computer Interface, through a newborn's stabilisation.

The monitor side of the DRI exchange (see ``vitals.ge_s5`` for the wire format and its sources):
it reads transmission requests from the host on the same descriptor it writes to, honours a
displayed-values request only at its own DRI level (a real monitor ignores other levels, which is
why hosts send the request at several), and then sends one displayed-values record per requested
interval: basic class always (unless denied), ext1–ext3 when asked, ext3 carrying the mean airway
pressure. Interval 0 stops the transmission; −1 asks for one record.

The values follow a delivery-room course: heart rate from about 90 to 150 /min, SpO2 from about
60 % towards 90+ %, etCO2 appearing as the lungs aerate, FiO2 stepped from 21 to 30 %, a
ventilator at PIP 25 → 20 cmH2O, PEEP 5, 40–60 /min and expired tidal volumes of 4–6 mL/kg for a
3 kg baby, a skin temperature, and one NIBP measurement after two minutes. ``time_scale``
shortens both the physiology and the interval, so a test sees minutes in seconds.

``sensor_off()`` takes the pulse-oximeter probe off: SpO2 and pulse rate go out as the "invalid"
marker. ``go_silent()`` makes the monitor stop sending and forget the request (as after a restart
of its interface); ``come_back()`` makes it listen again, so data flows only once the host asks
anew.
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from vitals.ge_s5 import (
    CLASS_BASIC,
    CLASS_BLOCK_LEN,
    CLASS_EXT1,
    CLASS_EXT2,
    CLASS_EXT3,
    DATA_INVALID_LIMIT,
    DRI_LEVEL_2005,
    DRI_MT_PHDB,
    DRI_PH_DISPL,
    DRI_PHDBCL_DENY_BASIC,
    DRI_PHDBCL_REQ_EXT1,
    DRI_PHDBCL_REQ_EXT2,
    DRI_PHDBCL_REQ_EXT3,
    HEADER_LEN,
    MARKERS,
    PHDB_SUBRECORD_LEN,
    checksum,
    frame,
    header_bytes,
    parse_header,
    unescape,
)
from vitals.simulators.device import SimulatedDevice

STATUS_PRESENT: Final = 0x3  # exists | active
HR_SOURCE_ECG: Final = 1 << 3  # ECG heart-rate source code 1 in status bits 3–6
LABEL_SKIN: Final = 7  # temperature site label
AMBIENT_MMHG: Final = 760.0
_MARKER_VALUES: Final = {name: value for value, name in MARKERS.items()}
_REQUEST: Final = struct.Struct("<BhIh")
_I16_MAX: Final = 32767
_EPOCH: Final = datetime(1970, 1, 1)

Value = float | str | None  # a number, a marker name ("not_updated"), or None for "invalid"


def raw_value(value: Value, scale: float) -> int:
    """The int16 a monitor sends for ``value``; None → "invalid", a marker name → that marker."""
    if value is None:
        return _MARKER_VALUES["invalid"]
    if isinstance(value, str):
        return _MARKER_VALUES[value]
    raw = round(value / scale)
    return max(DATA_INVALID_LIMIT, min(_I16_MAX, raw))


def group(status: int, label: int, fields: Sequence[int]) -> bytes:
    """A group: ``status u32 | label u16`` and its int16 fields."""
    return struct.pack(f"<IH{len(fields)}h", status, label, *fields)


@dataclass(frozen=True, slots=True)
class Displayed:
    """What the monitor displays at one moment (None = no value).

    Pressures in mmHg, airway pressures in cmH2O, volumes in mL, MV in L/min, gases in %.
    """

    hr: Value = None
    spo2: Value = None
    pr: Value = None
    nibp: tuple[Value, Value, Value] = (None, None, None)
    temp: Value = None
    etco2_mmhg: Value = None
    fico2_mmhg: Value = None
    rr_co2: Value = None
    eto2: Value = None
    fio2: Value = None
    rr: Value = None
    ppeak: Value = None
    peep: Value = None
    tv_insp: Value = None
    tv_exp: Value = None
    mv: Value = None
    pmean: Value = None


def _co2_percent(mmhg: Value) -> Value:
    return mmhg if mmhg is None or isinstance(mmhg, str) else mmhg / AMBIENT_MMHG * 100.0


def basic_block(d: Displayed) -> bytes:
    """The 270-byte basic class: ECG, SpO2, NIBP, one temperature, CO2, O2 and spirometry present;
    invasive pressures, N2O, agents and the rest absent (status 0), as at a resuscitation table."""
    absent = bytes(14)
    parts = [
        group(STATUS_PRESENT | HR_SOURCE_ECG, 0, [raw_value(d.hr, 1), 0, 0, 0, 0]),  # ecg 0
        absent * 4,  # p1–p4 at 16..71
        group(STATUS_PRESENT, 0, [*(raw_value(v, 0.01) for v in d.nibp), 0]),  # nibp 72
        group(STATUS_PRESENT, LABEL_SKIN, [raw_value(d.temp, 0.01)]),  # t1 86
        bytes(8 * 3),  # t2–t4
        group(STATUS_PRESENT, 0, [raw_value(d.spo2, 0.01), raw_value(d.pr, 1), 0, 0]),  # SpO2 118
        group(  # co2 132: et and fi in % of ambient, ambient pressure in 0.1 mmHg
            STATUS_PRESENT,
            0,
            [
                raw_value(_co2_percent(d.etco2_mmhg), 0.01),
                raw_value(_co2_percent(d.fico2_mmhg), 0.01),
                raw_value(d.rr_co2, 1),
                round(AMBIENT_MMHG * 10),
            ],
        ),
        group(STATUS_PRESENT, 0, [raw_value(d.eto2, 0.01), raw_value(d.fio2, 0.01)]),  # o2 146
        bytes(10 + 12),  # n2o 156, aa 166
        group(  # flow_vol 178
            STATUS_PRESENT,
            0,
            [
                raw_value(d.rr, 1),
                raw_value(d.ppeak, 0.01),
                raw_value(d.peep, 0.01),
                raw_value(None, 0.01),  # pplat
                raw_value(d.tv_insp, 0.1),
                raw_value(d.tv_exp, 0.1),
                raw_value(None, 0.01),  # compliance
                raw_value(d.mv, 0.01),
            ],
        ),
    ]
    block = b"".join(parts)
    return block.ljust(CLASS_BLOCK_LEN, b"\0")


def ext3_block(d: Displayed) -> bytes:
    """The 270-byte ext3 class with only ``flow_vol_group2`` present (pmean in its second field)."""
    flow_vol2 = group(STATUS_PRESENT, 0, [raw_value(None, 0.01), raw_value(d.pmean, 0.01)] + [0] * 18)
    return (bytes(14) + flow_vol2).ljust(CLASS_BLOCK_LEN, b"\0")


def phdb_subrecord(time_s: int, class_id: int, block: bytes) -> bytes:
    """A ``dri_phdb``: time, class block, marker, reserved, ``cl_drilvl_subt`` (class in bits 8–9;
    no decoder we know reads the rest of that word, so it stays 0)."""
    if len(block) != CLASS_BLOCK_LEN:
        raise ValueError("a class block is 270 bytes")
    return struct.pack("<I", time_s & 0xFFFFFFFF) + block + struct.pack("<BBH", 0, 0, class_id << 8)


def phdb_record(
    unix_time: int,
    blocks: Sequence[tuple[int, bytes]],
    *,
    dri_level: int = DRI_LEVEL_2005,
    r_nbr: int = 0,
) -> bytes:
    """An unframed displayed-values record holding one subrecord per (class, block)."""
    subrecords = [(i * PHDB_SUBRECORD_LEN, DRI_PH_DISPL) for i in range(len(blocks))]
    body = b"".join(phdb_subrecord(unix_time, class_id, block) for class_id, block in blocks)
    head = header_bytes(
        r_len=HEADER_LEN + len(body),
        dri_level=dri_level,
        maintype=DRI_MT_PHDB,
        subrecords=subrecords,
        r_nbr=r_nbr,
        r_time=unix_time,
    )
    return head + body


@dataclass(frozen=True, slots=True)
class TransmissionRequest:
    """A PHDB request as the monitor reads it."""

    dri_level: int
    record_type: int
    interval_s: int
    classes: int


def parse_request(record: bytes) -> TransmissionRequest | None:
    """A host's PHDB transmission request (first subrecord of type 0), else None."""
    header = parse_header(record)
    if header is None or header.maintype != DRI_MT_PHDB or len(record) < HEADER_LEN + _REQUEST.size:
        return None
    if not header.subrecords or header.subrecords[0][1] != 0:
        return None
    record_type, interval, classes, _ = _REQUEST.unpack_from(record, HEADER_LEN + header.subrecords[0][0])
    return TransmissionRequest(header.dri_level, record_type, interval, classes)


def _approach(start: float, end: float, t_s: float, rise_s: float) -> float:
    # Exponential approach reaching ~95 % of the way after rise_s.
    if rise_s <= 0:
        return end
    return end - (end - start) * math.exp(-3.0 * max(t_s, 0.0) / rise_s)


@dataclass(frozen=True, slots=True)
class StabilisationCourse:
    """The scripted course in script seconds since the simulator started; noise off when 0."""

    hr_start: float = 90.0
    hr_end: float = 150.0
    hr_rise_s: float = 120.0
    spo2_start: float = 60.0
    spo2_end: float = 93.0
    spo2_rise_s: float = 480.0
    etco2_end_mmhg: float = 40.0
    etco2_rise_s: float = 60.0
    fio2_step_s: float = 90.0  # FiO2 21 % until then, 30 % after
    pip_start: float = 25.0
    pip_end: float = 20.0
    pip_fall_s: float = 180.0
    peep: float = 5.0
    vte_start_ml: float = 12.0  # 4 mL/kg for 3 kg
    vte_end_ml: float = 18.0  # 6 mL/kg
    vte_rise_s: float = 180.0
    leak_fraction: float = 0.1  # VTi exceeds VTe by this share of VTi
    nibp_at_s: float = 120.0
    nibp: tuple[float, float, float] = (62.0, 35.0, 45.0)
    temp_start: float = 36.4
    temp_end: float = 36.9
    noise: float = 1.0

    def at(self, t_s: float, rng: random.Random) -> Displayed:
        def g(sd: float) -> float:
            return rng.gauss(0.0, sd * self.noise) if self.noise else 0.0

        hr = _approach(self.hr_start, self.hr_end, t_s, self.hr_rise_s) + g(3.0)
        spo2 = min(100.0, _approach(self.spo2_start, self.spo2_end, t_s, self.spo2_rise_s) + g(1.0))
        rr = min(60.0, max(40.0, 50.0 + 9.0 * math.sin(t_s / 40.0) + g(1.0)))
        vte = _approach(self.vte_start_ml, self.vte_end_ml, t_s, self.vte_rise_s) + g(0.3)
        vti = vte / (1.0 - self.leak_fraction)
        pip = _approach(self.pip_start, self.pip_end, t_s, self.pip_fall_s) + g(0.3)
        etco2 = _approach(5.0, self.etco2_end_mmhg, t_s, self.etco2_rise_s) + g(0.5)
        fio2 = 21.0 if t_s < self.fio2_step_s else 30.0
        nibp: tuple[Value, Value, Value] = self.nibp if t_s >= self.nibp_at_s else (None, None, None)
        return Displayed(
            hr=round(hr),
            spo2=spo2,
            pr=round(hr + g(2.0)),
            nibp=nibp,
            temp=_approach(self.temp_start, self.temp_end, t_s, 600.0),
            etco2_mmhg=max(0.0, etco2),
            fico2_mmhg=0.0,
            rr_co2=round(rr),
            eto2=fio2 - 4.0,
            fio2=fio2,
            rr=round(rr),
            ppeak=pip,
            peep=self.peep,
            tv_insp=vti,
            tv_exp=vte,
            mv=vte * rr / 1000.0,
            pmean=self.peep + (pip - self.peep) / 3.0,  # I:E 1:2
        )


class GeS5Simulator(SimulatedDevice):
    """The monitor's side of the DRI link, on a pty master fd (or a pyserial port) from a thread.

    ``out`` is a file descriptor read and written with ``os.read``/``os.write``, or an object
    with ``read``/``write``/``in_waiting`` (a pyserial port). ``time_scale`` is script seconds per
    real second; the requested interval is divided by it.

    Threads: ``start``/``stop``, ``sensor_off``/``sensor_on`` and ``go_silent``/``come_back`` are
    called from the owner's thread; the monitor thread reads the shared state under ``_lock``.
    Counters (``records_sent``, ``requests_seen``, ``requests_ignored``, ``write_errors``) are
    written by the monitor thread only.
    """

    def __init__(
        self,
        out: int | Any,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        dri_level: int = DRI_LEVEL_2005,
        course: StabilisationCourse | None = None,
        start_time: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, name="ge-s5", time_scale=time_scale, clock=clock)
        self.dri_level = dri_level
        self.course = course or StabilisationCourse()
        # The monitor's clock as it sends it: seconds since 1970 of its own (zone-less) wall time.
        self._start_unix = int(((start_time or datetime.now()) - _EPOCH).total_seconds())
        self._rng = random.Random(seed)
        self._probe_on = True
        self._silent = False
        self._interval_s = 0.0  # real seconds between records; 0 = not transmitting
        self._classes = 0
        self._next_due = 0.0
        self._single = False
        self._rx = bytearray()
        self.records_sent = 0
        self.requests_seen = 0
        self.requests_ignored = 0

    # -- what the monitor shows ----------------------------------------------------------------

    def displayed_at(self, t_s: float) -> Displayed:
        d = self.course.at(t_s, self._rng)
        with self._lock:
            probe_on = self._probe_on
        if not probe_on:
            d = replace(d, spo2=None, pr=None)
        return d

    def record_at(self, t_s: float, classes: int, r_nbr: int = 0) -> bytes:
        """The unframed record the monitor sends ``t_s`` script seconds in."""
        d = self.displayed_at(t_s)
        blocks: list[tuple[int, bytes]] = []
        if not classes & DRI_PHDBCL_DENY_BASIC:
            blocks.append((CLASS_BASIC, basic_block(d)))
        if classes & DRI_PHDBCL_REQ_EXT1:
            blocks.append((CLASS_EXT1, bytes(CLASS_BLOCK_LEN)))  # groups absent
        if classes & DRI_PHDBCL_REQ_EXT2:
            blocks.append((CLASS_EXT2, bytes(CLASS_BLOCK_LEN)))
        if classes & DRI_PHDBCL_REQ_EXT3:
            blocks.append((CLASS_EXT3, ext3_block(d)))
        unix = self._start_unix + int(t_s / self.time_scale) if self.time_scale else self._start_unix
        return phdb_record(unix, blocks, dri_level=self.dri_level, r_nbr=r_nbr)

    # -- controls ------------------------------------------------------------------------------

    def sensor_off(self) -> None:
        """Take the SpO2 probe off: SpO2 and pulse rate are sent as "invalid"."""
        with self._lock:
            self._probe_on = False

    def sensor_on(self) -> None:
        with self._lock:
            self._probe_on = True

    def go_silent(self) -> None:
        """Stop sending and forget the transmission request; requests are ignored meanwhile."""
        with self._lock:
            self._silent = True
            self._interval_s = 0.0
            self._single = False

    def come_back(self) -> None:
        """Listen again; records follow the next transmission request."""
        with self._lock:
            self._silent = False

    # -- thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        r_nbr = 0
        while not self._stop.is_set():
            now = self._clock()
            with self._lock:
                interval, due, single = self._interval_s, self._next_due, self._single
            if (interval or single) and now >= due:
                record = self.record_at((now - self._t0) * self.time_scale, self._classes, r_nbr)
                r_nbr = (r_nbr + 1) & 0xFF
                if self._write(frame(record)):
                    self.records_sent += 1
                with self._lock:
                    self._single = False
                    # Deadlines from the previous one, so the cadence does not drift.
                    self._next_due = due + interval if interval else 0.0
                    if self._next_due < now:
                        self._next_due = now + interval
                continue
            wait = min(0.05, max(0.0, due - now)) if interval else 0.05
            self._receive(wait)

    def _receive(self, timeout_s: float) -> None:
        data = self._line.read(timeout_s)
        if not data:
            return
        self._rx += data
        *frames, rest = bytes(self._rx).split(b"\x7e")
        self._rx = bytearray(rest[-4096:])
        for body in frames:
            raw = unescape(body) if body else None
            if raw is None or len(raw) < HEADER_LEN + 1 or checksum(raw[:-1]) != raw[-1]:
                continue
            request = parse_request(raw[:-1])
            if request is not None:
                self._handle(request)

    def _handle(self, request: TransmissionRequest) -> None:
        self.requests_seen += 1
        with self._lock:
            if self._silent or request.dri_level != self.dri_level or request.record_type != DRI_PH_DISPL:
                self.requests_ignored += 1
                return
            now = self._clock()
            self._classes = request.classes
            if request.interval_s > 0:
                self._interval_s = request.interval_s / self.time_scale
                self._next_due = now  # the first record goes out at once
            elif request.interval_s == 0:
                self._interval_s = 0.0
            else:
                self._single = True
                self._next_due = now


SIMULATOR = GeS5Simulator
