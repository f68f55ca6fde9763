"""GE S/5 DRI parser: the worked request frame, value layout and markers, chunking, garbage, resync."""

from __future__ import annotations

import random
import struct
from datetime import datetime
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
    damaged,
    seeded_chunkings,
)

from vitals.ge_s5 import (
    CLASS_BASIC,
    CLASS_EXT1,
    CLASS_EXT3,
    DRI_LEVEL_2005,
    DRI_PH_10S_TREND,
    MARKERS,
    REQUEST_LEVELS,
    GeS5Parser,
    checksum,
    decode_value,
    escape,
    frame,
    header_bytes,
    parse_header,
    unescape,
)
from vitals.sample import Parameter, VitalSample

# PROTOCOLS.md §3.4: the displayed-values request at DRI level 0x09, 5 s, basic + ext1–3.
WORKED_REQUEST = bytes.fromhex(
    "7E 31 00 00 09 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 FF 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 01 05 00 0E 00 00 00 00 00 4D 7E"
)
T0 = datetime(2024, 5, 1, 10, 0, 0)
UNIX_T0 = int((T0 - datetime(1970, 1, 1)).total_seconds())
EXISTS_ACTIVE = 0x3


def put(block: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<h", block, offset, value)


def status(block: bytearray, group: int, bits: int = EXISTS_ACTIVE, label: int = 0) -> None:
    struct.pack_into("<IH", block, group, bits, label)


# Absolute offsets in the basic class block, as PROTOCOLS.md §3.5 tabulates them.
BASIC_VALUES = {
    6: 123,  # ECG HR
    22: 6000, 24: 3500, 26: 4500,  # p1 sys, dia, mean
    78: 6200, 80: 3400, 82: 4400,  # NIBP sys, dia, mean
    92: 3672,  # t1
    124: 9712, 126: 121,  # SpO2, pulse rate
    138: 526, 140: 0, 142: 48, 144: 7600,  # CO2 et, fi (% of ambient), rr, ambient 760.0 mmHg
    152: 2600, 154: 3000,  # O2 et, fi
    184: 52, 186: 2250, 188: 500, 190: -32767,  # rr, ppeak, peep, pplat
    192: 185, 194: 168, 196: -32767, 198: 85,  # tv_insp, tv_exp, compliance, mv_exp
}  # fmt: skip


def basic_block() -> bytearray:
    b = bytearray(270)
    status(b, 0, EXISTS_ACTIVE | 1 << 3)  # ECG, heart rate from ECG
    status(b, 16, label=1)  # p1: ART
    status(b, 72)  # NIBP
    status(b, 86, label=7)  # t1: SKIN
    for group in (118, 132, 146, 178):  # SpO2, CO2, O2, flow/volume
        status(b, group)
    for offset, value in BASIC_VALUES.items():
        put(b, offset, value)
    return b


def ext3_block(pmean: int = 1050) -> bytearray:
    b = bytearray(270)
    status(b, 14)  # flow_vol_group2 after the 14-byte gasex group
    put(b, 20, -32767)  # ipeep
    put(b, 22, pmean)
    return b


def subrecord(class_id: int, block: bytes | bytearray) -> bytes:
    return struct.pack("<I", UNIX_T0) + bytes(block) + struct.pack("<BBH", 0, 0, class_id << 8)


def record(
    *blocks: tuple[int, bytes | bytearray], sr_type: int = 1, r_time: int = UNIX_T0, r_nbr: int = 0
) -> bytes:
    body = b"".join(subrecord(c, b) for c, b in blocks)
    head = header_bytes(
        r_len=40 + len(body),
        dri_level=DRI_LEVEL_2005,
        maintype=0,
        subrecords=[(i * 278, sr_type) for i in range(len(blocks))],
        r_time=r_time,
        r_nbr=r_nbr,
    )
    return head + body


FULL = frame(record((CLASS_BASIC, basic_block()), (CLASS_EXT3, ext3_block())))


new_parser = partial(GeS5Parser, "ge")
GE_RULES = SampleRules(missing_says=frozenset({"no_value"}))


def parse(data: bytes, host_ns: int = 7) -> tuple[list[VitalSample], GeS5Parser]:
    parser = new_parser()
    return parser.feed(data, host_ns), parser


def by_key(samples: list[VitalSample]) -> dict[tuple[Parameter, str], VitalSample]:
    out = {(s.parameter, s.source): s for s in samples}
    assert len(out) == len(samples)
    return out


# -- the request --------------------------------------------------------------------------------


def test_worked_request_frame_decodes_as_documented() -> None:
    assert WORKED_REQUEST[0] == WORKED_REQUEST[-1] == 0x7E
    raw = unescape(WORKED_REQUEST[1:-1])
    assert raw is not None
    rec, received = raw[:-1], raw[-1]
    assert checksum(rec) == received == 0x4D
    header = parse_header(rec)
    assert header is not None
    assert (header.r_len, header.dri_level, header.maintype) == (49, 0x09, 0)
    assert header.subrecords == ((0, 0),)  # the request descriptor, then the 0xFF end
    record_type, interval, classes, reserved = struct.unpack_from("<BhIh", rec, 40)
    assert (record_type, interval, classes, reserved) == (1, 5, 0x0E, 0)


def test_greeting_is_the_request_at_every_level() -> None:
    parser = GeS5Parser("ge")
    greeting = parser.greeting()
    frames = [f for f in greeting.split(b"\x7e") if f]
    assert len(frames) == len(REQUEST_LEVELS) == 5
    assert WORKED_REQUEST in greeting  # the level-2005 request is byte for byte the worked one
    levels = []
    for body in frames:
        raw = unescape(body)
        assert raw is not None and checksum(raw[:-1]) == raw[-1]
        header = parse_header(raw[:-1])
        assert header is not None
        levels.append(header.dri_level)
        assert struct.unpack_from("<Bh", raw, 40) == (1, 5)
    assert levels == [0x0B, 0x0A, 0x09, 0x08, 0x07]


def test_interval_is_never_below_five_seconds() -> None:
    parser = GeS5Parser("ge", interval_s=1)
    assert parser.interval_s == 5
    assert b"\x01\x05\x00" in parser.greeting()
    assert b"\x01\x0a\x00" in GeS5Parser("ge", interval_s=10).greeting()


def test_registered_with_its_link_settings() -> None:
    parser = assert_registered(
        "ge_s5", GeS5Parser, {"interval_s": 10}, baudrate=19200, parity="E", bytesize=8, stopbits=1,
        rtscts=True, xonxoff=False,
    )  # fmt: skip
    assert parser.interval_s == 10


def test_request_is_sent_again_after_two_silent_intervals() -> None:
    s = 1_000_000_000
    parser = GeS5Parser("ge")
    parser.reset()
    request = parser.greeting()
    assert parser.poll(100 * s) == b""  # the greeting just went out
    assert parser.poll(109 * s) == b""
    assert parser.poll(110 * s) == request
    assert parser.poll(111 * s) == b""
    assert parser.feed(FULL, 115 * s)  # data: the clock restarts from its arrival
    assert parser.poll(124 * s) == b""
    answered = parser.poll(125 * s)
    assert answered == WORKED_REQUEST  # only at the level the monitor answered at (2005)
    assert parser.requests_resent == 2
    # A frame that carries no displayed values does not count as data.
    parser.feed(frame(header_bytes(r_len=40, dri_level=9, maintype=4, subrecords=[])), 130 * s)
    assert parser.poll(135 * s) == answered
    parser.reset()  # a reconnect: the link sends the greeting, the wait starts again
    assert parser.poll(200 * s) == b""
    assert parser.poll(205 * s) == b""
    assert parser.poll(210 * s) == request  # perhaps another monitor now: every level again


def test_after_the_first_record_requests_go_out_at_its_level_only() -> None:
    s = 1_000_000_000
    parser = GeS5Parser("ge")
    assert parser.answered_level is None
    parser.poll(0)
    assert len([f for f in parser.poll(10 * s).split(b"\x7e") if f]) == 5  # no answer yet: all five
    parser.feed(frame(record((CLASS_BASIC, basic_block()))), 11 * s)
    assert parser.answered_level == DRI_LEVEL_2005
    again = parser.poll(21 * s)
    frames = [f for f in again.split(b"\x7e") if f]
    assert len(frames) == 1 and again == WORKED_REQUEST
    assert parser.greeting() == parser.request  # a new connection still asks at every level


def test_resend_interval_can_be_configured() -> None:
    s = 1_000_000_000
    parser = GeS5Parser("ge", resend_after_s=0.5)
    assert parser.poll(0) == b""
    assert parser.poll(s // 2) == parser.request


# -- values -------------------------------------------------------------------------------------


def test_basic_and_ext3_values_with_their_scales_units_and_sources() -> None:
    samples, parser = parse(FULL)
    assert parser.stats.records_ok == 1 and parser.stats.records_bad == 0
    s = by_key(samples)
    expected = {
        (Parameter.HR, "ECG"): (123.0, "/min"),
        (Parameter.IBP_SYS, "ART"): (60.0, "mmHg"),
        (Parameter.IBP_DIA, "ART"): (35.0, "mmHg"),
        (Parameter.IBP_MEAN, "ART"): (45.0, "mmHg"),
        (Parameter.NBP_SYS, ""): (62.0, "mmHg"),
        (Parameter.NBP_DIA, ""): (34.0, "mmHg"),
        (Parameter.NBP_MEAN, ""): (44.0, "mmHg"),
        (Parameter.TEMP, "SKIN"): (36.72, "°C"),
        (Parameter.SPO2, "pleth"): (97.12, "%"),
        (Parameter.PR, "pleth"): (121.0, "/min"),
        (Parameter.ETCO2, "CO2"): (39.976, "mmHg"),  # 5.26 % of 760 mmHg
        (Parameter.FICO2, "CO2"): (0.0, "mmHg"),
        (Parameter.RR, "CO2"): (48.0, "/min"),
        (Parameter.ETO2, ""): (26.0, "%"),
        (Parameter.FIO2, ""): (30.0, "%"),
        (Parameter.RR, "spirometry"): (52.0, "/min"),
        (Parameter.PIP, "spirometry"): (22.5, "cmH2O"),
        (Parameter.PEEP, "spirometry"): (5.0, "cmH2O"),
        (Parameter.VTI, "spirometry"): (18.5, "mL"),
        (Parameter.VTE, "spirometry"): (16.8, "mL"),
        (Parameter.MV, "spirometry"): (0.85, "L/min"),
        (Parameter.MAP_AW, "spirometry"): (10.5, "cmH2O"),
    }
    assert set(s) == set(expected)
    for key, (value, unit) in expected.items():
        assert s[key].value == pytest.approx(value), key
        assert s[key].unit == unit
        assert s[key].valid and s[key].flags == frozenset()
        assert s[key].monitor_time == T0
        assert s[key].host_ns == 7 and s[key].monitor == "ge"


@pytest.mark.parametrize(
    ("raw", "name"), [*MARKERS.items(), (-32002, "invalid_marker"), (-32768, "invalid_marker")]
)
def test_markers_never_become_numbers(raw: int, name: str) -> None:
    block = basic_block()
    put(block, 124, raw)  # SpO2
    put(block, 6, raw)  # HR
    s = by_key(parse(frame(record((CLASS_BASIC, block))))[0])
    for key in ((Parameter.SPO2, "pleth"), (Parameter.HR, "ECG")):
        assert_no_value(s[key], name, only=True)
    assert s[(Parameter.PR, "pleth")].valid  # the rest of the group is unaffected


def test_decode_value_boundary() -> None:
    assert decode_value(-32001, 1).value == -32001  # the limit itself is a number
    assert type(decode_value(72, 1).value) is float  # one type for every value, whatever the scale
    assert decode_value(-32002, 1).value is None
    assert decode_value(9712, 0.01).value == pytest.approx(97.12)


def test_absent_group_gives_nothing_inactive_group_gives_invalid() -> None:
    block = basic_block()
    status(block, 118, 0)  # SpO2 does not exist
    status(block, 178, 0x1)  # spirometry exists but is not active
    s = by_key(parse(frame(record((CLASS_BASIC, block))))[0])
    assert (Parameter.SPO2, "pleth") not in s and (Parameter.PR, "pleth") not in s
    pip = s[(Parameter.PIP, "spirometry")]
    assert pip.value == 22.5 and pip.valid is False and pip.flags == {"inactive"}
    assert s[(Parameter.HR, "ECG")].valid


@pytest.mark.parametrize(
    ("code", "source"), [(1, "ECG"), (0, "ECG"), (6, "pleth"), (2, "P1"), (9, "unknown")]
)
def test_heart_rate_source_comes_from_the_ecg_status_bits(code: int, source: str) -> None:
    block = basic_block()
    status(block, 0, EXISTS_ACTIVE | code << 3)
    hr = [x for x in parse(frame(record((CLASS_BASIC, block))))[0] if x.parameter is Parameter.HR]
    assert [(x.source, x.value) for x in hr] == [(source, 123.0)]


def test_etco2_stays_in_percent_without_a_valid_ambient_pressure() -> None:
    block = basic_block()
    put(block, 144, -32767)
    s = by_key(parse(frame(record((CLASS_BASIC, block))))[0])
    assert (s[(Parameter.ETCO2, "CO2")].value, s[(Parameter.ETCO2, "CO2")].unit) == (5.26, "%")


@pytest.mark.parametrize(
    ("offset", "raw", "parameter"), [(124, 10001, Parameter.SPO2), (6, 351, Parameter.HR)]
)
def test_out_of_range_is_kept_but_invalid(offset: int, raw: int, parameter: Parameter) -> None:
    block = basic_block()
    put(block, offset, raw)
    bad = [s for s in parse(frame(record((CLASS_BASIC, block))))[0] if "out_of_range" in s.flags]
    assert [(s.parameter, s.valid) for s in bad] == [(parameter, False)]


def test_only_displayed_basic_and_ext3_subrecords_are_read() -> None:
    samples, parser = parse(frame(record((CLASS_EXT1, basic_block()))))
    assert samples == [] and parser.stats.records_ok == 1  # ext1 holds no values we read
    samples, _ = parse(frame(record((CLASS_BASIC, basic_block()), sr_type=DRI_PH_10S_TREND)))
    assert samples == []  # trend subrecords are skipped
    samples, _ = parse(frame(record((CLASS_EXT3, ext3_block(pmean=-32766)))))
    assert [(s.parameter, s.value, s.flags) for s in samples] == [
        (Parameter.MAP_AW, None, frozenset({"no_value", "not_updated"}))
    ]


def test_zero_time_is_no_monitor_time() -> None:
    samples, _ = parse(frame(record((CLASS_BASIC, basic_block()), r_time=0)))
    assert samples and all(s.monitor_time is None for s in samples)


# -- framing ------------------------------------------------------------------------------------


def test_escaping_of_content_and_checksum() -> None:
    # Pick r_nbr so the checksum itself is 0x7E, with 7E and 7D in the values too.
    block = basic_block()
    put(block, 196, 0x7D7E)
    base = record((CLASS_BASIC, block))
    r_nbr = (0x7E - checksum(base)) & 0xFF
    rec = record((CLASS_BASIC, block), r_nbr=r_nbr)
    assert checksum(rec) == 0x7E
    wire = frame(rec)
    assert wire.count(b"\x7e") == 2 and wire.endswith(b"\x7d\x5e\x7e")
    assert escape(b"\x7e\x7d") == b"\x7d\x5e\x7d\x5d"
    assert unescape(b"\x7d\x5d\x5e") == b"\x7d\x5e"
    assert unescape(b"\x01\x7d") is None and unescape(b"\x7d\x01") is None
    samples, parser = parse(wire)
    assert parser.stats.records_ok == 1
    assert by_key(samples)[(Parameter.HR, "ECG")].value == 123.0


def test_back_to_back_frames_and_shared_flags() -> None:
    one = record((CLASS_BASIC, basic_block()))
    body = frame(one)[1:-1]
    # Separate flags, shared flags (one 7E between frames), and extra idle flags all work.
    for stream in (frame(one) * 3, b"\x7e" + (body + b"\x7e") * 3, b"\x7e\x7e" + frame(one) * 3 + b"\x7e"):
        _, parser = parse(stream)
        assert parser.stats.records_ok == 3 and parser.stats.records_bad == 0
        assert parser.stats.garbage_bytes == 0


def test_a_lost_byte_drops_that_frame_only() -> None:
    # Most of a record is zeros, and losing a zero leaves the 8-bit sum intact: r_len catches it.
    one = frame(record((CLASS_BASIC, basic_block())))
    assert one.count(0) > len(one) // 2
    reference, _ = parse(one)
    for i in range(len(one)):
        damaged = one[:i] + one[i + 1 :]
        samples, parser = parse(damaged + one)
        # Losing the end flag costs nothing: the next start flag ends the frame. Losing the start
        # flag of the very first frame costs it (its bytes cannot be told from noise).
        survivors = 2 if i == len(one) - 1 else 1
        assert samples == reference * survivors, i
        assert parser.stats.records_ok == survivors
        if 0 < i < len(one) - 1:
            assert parser.stats.records_bad == 1


def test_a_corrupted_byte_drops_that_frame_only() -> None:
    one = frame(record((CLASS_BASIC, basic_block())))
    assert b"\x7d" not in one  # every byte of this frame is one record byte
    reference, _ = parse(one)
    rng = random.Random(5)
    for i in range(1, len(one) - 1):
        bad = bytearray(one)
        bad[i] ^= rng.randrange(1, 256)
        samples, parser = parse(bytes(bad) + one)
        assert samples == reference, i
        assert parser.stats.records_bad >= 1


def test_garbage_before_between_and_oversized() -> None:
    one = frame(record((CLASS_BASIC, basic_block())))
    stream = b"junk" + one + b"\x01\x02\x03" + b"\x7e" + b"\x55" * 5000 + one
    _, parser = parse(stream)
    assert parser.stats.records_ok == 2
    assert parser.stats.records_bad == 2  # the 3 bytes between frames, the 5000-byte run
    assert parser.stats.garbage_bytes == 4 + 3 + 5000
    assert len(parser._segment) == 0


def test_reset_forgets_the_partial_frame() -> None:
    one = frame(record((CLASS_BASIC, basic_block())))
    parser = GeS5Parser("ge")
    assert parser.feed(one[:300], 0) == []
    parser.reset()
    assert parser.feed(one[300:], 0) == []  # its tail is not glued to the old head
    assert parser.feed(one, 0)


def test_samples_are_stamped_with_the_first_byte_of_their_frame() -> None:
    one = frame(record((CLASS_BASIC, basic_block())))
    parser = GeS5Parser("ge")
    assert parser.feed(one[:10], 100) == []
    first = parser.feed(one[10:] + one[:5], 200)
    second = parser.feed(one[5:], 300)
    assert {s.host_ns for s in first} == {100} and {s.host_ns for s in second} == {200}


# -- chunking and random input ------------------------------------------------------------------

GARBLED = (
    FULL[100:]  # joined midway
    + FULL
    + b"\x00\xff\x7d"
    + FULL[:-1]  # end flag lost
    + FULL
    + FULL[:400]
    + FULL[401:]  # a byte lost
    + b"\x7e" * 4
    + frame(record((CLASS_BASIC, basic_block()), r_time=UNIX_T0 + 5))
)


@pytest.mark.parametrize("data", [FULL * 3, GARBLED], ids=["clean", "garbled"])
def test_seeded_random_chunkings_agree(data: bytes) -> None:
    assert_chunking_invariant(new_parser, data, seeded_chunkings(data, seed=99, rounds=60, max_cuts=59))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([FULL * 2, GARBLED]), cuts=st.lists(st.integers(0, len(GARBLED)), max_size=40))
def test_any_chunking_gives_the_same_samples(data: bytes, cuts: list[int]) -> None:
    assert_chunking_invariant(new_parser, data, [cuts])


def test_garbled_stream_keeps_every_intact_frame() -> None:
    parser = new_parser()
    samples = parser.feed(GARBLED, CHUNK_NS)
    hr = [s for s in samples if s.parameter is Parameter.HR]
    # Full frame, the one whose end flag was lost, the full one after it, and the last one.
    assert len(hr) == 4
    assert hr[-1].monitor_time == datetime(2024, 5, 1, 10, 0, 5)
    assert parser.stats.records_ok == 4


pieces = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([FULL, FULL[:200], FULL[200:], b"\x7e", b"\x7d", b"\x7e\x7e", b"\x7d\x5e"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, max_size=12))
def test_random_input_never_raises_and_the_next_frame_is_read(parts: list[bytes]) -> None:
    # Whatever came before, the next frame is read whole.
    assert_resyncs_after(new_parser, b"".join(parts), FULL, rules=GE_RULES)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_binary_is_counted(data: bytes) -> None:
    parser = GeS5Parser("ge")
    parser.feed(data, 0)
    assert parser.stats.bytes_in == len(data)
    if parser.stats.records_ok == 0:
        # Every byte is a flag, garbage, or waiting for the next flag.
        assert parser.stats.garbage_bytes + data.count(b"\x7e") + len(parser._segment) == len(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(0, len(FULL) - 1), value=st.integers(0, 255), truncate=st.integers(0, len(FULL) - 2)
)
def test_corrupted_and_truncated_frames_then_resync(position: int, value: int, truncate: int) -> None:
    # One byte hit on the wire, then a frame cut short (the monitor reset mid-record): whatever
    # the hit made of the flags, escapes and checksum, the frame after them reads in full. (Cut
    # short by its closing 7E alone, a frame is whole: the next frame's 7E ends it.)
    corrupted = damaged(FULL, position, value, truncate=False)
    after = assert_resyncs_after(new_parser, corrupted + FULL[:truncate], FULL, rules=GE_RULES)
    assert by_key(after)[(Parameter.HR, "ECG")].value == 123.0
