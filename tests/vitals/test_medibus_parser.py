"""Medibus parser: worked commands, measured-data replies, the conversation, chunking, garbage."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vitals_testkit import (
    CHUNK_NS,
    SampleRules,
    assert_chunking_invariant,
    assert_no_value,
    assert_registered,
    assert_resyncs_after,
    by_parameter,
    damaged,
    seeded_chunkings,
)

from vitals.medibus import (
    CP1_CODES,
    DEVICE_ID,
    ICC,
    NOP,
    REQ_MEASURED_CP1,
    REQ_MEASURED_CP2,
    MedibusParser,
    checksum,
    command,
    parse_value,
    response,
)
from vitals.sample import Parameter, VitalSample

S = 1_000_000_000  # one second in ns

# A codepage-1 reply written out by hand: code (2 hex digits) + 4-character value per item.
CP1_DATA = (
    b"F0  30"  # FiO2 30 %
    b"7D22.5"  # PIP 22.5 mbar
    b"78 5.0"  # PEEP
    b"73 9.8"  # mean airway pressure
    b"D6  55"  # RR
    b"8815.2"  # tidal volume
    b"B90.82"  # minute volume
    b"B3  12"  # relative leak
    b"6B1013"  # ambient pressure: a code we do not read
)
CP1_REPLY = response(REQ_MEASURED_CP1, CP1_DATA)
EXPECTED = {
    Parameter.FIO2: (30.0, "%", "InspO2"),
    Parameter.PIP: (22.5, "mbar", "PeakBreathingPressure"),
    Parameter.PEEP: (5.0, "mbar", "PEEPBreathingPressure"),
    Parameter.MAP_AW: (9.8, "mbar", "MeanBreathingPressure"),
    Parameter.RR: (55.0, "/min", "RespiratoryRate"),
    Parameter.VTE: (15.2, "mL", "TidalVolume"),
    Parameter.MV: (0.82, "L/min", "RespiratoryMinuteVolumeFrac"),
    Parameter.LEAK: (12.0, "%", "LeakageRelPctleak"),
}


# A value field that is not a number says so: no_value for dashes and blanks, else malformed.
MEDIBUS_RULES = SampleRules(missing_says=frozenset({"no_value", "malformed"}))


new_parser = partial(MedibusParser, "vent")


def parse(data: bytes, host_ns: int = 7) -> tuple[list[VitalSample], MedibusParser]:
    parser = new_parser()
    return parser.feed(data, host_ns), parser


def with_value(code: bytes, value: bytes) -> bytes:
    return response(REQ_MEASURED_CP1, code + value)


# -- the documented bytes -----------------------------------------------------------------------


def test_worked_commands() -> None:
    # PROTOCOLS.md §4: ReqMeasuredDataCP1 and InitializeComm.
    assert command(REQ_MEASURED_CP1) == bytes.fromhex("1B 24 33 46 0D") == b"\x1b$3F\r"
    assert command(ICC) == bytes.fromhex("1B 51 36 43 0D")
    assert checksum(b"\x1b\x24") == b"3F"
    assert response(ICC) == b"\x01Q52\r"  # 0x01 + 0x51 = 0x52
    assert MedibusParser("vent").greeting() == command(ICC)


def test_registered_with_its_link_settings() -> None:
    parser = assert_registered(
        "medibus", MedibusParser, {"codepage2": True}, baudrate=9600, parity="E", bytesize=8, stopbits=1,
        xonxoff=False, rtscts=False,
    )  # fmt: skip
    assert parser.codepage2


# -- measured data ------------------------------------------------------------------------------


def test_codepage1_reply() -> None:
    samples, parser = parse(CP1_REPLY)
    assert parser.stats.records_ok == 1 and parser.stats.records_bad == 0
    assert parser.stats.garbage_bytes == 0
    s = by_parameter(samples)
    assert set(s) == set(EXPECTED)
    for parameter, (value, unit, source) in EXPECTED.items():
        assert (s[parameter].value, s[parameter].unit, s[parameter].source) == (value, unit, source)
        assert s[parameter].valid and s[parameter].flags == frozenset()
        assert s[parameter].host_ns == 7 and s[parameter].monitor == "vent"
        assert s[parameter].monitor_time is None  # measured data carry no device time


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        (b"  30", 30.0, "ok"),
        (b"22.5", 22.5, "ok"),
        (b" 0.8", 0.8, "ok"),
        (b"-1.5", -1.5, "ok"),
        (b" .5 ", 0.5, "ok"),
        (b"    ", None, "no_value"),
        (b"----", None, "no_value"),
        (b" ---", None, "no_value"),
        (b"--.-", None, "no_value"),
        (b"***", None, "malformed"),
        (b"1 2 ", None, "malformed"),
        (b"1e3 ", None, "malformed"),
        (b"0x1F", None, "malformed"),
        (b"-", None, "no_value"),
    ],
)
def test_parse_value(field: bytes, value: float | None, status: str) -> None:
    fv = parse_value(field)
    assert (fv.value, fv.status) == (value, status)


@pytest.mark.parametrize("field", [b"----", b"    ", b" ---", b"--.-"])
def test_dashes_and_blanks_never_become_numbers(field: bytes) -> None:
    s = by_parameter(parse(with_value(b"7D", field) + with_value(b"F0", b"  21"))[0])
    assert_no_value(s[Parameter.PIP], only=True)
    assert s[Parameter.FIO2].value == 21.0 and s[Parameter.FIO2].valid


def test_out_of_range_is_kept_but_invalid() -> None:
    s = by_parameter(parse(with_value(b"F0", b" 101"))[0])
    assert s[Parameter.FIO2].value == 101.0
    assert s[Parameter.FIO2].valid is False and s[Parameter.FIO2].flags == {"out_of_range"}


def test_one_sample_per_parameter_preferring_the_finer_code() -> None:
    s = by_parameter(parse(response(REQ_MEASURED_CP1, b"B8 0.8B90.82E3 5.3"))[0])
    assert (s[Parameter.MV].value, s[Parameter.MV].source) == (0.82, "RespiratoryMinuteVolumeFrac")
    assert (s[Parameter.ETCO2].value, s[Parameter.ETCO2].unit) == (5.3, "kPa")
    s = by_parameter(parse(response(REQ_MEASURED_CP1, b"DB 5.1E6  38B8 0.8"))[0])
    assert (s[Parameter.ETCO2].value, s[Parameter.ETCO2].unit) == (38.0, "mmHg")
    assert (s[Parameter.MV].value, s[Parameter.MV].source) == (0.8, "RespiratoryMinuteVolume")


def test_oximeter_codes() -> None:
    s = by_parameter(parse(response(REQ_MEASURED_CP1, b"EB  94E1 143"))[0])
    assert (s[Parameter.SPO2].value, s[Parameter.SPO2].unit) == (94.0, "%")
    assert (s[Parameter.PR].value, s[Parameter.PR].unit) == (143.0, "/min")


def test_codepage2_volumes() -> None:
    s = by_parameter(parse(response(REQ_MEASURED_CP2, b"2115.12216.9"))[0])
    assert (s[Parameter.VTE].value, s[Parameter.VTE].source) == (15.1, "VTe")
    assert (s[Parameter.VTI].value, s[Parameter.VTI].source) == (16.9, "VTi")


def test_partial_and_unreadable_items_are_counted_not_fatal() -> None:
    samples, parser = parse(response(REQ_MEASURED_CP1, b"F0  30ZZ1234" + b"7D2"))
    assert [(s.parameter, s.value) for s in samples] == [(Parameter.FIO2, 30.0)]
    assert parser.stats.records_ok == 1 and parser.stats.garbage_bytes == 6 + 3


def test_lowercase_checksum_is_accepted() -> None:
    frame = CP1_REPLY[:-3] + CP1_REPLY[-3:-1].lower() + b"\r"
    samples, parser = parse(frame)
    assert parser.stats.records_ok == 1 and len(samples) == len(EXPECTED)


def test_bad_checksum_drops_the_reply() -> None:
    bad = CP1_REPLY[:6] + b"9" + CP1_REPLY[7:]  # "F0  30" → "F0  90"
    samples, parser = parse(bad + CP1_REPLY)
    assert len(samples) == len(EXPECTED) and by_parameter(samples)[Parameter.FIO2].value == 30.0
    assert parser.stats.records_bad == 1 and parser.stats.garbage_bytes == len(bad) - 1
    assert response(0x15) not in parser.poll(0)  # a corrupt response is not answered


def test_flow_control_and_realtime_bytes_are_not_data() -> None:
    reference, _ = parse(CP1_REPLY)
    noisy = bytearray()
    for i, byte in enumerate(CP1_REPLY):
        noisy.append(byte)
        if i % 7 == 3:
            noisy += b"\x11"
        if i % 11 == 5:
            noisy += b"\x13\xd0\x81"  # XOFF, then realtime sync and data bytes
    samples, parser = parse(bytes(noisy))
    assert samples == reference
    assert parser.stats.garbage_bytes == 2 * noisy.count(b"\xd0")  # realtime bytes only


# -- the device talks too -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_sends", "host_answers"),
    [
        (command(ICC), b"\x01Q52\r"),
        (command(NOP), response(NOP)),
        (command(0x52), response(0x52, DEVICE_ID)),
        (command(0x28), response(0x28)),  # anything else is echoed
        (b"\x1bQ00\r", response(0x15)),  # corrupt: the "corrupt" response, as a NAK
    ],
)
def test_device_commands_are_answered_at_the_next_poll(device_sends: bytes, host_answers: bytes) -> None:
    parser = MedibusParser("vent")
    parser.greeting()
    assert parser.feed(device_sends, 0) == []
    out = parser.poll(0)
    assert out.startswith(host_answers)
    assert parser.poll(1) == b""  # handed out once


def test_device_command_nested_in_a_response() -> None:
    cut = 20
    nested = CP1_REPLY[:cut] + command(NOP) + CP1_REPLY[cut:]
    samples, parser = parse(nested)
    assert len(samples) == len(EXPECTED)
    assert parser.stats.records_ok == 2 and parser.stats.records_bad == 0
    assert parser.device_commands == 1
    assert response(NOP) in parser.poll(0)


def test_cut_off_frames_are_dropped_and_the_next_is_read() -> None:
    for cut in range(1, len(CP1_REPLY) - 1):
        truncated = CP1_REPLY[:cut]  # its CR never came
        samples, parser = parse(truncated + CP1_REPLY)
        assert len(samples) == len(EXPECTED), cut
        assert parser.stats.records_bad == 1 and parser.stats.records_ok == 1


def test_overlong_frame_is_bounded() -> None:
    parser = MedibusParser("vent", max_frame=256)
    assert parser.feed(b"\x01$" + b"A" * 5000, 0) == []
    assert sum(len(f.body) for f in parser._open) <= 256
    samples = parser.feed(b"\r" + CP1_REPLY, 0)
    assert len(samples) == len(EXPECTED)
    assert parser.stats.records_bad == 1 and parser.stats.garbage_bytes >= 5000


def test_reset_forgets_partial_frames_and_the_session() -> None:
    parser = MedibusParser("vent")
    parser.greeting()
    parser.feed(response(ICC), 0)
    parser.feed(CP1_REPLY[:10], 0)
    parser.reset()
    assert parser.feed(CP1_REPLY[10:], 0) == []
    assert parser.poll(0) == command(ICC)  # initialise again


# -- the conversation ---------------------------------------------------------------------------


def test_conversation_initialise_poll_keepalive_reinitialise() -> None:
    parser = MedibusParser(
        "vent", poll_interval_s=1.0, keepalive_s=2.0, reply_timeout_s=2.0, reinit_after_s=5.0
    )
    parser.reset()
    assert parser.greeting() == command(ICC)
    assert parser.poll(0) == b""  # ICC outstanding
    assert parser.poll(2 * S) == command(ICC)  # unanswered: again
    assert parser.replies_missed == 1
    parser.feed(response(ICC), 2 * S + 1)
    assert parser.poll(2 * S + 2) == command(REQ_MEASURED_CP1)  # at once after ICC
    assert parser.poll(2 * S + 3) == b""
    parser.feed(CP1_REPLY, 2 * S + S // 10)
    assert parser.poll(2 * S + S // 2) == b""  # the next poll is not due yet
    assert parser.poll(3 * S + 2) == command(REQ_MEASURED_CP1)
    parser.feed(CP1_REPLY, 3 * S + S // 10)
    assert parser.poll(4 * S + 2) == command(REQ_MEASURED_CP1)
    # The device stops answering: requests time out, and after 5 s without an answer, ICC.
    sent = [parser.poll(t * S // 2) for t in range(9, 21)]
    assert command(ICC) in sent
    assert parser.reinits == 1
    parser.feed(response(ICC), 12 * S)
    assert parser.poll(12 * S + 1) == command(REQ_MEASURED_CP1)


def test_nop_keeps_the_link_alive_when_polling_is_slow() -> None:
    parser = MedibusParser("vent", poll_interval_s=10.0, keepalive_s=2.0, reinit_after_s=60.0)
    parser.greeting()
    parser.poll(0)
    parser.feed(response(ICC), 1)
    assert parser.poll(2) == command(REQ_MEASURED_CP1)
    parser.feed(CP1_REPLY, 3)
    assert parser.poll(S) == b""
    assert parser.poll(2 * S + 2) == command(NOP)
    parser.feed(response(NOP), 2 * S + 3)
    assert parser.poll(3 * S) == b""
    assert parser.poll(4 * S + 2) == command(NOP)


def test_codepage2_is_requested_after_codepage1() -> None:
    parser = MedibusParser("vent", codepage2=True)
    parser.greeting()
    parser.poll(0)
    parser.feed(response(ICC), 1)
    assert parser.poll(2) == command(REQ_MEASURED_CP1)
    parser.feed(CP1_REPLY, 3)
    assert parser.poll(4) == command(REQ_MEASURED_CP2)
    parser.feed(response(REQ_MEASURED_CP2, b"2115.1"), 5)
    assert parser.poll(6) == b""
    assert parser.poll(S + 2) == command(REQ_MEASURED_CP1)


def test_device_icc_or_stop_makes_the_host_initialise_again() -> None:
    for device_command in (ICC, 0x55):
        parser = MedibusParser("vent")
        parser.greeting()
        parser.poll(0)
        parser.feed(response(ICC), 1)
        assert parser.poll(2) == command(REQ_MEASURED_CP1)
        parser.feed(CP1_REPLY + command(device_command), 3)
        assert parser.poll(4) == response(device_command) + command(ICC)


# -- chunking and random input ------------------------------------------------------------------

STREAM = (
    command(ICC)
    + response(ICC)
    + CP1_REPLY
    + command(NOP)
    + response(REQ_MEASURED_CP1, b"7D----F0  21")
    + CP1_REPLY[:30]
    + command(0x52)
    + CP1_REPLY[30:]
)
GARBLED = (
    b"\r\x00junk"
    + CP1_REPLY[10:]
    + b"\x11"
    + CP1_REPLY[:-1]  # CR lost
    + CP1_REPLY
    + b"\x01$F0  3"  # cut off
    + b"\x1bQ00\r"  # corrupt device command
    + b"\xd0\x81\x13"
    + STREAM
)


def stats_and_replies(parser: MedibusParser) -> dict[str, object]:
    # The device's commands in the stream must be answered alike however the stream was cut.
    return {"stats": parser.stats, "replies": parser.poll(0)}


@pytest.mark.parametrize("data", [STREAM, GARBLED], ids=["clean", "garbled"])
def test_seeded_random_chunkings_agree(data: bytes) -> None:
    chunkings = seeded_chunkings(data, seed=7, rounds=100, max_cuts=49)
    whole = assert_chunking_invariant(new_parser, data, chunkings, state=stats_and_replies)
    assert whole["replies"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([STREAM, GARBLED]), cuts=st.lists(st.integers(0, len(GARBLED)), max_size=40))
def test_any_chunking_gives_the_same_samples(data: bytes, cuts: list[int]) -> None:
    assert_chunking_invariant(new_parser, data, [cuts], state=stats_and_replies)


def test_garbled_stream_keeps_every_intact_reply() -> None:
    parser = new_parser()
    samples = parser.feed(GARBLED, CHUNK_NS)
    replies = parser.poll(0)
    fio2 = [s.value for s in samples if s.parameter is Parameter.FIO2]
    # A reply needs its CR: the one that lost it is dropped when the next SOH comes. Then the
    # intact reply after it, and STREAM's three.
    assert fio2 == [30.0, 30.0, 21.0, 30.0]
    assert parser.stats.records_ok == 1 + 7
    assert response(0x15) in replies and response(0x52, DEVICE_ID) in replies


pieces = st.one_of(
    st.binary(max_size=100),
    st.sampled_from([CP1_REPLY, CP1_REPLY[:15], CP1_REPLY[15:], b"\x01", b"\x1b", b"\r", command(NOP)]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, max_size=12))
def test_random_input_never_raises_and_the_next_reply_is_read(parts: list[bytes]) -> None:
    assert_resyncs_after(new_parser, b"".join(parts), CP1_REPLY, rules=MEDIBUS_RULES)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=4, max_size=4))
def test_any_value_field_is_a_number_or_nothing(field: bytes) -> None:
    samples, _ = parse(
        with_value(b"7D", field.replace(b"\r", b" ").replace(b"\x01", b" ").replace(b"\x1b", b" "))
    )
    for s in samples:
        assert (s.value is None) == (not s.valid and bool(s.flags & {"no_value", "malformed"}))


def test_code_table_units() -> None:
    # The airway pressures stay in the ventilator's own unit.
    assert {CP1_CODES[c].unit for c in (0x7D, 0x78, 0x73)} == {"mbar"}
    assert CP1_CODES[0xF0].parameter is Parameter.FIO2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(0, len(CP1_REPLY) - 1),
    value=st.integers(0, 255),
    truncate=st.integers(0, len(CP1_REPLY)),
)
def test_corrupted_and_truncated_replies_then_resync(position: int, value: int, truncate: int) -> None:
    # One byte hit on the wire (a checksum digit, the SOH, the CR, an XON in the middle), then a
    # reply cut short: the reply after them reads in full.
    corrupted = damaged(CP1_REPLY, position, value, truncate=False)
    after = assert_resyncs_after(new_parser, corrupted + CP1_REPLY[:truncate], CP1_REPLY, rules=MEDIBUS_RULES)
    assert {p: (s.value, s.unit, s.source) for p, s in by_parameter(after).items()} == EXPECTED
