"""The Philips IntelliVue Data Export client: what it sends, and when.

IntelliVue monitors say nothing until a client associates. ``AssociationClient`` is that client's
state machine, without a port or a thread: it starts with the association request (AARQ) with
extended-poll support; when the monitor accepts (``0x0E``) and sends an MDS Create Event Report,
it answers (echoing invoke id and managed object) and requests an extended poll of all numerics.
The poll is re-issued before its period ends, a keep-alive poll goes out when the monitor has
been quiet for a few seconds (and at least every ``life_tick_s`` so the monitor always hears from
us), a refusal (``0x0C``) is retried a few times and then paused after a release, and an abort
(``0x19``), a release request or prolonged silence start the association again. ``ClientTiming``
holds those delays. The request builders below turn each step into its unframed message bytes.

Sources (PROTOCOLS.md §2): ``xeonfusion/VSCaptureMP:Class2.cs`` (``aarq_msg_ext_poll2``,
``ext_poll_request_msg5``, ``keep_alive_msg2``, ``rlrq_msg``, ``rlrq_resp_msg``);
``part-cw/LNhealth:modules/ivueparser/ivue.scm`` (run levels, three refusals then release, abort
handling) and ``ivue-request.scm`` (AARQ built from parts, ``ivue:mresult`` echoing invoke id and
managed object); ``mdpnp/mdpnp:devices/philips/src/main/java/org/mdpnp/devices/philips/intellivue/``
(``association/MDSEUserInfoStd.java``, keep-alive and timeouts in ``Intellivue.java`` and
``interop-lab/.../AbstractDemoIntellivue.java``). None of it was checked against a monitor.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from vitals.intellivue_messages import (
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_GRP_VMO_STATIC,
    NOM_ATTR_TIME_PD_POLL,
    NOM_MOC_VMO_AL_MON,
    NOM_MOC_VMO_METRIC_NU,
    NOM_MOC_VMS_MDS,
    NOM_NOTI_MDS_CREAT,
    NOM_PART_OBJ,
    ROIV,
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
