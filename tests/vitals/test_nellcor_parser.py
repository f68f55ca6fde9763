"""Nellcor N-595 parser: published rows and headings, flags, chunking invariance, garbage, resync."""

from __future__ import annotations

from datetime import datetime
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

from vitals.nellcor import NellcorParser, parse_info, parse_row
from vitals.sample import Parameter, VitalSample

# The data-port example row of the NPB-29x manuals (same table format), and the heading rows as
# the manuals and OpenICE's nellcor-n595.spec give them.
MANUAL_ROW = b"12-NOV-98 14:00:05 100 120 50"
VERSION_ROW = b"N-595 VERSION 1.0.0.1 CRC: 3F2A SpO2 Limit: 85-100% PR Limit: 100-180BPM"
OPENICE_VERSION_ROW = b"N-595   VERSION 1.0.0.1   CRC:XXXX  SpO2 Limit: 85-100%   PR Limit: 40-170BPM"
MODE_ROW = b"                                  ADULT   0SAT-S   SPO2 RESP MODE: NORMAL"
COLUMNS_ROW = b"TIME                 %SPO2  BPM   PA  Status"
MENU = (
    b"NPB-595   Interactive Mode",
    b"    1) Dump Instrument Info",
    b"    2) Set Date and Time",
    b"    0) Exit Interactive Mode",
    b"    Command?",
)
ALARM_ROW = b"01-May-24 10:00:02     82*  190*  50  SL PH"
NO_SENSOR_ROW = b"01-May-24 10:00:04     ---  ---  ---  SO"
SEARCH_ROW = b"01-May-24 10:00:06      97  140  45  PS"
MOTION_ROW = b"01-May-24 10:00:08      97  140  45  MO AS"

STREAM = b"".join(
    line + b"\r\n"
    for line in (
        VERSION_ROW,
        MODE_ROW,
        COLUMNS_ROW,
        MANUAL_ROW,
        ALARM_ROW,
        NO_SENSOR_ROW,
        SEARCH_ROW,
        MOTION_ROW,
        *MENU,
    )
)
DATA_ROWS = 5


def parse_one(line: bytes, host_ns: int = 7) -> dict[Parameter, VitalSample]:
    by_parameter = read_one_record(NellcorParser("pox"), line + b"\r\n", host_ns)
    assert len(by_parameter) == 2
    return by_parameter


def test_registered_with_9600_8n1_and_an_xon_greeting() -> None:
    parser = assert_registered(
        "nellcor", NellcorParser, baudrate=9600, bytesize=8, parity="N", stopbits=1, rtscts=False
    )
    assert parser.greeting() == b"\x11"
    assert parser.poll(0) == b""


def test_manual_example_row() -> None:
    s = parse_one(MANUAL_ROW)
    assert (s[Parameter.SPO2].value, s[Parameter.SPO2].unit) == (100.0, "%")
    assert (s[Parameter.HR].value, s[Parameter.HR].unit) == (120.0, "/min")
    for sample in s.values():
        assert sample.valid and not sample.alarm
        assert sample.flags == frozenset()
        assert sample.source == "pleth"
        assert sample.monitor == "pox"
        assert sample.host_ns == 7
        # Two-digit years read as POSIX does: the manual's example is from 1998.
        assert sample.monitor_time == datetime(1998, 11, 12, 14, 0, 5)


def test_starred_values_and_limit_status_codes_are_alarms() -> None:
    s = parse_one(ALARM_ROW)
    spo2, hr = s[Parameter.SPO2], s[Parameter.HR]
    assert (spo2.value, hr.value) == (82.0, 190.0)
    assert spo2.alarm and hr.alarm
    assert spo2.flags == {"alarm_limit", "spo2_low"}
    assert hr.flags == {"alarm_limit", "pr_high"}
    assert spo2.valid and hr.valid  # a value beyond a limit is still a real reading
    assert spo2.monitor_time == datetime(2024, 5, 1, 10, 0, 2)


def test_a_status_code_alone_raises_the_alarm_of_its_parameter_only() -> None:
    s = parse_one(MANUAL_ROW + b" SL")
    assert s[Parameter.SPO2].alarm and s[Parameter.SPO2].flags == {"spo2_low"}
    assert not s[Parameter.HR].alarm and s[Parameter.HR].flags == frozenset()


def test_dashes_are_no_value_never_numbers() -> None:
    s = parse_one(NO_SENSOR_ROW)
    for sample in s.values():
        assert_no_value(sample, "sensor_off")


@pytest.mark.parametrize("code", ["PS", "SD", "SO", "LP", "LM"])
def test_no_pleth_status_invalidates_printed_numbers(code: str) -> None:
    s = parse_one(SEARCH_ROW.replace(b"PS", code.encode()))
    for sample in s.values():
        assert sample.value is not None  # kept for the record ...
        assert sample.valid is False  # ... but never shown as a reading


def test_quality_and_device_codes_are_flags_only() -> None:
    s = parse_one(MOTION_ROW + b" LB AO ZZ")
    for sample in s.values():
        assert sample.valid
        assert sample.flags == {"motion", "alarm_silenced", "low_battery", "alarm_off", "status_ZZ"}


def test_headings_and_menus_are_skipped_not_bad() -> None:
    parser = NellcorParser("pox")
    samples = parser.feed(STREAM, 1)
    assert parser.stats.records_ok == DATA_ROWS
    assert parser.stats.records_bad == 0
    assert parser.stats.garbage_bytes == 0
    assert parser.info_lines == 3 + len(MENU)
    assert len(samples) == 2 * DATA_ROWS
    assert parser.info is not None
    assert (parser.info.model, parser.info.version, parser.info.crc) == ("N-595", "1.0.0.1", "3F2A")
    assert parser.info.spo2_limits == (85, 100) and parser.info.pr_limits == (100, 180)


def test_openice_version_row_and_the_interactive_info_row() -> None:
    info = parse_info(OPENICE_VERSION_ROW.decode())
    assert info is not None and info.crc == "XXXX" and info.pr_limits == (40, 170)
    dump = parse_info("N-595 VERSION 1.0.0.1 INFO CRC:3F2A SEC:01/02/03")
    assert dump is not None and dump.spo2_limits is None


@pytest.mark.parametrize(
    "line",
    [
        b"12-NOV-98 14:00:05 100 120",  # a column missing
        b"12-NOV-98 14:00:05 1x0 120 50",  # damaged value
        b"12-NOV-98 14:00:05 100 120 50 S",  # damaged status
        b"12-NOV-98 14:00:05 1000 120 50",  # four digits: not a column of this table
        b"12-XYZ-98 14:00:05 100 120 50",  # no such month
        b"31-FEB-98 14:00:05 100 120 50",  # no such day
        b"12-NOV-98 25:00:05 100 120 50",
        b"2-NOV-98 14:00:05 100 120 50",  # partial first line after the port opened
        b"NOV-98 14:00:05 100 120 50",
        b"100 120 50",
    ],
)
def test_lines_that_are_not_rows(line: bytes) -> None:
    assert_not_a_record(NellcorParser("pox"), line + b"\r\n", garbage_bytes=len(line))
    assert parse_row(line.decode()) is None


@pytest.mark.parametrize("month", ["nov", "Nov", "NOV"])
def test_month_in_any_case(month: str) -> None:
    line = MANUAL_ROW.replace(b"NOV", month.encode())
    assert parse_one(line)[Parameter.SPO2].monitor_time == datetime(1998, 11, 12, 14, 0, 5)


def test_out_of_range_is_invalid() -> None:
    s = parse_one(MANUAL_ROW.replace(b" 120 ", b" 400 "))
    assert s[Parameter.HR].value == 400.0
    assert not s[Parameter.HR].valid and "out_of_range" in s[Parameter.HR].flags
    assert s[Parameter.SPO2].valid
    s = parse_one(MANUAL_ROW.replace(b" 100 ", b" 101 "))
    assert not s[Parameter.SPO2].valid


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\n\r", b"\r"])
def test_line_endings(ending: bytes) -> None:
    data = STREAM.replace(b"\r\n", ending)
    assert NellcorParser("pox").feed(data, 1) == NellcorParser("pox").feed(STREAM, 1)


def test_samples_are_stamped_with_the_first_byte_of_their_row() -> None:
    parser = NellcorParser("pox")
    assert parser.feed(MANUAL_ROW[:10], 100) == []
    first = parser.feed(MANUAL_ROW[10:] + b"\r\n" + ALARM_ROW[:4], 200)
    second = parser.feed(ALARM_ROW[4:] + b"\r\n", 300)
    assert {s.host_ns for s in first} == {100}
    assert {s.host_ns for s in second} == {200}


def test_reset_forgets_the_partial_row_and_the_info() -> None:
    parser = NellcorParser("pox")
    parser.feed(VERSION_ROW + b"\r\n" + MANUAL_ROW[:12], 0)
    assert parser.info is not None
    parser.reset()
    assert parser.info is None
    assert parser.feed(MANUAL_ROW[12:] + b"\r\n", 0) == []
    assert len(parser.feed(MANUAL_ROW + b"\r\n", 0)) == 2


# -- chunking --------------------------------------------------------------------------------

new_parser = partial(NellcorParser, "pox", max_line=256)


def stats_and_headings(parser: NellcorParser) -> dict[str, object]:
    return {"stats": parser.stats, "info_lines": parser.info_lines}


GARBLED = (
    b"-98 14:00:05 100 120 50\r\n"  # partial first row
    + b"\x00\x00"
    + ALARM_ROW
    + b"\r\n\xff\xfe\x13 noise\r\n"
    + b"B" * 600  # overlong, no line end for a while
    + b"\r\n"
    + VERSION_ROW
    + b"\r\n"
    + MANUAL_ROW.replace(b"100", b"\x00100")
    + b"\r\n"
    + NO_SENSOR_ROW
    + b"\r\n"
)


@pytest.mark.parametrize("data", [STREAM, GARBLED], ids=["clean", "garbled"])
def test_seeded_random_chunkings_agree(data: bytes) -> None:
    chunkings = seeded_chunkings(data, seed=595, rounds=200, max_cuts=39)
    assert_chunking_invariant(new_parser, data, chunkings, state=stats_and_headings)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([STREAM, GARBLED]), cuts=st.lists(st.integers(0, len(GARBLED))))
def test_any_chunking_gives_the_same_samples(data: bytes, cuts: list[int]) -> None:
    assert_chunking_invariant(new_parser, data, [cuts], state=stats_and_headings)


def test_garbled_stream_resyncs_and_counts() -> None:
    parser = new_parser()
    samples = parser.feed(GARBLED, CHUNK_NS)
    stamps = sorted({s.monitor_time for s in samples if s.monitor_time})
    assert stamps == [
        datetime(1998, 11, 12, 14, 0, 5),
        datetime(2024, 5, 1, 10, 0, 2),
        datetime(2024, 5, 1, 10, 0, 4),
    ]
    assert parser.stats.records_ok == 3
    assert parser.stats.records_bad == 3  # partial first row, noise line, overlong line
    assert parser.stats.garbage_bytes >= 2 + 600 + len(b"-98 14:00:05 100 120 50") + 1
    assert [s.value for s in samples if s.parameter is Parameter.SPO2 and s.valid] == [82.0, 100.0]


# -- garbage never raises, dashes never become numbers ----------------------------------------

rows = st.sampled_from([MANUAL_ROW, ALARM_ROW, NO_SENSOR_ROW, VERSION_ROW, *MENU, b"", b"\x00", b"---"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=300), rows), max_size=20))
def test_random_bytes_never_raise_and_the_next_row_is_read(parts: list[bytes]) -> None:
    good = assert_resyncs_after(new_parser, b"\r\n".join(parts) + b"\r\n", MANUAL_ROW + b"\r\n")
    assert [s.value for s in good if s.parameter is Parameter.SPO2] == [100.0]


@given(
    spo2=st.from_regex(r"\A-{1,3}\*?\Z"),
    pr=st.one_of(st.from_regex(r"\A-{1,3}\*?\Z"), st.integers(0, 999).map(str)),
)
def test_dash_markers_never_become_numbers(spo2: str, pr: str) -> None:
    line = f"01-Jan-20 03:04:05 {spo2} {pr} ---".encode()
    samples = NellcorParser("pox").feed(line + b"\r\n", 0)
    assert len(samples) == 2
    assert samples[0].parameter is Parameter.SPO2
    assert_no_value(samples[0])


@settings(max_examples=300)
@given(
    row=st.sampled_from([MANUAL_ROW, ALARM_ROW, NO_SENSOR_ROW, MOTION_ROW]),
    at=st.integers(0, 60),
    byte=st.integers(0, 255),
    truncate=st.booleans(),
)
def test_truncated_or_corrupted_rows_never_raise_and_the_next_row_is_read(
    row: bytes, at: int, byte: int, truncate: bool
) -> None:
    def counted_at_most_twice(parser: NellcorParser) -> None:
        assert parser.stats.records_ok + parser.stats.records_bad + parser.info_lines <= 2

    after = assert_resyncs_after(
        partial(NellcorParser, "pox"),
        damaged(row, at, byte, truncate=truncate) + b"\r\n",
        MANUAL_ROW + b"\r\n",
        between=counted_at_most_twice,
    )
    assert [(s.parameter, s.value, s.valid) for s in after] == [
        (Parameter.SPO2, 100.0, True),
        (Parameter.HR, 120.0, True),
    ]
