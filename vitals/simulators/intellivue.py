"""An IntelliVue MP-series monitor's Data Export port, answering a client through a newborn's course.

Like the monitor, it says nothing until asked: on an association request (AARQ) it accepts (or
refuses, the first ``refusals`` times) and sends its MDS Create Event Report; once the client's
MDS Create Result echoes the report's invoke id it answers polls. An extended poll of numerics
gets a reply at once and then one every ``reply_interval_s`` (the 1 s numerics period of
POLL_EXT_PERIOD_NU_1SEC) until the poll period the client asked for runs out, so a client that does
not re-issue its poll stops getting data, as from a real monitor. A single poll (the keep-alive)
gets one reply. A client silent for ``host_timeout_s`` is aborted (``0x19``): issue #128 of
``mdpnp/mdpnp`` reports the monitor shutting the export down without a "life tick"; the exact
timeout is not public, so it is a parameter here. ``stop()`` makes it mute; ``start()`` again
resumes with the association forgotten, as after the interface restarted.

The replies carry HR (ECG), SpO2 and pulse rate from the pleth, impedance RR, NBP as a compound
of systolic/diastolic/mean re-measured every few minutes, and FiO2, PEEP and PIP, following a
stabilisation: SpO2 from about 60 % towards 90+ % over minutes, heart rate from about 90 to
150 /min. ``time_scale`` compresses the course so a test sees minutes of physiology in seconds.
With ``external_ventilator`` FiO2, PEEP and PIP arrive as NOM_METRIC_NOS named only by their
label strings, as a ventilator behind IntelliBridge/VueLink does. ``sensor_off()`` makes SpO2 and
pleth pulse NaN with the UNAVAILABLE state. The first reply of each poll carries each object's
label and label string, later ones only its values.

Layouts are those of ``vitals.intellivue`` (PROTOCOLS.md §2.3–§2.7); the accept's presentation
header is OpenICE's ``AssociationAcceptImpl.PRESENTATION_HEADER`` and the abort VSCaptureMP's
``assoc_abort_resp_msg`` (``Class2.cs``). Neither was compared with a capture from a monitor.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from vitals.intellivue import (
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_ID_LABEL,
    NOM_ATTR_ID_LABEL_STRING,
    NOM_ATTR_NU_CMPD_VAL_OBS,
    NOM_ATTR_NU_VAL_OBS,
    NOM_ATTR_TIME_ABS,
    NOM_ATTR_TIME_PD_POLL,
    NOM_ATTR_TIME_REL,
    NOM_METRIC_NOS,
    NOM_MOC_VMO_METRIC_NU,
    NOM_MOC_VMS_MDS,
    NOM_NOTI_MDS_CREAT,
    NOM_PART_OBJ,
    POLL_EXT_ENUM,
    POLL_EXT_PERIOD_NU_1SEC,
    RELEASE_RESPONSE,
    ROIV,
    RORLS,
    RORS,
    SP_PDU,
    SPDU_ABORT,
    SPDU_ACCEPT,
    SPDU_CONNECT,
    SPDU_FINISH,
    SYST_SERVER,
    TICKS_PER_SECOND,
    Truncated,
    attribute_list,
    ber_length,
    encode_float,
    encode_label_string,
    poll_profile,
    remote_operation,
    session_message,
    u16,
    u32,
    user_info,
)
from vitals.intellivue_framing import FrameDecoder, encode_frame
from vitals.simulators.device import SimulatedDevice

STATE_UNAVAILABLE: Final = 0x2000
STATE_DEMO_DATA: Final = 0x0400
FLOAT_NAN_RAW: Final = 0x007FFFFF

_MDS: Final = u16(NOM_MOC_VMS_MDS) + u16(0) + u16(0)
_SESSION_DATA: Final = bytes.fromhex("0508130100160102800014020002")
_ACCEPT_PRESENTATION_HEADER: Final = bytes.fromhex(
    "3180a0808001010000a280a003000001a58030808001008102510100003080800100810c2a8648ce14020100"
    "000002010000000061803080020101a0806180a180060c2a8648ce14020100000003010000a203020100a305"
    "a103020100be80288002010281"
)
_ABORT: Final = bytes.fromhex(
    "192e110103c129a080a0803080020101060251010000000061803080020101a080648080010100000000000000000000"
)
_REFUSE: Final = bytes((0x0C, 0x03, 0x32, 0x01, 0x00))  # refuse, session parameter 0x32 = 0


def accept_message() -> bytes:
    """The association response (AARE) of a server offering 1 s numerics."""
    info = user_info(
        SYST_SERVER,
        poll_profile(
            min_poll_period=0x3E8,
            max_mtu_rx=0x3E8,
            max_mtu_tx=0x3E8,
            ext_options=POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_ENUM,
        ),
    )
    presentation = _ACCEPT_PRESENTATION_HEADER + ber_length(len(info)) + info + bytes(16)
    return session_message(SPDU_ACCEPT, _SESSION_DATA, presentation)


def refuse_message() -> bytes:
    return _REFUSE


def abort_message() -> bytes:
    return _ABORT


def bcd_time(t: datetime | None) -> bytes:
    """AbsoluteTime in BCD (``CC YY MM DD hh mm ss ff``); all 0xFF when the monitor has none."""
    if t is None:
        return b"\xff" * 8
    fields = (
        t.year // 100,
        t.year % 100,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.microsecond // 10_000,
    )
    return bytes((v // 10) << 4 | v % 10 for v in fields)


def mds_create_event(invoke_id: int, event_time: int, abs_time: datetime | None, rel_time: int) -> bytes:
    """The MDS Create Event Report with the absolute/relative time pair clients take as time base."""
    attributes = attribute_list(
        (NOM_ATTR_TIME_ABS, bcd_time(abs_time)),
        (NOM_ATTR_TIME_REL, u32(rel_time)),
    )
    info = _MDS + attributes
    argument = _MDS + u32(event_time) + u16(NOM_NOTI_MDS_CREAT) + u16(len(info)) + info
    roiv = u16(invoke_id) + u16(CMD_CONFIRMED_EVENT_REPORT) + u16(len(argument)) + argument
    return SP_PDU + u16(ROIV) + u16(len(roiv)) + roiv


def numeric_value(physio_id: int, state: int, unit_code: int, raw_float: int) -> bytes:
    """NuObsValue: physio id, MeasurementState, unit code, FLOAT."""
    return u16(physio_id) + u16(state) + u16(unit_code) + u32(raw_float)


def compound_value(*values: bytes) -> bytes:
    body = b"".join(values)
    return u16(len(values)) + u16(len(body)) + body


def observation(handle: int, *avas: tuple[int, bytes]) -> bytes:
    """ObservationPoll: object handle and its AttributeList."""
    return u16(handle) + attribute_list(*avas)


def poll_reply(
    invoke_id: int,
    observations: list[bytes],
    *,
    rel_time: int,
    abs_time: datetime | None = None,
    extended: bool = True,
    poll_number: int = 1,
    sequence_no: int = 0,
    polled_code: int = NOM_MOC_VMO_METRIC_NU,
    linked: tuple[int, int] | None = None,
    context_id: int = 0,
) -> bytes:
    """A poll result (RORS, or RORLS with ``linked=(state, count)``) with one context's objects."""
    body = b"".join(observations)
    single_context = u16(context_id) + u16(len(observations)) + u16(len(body)) + body
    poll_info = (u16(1) + u16(len(single_context)) + single_context) if observations else u16(0) + u16(0)
    reply = (
        u16(poll_number)
        + (u16(sequence_no) if extended else b"")
        + u32(rel_time)
        + bcd_time(abs_time)
        + u16(NOM_PART_OBJ)
        + u16(polled_code)
        + u16(0)
        + poll_info
    )
    action = NOM_ACT_POLL_MDIB_DATA_EXT if extended else NOM_ACT_POLL_MDIB_DATA
    result = _MDS + u16(action) + u16(len(reply)) + reply
    rors = u16(invoke_id) + u16(CMD_CONFIRMED_ACTION) + u16(len(result)) + result
    if linked is None:
        return SP_PDU + u16(RORS) + u16(len(rors)) + rors
    rorls = bytes(linked) + rors
    return SP_PDU + u16(RORLS) + u16(len(rorls)) + rorls


# -- the course ------------------------------------------------------------------------------------


def _approach(start: float, end: float, t_s: float, rise_s: float) -> float:
    # Exponential approach, ~95 % of the way after rise_s: the shape of postnatal SpO2 and HR.
    if rise_s <= 0:
        return end
    return end - (end - start) * math.exp(-3.0 * max(t_s, 0.0) / rise_s)


@dataclass(frozen=True, slots=True)
class NeonatalCourse:
    """The scripted stabilisation, in script seconds since the simulator started."""

    spo2_acquire_s: float = 15.0  # oximeter probe being applied: SpO2 and pleth unavailable
    spo2_start: float = 60.0
    spo2_end: float = 93.0
    spo2_rise_s: float = 480.0
    hr_start: float = 90.0
    hr_end: float = 150.0
    hr_rise_s: float = 120.0
    rr_start: float = 30.0
    rr_end: float = 50.0
    rr_rise_s: float = 300.0
    fio2_start: float = 30.0  # titrated up while SpO2 is low, weaned once it rises
    fio2_peak: float = 40.0
    fio2_peak_s: float = 180.0
    fio2_end: float = 25.0
    peep: float = 5.0
    pip_start: float = 25.0
    pip_end: float = 20.0
    pip_rise_s: float = 600.0
    nbp_first_s: float = 60.0
    nbp_interval_s: float = 180.0
    noise: float = 1.0  # scales every parameter's beat-to-beat noise; 0 for exact values

    def fio2(self, t_s: float) -> float:
        if t_s <= self.fio2_peak_s:
            return self.fio2_start + (self.fio2_peak - self.fio2_start) * max(t_s, 0.0) / self.fio2_peak_s
        return _approach(self.fio2_peak, self.fio2_end, t_s - self.fio2_peak_s, 600.0)

    def nbp(self, t_s: float) -> tuple[float, float, float] | None:
        """The last NBP measurement (systolic, diastolic, mean) at ``t_s``; None before the first."""
        if t_s < self.nbp_first_s:
            return None
        measured = self.nbp_first_s + (t_s - self.nbp_first_s) // self.nbp_interval_s * self.nbp_interval_s
        systolic = _approach(55.0, 65.0, measured, 600.0)
        diastolic = _approach(30.0, 38.0, measured, 600.0)
        return systolic, diastolic, (systolic + 2 * diastolic) / 3


@dataclass(frozen=True, slots=True)
class Reading:
    """What the monitor shows at one moment; ``None`` is sent as NaN with ``pleth_state``."""

    hr: float
    spo2: float | None
    pulse: float | None
    rr: float
    nbp: tuple[float, float, float] | None
    fio2: float
    peep: float
    pip: float
    pleth_state: int = 0


@dataclass(frozen=True, slots=True)
class _Numeric:
    handle: int
    physio_id: int
    unit_code: int
    label: str
    decimals: int


_HR: Final = _Numeric(0x0101, 0x4182, 0x0AA0, "HR", 0)
_SPO2: Final = _Numeric(0x0102, 0x4BB8, 0x0220, "SpO\u2082", 0)
_PULSE: Final = _Numeric(0x0103, 0x4822, 0x0AA0, "Pulse", 0)
_RR: Final = _Numeric(0x0104, 0x500A, 0x0AE0, "RR", 0)
_NBP_HANDLE: Final = 0x0105
_NBP_PARTS: Final = (0x4A05, 0x4A06, 0x4A07)
_NBP_COMPOUND: Final = 0x4A04
_MMHG: Final = 0x0F20
_FIO2: Final = _Numeric(0x0106, 0x5284, 0x0220, "FiO2", 0)
_PEEP: Final = _Numeric(0x0107, 0x51A8, 0x0F40, "PEEP", 1)
_PIP: Final = _Numeric(0x0108, 0x5109, 0x0F40, "PIP", 1)
_VENTILATOR: Final = (_FIO2, _PEEP, _PIP)


class SupportsReadWrite(Protocol):
    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...


class IntelliVueSimulator(SimulatedDevice):
    """The monitor side of Data Export on ``port``: a pty master fd, or a pyserial-like port.

    ``stop()`` makes it stop answering (nothing more is written); ``start()`` resumes it
    unassociated.

    Threads: ``start``/``stop``/``sensor_off``/``sensor_on`` belong to the owner's thread; the
    simulator's thread reads requests and writes replies, and reads the sensor state under
    ``_lock``. Counters (``aarqs``, ``extended_polls``, ``single_polls``, ``replies``,
    ``associations``, ``aborts_sent``) are written by that thread only.
    """

    def __init__(
        self,
        port: int | SupportsReadWrite,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        course: NeonatalCourse | None = None,
        start_time: datetime | None = None,
        reply_interval_s: float = 1.0,
        refusals: int = 0,
        host_timeout_s: float | None = 60.0,
        external_ventilator: bool = False,
        linked_results: bool = False,
        demo: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(port, name="intellivue", time_scale=time_scale, clock=clock)
        self.course = course or NeonatalCourse()
        self.reply_interval_s = reply_interval_s
        self.host_timeout_s = host_timeout_s
        self.external_ventilator = external_ventilator
        self.linked_results = linked_results
        self.demo = demo
        self._refusals_left = refusals
        self._start_time = start_time or datetime.now().replace(microsecond=0)
        self._rng = random.Random(seed)
        self._rel_offset = self._rng.randrange(1 << 31)  # the monitor's counter runs since its boot
        self._sensor_on = True
        self._attached_at_s: float | None = None  # script time the probe was last put back on
        self._invoke_ids = 0
        self._decoder = FrameDecoder()
        self._forget_association()
        self.aarqs = 0
        self.extended_polls = 0
        self.single_polls = 0
        self.replies = 0
        self.associations = 0
        self.aborts_sent = 0

    # -- the course ------------------------------------------------------------------------------

    def reading_at(self, t_s: float) -> Reading:
        """What the monitor shows ``t_s`` script seconds in, given the sensor, with noise."""
        with self._lock:
            sensor_on, attached_at = self._sensor_on, self._attached_at_s
        c = self.course
        g = self._rng.gauss
        n = c.noise
        hr = _approach(c.hr_start, c.hr_end, t_s, c.hr_rise_s) + g(0.0, 3.0 * n)
        spo2: float | None = None
        pulse: float | None = None
        pleth_state = STATE_UNAVAILABLE
        acquired_at = c.spo2_acquire_s if attached_at is None else attached_at + c.spo2_acquire_s
        if sensor_on and t_s >= acquired_at:
            since = t_s - c.spo2_acquire_s
            spo2 = min(100.0, max(0.0, _approach(c.spo2_start, c.spo2_end, since, c.spo2_rise_s) + g(0.0, n)))
            pulse = hr + g(0.0, 2.0 * n)
            pleth_state = 0
        return Reading(
            hr=max(0.0, hr),
            spo2=spo2,
            pulse=None if pulse is None else max(0.0, pulse),
            rr=max(0.0, _approach(c.rr_start, c.rr_end, t_s, c.rr_rise_s) + g(0.0, 2.0 * n)),
            nbp=c.nbp(t_s),
            fio2=round(c.fio2(t_s)),
            peep=c.peep,
            pip=_approach(c.pip_start, c.pip_end, t_s, c.pip_rise_s) + g(0.0, 0.5 * n),
            pleth_state=pleth_state,
        )

    def observations_at(self, t_s: float, *, with_labels: bool) -> list[bytes]:
        """The ObservationPolls of one numerics reply ``t_s`` script seconds in."""
        r = self.reading_at(t_s)
        demo = STATE_DEMO_DATA if self.demo else 0
        values: list[tuple[_Numeric, float | None, int]] = [
            (_HR, r.hr, 0),
            (_SPO2, r.spo2, r.pleth_state),
            (_PULSE, r.pulse, r.pleth_state),
            (_RR, r.rr, 0),
            (_FIO2, r.fio2, 0),
            (_PEEP, r.peep, 0),
            (_PIP, r.pip, 0),
        ]
        out = []
        for spec, value, state in values:
            external = self.external_ventilator and spec in _VENTILATOR
            physio = NOM_METRIC_NOS if external else spec.physio_id
            raw = FLOAT_NAN_RAW if value is None else encode_float(value, spec.decimals)
            avas = [(NOM_ATTR_NU_VAL_OBS, numeric_value(physio, state | demo, spec.unit_code, raw))]
            if with_labels:
                avas.insert(0, (NOM_ATTR_ID_LABEL_STRING, encode_label_string(spec.label)))
                if not external:
                    avas.insert(0, (NOM_ATTR_ID_LABEL, u32(2 << 16 | spec.physio_id)))
            out.append(observation(spec.handle, *avas))
        parts = r.nbp or (None, None, None)
        compound = compound_value(
            *(
                numeric_value(p, demo, _MMHG, FLOAT_NAN_RAW if v is None else encode_float(v))
                for p, v in zip(_NBP_PARTS, parts, strict=True)
            )
        )
        nbp_avas = [(NOM_ATTR_NU_CMPD_VAL_OBS, compound)]
        if with_labels:
            nbp_avas.insert(0, (NOM_ATTR_ID_LABEL_STRING, encode_label_string("NBP")))
            nbp_avas.insert(0, (NOM_ATTR_ID_LABEL, u32(2 << 16 | _NBP_COMPOUND)))
        out.insert(4, observation(_NBP_HANDLE, *nbp_avas))
        return out

    # -- sensor ------------------------------------------------------------------------------------

    def sensor_off(self) -> None:
        """Take the oximeter probe off: SpO2 and pleth pulse become NaN, state UNAVAILABLE."""
        with self._lock:
            self._sensor_on = False

    def sensor_on(self) -> None:
        """Put it back: values return after the acquisition time."""
        now = self.script_time()
        with self._lock:
            if not self._sensor_on:
                self._sensor_on = True
                self._attached_at_s = now

    # -- thread ------------------------------------------------------------------------------------

    @property
    def associated(self) -> bool:
        return self._phase == "associated"

    def _starting(self) -> None:
        # Only the interface restarts: the monitor's clock runs on, the association is forgotten.
        self._forget_association()

    def _forget_association(self) -> None:
        self._phase = "idle"  # idle, awaiting_result, associated
        self._create_invoke_id = 0
        self._poll: tuple[int, int] | None = None  # (invoke id, poll number) of the extended poll
        self._poll_until = 0.0
        self._next_reply = 0.0
        self._sequence = 0
        self._last_host_rx = self._clock()

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self._line.read(0.02)
            if data:
                for frame in self._decoder.feed(data, 0):
                    self._on_message(frame.user_data)
            if self._phase == "associated":
                self._tick()

    def _tick(self) -> None:
        now = self._clock()
        if self.host_timeout_s is not None and now - self._last_host_rx > self.host_timeout_s:
            self._send(abort_message())
            self.aborts_sent += 1
            self._forget_association()
            return
        if self._poll is not None and now < self._poll_until and now >= self._next_reply:
            self._send_numerics()
            # Keep the cadence; after a stall, start again from now rather than catch up.
            self._next_reply = max(self._next_reply + self.reply_interval_s, now)

    def _on_message(self, data: bytes) -> None:
        self._last_host_rx = self._clock()
        kind = data[0] if data else -1
        if kind == SPDU_CONNECT:
            self.aarqs += 1
            if self._refusals_left > 0:
                self._refusals_left -= 1
                self._send(refuse_message())
                return
            self._forget_association()
            self._send(accept_message())
            self._invoke_ids = (self._invoke_ids + 1) & 0xFFFF
            self._create_invoke_id = self._invoke_ids
            self._send(
                mds_create_event(self._create_invoke_id, self._rel_time(), self._abs_time(), self._rel_time())
            )
            self._phase = "awaiting_result"
        elif kind == SPDU_FINISH:
            self._send(RELEASE_RESPONSE)
            self._forget_association()
        elif kind == SPDU_ABORT:
            self._forget_association()
        elif kind == SP_PDU[0]:
            with contextlib.suppress(Truncated):  # a monitor ignores what it cannot read
                self._on_data_export(data)

    def _on_data_export(self, data: bytes) -> None:
        op = remote_operation(data)
        body = op.body()
        if op.ro_type == RORS and op.command == CMD_CONFIRMED_EVENT_REPORT:
            # The MDS Create Result: it must echo our invoke id and object to count.
            if self._phase == "awaiting_result" and op.invoke_id == self._create_invoke_id:
                managed_object = body.take(6)
                body.u32()  # time
                if managed_object == _MDS and body.u16() == NOM_NOTI_MDS_CREAT:
                    self._phase = "associated"
                    self.associations += 1
            return
        if op.ro_type != ROIV or op.command != CMD_CONFIRMED_ACTION or self._phase != "associated":
            return
        body.take(6 + 4)  # managed object, scope
        action = body.u16()
        argument = body.sub(body.u16())
        poll_number = argument.u16()
        argument.u16()  # partition
        code = argument.u16()
        argument.u16()  # attribute group
        if action == NOM_ACT_POLL_MDIB_DATA_EXT and code == NOM_MOC_VMO_METRIC_NU:
            period_ticks = 0
            if argument.left >= 4:
                count = argument.u16()
                avas = argument.sub(argument.u16())
                for _ in range(count):
                    attribute_id = avas.u16()
                    value = avas.take(avas.u16())
                    if attribute_id == NOM_ATTR_TIME_PD_POLL and len(value) == 4:
                        period_ticks = int.from_bytes(value, "big")
            self.extended_polls += 1
            now = self._clock()
            self._poll = (op.invoke_id, poll_number)
            self._poll_until = now + period_ticks / TICKS_PER_SECOND
            self._sequence = 0
            self._next_reply = now
            self._tick()
        elif action == NOM_ACT_POLL_MDIB_DATA:
            self.single_polls += 1
            observations = self.observations_at(self.script_time(), with_labels=True)
            found = observations if code == NOM_MOC_VMO_METRIC_NU else []
            self._send(
                poll_reply(
                    op.invoke_id,
                    found,
                    rel_time=self._rel_time(),
                    abs_time=self._abs_time(),
                    extended=False,
                    poll_number=poll_number,
                    polled_code=code,
                )
            )
            self.replies += 1

    def _send_numerics(self) -> None:
        assert self._poll is not None
        invoke_id, poll_number = self._poll
        observations = self.observations_at(self.script_time(), with_labels=self._sequence == 0)
        # With linked results the objects are split over a linked result (RORLS, first) and the
        # final RORS.
        half = len(observations) // 2 if self.linked_results else 0
        parts = (
            [(observations[:half], (1, 1)), (observations[half:], None)] if half else [(observations, None)]
        )
        for part, linked in parts:
            self._send(
                poll_reply(
                    invoke_id,
                    part,
                    rel_time=self._rel_time(),
                    abs_time=self._abs_time(),
                    poll_number=poll_number,
                    sequence_no=self._sequence,
                    linked=linked,
                )
            )
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.replies += 1

    def _rel_time(self) -> int:
        return (self._rel_offset + round((self._clock() - self._t0) * TICKS_PER_SECOND)) & 0xFFFFFFFF

    def _abs_time(self) -> datetime:
        return self._start_time + timedelta(seconds=self._clock() - self._t0)

    # -- I/O ---------------------------------------------------------------------------------------

    def _send(self, message: bytes) -> None:
        # A frame that does not go out is lost, as from a monitor whose cable was pulled.
        self._write(encode_frame(message))


SIMULATOR = IntelliVueSimulator
