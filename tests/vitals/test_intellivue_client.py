"""The IntelliVue parser as a client: what it sends, and when, on a clock the test controls."""

from __future__ import annotations

from datetime import datetime

import pytest

from vitals.intellivue import (
    RELEASE_REQUEST,
    ClientTiming,
    IntelliVueParser,
    Phase,
    encode_float,
)
from vitals.intellivue_framing import FrameDecoder, encode_frame
from vitals.simulators.intellivue import (
    abort_message,
    accept_message,
    mds_create_event,
    numeric_value,
    observation,
    poll_reply,
    refuse_message,
)

S = 1_000_000_000

# VSCaptureMP Class2.cs aarq_msg_ext_poll2, verbatim.
AARQ_EXT_POLL2 = bytes.fromhex(
    "0DEC0508130100160102800014020002C1DC3180A0808001010000A280A003000001A480308002010106045201000130"
    "8006025101000000003080020102060C2A8648CE14020100000001013080060C2A8648CE140201000000020100000000"
    "000061803080020101A0806080A180060C2A8648CE14020100000003010000BE802880060C2A8648CE14020100000001"
    "0102010281488000000040000000000000008000000020000000000000000001002C0001002880000000000003E80000"
    "09C4000003E8FFFFFFFF600000000001000CF00100088C0000000000000000000000000000000000000000000000"
)
# PROTOCOLS.md §2.2 and §2.4, framed.
EXT_POLL_FRAME = bytes.fromhex(
    "C0110100 30E1000002000100280001000700220021000000000000000 0F13B00140001000100060000000100"
    "08F13E00040003A9805871C1".replace(" ", "")
)
MDS_RESULT_FRAME = bytes.fromhex(
    "C011 01001CE100000200020014000100010 00E00210000000000 0ABD000D0600003917C1".replace(" ", "")
)


def messages(data: bytes) -> list[bytes]:
    return [f.user_data for f in FrameDecoder().feed(data, 0)]


def kind(message: bytes) -> str:
    if message[0] != 0xE1:
        return {0x0D: "aarq", 0x09: "release", 0x0A: "release_response"}.get(message[0], hex(message[0]))
    ro_type = message[5]
    if ro_type == 2:
        return "mds_result"
    action = int.from_bytes(message[24:26], "big")
    return {0xF13B: "ext_poll", 0x0C16: "keep_alive"}.get(action, hex(action))


def kinds(data: bytes) -> list[str]:
    return [kind(m) for m in messages(data)]


def parser(**timing: float) -> IntelliVueParser:
    return IntelliVueParser("iv", timing=ClientTiming(**timing))  # type: ignore[arg-type]


def associate(p: IntelliVueParser, t: float = 0.0) -> list[str]:
    """Greeting, accept and MDS create at ``t``; what the client then sends."""
    assert kinds(p.greeting()) == ["aarq"]
    assert p.poll(round(t * S)) == b""
    p.feed(encode_frame(accept_message()), round(t * S))
    assert p.phase is Phase.AWAITING_MDS
    p.feed(encode_frame(mds_create_event(0x1234, 0, datetime(2024, 1, 1), 0)), round(t * S))
    assert p.phase is Phase.ASSOCIATED
    return kinds(p.poll(round(t * S)))


def run(p: IntelliVueParser, start: float, stop: float, step: float = 0.1) -> list[tuple[float, str]]:
    """Poll every ``step`` seconds; (time, kind) of everything sent."""
    out = []
    n = round((stop - start) / step)
    for i in range(n + 1):
        t = round(start + i * step, 3)
        out.extend((t, k) for k in kinds(p.poll(round(t * S))))
    return out


def test_greeting_is_the_published_association_request() -> None:
    assert len(AARQ_EXT_POLL2) == 238
    assert IntelliVueParser("iv").greeting() == encode_frame(AARQ_EXT_POLL2)


def test_mds_create_is_answered_then_numerics_are_polled() -> None:
    p = parser()
    assert associate(p) == ["mds_result", "ext_poll"]


def test_mds_create_result_echoes_invoke_id_object_and_time() -> None:
    event = bytearray(mds_create_event(0x1234, 0x00ABCDEF, None, 0))
    event[14:20] = b"\x00\x21\x00\x05\x00\x07"  # another context and handle than the usual MDS
    p = IntelliVueParser("iv")
    p.greeting()
    p.feed(encode_frame(bytes(event)), 0)
    result = messages(p.poll(0))[0]
    assert result == bytes.fromhex("E1000002 00020014 12340001000E 002100050007 00ABCDEF 0D06 0000")
    # The published example: invoke id 1, the MDS, time 0x000ABD00.
    p = IntelliVueParser("iv")
    p.feed(encode_frame(mds_create_event(1, 0x000ABD00, None, 0)), 0)
    assert p.poll(0).startswith(MDS_RESULT_FRAME)


def test_first_extended_poll_is_the_published_one() -> None:
    p = IntelliVueParser("iv")
    p.feed(encode_frame(mds_create_event(1, 0, None, 0)), 0)
    frames = p.poll(0)
    # Invoke id 1, poll number 1, numerics, all groups, NOM_ATTR_TIME_PD_POLL = 30 s.
    assert frames.endswith(EXT_POLL_FRAME)


def reply_frame(value: int = 140) -> bytes:
    obs = observation(1, (0x0950, numeric_value(0x4182, 0, 0x0AA0, encode_float(value))))
    return encode_frame(poll_reply(1, [obs], rel_time=0))


def test_poll_is_reissued_before_its_period_ends_and_life_ticks_go_out() -> None:
    p = parser()
    associate(p)
    sent: list[tuple[float, str]] = []
    for second in range(1, 41):
        p.feed(reply_frame(), second * S)  # the monitor answers every second
        sent += run(p, second - 0.9, second, 0.1)
    # Re-issued at 80 % of 30 s; with data flowing, a keep-alive only when we were mute for 8 s.
    assert sent == [
        (8.0, "keep_alive"),
        (16.0, "keep_alive"),
        (24.0, "ext_poll"),
        (32.0, "keep_alive"),
        (40.0, "keep_alive"),
    ]


def test_quiet_monitor_gets_keep_alives_then_a_new_association() -> None:
    p = parser()
    associate(p)
    sent = run(p, 0.1, 21.0)
    assert sent == [(4.0, "keep_alive"), (8.0, "keep_alive"), (10.1, "aarq"), (15.1, "aarq"), (20.1, "aarq")]
    assert p.phase is Phase.ASSOCIATING


def test_a_keep_alive_answer_keeps_the_association() -> None:
    p = parser()
    associate(p)
    run(p, 0.1, 4.0)
    p.feed(reply_frame(), round(4.2 * S))  # the single poll is answered
    assert run(p, 4.3, 12.0) == [(8.2, "keep_alive")]  # quiet again for 4 s; no new AARQ
    assert p.phase is Phase.ASSOCIATED


def test_no_answer_to_the_association_request_sends_it_again() -> None:
    p = parser()
    p.greeting()
    assert run(p, 0.0, 11.0) == [(5.0, "aarq"), (10.0, "aarq")]


def test_accepted_but_no_mds_create_associates_again() -> None:
    p = parser()
    p.greeting()
    p.poll(0)
    p.feed(encode_frame(accept_message()), 1 * S)
    assert run(p, 1.1, 6.5) == [(6.1, "aarq")]


def test_refusals_are_retried_then_released_and_paused() -> None:
    p = parser()
    p.greeting()
    p.poll(0)
    p.feed(encode_frame(refuse_message()), round(0.5 * S))
    assert run(p, 0.6, 1.6) == [(1.5, "aarq")]
    p.feed(encode_frame(refuse_message()), 2 * S)
    assert run(p, 2.1, 3.1) == [(3.0, "aarq")]
    p.feed(encode_frame(refuse_message()), round(3.5 * S))
    assert p.phase is Phase.PAUSED
    released = p.poll(round(3.5 * S))
    assert messages(released) == [RELEASE_REQUEST]
    assert run(p, 3.6, 33.4, 0.2) == []
    assert run(p, 33.5, 33.5) == [(33.5, "aarq")]
    assert p.phase is Phase.ASSOCIATING


def test_abort_starts_a_new_association() -> None:
    p = parser()
    associate(p)
    p.feed(reply_frame(), 1 * S)
    p.feed(encode_frame(abort_message()), 2 * S)
    assert p.phase is Phase.ASSOCIATING
    assert run(p, 2.1, 3.5) == [(3.0, "aarq")]


def test_a_release_request_from_the_monitor_is_confirmed_then_associated_again() -> None:
    p = parser()
    associate(p)
    p.feed(encode_frame(RELEASE_REQUEST), 2 * S)
    assert kinds(p.poll(2 * S)) == ["release_response"]
    assert run(p, 2.1, 3.5) == [(3.0, "aarq")]


def test_a_second_mds_create_is_answered_and_polled_again() -> None:
    p = parser()
    associate(p)
    p.feed(encode_frame(mds_create_event(0x77, 0, None, 0)), 3 * S)
    assert kinds(p.poll(3 * S)) == ["mds_result", "ext_poll"]
    assert messages(p.poll(3 * S)) == []


def test_no_more_than_three_frames_per_128_ms() -> None:
    p = IntelliVueParser("iv")
    events = b"".join(encode_frame(mds_create_event(i, 0, None, 0)) for i in range(1, 5))
    p.feed(events, 0)  # four results and one poll queued
    assert len(messages(p.poll(0))) == 3
    assert messages(p.poll(100_000_000)) == []
    assert len(messages(p.poll(128_000_000))) == 2


def test_reset_forgets_the_association_and_its_time_base() -> None:
    p = parser()
    associate(p)
    p.reset()
    assert p.phase is Phase.IDLE
    assert p.poll(1 * S) == b""
    assert p.feed(reply_frame(), 1 * S)[0].monitor_time is None
    assert kinds(p.greeting()) == ["aarq"]


@pytest.mark.parametrize("message", [accept_message(), refuse_message(), abort_message(), RELEASE_REQUEST])
def test_session_messages_are_records(message: bytes) -> None:
    p = IntelliVueParser("iv")
    assert p.feed(encode_frame(message), 0) == []
    assert (p.stats.records_ok, p.stats.records_bad) == (1, 0)
