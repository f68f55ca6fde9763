"""Masimo ASCII 1 parser: published example lines, chunking invariance, garbage and resync."""

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
    assert_resyncs_after,
    damaged,
    read_one_record,
    seeded_chunkings,
)

from vitals.masimo import MasimoParser, parse_line, parse_value
from vitals.sample import Parameter, VitalSample

# Lines as published for each model (see the module docstring of vitals.masimo for sources).
RAD8 = (
    b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% "
    b"DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800"
)
RAD8_NO_SENSOR = (
    b"03/19/16 13:37:12 SN=0000093112 SPO2=---% BPM=---% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000001"
)
RAD7_COLOUR = (
    b"03/17/16 19:19:36 SN=---------- SPO2=098% BPM=123 PI=00.55 SPCO=--% SPMET=--.-% "
    b"SPHB=--.- SPOC=-- RESVD=--- DESAT=-- PIDELTA=+-- PVI=--- ALARM=000000 EXC=0000C00 "
    b"EXC1=00000000"
)
RADICAL7 = (
    b"12/01/05 11:56:29 SN=0123456789 SPO2=098% BPM=240 PI=20.00% SPCO=01.0% SPMET=00.5% "
    b"DESAT=01 PIDELTA=-02 PVI=027 ALARM=0000 EXC=000820"
)
RADICAL5 = b"09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800"
BLUE_SCREEN = (
    b"05/15/07 08:12:21 SN=0000070986 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% "
    b"DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000000"
)
# A Root line with its module blocks, keys as pymasimo's Root parser expects them (constructed, not
# captured): the oximeter sensor is off, capnography and temperature read, the cuff has no value.
ROOT = (
    b"01/15/24 09:30:00 SN=0000123456 CHAN=1 sysALARM=0000 SPO2=---% BPM=--- PI=--.--% SPHB=--.- "
    b"PVI=--- TVI=--- ALARM=0000 ALARM1=0000 ACSALARM=0000 EXC=000020 EXC1=00000000 EXC2=00000000 "
    b"ACSEXC=00000000 capnoFiCO2=000 capnoEtCO2=038 capnoRR=045 capnoALARM=0000 capnoEXC=0000 "
    b"nibpSYS=--- nibpDIA=--- nibpMAP=--- nibpPR=--- nibpALARM=0000 nibpEXC=0000 "
    b"tempParam=36.8 tempALARM=0000 tempEXC=0000"
)
ALL_LINES = (RAD8, RAD8_NO_SENSOR, RAD7_COLOUR, RADICAL7, RADICAL5, BLUE_SCREEN, ROOT)
STREAM = b"".join(line + b"\r\n" for line in ALL_LINES)


def parse_one(line: bytes, host_ns: int = 7) -> dict[Parameter, VitalSample]:
    return read_one_record(MasimoParser("pox"), line + b"\r\n", host_ns)


def test_rad8_line() -> None:
    s = parse_one(RAD8)
    assert set(s) == {Parameter.SPO2, Parameter.HR, Parameter.PI, Parameter.SPCO, Parameter.SPMET}
    assert (s[Parameter.SPO2].value, s[Parameter.SPO2].unit) == (98.0, "%")
    assert (s[Parameter.HR].value, s[Parameter.HR].unit) == (97.0, "/min")
    assert s[Parameter.PI].value == pytest.approx(3.60)
    for p in (Parameter.SPO2, Parameter.HR, Parameter.PI):
        assert s[p].valid
        assert s[p].flags == frozenset()  # EXC=000800 is "Masimo SET", the normal state
        assert not s[p].alarm
        assert s[p].source == "pleth"
        assert s[p].monitor == "pox"
        assert s[p].host_ns == 7
        assert s[p].monitor_time == datetime(2016, 2, 22, 22, 47, 45)
    assert_no_value(s[Parameter.SPCO])
    assert_no_value(s[Parameter.SPMET])


def test_rad8_no_sensor_line() -> None:
    s = parse_one(RAD8_NO_SENSOR)
    assert set(s) == {Parameter.SPO2, Parameter.HR}  # no PI field at all on this line
    for sample in s.values():
        assert_no_value(sample)
        assert "no_sensor" in sample.flags
    assert s[Parameter.SPO2].monitor_time == datetime(2016, 3, 19, 13, 37, 12)


def test_rad7_colour_line_pi_without_percent() -> None:
    s = parse_one(RAD7_COLOUR)
    assert s[Parameter.SPO2].value == 98.0
    assert s[Parameter.HR].value == 123.0
    assert s[Parameter.PI].value == pytest.approx(0.55)
    assert s[Parameter.PI].unit == "%"
    # EXC=0000C00: Masimo SET plus "low signal IQ", a quality warning that keeps values valid.
    for p in (Parameter.SPO2, Parameter.HR, Parameter.PI):
        assert s[p].valid
        assert s[p].flags == {"low_signal_iq"}
    for p in (Parameter.SPCO, Parameter.SPMET, Parameter.SPHB, Parameter.PVI):
        assert_no_value(s[p])


def test_radical7_line_all_values_but_sensor_off() -> None:
    s = parse_one(RADICAL7)
    expected = {
        Parameter.SPO2: 98.0,
        Parameter.HR: 240.0,
        Parameter.PI: 20.0,
        Parameter.SPCO: 1.0,
        Parameter.SPMET: 0.5,
        Parameter.PVI: 27.0,
    }
    assert {p: x.value for p, x in s.items()} == pytest.approx(expected)
    # EXC=000820 carries "sensor off": the numbers are kept but must not be shown as valid.
    for sample in s.values():
        assert sample.valid is False
        assert "sensor_off" in sample.flags
    record = parse_line(RADICAL7)
    assert record is not None
    pidelta = record.value("PIDELTA")
    assert pidelta is not None and pidelta.value == -2.0
    desat = record.value("DESAT")
    assert desat is not None and desat.value == 1.0


def test_radical5_line_short_alarm_and_exc() -> None:
    s = parse_one(RADICAL5)
    assert set(s) == {Parameter.SPO2, Parameter.HR, Parameter.PI}
    assert s[Parameter.SPO2].value == 97.0
    assert s[Parameter.HR].value == 64.0
    assert s[Parameter.PI].value == pytest.approx(11.82)
    for sample in s.values():
        assert sample.valid
        assert sample.flags == {"alarm_silenced"}  # ALARM=20 (hex): the whole device
        assert not sample.alarm
    assert s[Parameter.SPO2].monitor_time == datetime(2010, 9, 15, 15, 10, 29)


def test_root_module_blocks_become_samples_of_their_own() -> None:
    s = parse_one(ROOT)
    etco2, rr, temp = s[Parameter.ETCO2], s[Parameter.RR], s[Parameter.TEMP]
    assert (etco2.value, etco2.unit, etco2.source) == (38.0, "mmHg", "capnography")
    assert (rr.value, rr.unit, rr.source) == (45.0, "/min", "capnography")
    assert (temp.value, temp.unit, temp.source) == (pytest.approx(36.8), "°C", "temperature")
    # The oximeter's "sensor off" is about the pleth; it leaves the modules' values valid.
    for sample in (etco2, rr, temp):
        assert sample.valid and sample.flags == frozenset()
        assert sample.monitor_time == datetime(2024, 1, 15, 9, 30, 0)
    for p in (Parameter.NBP_SYS, Parameter.NBP_DIA, Parameter.NBP_MEAN):
        assert s[p].unit == "mmHg" and s[p].source == "NIBP"
        assert_no_value(s[p], only=True)
    for p in (Parameter.SPO2, Parameter.HR, Parameter.PI):
        assert_no_value(s[p], "sensor_off")
        assert s[p].source == "pleth"


def test_blue_screen_line_is_all_dashes() -> None:
    s = parse_one(BLUE_SCREEN)
    assert len(s) == 6
    for sample in s.values():
        assert_no_value(sample)


@pytest.mark.parametrize(
    ("raw", "value", "status"),
    [
        ("098%", 98.0, "ok"),
        ("00.55", 0.55, "ok"),
        ("-02", -2.0, "ok"),
        ("+05", 5.0, "ok"),
        ("---%", None, "no_value"),
        ("--.--%", None, "no_value"),
        ("+--", None, "no_value"),
        ("--", None, "no_value"),
        ("----------", None, "no_value"),
        ("0-8", None, "malformed"),
        ("", None, "malformed"),
        ("%", None, "malformed"),
        ("9 8", None, "malformed"),
        ("0x1F", None, "malformed"),
        ("++", None, "malformed"),
        ("NaN", None, "malformed"),
    ],
)
def test_parse_value(raw: str, value: float | None, status: str) -> None:
    fv = parse_value(raw)
    assert (fv.value, fv.status) == (value, status)


def test_limit_alarms_belong_to_their_parameter() -> None:
    line = RAD8.replace(b"ALARM=0000", b"ALARM=001A")  # SpO2 low, PR low, alarm active
    s = parse_one(line)
    assert s[Parameter.SPO2].alarm and "spo2_low" in s[Parameter.SPO2].flags
    assert s[Parameter.HR].alarm and "pr_low" in s[Parameter.HR].flags
    assert not s[Parameter.PI].alarm
    assert all("alarm_active" in x.flags for x in s.values())
    assert all(x.valid for x in (s[Parameter.SPO2], s[Parameter.HR]))


def test_low_confidence_invalidates_only_its_parameter() -> None:
    line = RADICAL7.replace(b"EXC=000820", b"EXC=200800")  # SpCO low confidence
    s = parse_one(line)
    assert s[Parameter.SPCO].valid is False
    assert "spco_low_confidence" in s[Parameter.SPCO].flags
    assert s[Parameter.SPO2].valid and "spco_low_confidence" not in s[Parameter.SPO2].flags
    assert s[Parameter.SPMET].valid


def test_unreadable_exc_trusts_nothing() -> None:
    s = parse_one(RAD8.replace(b"EXC=000800", b"EXC=00G800"))
    assert all(not x.valid and "exc_unreadable" in x.flags for x in s.values())


def test_reserved_exc_bits_are_named_but_do_not_invalidate() -> None:
    s = parse_one(RAD8.replace(b"EXC=000800", b"EXC=800A00"))  # reserved 0x800000 and 0x200
    assert s[Parameter.SPO2].valid
    assert s[Parameter.SPO2].flags == {"exc_0x800000", "exc_0x000200"}


def test_unreadable_alarm_is_flagged_values_stay() -> None:
    s = parse_one(RAD8.replace(b"ALARM=0000", b"ALARM=zz"))
    assert s[Parameter.SPO2].valid and s[Parameter.SPO2].value == 98.0
    assert "alarm_unreadable" in s[Parameter.SPO2].flags


@pytest.mark.parametrize(
    ("field", "replacement"),
    [
        (b"SPO2=098%", b"SPO2=101%"),
        (b"SPO2=098%", b"SPO2=-01%"),
        (b"BPM=097", b"BPM=351"),
        (b"PI=03.60%", b"PI=20.01%"),
    ],
)
def test_out_of_range_is_invalid(field: bytes, replacement: bytes) -> None:
    samples = MasimoParser("pox").feed(RAD8.replace(field, replacement) + b"\r\n", 0)
    bad = [s for s in samples if "out_of_range" in s.flags]
    assert len(bad) == 1
    assert bad[0].valid is False
    assert [s.valid for s in samples if s.value is not None].count(False) == 1


def test_stream_counts_and_order() -> None:
    parser = MasimoParser("pox")
    samples = parser.feed(STREAM, 1)
    assert parser.stats.records_ok == len(ALL_LINES)
    assert parser.stats.records_bad == 0
    assert parser.stats.garbage_bytes == 0
    assert parser.stats.bytes_in == len(STREAM)
    stamps = [s.monitor_time for s in samples]
    assert len(set(stamps)) == len(ALL_LINES)
    assert len(samples) == 5 + 2 + 7 + 6 + 3 + 6 + 11


def test_nothing_before_the_line_end() -> None:
    parser = MasimoParser("pox")
    assert parser.feed(RAD8, 1) == []
    assert len(parser.feed(b"\r\n", 2)) == 5


def test_samples_are_stamped_with_their_first_byte() -> None:
    parser = MasimoParser("pox")
    assert parser.feed(RAD8[:10], 100) == []
    assert parser.feed(RAD8[10:], 200) == []
    first = parser.feed(b"\r\n" + RADICAL5[:5], 300)
    second = parser.feed(RADICAL5[5:] + b"\r\n" + RADICAL5 + b"\r\n", 400)
    assert {s.host_ns for s in first} == {100}
    assert [s.host_ns for s in second] == [300] * 3 + [400] * 3


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\n\r", b"\r"])
def test_line_endings(ending: bytes) -> None:
    parser = MasimoParser("pox")
    data = b"".join(line + ending for line in ALL_LINES)
    samples = parser.feed(data, 0)
    assert parser.stats.records_ok == len(ALL_LINES)
    assert parser.stats.records_bad == 0
    assert samples == MasimoParser("pox").feed(STREAM, 0)


# -- chunking --------------------------------------------------------------------------------

new_parser = partial(MasimoParser, "pox")
GARBLED = (
    b"7 SPO2=097% BPM=064 EXC=800\r\n"  # partial first line
    + b"\x00\x00"
    + RAD8
    + b"\r\n\xff\xfe noise \x13\x11\r\n"
    + b"A" * 3000  # overlong, no line end for a while
    + b"\r\n"
    + RADICAL5.replace(b"SPO2=097%", b"SPO2=\x0097%")
    + b"\r\n"
    + BLUE_SCREEN
    + b"\r\n"
)


@pytest.mark.parametrize("data", [STREAM, GARBLED], ids=["clean", "garbled"])
def test_seeded_random_chunkings_agree(data: bytes) -> None:
    chunkings = seeded_chunkings(data, seed=1234, rounds=200, max_cuts=39)
    assert_chunking_invariant(new_parser, data, chunkings)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([STREAM, GARBLED]), cuts=st.lists(st.integers(0, len(GARBLED))))
def test_any_chunking_gives_the_same_samples(data: bytes, cuts: list[int]) -> None:
    assert_chunking_invariant(new_parser, data, [cuts])


# -- garbage and resync ----------------------------------------------------------------------


def test_garbled_stream_resyncs_and_counts() -> None:
    parser = new_parser()
    samples = parser.feed(GARBLED, CHUNK_NS)
    times = sorted({s.monitor_time for s in samples if s.monitor_time})
    # The Rad-8 line, the NUL-padded Radical-5 line and the blue-screen line survive.
    assert times == [
        datetime(2007, 5, 15, 8, 12, 21),
        datetime(2010, 9, 15, 15, 10, 29),
        datetime(2016, 2, 22, 22, 47, 45),
    ]
    assert parser.stats.records_ok == 3
    # Partial first line, noise line, overlong line.
    assert parser.stats.records_bad == 3
    assert parser.stats.garbage_bytes >= 2 + 3000 + len(b"7 SPO2=097% BPM=064 EXC=800") + 1
    spo2 = [s for s in samples if s.parameter is Parameter.SPO2 and s.valid]
    assert [s.value for s in spo2] == [98.0, 97.0]


def test_first_partial_line_is_dropped() -> None:
    parser = MasimoParser("pox")
    for start in range(1, len(RAD8)):
        assert parser.feed(RAD8[start:] + b"\r\n", 0) == [], RAD8[start:]
    assert parser.stats.records_ok == 0
    assert len(parser.feed(RAD8 + b"\r\n", 0)) == 5


def test_overlong_line_without_end_is_dropped_then_resyncs() -> None:
    parser = MasimoParser("pox", max_line=1024)
    for _ in range(10):
        assert parser.feed(b"x" * 500, 0) == []
    assert parser.stats.garbage_bytes >= 4000
    assert len(parser._buf) <= 1024  # memory stays bounded
    samples = parser.feed(b"more junk\r\n" + RAD8 + b"\r\n", 0)
    assert len(samples) == 5
    assert parser.stats.records_bad == 1


def test_glued_lines_are_rejected() -> None:
    # A lost line end glues two records: duplicate keys and a value with a date inside.
    parser = MasimoParser("pox")
    assert parser.feed(RAD8 + RADICAL5 + b"\r\n", 0) == []
    assert parser.stats.records_bad == 1


@pytest.mark.parametrize(
    "line",
    [
        b"13/45/16 22:47:45 SPO2=098%",  # impossible date
        b"02/22/16 22:47:45",  # no fields
        b"02/22/16 22:47:45SPO2=098%",  # timestamp not followed by a blank
        b"02-22-16 22:47:45 SPO2=098%",
        b"SPO2=098% BPM=097",
    ],
)
def test_lines_that_are_not_records(line: bytes) -> None:
    assert_not_a_record(MasimoParser("pox"), line + b"\r\n", garbage_bytes=len(line))


def test_reset_forgets_the_partial_line() -> None:
    parser = MasimoParser("pox")
    parser.feed(RAD8[:40], 0)
    parser.reset()
    assert parser.feed(RAD8[40:] + b"\r\n", 0) == []
    assert len(parser.feed(RAD8 + b"\r\n", 0)) == 5


line_bytes = st.sampled_from([*ALL_LINES, b"", b"\x00", b"garbage", b"01/01/20 00:00:00 X=1"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=300), line_bytes), max_size=20))
def test_random_bytes_never_raise_and_dashes_never_become_numbers(parts: list[bytes]) -> None:
    garbage = b"\r\n".join(parts) + b"\r\n"
    good = assert_resyncs_after(partial(MasimoParser, "pox", max_line=256), garbage, RAD8 + b"\r\n")
    # Whatever came before, the next good line is read.
    assert [s.value for s in good if s.parameter is Parameter.SPO2] == [98.0]


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_random_binary_is_counted(data: bytes) -> None:
    parser = MasimoParser("pox")
    parser.feed(data, 0)
    parser.feed(b"\n", 0)
    st_ = parser.stats
    assert st_.bytes_in == len(data) + 1
    if st_.records_ok == 0:
        # Every byte that is not a line end or blank is accounted for as garbage.
        payload = data.replace(b"\r", b"").replace(b"\n", b"")
        assert st_.garbage_bytes >= len(payload.strip()) or not payload.strip()


@given(
    field=st.sampled_from(
        ["SPO2", "BPM", "PI", "SPCO", "SPMET", "SPHB", "PVI", "capnoEtCO2", "capnoRR", "nibpSYS", "tempParam"]
    ),
    dashes=st.from_regex(r"\A[+-]?-{1,3}(\.-{1,2})?%?\Z"),
)
def test_dash_markers_never_become_numbers(field: str, dashes: str) -> None:
    line = f"01/02/20 03:04:05 {field}={dashes} EXC=000800".encode()
    samples = MasimoParser("pox").feed(line + b"\r\n", 0)
    assert len(samples) == 1
    assert_no_value(samples[0])


GOOD_LINE = RAD8 + b"\r\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(0, len(GOOD_LINE) - 1),
    value=st.integers(0, 255),
    cut=st.integers(1, len(GOOD_LINE)),
)
def test_corrupted_and_truncated_lines_then_resync(position: int, value: int, cut: int) -> None:
    # A line with one byte hit, then one whose beginning was lost (the port opened mid-line). A
    # line has no checksum: what a hit leaves readable may be read, but never shown as valid
    # unless it still parses as a number in range, and the next whole line reads as on its own.
    # (A line cut off at its end runs into the next one until a line end: the line after that
    # is the next one read, as test_first_partial_line_is_dropped shows.)
    corrupted = damaged(GOOD_LINE, position, value, truncate=False)
    after = assert_resyncs_after(partial(MasimoParser, "pox"), corrupted + GOOD_LINE[cut:], GOOD_LINE)
    assert [(s.parameter, s.value) for s in after if s.valid] == [
        (Parameter.SPO2, 98.0), (Parameter.HR, 97.0), (Parameter.PI, 3.6),
    ]  # fmt: skip
