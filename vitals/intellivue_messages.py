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

import functools
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from vitals.intellivue_values import (
    LABEL_METRICS,
    LABEL_SOURCE,
    PHYSIO_METRICS,
    PHYSIO_TIDAL_VOLUME,
    RANGES,
    STATE_IN_ALARM,
    UNIT_CODES,
    Metric,
    decode_label_string,
    decode_state,
    float_value,
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

    # u16, take and sub do _advance's check and step themselves: they run a dozen times per
    # poll reply, and the extra call was a third of their cost.

    def u16(self) -> int:
        start = self.pos
        if start + 2 > self.end:
            raise Truncated(f"2 bytes wanted at {start}, structure ends at {self.end}")
        self.pos = start + 2
        value: int = _U16.unpack_from(self.data, start)[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack_from(self.data, self._advance(4))[0]
        return value

    def take(self, n: int) -> bytes:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise Truncated(f"{n} bytes wanted at {start}, structure ends at {self.end}")
        self.pos = start + n
        return self.data[start : start + n]

    def sub(self, n: int) -> _Cursor:
        """A cursor over the next ``n`` bytes, which this one skips."""
        start = self.pos
        if n < 0 or start + n > self.end:
            raise Truncated(f"{n} bytes wanted at {start}, structure ends at {self.end}")
        self.pos = start + n
        return _Cursor(self.data, start, start + n)

    @property
    def left(self) -> int:
        return self.end - self.pos


_U16: Final = struct.Struct(">H")
_U16_PAIR: Final = struct.Struct(">HH")
_U16_TRIPLE: Final = struct.Struct(">HHH")
_U32: Final = struct.Struct(">I")
_NU_OBS: Final = struct.Struct(">HHHI")
_NU_OBS_SIZE: Final = _NU_OBS.size


class RemoteOperation(NamedTuple):
    """The ROSE header of a Data Export message, enough to route it.

    A NamedTuple, as ``Numeric`` is: one is built for every message, and a frozen dataclass took
    several times longer to build.
    """

    ro_type: int
    invoke_id: int
    command: int
    data: bytes
    body_start: int  # the command's argument or result: data[body_start:body_end]
    body_end: int

    def body(self) -> _Cursor:
        return _Cursor(self.data, self.body_start, self.body_end)


def remote_operation(data: bytes) -> RemoteOperation:
    """Read SPpdu, ROapdus and the ROIV/RORS/ROER/RORLS apdu; raises ``Truncated``.

    Read with struct at fixed offsets and the bounds checked by hand, as ``parse_poll_reply``
    does, rather than through a cursor: this runs for every message.
    """
    size = len(data)
    if size < 4 or data[:2] != SP_PDU[:2]:
        raise Truncated("not a Data Export message")
    if size < 8:
        raise Truncated(f"ROapdus wanted at 4, message ends at {size}")
    ro_type, ro_length = _U16_PAIR.unpack_from(data, 4)
    end = 8 + min(ro_length, size - 8)  # a shorter ro length bounds what follows
    # RORLS has its linked state (first, not first not last, last) and count before the rest.
    pos = 10 if ro_type == RORLS else 8
    if pos + 6 > end:
        raise Truncated(f"operation header wanted at {pos}, operation ends at {end}")
    invoke_id, command, length = _U16_TRIPLE.unpack_from(data, pos)
    pos += 6
    return RemoteOperation(ro_type, invoke_id, command, data, pos, pos + min(length, end - pos))


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


# BCD byte → its two-digit value, -1 where a nibble is not a digit: a table lookup per byte,
# since every poll reply carries a time stamp.
_BCD: Final = tuple(
    (byte >> 4) * 10 + (byte & 0x0F) if byte >> 4 <= 9 and byte & 0x0F <= 9 else -1 for byte in range(256)
)


def bcd_datetime(raw: bytes) -> datetime | None:
    """AbsoluteTime ``CC YY MM DD hh mm ss ff`` in BCD (ff in 1/100 s); None when unset or bad.

    Several monitors fill it with 0xFF (VSCaptureMP); anything that is not a real date is None.
    """
    digits = [_BCD[byte] for byte in raw]
    if -1 in digits:
        return None
    century, year, month, day, hour, minute, second, hundredths = digits
    try:
        return datetime(century * 100 + year, month, day, hour, minute, second, hundredths * 10_000)
    except ValueError:
        return None


class Numeric(NamedTuple):
    """One NuObsValue, with the object it belongs to.

    A NamedTuple rather than a frozen dataclass, as VitalSample is: a reply carries one per
    value, and the dataclass took a fifth of the time of reading a reply to build.
    """

    context_id: int
    handle: int
    physio_id: int
    state: int
    unit_code: int
    raw_value: int


# Builds a Numeric from a tuple of its six fields, without the generated Python __new__.
_new_numeric: Final = functools.partial(tuple.__new__, Numeric)


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
    # Every structure of a reply is read with struct at local offsets, each count and length
    # checked by hand, rather than with cursor calls per field (and a generator per attribute
    # list): those calls were most of the cost of a reply, and a reply comes every second.
    data, pos, end = op.data, op.body_start, op.body_end
    if pos + 10 > end:
        raise Truncated(f"action result wanted at {pos}, result ends at {end}")
    action, length = _U16_PAIR.unpack_from(data, pos + 6)  # after the managed object (the MDS)
    if action not in (NOM_ACT_POLL_MDIB_DATA, NOM_ACT_POLL_MDIB_DATA_EXT):
        return None
    pos += 10
    end = pos + min(length, end - pos)
    extended = action == NOM_ACT_POLL_MDIB_DATA_EXT
    # poll_number, [sequence_no], rel_time, abs_time (8), polled_obj_type and polled_attr_grp (6),
    # then the PollInfoList's count and length.
    if pos + (26 if extended else 24) > end:
        raise Truncated(f"poll result header wanted at {pos}, result ends at {end}")
    poll_number = _U16.unpack_from(data, pos)[0]
    pos += 4 if extended else 2
    rel_time = _U32.unpack_from(data, pos)[0]
    abs_time = bcd_datetime(data[pos + 4 : pos + 12])
    contexts, info_length = _U16_PAIR.unpack_from(data, pos + 18)
    pos += 22
    info_end = pos + info_length
    if info_end > end:
        raise Truncated(f"{info_length} bytes of poll info wanted at {pos}, result ends at {end}")
    numerics: list[Numeric] = []
    labels: dict[tuple[int, int], str] = {}
    for _ in range(contexts):
        if pos + 6 > info_end:
            raise Truncated(f"context wanted at {pos}, poll info ends at {info_end}")
        context_id, observations, context_length = _U16_TRIPLE.unpack_from(data, pos)
        pos += 6
        context_end = pos + context_length
        if context_end > info_end:
            raise Truncated(
                f"{context_length} bytes of context wanted at {pos}, poll info ends at {info_end}"
            )
        # Each ObservationPoll is a handle and an AttributeList {count, length, AVA...}.
        for _ in range(observations):
            if pos + 6 > context_end:
                raise Truncated(f"observation wanted at {pos}, context ends at {context_end}")
            handle, count, length = _U16_TRIPLE.unpack_from(data, pos)
            pos += 6
            list_end = pos + length
            if list_end > context_end:
                raise Truncated(
                    f"{length} bytes of attributes wanted at {pos}, context ends at {context_end}"
                )
            for _ in range(count):
                if pos + 4 > list_end:
                    raise Truncated(f"attribute header wanted at {pos}, list ends at {list_end}")
                attribute_id, size = _U16_PAIR.unpack_from(data, pos)
                pos += 4
                if pos + size > list_end:
                    raise Truncated(f"{size} bytes of attribute wanted at {pos}, list ends at {list_end}")
                if attribute_id == NOM_ATTR_NU_VAL_OBS:
                    if size < _NU_OBS_SIZE:
                        raise Truncated("NuObsValue shorter than 10 bytes")
                    numerics.append(_new_numeric((context_id, handle, *_NU_OBS.unpack_from(data, pos))))
                elif attribute_id == NOM_ATTR_NU_CMPD_VAL_OBS:
                    # NuObsValueCmp {count, length, NuObsValue...}, e.g. NBP sys/dia/mean.
                    if size < 4:
                        raise Truncated(f"compound header wanted at {pos}, attribute is {size} bytes")
                    values_count, values_length = _U16_PAIR.unpack_from(data, pos)
                    value_pos, values_end = pos + 4, pos + 4 + values_length
                    if values_end > pos + size:
                        raise Truncated(f"{values_length} bytes of values wanted, attribute is {size}")
                    for _ in range(values_count):
                        if value_pos + _NU_OBS_SIZE > values_end:
                            raise Truncated("NuObsValue shorter than 10 bytes")
                        numerics.append(
                            _new_numeric((context_id, handle, *_NU_OBS.unpack_from(data, value_pos)))
                        )
                        value_pos += _NU_OBS_SIZE
                elif attribute_id == NOM_ATTR_ID_LABEL_STRING:
                    labels[(context_id, handle)] = decode_label_string(data[pos : pos + size])
                pos += size
            pos = list_end
        pos = context_end
    return PollReply(poll_number, rel_time, abs_time, tuple(numerics), labels)


def numeric_sample(
    numeric: Numeric, label: str | None, host_ns: int, monitor: str, monitor_time: datetime | None
) -> VitalSample | None:
    """The sample for one numeric, or None when it is not a parameter we record."""
    kind = _numeric_kind(numeric.physio_id, label, numeric.state, numeric.unit_code)
    if kind is None:
        return None
    metric, valid, flags, alarm, unit, bounds = kind
    value, special = float_value(numeric.raw_value)
    if value is None or bounds is None or not bounds[0] <= value <= bounds[1]:
        # Something to add to what the object's state says: a marker instead of a number, a unit
        # we cannot read or do not expect, a number out of range. The usual numeric skips this.
        extra: list[str] = []
        if special is not None:
            valid = False
            extra.append("no_value")
            if special != "nan":
                extra.append(special)
        if unit is None:
            valid = False
            extra.append("unknown_unit")
        elif value is not None:
            if bounds is None:
                valid = False
                extra.append("unexpected_unit")
            else:
                valid = False
                extra.append("out_of_range")
        flags = flags.union(extra)
    return _new_sample(
        (
            metric.parameter,
            value,
            unit or "",
            valid,
            host_ns,
            monitor,
            metric.source,
            flags,
            alarm,
            monitor_time,
        )
    )


# Cached: everything about a numeric but its value depends on these four, which an object keeps
# from one poll reply to the next, so the lookups (and a label's normalising) run once per
# object and state rather than once per numeric. Bounded, since noise can bring any numbers.
@functools.lru_cache(maxsize=1024)
def _numeric_kind(
    physio_id: int, label: str | None, state: int, unit_code: int
) -> tuple[Metric, bool, frozenset[str], bool, str | None, tuple[float, float] | None] | None:
    """(metric, valid by state, state flags, in alarm, unit or None if unknown, range for that
    unit or None if unexpected); None when the numeric is not a parameter we record."""
    metric = PHYSIO_METRICS.get(physio_id)
    if physio_id == NOM_METRIC_NOS and label:
        parameter = LABEL_METRICS.get(normalise_label(label))
        metric = None if parameter is None else Metric(parameter, LABEL_SOURCE)
    elif (
        physio_id == PHYSIO_TIDAL_VOLUME
        and label
        and LABEL_METRICS.get(normalise_label(label)) is Parameter.VTI
    ):
        metric = Metric(Parameter.VTI)  # "VTi", "TVin": the same code, the inspired volume
    if metric is None:
        return None
    valid, flags = decode_state(state)
    unit = UNIT_CODES.get(unit_code)
    bounds = None if unit is None else RANGES[metric.parameter].get(unit)
    return metric, valid, flags, bool(state & STATE_IN_ALARM), unit, bounds


# Builds a sample from a tuple of all ten fields, in order, as VitalSample._make does but without
# its Python frame and length check: calling VitalSample(...) runs a generated Python __new__.
_new_sample: Final = functools.partial(tuple.__new__, VitalSample)
