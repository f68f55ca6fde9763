"""Nonin ASCII parser: the manuals' line formats, chunking invariance, garbage and resync."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vitals_testkit import (
    CHUNK_NS,
    assert_chunking_invariant,
    assert_no_value,
    assert_not_a_record,
    assert_registered,
    assert_resyncs_after,
    damaged,
    read_one_record,
    seeded_chunkings,
)

from vitals.nonin import NoninParser
from vitals.sample import Parameter, VitalSample

# The formats the Nonin manuals print (7500FO, Avant 9600, BT4000, 8600V), with values filled in.
PLAIN = b"SPO2=097 HR=145"
NO_DATA = b"SPO2=--- HR=---"
FAST = b"SPO2=096 HR=150 F"
EVENT = b"SPO2=095 HR=148*"
CLOCKED = b"12:30:05 SPO2=094 HR=139"
BLANK_PADDED = b"SPO2= 98 HR= 72"
ALL_LINES = (PLAIN, NO_DATA, FAST, EVENT, CLOCKED, BLANK_PADDED)
STREAM = b"".join(line + b"\r\n" for line in ALL_LINES)


def parse_one(line: bytes, host_ns: int = 7) -> dict[Parameter, VitalSample]:
    by_parameter = read_one_record(NoninParser("pox"), line + b"\r\n", host_ns)
    assert len(by_parameter) == 2
    return by_parameter


def test_registered_with_9600_8n1_and_no_greeting() -> None:
    parser = assert_registered(
        "nonin", NoninParser, baudrate=9600, bytesize=8, parity="N", stopbits=1, rtscts=False
    )
    assert parser.greeting() == b"" and parser.poll(0) == b""


def test_plain_line() -> None:
    s = parse_one(PLAIN)
    assert (s[Parameter.SPO2].value, s[Parameter.SPO2].unit) == (97.0, "%")
    assert (s[Parameter.HR].value, s[Parameter.HR].unit) == (145.0, "/min")
    for sample in s.values():
        assert sample.valid and not sample.alarm and sample.flags == frozenset()
        assert sample.source == "pleth" and sample.monitor == "pox" and sample.host_ns == 7
        assert sample.monitor_time is None  # the line carries no clock


def test_no_data_is_no_value() -> None:
    for sample in parse_one(NO_DATA).values():
        assert_no_value(sample, only=True)


def test_fast_and_event_markers_are_flags_not_alarms() -> None:
    fast = parse_one(FAST)
    assert fast[Parameter.SPO2].value == 96.0 and fast[Parameter.SPO2].flags == {"fast"}
    event = parse_one(EVENT)
    assert event[Parameter.HR].value == 148.0
    assert all(x.flags == {"event_marker"} and x.valid and not x.alarm for x in event.values())
    both = parse_one(b"SPO2=--- HR=--- F*")
    assert all(x.flags == {"fast", "event_marker", "no_value"} for x in both.values())


def test_clock_prefix_and_blank_padding() -> None:
    assert parse_one(CLOCKED)[Parameter.SPO2].value == 94.0
    assert parse_one(CLOCKED)[Parameter.SPO2].monitor_time is None  # a time of day, no date
    s = parse_one(BLANK_PADDED)
    assert (s[Parameter.SPO2].value, s[Parameter.HR].value) == (98.0, 72.0)


def test_out_of_range_is_invalid() -> None:
    s = parse_one(b"SPO2=101 HR=351")
    assert all(not x.valid and "out_of_range" in x.flags and x.value is not None for x in s.values())


@pytest.mark.parametrize(
    "line",
    [
        b"SPO2=097",  # partial: the HR field missing
        b"O2=097 HR=145",  # partial first line after the port opened
        b"SPO2=0971 HR=145",
        b"SPO2=9x7 HR=145",
        b"SPO2=097 HR=145 X",
        b"SPO2=097 HR=145 SPO2=096 HR=144",  # two lines glued (a lost line end)
        b"NONIN 7500FO V1.0 05/01/24 10:00",  # a power-up header: not a reading
    ],
)
def test_lines_that_are_not_readings(line: bytes) -> None:
    assert_not_a_record(NoninParser("pox"), line + b"\r\n", garbage_bytes=len(line))


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"])
def test_line_endings(ending: bytes) -> None:
    data = STREAM.replace(b"\r\n", ending)
    parser = NoninParser("pox")
    assert parser.feed(data, 1) == NoninParser("pox").feed(STREAM, 1)
    assert parser.stats.records_ok == len(ALL_LINES)


new_parser = partial(NoninParser, "pox", max_line=128)


GARBLED = (
    b"=145\r\n"
    + b"\x00"
    + PLAIN
    + b"\r\n\xff\x80junk\r\n"
    + b"Z" * 300
    + b"\r\n"
    + NO_DATA.replace(b"HR", b"\x00HR")
    + b"\r\n"
    + EVENT
    + b"\r\n"
)


@pytest.mark.parametrize("data", [STREAM, GARBLED], ids=["clean", "garbled"])
def test_seeded_random_chunkings_agree(data: bytes) -> None:
    assert_chunking_invariant(new_parser, data, seeded_chunkings(data, seed=9600, rounds=200, max_cuts=29))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([STREAM, GARBLED]), cuts=st.lists(st.integers(0, len(GARBLED))))
def test_any_chunking_gives_the_same_samples(data: bytes, cuts: list[int]) -> None:
    assert_chunking_invariant(new_parser, data, [cuts])


def test_garbled_stream_resyncs_and_counts() -> None:
    parser = new_parser()
    samples = parser.feed(GARBLED, CHUNK_NS)
    assert parser.stats.records_ok == 3
    assert parser.stats.records_bad == 3  # partial first line, junk, overlong line
    assert parser.stats.garbage_bytes >= 1 + 1 + 300 + len(b"=145")
    spo2 = [s for s in samples if s.parameter is Parameter.SPO2]
    assert [s.value for s in spo2] == [97.0, None, 95.0]


lines = st.sampled_from([*ALL_LINES, b"", b"\x00", b"SPO2=", b"HR=---"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=200), lines), max_size=20))
def test_random_bytes_never_raise_and_the_next_line_is_read(parts: list[bytes]) -> None:
    good = assert_resyncs_after(new_parser, b"\r\n".join(parts) + b"\r\n", PLAIN + b"\r\n")
    assert [s.value for s in good if s.parameter is Parameter.SPO2] == [97.0]


@given(spo2=st.from_regex(r"\A-{1,3}\Z"), hr=st.from_regex(r"\A(-{1,3}|[0-9]{3})\Z"))
def test_dash_markers_never_become_numbers(spo2: str, hr: str) -> None:
    samples = NoninParser("pox").feed(f"SPO2={spo2} HR={hr}\r\n".encode(), 0)
    assert samples[0].parameter is Parameter.SPO2
    assert_no_value(samples[0])


@settings(max_examples=300)
@given(
    line=st.sampled_from(ALL_LINES),
    at=st.integers(0, 30),
    byte=st.integers(0, 255),
    truncate=st.booleans(),
)
def test_truncated_or_corrupted_lines_never_raise_and_the_next_line_is_read(
    line: bytes, at: int, byte: int, truncate: bool
) -> None:
    damaged_line = damaged(line, at, byte, truncate=truncate) + b"\r\n"
    after = assert_resyncs_after(partial(NoninParser, "pox"), damaged_line, PLAIN + b"\r\n")
    assert [(s.parameter, s.value, s.valid) for s in after] == [
        (Parameter.SPO2, 97.0, True),
        (Parameter.HR, 145.0, True),
    ]
