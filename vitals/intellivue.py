"""Philips IntelliVue MP/MX "Data Export" over the MIB/RS232 port → VitalSamples.

IntelliVue monitors say nothing until a client associates, so this parser talks. It glues the
pieces the other IntelliVue modules hold: ``vitals.intellivue_framing`` cuts the byte stream into
frames; ``vitals.intellivue_messages`` routes each message and reads MDS Create Event Reports and
poll replies; ``vitals.intellivue_values`` says what their numbers mean; and
``vitals.intellivue_client`` decides what to send and when (association, MDS create result,
extended poll, keep-alive, release). Everything the client wants sent is queued during ``feed``
and handed to the link from ``poll``, at most three frames per 128 ms (the interface allows four).

Across replies the parser keeps what belongs to one association: label strings, which a monitor
may send only in the first reply of a poll, are remembered per object handle, and the monitor's
clock comes from the relative time stamp of each reply against the absolute/relative time pair
of the MDS Create Event Report.

The names other modules use from the message, value and client modules are re-exported here
(``__all__``), so code written against this module keeps working.

Sources (PROTOCOLS.md §2): ``xeonfusion/VSCaptureMP:Class3.cs`` (time base);
``mdpnp/mdpnp:interop-lab/demo-devices/src/main/java/org/mdpnp/devices/philips/intellivue/
RS232Adapter.java`` (frames per 128 ms). None of it was checked against a monitor.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import ClassVar, Final

from vitals.intellivue_client import (
    POLL_EXT_ENUM,
    POLL_EXT_PERIOD_NU_1SEC,
    RELEASE_REQUEST,
    RELEASE_RESPONSE,
    SYST_SERVER,
    AssociationClient,
    ClientTiming,
    Phase,
    attribute_list,
    ber_length,
    poll_profile,
    session_message,
    u16,
    u32,
    user_info,
)
from vitals.intellivue_framing import MAX_FRAME_BYTES, FrameDecoder, encode_frame
from vitals.intellivue_messages import (
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
    ROER,
    ROIV,
    RORLS,
    RORS,
    SP_PDU,
    SPDU_ABORT,
    SPDU_ACCEPT,
    SPDU_CONNECT,
    SPDU_DISCONNECT,
    SPDU_FINISH,
    SPDU_REFUSE,
    TICKS_PER_SECOND,
    MdsCreate,
    PollReply,
    Truncated,
    numeric_sample,
    parse_mds_create,
    parse_poll_reply,
    remote_operation,
)
from vitals.intellivue_values import (
    decode_float,
    decode_label_string,
    encode_float,
    encode_label_string,
)
from vitals.parser import LinkSettings, MonitorParser
from vitals.sample import VitalSample

# The parser's own names, and those that other code imports from this module although they
# live in the modules above.
__all__ = [
    "CMD_CONFIRMED_ACTION",
    "CMD_CONFIRMED_EVENT_REPORT",
    "FRAME_WINDOW_NS",
    "MAX_FRAMES_PER_WINDOW",
    "NOM_ACT_POLL_MDIB_DATA",
    "NOM_ACT_POLL_MDIB_DATA_EXT",
    "NOM_ATTR_ID_LABEL",
    "NOM_ATTR_ID_LABEL_STRING",
    "NOM_ATTR_NU_CMPD_VAL_OBS",
    "NOM_ATTR_NU_VAL_OBS",
    "NOM_ATTR_TIME_ABS",
    "NOM_ATTR_TIME_PD_POLL",
    "NOM_ATTR_TIME_REL",
    "NOM_METRIC_NOS",
    "NOM_MOC_VMO_METRIC_NU",
    "NOM_MOC_VMS_MDS",
    "NOM_NOTI_MDS_CREAT",
    "NOM_PART_OBJ",
    "POLL_EXT_ENUM",
    "POLL_EXT_PERIOD_NU_1SEC",
    "RELEASE_REQUEST",
    "RELEASE_RESPONSE",
    "ROIV",
    "RORLS",
    "RORS",
    "SPDU_ABORT",
    "SPDU_ACCEPT",
    "SPDU_CONNECT",
    "SPDU_FINISH",
    "SP_PDU",
    "SYST_SERVER",
    "TICKS_PER_SECOND",
    "ClientTiming",
    "IntelliVueParser",
    "Phase",
    "Truncated",
    "attribute_list",
    "ber_length",
    "decode_float",
    "decode_label_string",
    "encode_float",
    "encode_label_string",
    "poll_profile",
    "remote_operation",
    "session_message",
    "u16",
    "u32",
    "user_info",
]

# -- the parser the link drives ---------------------------------------------------------------------

#: "The spec allows up to 4 frames in a 128ms period" (RS232Adapter.java); we stay one below.
MAX_FRAMES_PER_WINDOW: Final = 3
FRAME_WINDOW_NS: Final = 128_000_000
_MAX_OUTBOX: Final = 32
# A monitor exports tens of objects; more remembered labels than this means noise, not a monitor.
_MAX_LABELS: Final = 4096
# Relative time counts 1/8 ms.
_TICK_US: Final = 1_000_000 // TICKS_PER_SECOND


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
            # Poll replies first: they are nearly every message.
            if (reply := parse_poll_reply(op)) is not None:
                out.extend(self._samples(reply, host_ns))
            elif op.ro_type == ROER:
                self.errors_received += 1
            elif (mds := parse_mds_create(op)) is not None:
                self._associated(mds, host_ns)
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
        labels, monitor = self._labels, self.monitor  # looked up once, not once per numeric
        samples = []
        for numeric in reply.numerics:
            label = labels.get((numeric.context_id, numeric.handle))
            sample = numeric_sample(numeric, label, host_ns, monitor, monitor_time)
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
