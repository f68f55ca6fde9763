"""Philips IntelliVue MP/MX "Data Export" over the MIB/RS232 port → VitalSamples.

IntelliVue monitors say nothing until a client associates, so this parser talks: its greeting is
the association request (AARQ) with extended-poll support; when the monitor accepts (``0x0E``) it
sends an MDS Create Event Report, which the parser answers (echoing invoke id and managed object)
before requesting an extended poll of all numerics. The poll is re-issued before its period ends,
a keep-alive poll goes out when the monitor has been quiet for a few seconds (and at least every
``life_tick_s`` so the monitor always hears from us), a refusal (``0x0C``) is retried a few times
and then paused after a release, and an abort (``0x19``), a release request or prolonged silence
start the association again. Everything to send is queued during ``feed`` and handed to the link
from ``poll``, at most three frames per 128 ms (the interface allows four).

Poll replies (RORS, and RORLS linked results whose header is two bytes longer) are walked by the
counts and lengths of PollInfoList → SingleContextPoll → ObservationPoll → AttributeList, skipping
attributes we do not use. Numeric (``NOM_ATTR_NU_VAL_OBS``) and compound (``NOM_ATTR_NU_CMPD_VAL_OBS``,
e.g. NBP systolic/diastolic/mean) observations become samples; the FLOAT specials (NaN, NRes,
±INF) and MeasurementState bits decide validity, and never become numbers. Values whose physio id
is ``NOM_METRIC_NOS`` (IntelliBridge/VueLink numerics from a ventilator) are named by their label
string, which a monitor may send only in the first reply of a poll, so labels are remembered per
object handle for the association. The monitor's clock comes from the relative time stamp of each
reply against the absolute/relative time pair of the MDS Create Event Report.

Sources (PROTOCOLS.md §2): ``xeonfusion/VSCaptureMP:Class2.cs`` (``aarq_msg_ext_poll2``,
``ext_poll_request_msg5``, ``keep_alive_msg2``, ``rlrq_msg``, ``rlrq_resp_msg``, constants, state
bits) and ``Class3.cs`` (``ParseMDSCreateEventReport``, ``CheckPollPacketActionType``,
``PollPacketDecoder``, ``ReadIDLabelString``, time base); ``part-cw/LNhealth:modules/ivueparser/
ivue.scm`` (run levels, three refusals then release, abort handling) and ``ivue-request.scm``
(AARQ built from parts, ``ivue:mresult`` echoing invoke id and managed object);
``mdpnp/mdpnp:devices/philips/src/main/java/org/mdpnp/devices/philips/intellivue/`` (``data/Float.java``
special values, ``data/ObservedValue.java`` and ``data/UnitCode.java`` codes,
``association/MDSEUserInfoStd.java``, keep-alive and timeouts in ``Intellivue.java`` and
``interop-lab/.../AbstractDemoIntellivue.java``). None of it was checked against a monitor.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Final

from vitals.intellivue_framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame
from vitals.parser import LinkSettings, MonitorParser, register
from vitals.sample import Parameter, VitalSample

# -- protocol constants (Class2.cs, AssociationMessageType.java) ------------------------------------

# First byte of a session (association) message; Data Export messages start with 0xE1 instead.
SPDU_CONNECT: Final = 0x0D
SPDU_ACCEPT: Final = 0x0E
SPDU_REFUSE: Final = 0x0C
SPDU_FINISH: Final = 0x09  # release request
SPDU_DISCONNECT: Final = 0x0A  # release response
SPDU_ABORT: Final = 0x19
SP_PDU: Final = b"\xe1\x00\x00\x02"  # session id 0xE100, presentation context 2

ROIV: Final = 1
RORS: Final = 2
ROER: Final = 3
RORLS: Final = 5

CMD_EVENT_REPORT: Final = 0
CMD_CONFIRMED_EVENT_REPORT: Final = 1
CMD_CONFIRMED_ACTION: Final = 7

NOM_PART_OBJ: Final = 1
NOM_MOC_VMO_METRIC_NU: Final = 0x0006
NOM_MOC_VMS_MDS: Final = 0x0021
NOM_MOC_VMO_AL_MON: Final = 0x0036
NOM_ATTR_GRP_VMO_STATIC: Final = 0x0811
NOM_NOTI_MDS_CREAT: Final = 0x0D06
NOM_ACT_POLL_MDIB_DATA: Final = 0x0C16
NOM_ACT_POLL_MDIB_DATA_EXT: Final = 0xF13B
NOM_ATTR_TIME_PD_POLL: Final = 0xF13E

NOM_ATTR_ID_LABEL: Final = 0x0924
NOM_ATTR_ID_LABEL_STRING: Final = 0x0927
NOM_ATTR_NU_CMPD_VAL_OBS: Final = 0x094B
NOM_ATTR_NU_VAL_OBS: Final = 0x0950
NOM_ATTR_TIME_ABS: Final = 0x0987
NOM_ATTR_TIME_REL: Final = 0x098F
NOM_METRIC_NOS: Final = 0xEFFF

#: Relative time and poll periods count 1/8 ms.
TICKS_PER_SECOND: Final = 8000
_TICK_US: Final = 125

# -- FLOAT-Type (Float.java) -----------------------------------------------------------------------

FLOAT_NAN: Final = 0x7FFFFF
FLOAT_NRES: Final = 0x800000
FLOAT_POS_INF: Final = 0x7FFFFE
FLOAT_NEG_INF: Final = 0x800002
FLOAT_RESERVED: Final = 0x800001
# The specials are defined with exponent 0; they are recognised by mantissa alone so that a
# marker with a stray exponent still never becomes a number.
_FLOAT_SPECIAL: Final[Mapping[int, str]] = {
    FLOAT_NAN: "nan",
    FLOAT_NRES: "nres",
    FLOAT_POS_INF: "infinite",
    FLOAT_NEG_INF: "infinite",
    FLOAT_RESERVED: "reserved",
}


@dataclass(frozen=True, slots=True)
class FloatValue:
    """A decoded FLOAT: ``value`` is None exactly when ``special`` names the marker."""

    value: float | None
    special: str | None = None


def decode_float(raw: int) -> FloatValue:
    """``raw`` is the 32-bit FLOAT: int8 exponent, int24 two's-complement mantissa, m·10^e."""
    mantissa = raw & 0xFFFFFF
    special = _FLOAT_SPECIAL.get(mantissa)
    if special is not None:
        return FloatValue(None, special)
    if mantissa & 0x800000:
        mantissa -= 0x1000000
    exponent = (raw >> 24) & 0xFF
    if exponent & 0x80:
        exponent -= 0x100
    # Dividing by a power of ten keeps 365·10^-1 at 36.5 rather than 36.500000000000004.
    value = mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)
    return FloatValue(value)


def encode_float(value: float, decimals: int = 0) -> int:
    """The FLOAT for ``value`` with ``decimals`` digits after the point (for simulators, tests)."""
    mantissa = round(value * 10.0**decimals)
    if not -0x7FFFFD <= mantissa <= 0x7FFFFD:
        raise ValueError(f"{value} does not fit a FLOAT with {decimals} decimals")
    return ((-decimals & 0xFF) << 24) | (mantissa & 0xFFFFFF)


# -- MeasurementState (Class2.cs IntelliVue.MeasurementState) ------------------------------------------

# States that make a value unusable whatever number it carries. LNhealth discards on
# (state & 0xF800), which is exactly these five.
_STATE_INVALIDATING: Final[Mapping[int, str]] = {
    0x8000: "invalid",
    0x4000: "questionable",
    0x2000: "unavailable",
    0x1000: "calibration_ongoing",
    0x0800: "test_data",
}
# Reported but the value stays valid. Demo data is a real display value of a monitor in demo
# mode, so it is shown, flagged, never silently taken for a patient's.
_STATE_NOTED: Final[Mapping[int, str]] = {
    0x0400: "demo_data",
    0x0040: "early_indication",
    0x0020: "msmt_ongoing",
    0x0002: "in_alarm",
    0x0001: "alarm_inhibited",
}
STATE_IN_ALARM: Final = 0x0002
STATE_VALIDATED: Final = 0x0080  # manually validated; the normal case for such values, no flag
_STATE_KNOWN: Final = sum(_STATE_INVALIDATING) | sum(_STATE_NOTED) | STATE_VALIDATED


@functools.lru_cache(maxsize=512)  # a monitor uses a handful of states; decoding is per numeric
def decode_state(state: int) -> tuple[bool, frozenset[str]]:
    """(still valid, flag names) for a MeasurementState; unknown bits as ``state_0x....``."""
    flags = {name for bit, name in _STATE_INVALIDATING.items() if state & bit}
    valid = not flags
    flags.update(name for bit, name in _STATE_NOTED.items() if state & bit)
    unknown = state & ~_STATE_KNOWN & 0xFFFF
    flags.update(f"state_0x{1 << i:04x}" for i in range(16) if unknown >> i & 1)
    return valid, frozenset(flags)


# -- what the numbers mean (ObservedValue.java, UnitCode.java, PROTOCOLS.md §2.8) ----------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """Which parameter a physio id or label stands for, and where the value comes from."""

    parameter: Parameter
    source: str = ""


PHYSIO_METRICS: Final[Mapping[int, Metric]] = {
    0x4182: Metric(Parameter.HR, "ECG"),  # NOM_ECG_CARD_BEAT_RATE
    0x4822: Metric(Parameter.PR, "pleth"),  # NOM_PLETH_PULS_RATE
    0x480A: Metric(Parameter.PR, "pulse"),  # NOM_PULS_RATE, source not said
    0x4BB8: Metric(Parameter.SPO2, "pleth"),  # NOM_PULS_OXIM_SAT_O2
    0x4BB0: Metric(Parameter.PI, "pleth"),  # NOM_PULS_OXIM_PERF_REL
    0x500A: Metric(Parameter.RR, "impedance"),  # NOM_RESP_RATE
    0x5012: Metric(Parameter.RR, "airway"),  # NOM_AWAY_RESP_RATE
    0x4A05: Metric(Parameter.NBP_SYS),
    0x4A06: Metric(Parameter.NBP_DIA),
    0x4A07: Metric(Parameter.NBP_MEAN),
    0x50B0: Metric(Parameter.ETCO2, "airway"),  # NOM_AWAY_CO2_ET
    0x5284: Metric(Parameter.FIO2, "airway"),  # NOM_CONC_AWAY_O2_INSP (gas module)
    0x7498: Metric(Parameter.FIO2, "ventilator"),  # NOM_VENT_CONC_AWAY_O2_INSP
    0x51A8: Metric(Parameter.PEEP),  # NOM_VENT_PRESS_AWAY_END_EXP_POS
    0x5109: Metric(Parameter.PIP),  # NOM_PRESS_AWAY_INSP_MAX
    0x510B: Metric(Parameter.MAP_AW),  # NOM_PRESS_AWAY_INSP_MEAN
    0x513C: Metric(Parameter.VTE),  # NOM_VOL_AWAY_TIDAL; VTI when its label says inspiratory
    0x4B48: Metric(Parameter.TEMP),  # NOM_TEMP
}
PHYSIO_TIDAL_VOLUME: Final = 0x513C

#: Values sent as NOM_METRIC_NOS carry only their label; these are the labels monitors and
#: ventilators show (vitaldb-docs ``Intellivue_Ventilator_Settings.md`` lists FiO2, PEEP, PIP, TV,
#: RRaw among others). Keys are lower case without blanks, dots, dashes or underscores. Settings
#: such as "sFiO2" are deliberately absent: a set value is not a measurement.
LABEL_METRICS: Final[Mapping[str, Parameter]] = {
    "fio2": Parameter.FIO2,
    "peep": Parameter.PEEP,
    "pip": Parameter.PIP,
    "ppeak": Parameter.PIP,
    "pmean": Parameter.MAP_AW,
    "mawp": Parameter.MAP_AW,
    "tv": Parameter.VTE,
    "vt": Parameter.VTE,
    "vte": Parameter.VTE,
    "tve": Parameter.VTE,
    "tvexp": Parameter.VTE,
    "vtexp": Parameter.VTE,
    "vti": Parameter.VTI,
    "tvi": Parameter.VTI,
    "tvin": Parameter.VTI,
    "tvinsp": Parameter.VTI,
    "vtinsp": Parameter.VTI,
    "rr": Parameter.RR,
    "rraw": Parameter.RR,
    "awrr": Parameter.RR,
    "etco2": Parameter.ETCO2,
    "leak": Parameter.LEAK,
}
#: Source of a value known only by its label: an external device behind IntelliBridge/VueLink.
LABEL_SOURCE: Final = "external"

UNIT_CODES: Final[Mapping[int, str]] = {
    0x0200: "",  # NOM_DIM_DIMLESS
    0x0220: "%",  # NOM_DIM_PERCENT
    0x0652: "mL",  # NOM_DIM_MILLI_L
    0x0AA0: "/min",  # NOM_DIM_BEAT_PER_MIN
    0x0AE0: "/min",  # NOM_DIM_RESP_PER_MIN
    0x0F03: "kPa",  # NOM_DIM_KILO_PASCAL
    0x0F20: "mmHg",  # NOM_DIM_MMHG
    0x0F40: "cmH2O",  # NOM_DIM_CM_H2O
    0x17A0: "°C",  # NOM_DIM_DEGC
}

# Plausible ranges per parameter and unit. A value outside is a corrupted or misread number, not
# physiology; a unit not listed for its parameter means we do not know how to read the number.
_PRESSURE_NBP: Final = {"mmHg": (0.0, 300.0), "kPa": (0.0, 40.0)}
_AIRWAY: Final = {"cmH2O": (0.0, 120.0)}
_TIDAL: Final = {"mL": (0.0, 3000.0)}
RANGES: Final[Mapping[Parameter, Mapping[str, tuple[float, float]]]] = {
    Parameter.HR: {"/min": (0.0, 350.0)},
    Parameter.PR: {"/min": (0.0, 350.0)},
    Parameter.SPO2: {"%": (0.0, 100.0)},
    Parameter.PI: {"": (0.0, 100.0), "%": (0.0, 100.0)},
    Parameter.RR: {"/min": (0.0, 250.0)},
    Parameter.NBP_SYS: _PRESSURE_NBP,
    Parameter.NBP_DIA: _PRESSURE_NBP,
    Parameter.NBP_MEAN: _PRESSURE_NBP,
    Parameter.ETCO2: {"mmHg": (0.0, 150.0), "kPa": (0.0, 20.0), "%": (0.0, 20.0)},
    Parameter.FIO2: {"%": (0.0, 100.0)},
    Parameter.PEEP: _AIRWAY,
    Parameter.PIP: _AIRWAY,
    Parameter.MAP_AW: _AIRWAY,
    Parameter.VTE: _TIDAL,
    Parameter.VTI: _TIDAL,
    Parameter.LEAK: {"%": (0.0, 100.0)},
    Parameter.TEMP: {"°C": (0.0, 50.0)},
}


def normalise_label(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch not in " ._-\t")


def decode_label_string(raw: bytes) -> str:
    """NOM_ATTR_ID_LABEL_STRING value: u16 byte count, then UTF-16BE text (ASCII tolerated).

    VSCaptureMP reads the bytes as UTF-8 and strips NULs, which works for the UTF-16BE text
    monitors send; decoding UTF-16 properly also keeps non-ASCII labels such as "ΔSpO2".
    """
    if len(raw) < 2:
        return ""
    text = raw[2 : 2 + int.from_bytes(raw[:2], "big")]
    if len(text) % 2 == 0 and text[0::2].count(0) * 2 >= len(text) // 2:
        decoded = text.decode("utf-16-be", errors="replace")
    else:
        decoded = text.decode("latin-1")
    return decoded.replace("\0", "").strip()


def encode_label_string(label: str) -> bytes:
    text = label.encode("utf-16-be")
    return len(text).to_bytes(2, "big") + text


# -- reading messages ---------------------------------------------------------------------------------


class Truncated(Exception):
    """A count or length pointed past the end of its enclosing structure."""


class _Cursor:
    """Bounds-checked big-endian reads over ``data[pos:end]``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def _advance(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise Truncated(f"{n} bytes wanted at {start}, structure ends at {self.end}")
        self.pos = start + n
        return start

    def u8(self) -> int:
        return self.data[self._advance(1)]

    def u16(self) -> int:
        value: int = _U16.unpack_from(self.data, self._advance(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack_from(self.data, self._advance(4))[0]
        return value

    def take(self, n: int) -> bytes:
        start = self._advance(n)
        return self.data[start : start + n]

    def sub(self, n: int) -> _Cursor:
        """A cursor over the next ``n`` bytes, which this one skips."""
        start = self._advance(n)
        return _Cursor(self.data, start, start + n)

    @property
    def left(self) -> int:
        return self.end - self.pos


_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_NU_OBS: Final = struct.Struct(">HHHI")


@dataclass(frozen=True, slots=True)
class RemoteOperation:
    """The ROSE header of a Data Export message, enough to route it."""

    ro_type: int
    invoke_id: int
    command: int
    data: bytes
    body_start: int  # the command's argument or result: data[body_start:body_end]
    body_end: int

    def body(self) -> _Cursor:
        return _Cursor(self.data, self.body_start, self.body_end)


def remote_operation(data: bytes) -> RemoteOperation:
    """Read SPpdu, ROapdus and the ROIV/RORS/ROER/RORLS apdu; raises ``Truncated``."""
    r = _Cursor(data)
    if r.take(4)[:2] != SP_PDU[:2]:
        raise Truncated("not a Data Export message")
    ro_type = r.u16()
    r = r.sub(min(r.u16(), r.left))  # a shorter ro length bounds what follows
    if ro_type == RORLS:
        r.u8()  # linked state: first, not first not last, last
        r.u8()  # linked count
    invoke_id = r.u16()
    command = r.u16()
    body = r.sub(min(r.u16(), r.left))
    return RemoteOperation(ro_type, invoke_id, command, data, body.pos, body.end)


@dataclass(frozen=True, slots=True)
class MdsCreate:
    """The MDS Create Event Report, reduced to what the result echoes and the time base."""

    invoke_id: int
    managed_object: bytes  # m_obj_class, context_id, handle: echoed in the result
    event_time: int
    abs_time: datetime | None
    rel_time: int | None


def parse_mds_create(op: RemoteOperation) -> MdsCreate | None:
    """None when ``op`` is not an MDS Create Event Report; raises ``Truncated`` when cut short."""
    if op.ro_type != ROIV or op.command != CMD_CONFIRMED_EVENT_REPORT:
        return None
    r = op.body()
    managed_object = r.take(6)
    event_time = r.u32()
    if r.u16() != NOM_NOTI_MDS_CREAT:
        return None
    r = r.sub(min(r.u16(), r.left))
    r.take(6)  # MdsCreateInfo.managed_object
    abs_time: datetime | None = None
    rel_time: int | None = None
    for attribute_id, value in _attributes(r):
        if attribute_id == NOM_ATTR_TIME_ABS and len(value) == 8:
            abs_time = bcd_datetime(value)
        elif attribute_id == NOM_ATTR_TIME_REL and len(value) == 4:
            rel_time = int.from_bytes(value, "big")
    return MdsCreate(op.invoke_id, managed_object, event_time, abs_time, rel_time)


def _attributes(r: _Cursor) -> Iterator[tuple[int, bytes]]:
    """The AVAs of an AttributeList {count, length, AVA...}; raises ``Truncated``."""
    count = r.u16()
    body = r.sub(r.u16())
    for _ in range(count):
        attribute_id = body.u16()
        yield attribute_id, body.take(body.u16())


def bcd_datetime(raw: bytes) -> datetime | None:
    """AbsoluteTime ``CC YY MM DD hh mm ss ff`` in BCD (ff in 1/100 s); None when unset or bad.

    Several monitors fill it with 0xFF (VSCaptureMP); anything that is not a real date is None.
    """
    digits = []
    for byte in raw:
        hi, lo = byte >> 4, byte & 0x0F
        if hi > 9 or lo > 9:
            return None
        digits.append(hi * 10 + lo)
    century, year, month, day, hour, minute, second, hundredths = digits
    try:
        return datetime(century * 100 + year, month, day, hour, minute, second, hundredths * 10_000)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Numeric:
    """One NuObsValue, with the object it belongs to."""

    context_id: int
    handle: int
    physio_id: int
    state: int
    unit_code: int
    raw_value: int


@dataclass(frozen=True, slots=True)
class PollReply:
    """One poll reply (single or extended, RORS or RORLS) as far as numerics go."""

    poll_number: int
    rel_time: int
    abs_time: datetime | None
    numerics: tuple[Numeric, ...]
    labels: Mapping[tuple[int, int], str]  # label strings sent in this reply, by object


def parse_poll_reply(op: RemoteOperation) -> PollReply | None:
    """None when ``op`` is not a poll result; raises ``Truncated`` when a structure is cut short."""
    if op.ro_type not in (RORS, RORLS) or op.command != CMD_CONFIRMED_ACTION:
        return None
    r = op.body()
    r.take(6)  # managed object (the MDS)
    action = r.u16()
    if action not in (NOM_ACT_POLL_MDIB_DATA, NOM_ACT_POLL_MDIB_DATA_EXT):
        return None
    r = r.sub(min(r.u16(), r.left))
    poll_number = r.u16()
    if action == NOM_ACT_POLL_MDIB_DATA_EXT:
        r.u16()  # sequence_no
    rel_time = r.u32()
    abs_time = bcd_datetime(r.take(8))
    r.take(6)  # polled_obj_type (partition, code) and polled_attr_grp
    numerics: list[Numeric] = []
    labels: dict[tuple[int, int], str] = {}
    contexts = r.u16()
    poll_info = r.sub(r.u16())
    for _ in range(contexts):
        context_id = poll_info.u16()
        observations = poll_info.u16()
        single_context = poll_info.sub(poll_info.u16())
        for _ in range(observations):
            handle = single_context.u16()
            for attribute_id, value in _attributes(single_context):
                if attribute_id == NOM_ATTR_NU_VAL_OBS:
                    numerics.append(_numeric(context_id, handle, value))
                elif attribute_id == NOM_ATTR_NU_CMPD_VAL_OBS:
                    compound = _Cursor(value)
                    count = compound.u16()
                    values = compound.sub(compound.u16())
                    numerics.extend(_numeric(context_id, handle, values.take(10)) for _ in range(count))
                elif attribute_id == NOM_ATTR_ID_LABEL_STRING:
                    labels[(context_id, handle)] = decode_label_string(value)
    return PollReply(poll_number, rel_time, abs_time, tuple(numerics), labels)


def _numeric(context_id: int, handle: int, value: bytes) -> Numeric:
    if len(value) < _NU_OBS.size:
        raise Truncated("NuObsValue shorter than 10 bytes")
    physio_id, state, unit_code, raw = _NU_OBS.unpack_from(value)
    return Numeric(context_id, handle, physio_id, state, unit_code, raw)


def numeric_sample(
    numeric: Numeric, label: str | None, host_ns: int, monitor: str, monitor_time: datetime | None
) -> VitalSample | None:
    """The sample for one numeric, or None when it is not a parameter we record."""
    metric = PHYSIO_METRICS.get(numeric.physio_id)
    if numeric.physio_id == NOM_METRIC_NOS and label:
        parameter = LABEL_METRICS.get(normalise_label(label))
        metric = None if parameter is None else Metric(parameter, LABEL_SOURCE)
    elif (
        numeric.physio_id == PHYSIO_TIDAL_VOLUME
        and label
        and LABEL_METRICS.get(normalise_label(label)) is Parameter.VTI
    ):
        metric = Metric(Parameter.VTI)  # "VTi", "TVin": the same code, the inspired volume
    if metric is None:
        return None
    valid, flags = decode_state(numeric.state)
    flag_set = set(flags)
    decoded = decode_float(numeric.raw_value)
    unit = UNIT_CODES.get(numeric.unit_code)
    if decoded.special is not None:
        valid = False
        flag_set.add("no_value")
        if decoded.special != "nan":
            flag_set.add(decoded.special)
    if unit is None:
        valid = False
        flag_set.add("unknown_unit")
        unit = ""
    elif decoded.value is not None:
        bounds = RANGES[metric.parameter].get(unit)
        if bounds is None:
            valid = False
            flag_set.add("unexpected_unit")
        elif not bounds[0] <= decoded.value <= bounds[1]:
            valid = False
            flag_set.add("out_of_range")
    return VitalSample(
        parameter=metric.parameter,
        value=decoded.value,
        unit=unit,
        valid=valid,
        host_ns=host_ns,
        monitor=monitor,
        source=metric.source,
        flags=frozenset(flag_set),
        alarm=bool(numeric.state & STATE_IN_ALARM),
        monitor_time=monitor_time,
    )


# -- building requests (Class2.cs, ivue-request.scm) --------------------------------------------------

# ISO session and presentation wrapping of the AARQ, as in LNhealth's AssocReqSessionData and
# AssocReqPresentationHeader (the bytes of VSCaptureMP's aarq_msg_ext_poll2 up to the user info).
_AARQ_SESSION_DATA: Final = bytes.fromhex("0508130100160102800014020002")
_AARQ_PRESENTATION_HEADER: Final = bytes.fromhex(
    "3180a0808001010000a280a003000001a4803080020101060452010001308006025101000000003080020102"
    "060c2a8648ce14020100000001013080060c2a8648ce140201000000020100000000000061803080020101a0"
    "806080a180060c2a8648ce14020100000003010000be802880060c2a8648ce140201000000010102010281"
)
_PRESENTATION_TRAILER: Final = bytes(16)
_PRESENTATION_DATA: Final = 0xC1

MDDL_VERSION1: Final = 0x80000000
NOMEN_VERSION: Final = 0x40000000
SYST_CLIENT: Final = 0x80000000
SYST_SERVER: Final = 0x00800000
COLD_START: Final = 0x20000000
POLL_PROFILE_REV0: Final = 0x80000000
NOM_POLL_PROFILE_SUPPORT: Final = 0x0001
NOM_ATTR_POLL_PROFILE_EXT: Final = 0xF001
P_OPT_DYN_CREATE_OBJECTS_AND_DELETE: Final = 0x60000000
POLL_EXT_PERIOD_NU_1SEC: Final = 0x80000000
POLL_EXT_PERIOD_RTSA: Final = 0x08000000
POLL_EXT_ENUM: Final = 0x04000000

# Release request and response, verbatim from Class2.cs rlrq_msg / rlrq_resp_msg.
RELEASE_REQUEST: Final = bytes.fromhex("0918c11661803080020101a080628080010000000000000000")
RELEASE_RESPONSE: Final = bytes.fromhex("0a18c11661803080020101a080638080010000000000000000")


def u16(value: int) -> bytes:
    return (value & 0xFFFF).to_bytes(2, "big")


def u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


def attribute_list(*avas: tuple[int, bytes]) -> bytes:
    body = b"".join(u16(attribute_id) + u16(len(value)) + value for attribute_id, value in avas)
    return u16(len(avas)) + u16(len(body)) + body


def length_indicator(n: int) -> bytes:
    """ISO session LI: one byte below 255, else 0xFF and two bytes (``0D FF 01 28`` in Class2.cs)."""
    return bytes((n,)) if n < 0xFF else b"\xff" + u16(n)


def ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    return b"\x81" + bytes((n,)) if n < 0x100 else b"\x82" + u16(n)


def session_message(kind: int, session_data: bytes, presentation: bytes) -> bytes:
    """A session PDU: kind, LI, session parameters, then presentation data (``C1``, LI, bytes)."""
    body = session_data + bytes((_PRESENTATION_DATA,)) + length_indicator(len(presentation)) + presentation
    return bytes((kind,)) + length_indicator(len(body)) + body


def user_info(system_type: int, poll_profile: bytes) -> bytes:
    """MDSEUserInfoStd (MDSEUserInfoStd.java): versions, system type, cold start, profiles."""
    return (
        u32(MDDL_VERSION1)
        + u32(NOMEN_VERSION)
        + u32(0)  # functional units
        + u32(system_type)
        + u32(COLD_START)
        + attribute_list()  # option list
        + attribute_list((NOM_POLL_PROFILE_SUPPORT, poll_profile))
    )


def poll_profile(*, min_poll_period: int, max_mtu_rx: int, max_mtu_tx: int, ext_options: int | None) -> bytes:
    extensions = (
        attribute_list((NOM_ATTR_POLL_PROFILE_EXT, u32(ext_options) + attribute_list()))
        if ext_options is not None
        else attribute_list()
    )
    return (
        u32(POLL_PROFILE_REV0)
        + u32(min_poll_period)
        + u32(max_mtu_rx)
        + u32(max_mtu_tx)
        + u32(0xFFFFFFFF)  # max_bw_tx
        + u32(P_OPT_DYN_CREATE_OBJECTS_AND_DELETE)
        + extensions
    )


def association_request() -> bytes:
    """The AARQ with extended-poll support: VSCaptureMP's ``aarq_msg_ext_poll2``, built from parts.

    Minimum poll period 125 ms, MTUs 2500 (rx) and 1000 (tx), extended options 1 s numerics,
    real-time sample arrays and enumerations (0x8C000000).
    """
    info = user_info(
        SYST_CLIENT,
        poll_profile(
            min_poll_period=0x3E8,
            max_mtu_rx=0x9C4,
            max_mtu_tx=0x3E8,
            ext_options=POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_PERIOD_RTSA | POLL_EXT_ENUM,
        ),
    )
    presentation = _AARQ_PRESENTATION_HEADER + ber_length(len(info)) + info + _PRESENTATION_TRAILER
    return session_message(SPDU_CONNECT, _AARQ_SESSION_DATA, presentation)


def mds_create_result(event: MdsCreate) -> bytes:
    """The MDS Create Result, echoing the event's invoke id, managed object and event time."""
    return (
        SP_PDU
        + u16(RORS)
        + u16(20)
        + u16(event.invoke_id)
        + u16(CMD_CONFIRMED_EVENT_REPORT)
        + u16(14)
        + event.managed_object
        + u32(event.event_time)
        + u16(NOM_NOTI_MDS_CREAT)
        + u16(0)
    )


_MDS: Final = u16(NOM_MOC_VMS_MDS) + u16(0) + u16(0)


def _action(invoke_id: int, action_type: int, argument: bytes) -> bytes:
    apdu = _MDS + u32(0) + u16(action_type) + u16(len(argument)) + argument  # scope 0
    roiv = u16(invoke_id) + u16(CMD_CONFIRMED_ACTION) + u16(len(apdu)) + apdu
    return SP_PDU + u16(ROIV) + u16(len(roiv)) + roiv


def extended_poll_request(invoke_id: int, poll_number: int, period_ticks: int) -> bytes:
    """Extended poll of all numerics for ``period_ticks`` (``ext_poll_request_msg5``'s layout)."""
    argument = (
        u16(poll_number)
        + u16(NOM_PART_OBJ)
        + u16(NOM_MOC_VMO_METRIC_NU)
        + u16(0)  # all attribute groups
        + attribute_list((NOM_ATTR_TIME_PD_POLL, u32(period_ticks)))
    )
    return _action(invoke_id, NOM_ACT_POLL_MDIB_DATA_EXT, argument)


def keep_alive_request(invoke_id: int, poll_number: int) -> bytes:
    """Single poll of the alert monitor's static group, as OpenICE and ``keep_alive_msg2`` do."""
    argument = u16(poll_number) + u16(NOM_PART_OBJ) + u16(NOM_MOC_VMO_AL_MON) + u16(NOM_ATTR_GRP_VMO_STATIC)
    return _action(invoke_id, NOM_ACT_POLL_MDIB_DATA, argument)


# -- the association, as the client sees it ----------------------------------------------------------


class Phase(enum.Enum):
    IDLE = "idle"  # nothing sent yet
    ASSOCIATING = "associating"  # AARQ sent; waiting for accept or refuse
    AWAITING_MDS = "awaiting_mds"  # accepted; waiting for the MDS Create Event Report
    ASSOCIATED = "associated"  # MDS create answered; polling
    PAUSED = "paused"  # refused too often: released, waiting before trying again


@dataclass(frozen=True, slots=True)
class ClientTiming:
    """When the client (re)sends what; seconds.

    Defaults follow the sources: OpenICE sends a keep-alive after 4 s without receiving and gives a
    connection up after 10 s of silence; VSCaptureMP polls numerics for 30 s at a time; LNhealth
    retries three refusals, then releases.
    """

    poll_period_s: float = 30.0
    reissue_fraction: float = 0.8  # re-issue the extended poll after this share of its period
    keepalive_after_s: float = 4.0  # nothing received this long: ask the monitor something
    life_tick_s: float = 8.0  # nothing sent this long: ask anyway, so the monitor hears from us
    silence_restart_s: float = 10.0  # associated but nothing received: associate again
    associate_timeout_s: float = 5.0  # no answer to an AARQ: send it again
    mds_timeout_s: float = 5.0  # accepted but no MDS create: associate again
    retry_delay_s: float = 1.0  # after a refusal, abort or release before the next AARQ
    max_refusals: int = 3
    refused_pause_s: float = 30.0


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class AssociationClient:
    """The client's association state machine: messages and time in, messages to send out.

    It never blocks and owns no port: ``on_*`` are called for what arrived (with the arrival
    time) and ``due(now_ns)`` returns the unframed messages to send now, in order.
    """

    def __init__(self, timing: ClientTiming | None = None) -> None:
        self.timing = timing or ClientTiming()
        self.phase = Phase.IDLE
        self.associations = 0  # MDS creates answered
        self.requests_sent = 0
        self._pending: list[bytes] = []
        self._invoke_id = 0
        self._refusals = 0
        self._since_ns: int | None = None  # when the current phase began (None: not yet known)
        self._retry_ns: int | None = None  # ASSOCIATING/PAUSED: when to send the next AARQ
        self._next_poll_ns = 0
        self._last_rx_ns = 0
        self._last_tx_ns = 0
        self._last_keepalive_ns = 0

    def start(self) -> bytes:
        """Begin (again): the AARQ to send right away."""
        self._pending.clear()
        self._refusals = 0
        self._enter(Phase.ASSOCIATING, None)
        self._retry_ns = None
        return association_request()

    # -- what arrived --------------------------------------------------------------------------

    def on_received(self, now_ns: int) -> None:
        self._last_rx_ns = now_ns

    def on_session(self, kind: int, now_ns: int) -> None:
        t = self.timing
        if kind == SPDU_ACCEPT:
            if self.phase in (Phase.IDLE, Phase.ASSOCIATING):
                self._refusals = 0
                self._enter(Phase.AWAITING_MDS, now_ns)
        elif kind == SPDU_REFUSE:
            if self.phase is not Phase.ASSOCIATING:
                return
            self._refusals += 1
            if self._refusals < t.max_refusals:
                self._retry_ns = now_ns + _ns(t.retry_delay_s)
            else:
                # As LNhealth: after three refusals say goodbye properly and stop asking for a while.
                self._pending.append(RELEASE_REQUEST)
                self._refusals = 0
                self._enter(Phase.PAUSED, now_ns)
                self._retry_ns = now_ns + _ns(t.refused_pause_s)
        elif kind == SPDU_FINISH:
            # The monitor releases the association: confirm, then ask for a new one.
            self._pending.append(RELEASE_RESPONSE)
            self._restart_later(now_ns)
        elif kind == SPDU_ABORT or (kind == SPDU_DISCONNECT and self.phase is not Phase.PAUSED):
            self._restart_later(now_ns)

    def on_mds_create(self, event: MdsCreate, now_ns: int) -> None:
        # Answered in any phase: a monitor that sends it considers itself associated, and an
        # unanswered create is what makes it give up on us.
        self._pending.append(mds_create_result(event))
        self.associations += 1
        self._enter(Phase.ASSOCIATED, now_ns)
        self._next_poll_ns = now_ns
        self._last_rx_ns = now_ns
        self._last_keepalive_ns = now_ns

    # -- what to send ----------------------------------------------------------------------------

    def due(self, now_ns: int) -> list[bytes]:
        out, self._pending = self._pending, []
        t = self.timing
        if self._since_ns is None:
            # The greeting went out just before the link's first poll; count from here.
            self._since_ns = now_ns
            self._last_rx_ns = now_ns
            if self.phase is Phase.ASSOCIATING and self._retry_ns is None:
                self._retry_ns = now_ns + _ns(t.associate_timeout_s)
        phase = self.phase
        if phase in (Phase.ASSOCIATING, Phase.PAUSED):
            if self._retry_ns is not None and now_ns >= self._retry_ns:
                out = [*out, *self._associate(now_ns)]
        elif phase is Phase.AWAITING_MDS:
            if now_ns - self._since_ns > _ns(t.mds_timeout_s):
                out = [*out, *self._associate(now_ns)]
        elif phase is Phase.ASSOCIATED:
            if now_ns - self._last_rx_ns > _ns(t.silence_restart_s):
                out = [*out, *self._associate(now_ns)]
            elif now_ns >= self._next_poll_ns:
                out.append(extended_poll_request(self._next_invoke_id(), 1, _ticks(t.poll_period_s)))
                self._next_poll_ns = now_ns + _ns(t.poll_period_s * t.reissue_fraction)
            elif self._keepalive_due(now_ns):
                out.append(keep_alive_request(self._next_invoke_id(), 2))
                self._last_keepalive_ns = now_ns
        if out:
            self._last_tx_ns = now_ns
            self.requests_sent += len(out)
        return out

    def _keepalive_due(self, now_ns: int) -> bool:
        t = self.timing
        quiet = now_ns - self._last_rx_ns >= _ns(t.keepalive_after_s)
        spaced = now_ns - self._last_keepalive_ns >= _ns(t.keepalive_after_s)
        mute = now_ns - self._last_tx_ns >= _ns(t.life_tick_s)
        return (quiet and spaced) or mute

    def _associate(self, now_ns: int) -> list[bytes]:
        """A fresh AARQ; anything queued for the old association is void."""
        self._enter(Phase.ASSOCIATING, now_ns)
        self._retry_ns = now_ns + _ns(self.timing.associate_timeout_s)
        return [association_request()]

    def _restart_later(self, now_ns: int) -> None:
        self._enter(Phase.ASSOCIATING, now_ns)
        self._retry_ns = now_ns + _ns(self.timing.retry_delay_s)

    def _enter(self, phase: Phase, now_ns: int | None) -> None:
        self.phase = phase
        self._since_ns = now_ns

    def _next_invoke_id(self) -> int:
        self._invoke_id = (self._invoke_id + 1) & 0xFFFF
        return self._invoke_id


def _ticks(seconds: float) -> int:
    return min(0xFFFFFFFF, round(seconds * TICKS_PER_SECOND))


# -- the parser the link drives ---------------------------------------------------------------------

#: "The spec allows up to 4 frames in a 128ms period" (RS232Adapter.java); we stay one below.
MAX_FRAMES_PER_WINDOW: Final = 3
FRAME_WINDOW_NS: Final = 128_000_000
_MAX_OUTBOX: Final = 32
# A monitor exports tens of objects; more remembered labels than this means noise, not a monitor.
_MAX_LABELS: Final = 4096


@register
class IntelliVueParser(MonitorParser):
    """Data Export client: frames in, samples out; association and polling bytes out via ``poll``.

    Samples carry the arrival time of their frame's first byte. ``phase`` tells where the
    association stands; ``errors_received`` counts ROER replies, ``unmapped_numerics`` numerics
    whose physio id or label we do not record.
    """

    protocol: ClassVar[str] = "intellivue"
    link_settings: ClassVar[LinkSettings] = LinkSettings(baudrate=115200)

    def __init__(
        self, monitor: str, *, timing: ClientTiming | None = None, max_frame: int = MAX_FRAME_BYTES
    ) -> None:
        super().__init__(monitor)
        self.client = AssociationClient(timing)
        self.errors_received = 0
        self.unmapped_numerics = 0
        self._frames = FrameDecoder(max_frame=max_frame)
        self._messages_ok = 0
        self._messages_bad = 0
        self._labels: dict[tuple[int, int], str] = {}
        self._time_base: tuple[datetime, int] | None = None
        self._outbox: deque[bytes] = deque()
        self._sent_ns: deque[int] = deque()

    @property
    def phase(self) -> Phase:
        return self.client.phase

    def reset(self) -> None:
        self._frames.reset()
        self._labels.clear()
        self._time_base = None
        self._outbox.clear()
        self.client = AssociationClient(self.client.timing)
        self._sync_stats()

    def greeting(self) -> bytes:
        self._outbox.clear()
        return encode_frame(self.client.start())

    def poll(self, now_ns: int) -> bytes:
        for message in self.client.due(now_ns):
            if message[0] == SPDU_CONNECT:
                self._outbox.clear()  # requests for an association we are abandoning
            self._outbox.append(encode_frame(message))
        while len(self._outbox) > _MAX_OUTBOX:
            self._outbox.popleft()
        while self._sent_ns and now_ns - self._sent_ns[0] >= FRAME_WINDOW_NS:
            self._sent_ns.popleft()
        out = bytearray()
        while self._outbox and len(self._sent_ns) < MAX_FRAMES_PER_WINDOW:
            out += self._outbox.popleft()
            self._sent_ns.append(now_ns)
        return bytes(out)

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        try:
            return self._feed(bytes(data), host_ns)
        except Exception:
            # Unreachable by design (every structure error is Truncated, handled per message);
            # the contract is never to raise into the reader thread.
            self._messages_bad += 1
            self._frames.reset()
            self._sync_stats()
            return []

    def _feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        self.stats.bytes_in += len(data)
        samples: list[VitalSample] = []
        for frame in self._frames.feed(data, host_ns):
            self._message(frame.user_data, frame.host_ns, samples)
        self._sync_stats()
        return samples

    def _sync_stats(self) -> None:
        frames = self._frames.stats
        self.stats.records_ok = self._messages_ok
        self.stats.records_bad = frames.frames_bad + self._messages_bad
        self.stats.garbage_bytes = frames.garbage_bytes

    def _message(self, data: bytes, host_ns: int, out: list[VitalSample]) -> None:
        kind = data[0] if data else -1
        if kind in (SPDU_ACCEPT, SPDU_REFUSE, SPDU_FINISH, SPDU_DISCONNECT, SPDU_ABORT):
            self._messages_ok += 1
            self.client.on_received(host_ns)
            self.client.on_session(kind, host_ns)
            return
        if kind != SP_PDU[0]:
            self._messages_bad += 1
            return
        try:
            op = remote_operation(data)
            if op.ro_type == ROER:
                self.errors_received += 1
            elif (mds := parse_mds_create(op)) is not None:
                self._associated(mds, host_ns)
            elif (reply := parse_poll_reply(op)) is not None:
                out.extend(self._samples(reply, host_ns))
        except Truncated:
            self._messages_bad += 1
            return
        self._messages_ok += 1
        self.client.on_received(host_ns)

    def _associated(self, mds: MdsCreate, host_ns: int) -> None:
        # Object handles and the clock pair belong to one association.
        self._labels.clear()
        self._time_base = None
        if mds.abs_time is not None and mds.rel_time is not None:
            self._time_base = (mds.abs_time, mds.rel_time)
        self.client.on_mds_create(mds, host_ns)

    def _samples(self, reply: PollReply, host_ns: int) -> list[VitalSample]:
        if len(self._labels) + len(reply.labels) > _MAX_LABELS:
            self._labels.clear()
        self._labels.update(reply.labels)
        monitor_time = self._monitor_time(reply)
        samples = []
        for numeric in reply.numerics:
            label = self._labels.get((numeric.context_id, numeric.handle))
            sample = numeric_sample(numeric, label, host_ns, self.monitor, monitor_time)
            if sample is None:
                self.unmapped_numerics += 1
            else:
                samples.append(sample)
        return samples

    def _monitor_time(self, reply: PollReply) -> datetime | None:
        """Base absolute time + (relative − base relative) × 125 µs; else the reply's own stamp."""
        if self._time_base is None:
            return reply.abs_time
        base_abs, base_rel = self._time_base
        ticks = (reply.rel_time - base_rel) & 0xFFFFFFFF
        if ticks >= 0x80000000:  # the counter wraps after 6.2 days; earlier than the base
            ticks -= 0x100000000
        return base_abs + timedelta(microseconds=ticks * _TICK_US)
