"""Philips IntelliVue Data Export messages: the codes they are made of, and reading what arrives.

The nomenclature here (session message kinds, remote operation types, commands, object classes,
attribute ids) is shared by both directions; building what the client sends is
``vitals.intellivue_client``. What the monitor sends after the association is read here: the ROSE
header that routes a message, the MDS Create Event Report (its invoke id and managed object to
echo, and the absolute/relative time pair that is the monitor's clock), and poll replies (RORS,
and RORLS linked results whose header is two bytes longer), walked by the counts and lengths of
PollInfoList → SingleContextPoll → ObservationPoll → AttributeList, skipping attributes we do not
use. Every count or length that points past its enclosing structure raises ``Truncated``, so a
damaged message is rejected whole, never read into the wrong fields.

Numeric (``NOM_ATTR_NU_VAL_OBS``) and compound (``NOM_ATTR_NU_CMPD_VAL_OBS``, e.g. NBP
systolic/diastolic/mean) observations become samples through ``numeric_sample``, with the
meaning of their numbers from ``vitals.intellivue_values``. Values whose physio id is
``NOM_METRIC_NOS`` (IntelliBridge/VueLink numerics from a ventilator) are named by their label
string.

Sources (PROTOCOLS.md §2): ``xeonfusion/VSCaptureMP:Class2.cs`` (constants) and ``Class3.cs``
(``ParseMDSCreateEventReport``, ``CheckPollPacketActionType``, ``PollPacketDecoder``, time base);
``mdpnp/mdpnp:devices/philips/src/main/java/org/mdpnp/devices/philips/intellivue/``
(``AssociationMessageType.java``). None of it was checked against a monitor.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from vitals.intellivue_values import (
    LABEL_METRICS,
    LABEL_SOURCE,
    PHYSIO_METRICS,
    PHYSIO_TIDAL_VOLUME,
    RANGES,
    STATE_IN_ALARM,
    UNIT_CODES,
    Metric,
    decode_float,
    decode_label_string,
    decode_state,
    normalise_label,
)
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
