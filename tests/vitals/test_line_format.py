"""The configurable line parser: spec validation, both modes, line endings, chunking, garbage."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vitals_testkit import (
    CHUNK_NS,
    Collector,
    assert_chunking_invariant,
    assert_no_value,
    assert_not_a_record,
    assert_resyncs_after,
    damaged,
    pty_link,
    running,
    seeded_chunkings,
    wait_for,
)

import vitals.line_format
from vitals.families import PARSERS, make_parser
from vitals.line_format import (
    FieldSpec,
    LineFormat,
    LineFormatError,
    LineFormatParser,
    LineReader,
    line_format_from_mapping,
    read_value,
)
from vitals.link import SerialLink
from vitals.parser import LinkSettings, ParserStats
from vitals.pty import PtyPair
from vitals.sample import Parameter, VitalSample

SPO2 = FieldSpec("SPO2", Parameter.SPO2, "%", source="pleth")
HR = FieldSpec("HR", Parameter.HR, "/min", source="pleth")
KV = LineFormat(mode="key_value", fields=(SPO2, HR), line_ending="crlf")

# A made-up ventilator that prints pressures in tenths: "T=10:00:01 PIP=245 PEEP=50 FIO2=0.35".
VENT = LineFormat(
    mode="regex",
    pattern=r"^T=(?P<t>\S+) PIP=(?P<pip>\S+) PEEP=(?P<peep>\S+)(?: FIO2=(?P<fio2>\S+))?$",
    fields=(
        FieldSpec("pip", Parameter.PIP, "cmH2O", scale=0.1),
        FieldSpec("peep", Parameter.PEEP, "cmH2O", scale=0.1, no_value=("XXX",)),
        FieldSpec("fio2", Parameter.FIO2, "%", scale=100),
    ),
    time_field="t",
    time_format="%H:%M:%S",
    line_ending="lf",
)


def parse(spec: LineFormat, data: bytes, host_ns: int = 3) -> tuple[list[VitalSample], LineFormatParser]:
    parser = LineFormatParser("dev", spec)
    return parser.feed(data, host_ns), parser


def values(samples: list[VitalSample]) -> dict[Parameter, float | None]:
    return {s.parameter: s.value for s in samples}


# -- the documented TOML shape ---------------------------------------------------------------


def docstring_toml() -> dict[str, Any]:
    doc = vitals.line_format.__doc__ or ""
    block = doc.split("::\n", 1)[1].split("\n\n``line_format_from_mapping``", 1)[0]
    text = "\n".join(line[4:] for line in block.splitlines())
    return tomllib.loads(text)


def test_the_toml_in_the_module_docstring_builds_a_working_parser() -> None:
    config = docstring_toml()
    monitor = config["monitors"][0]
    assert monitor["protocol"] == "line_format"
    spec = line_format_from_mapping(monitor["line_format"])
    assert spec.mode == "key_value" and spec.line_ending == "crlf"
    assert spec.fields == (FieldSpec("SPO2", Parameter.SPO2, "%"),)
    parser = make_parser("line_format", monitor["name"], spec=spec)
    samples = parser.feed(b"SPO2=97 X=1\r\nSPO2=---\r\n", 0)
    assert [(s.value, s.valid) for s in samples] == [(97.0, True), (None, False)]


def test_mapping_with_everything() -> None:
    spec = line_format_from_mapping(
        {
            "mode": "regex",
            "pattern": r"S(?P<s>\d+) H(?P<h>\d+) (?P<when>.+)$",
            "line_ending": "cr",
            "time_field": "when",
            "time_format": "%d.%m.%Y %H:%M",
            "baudrate": 19200,
            "parity": "E",
            "stopbits": 2,
            "rtscts": True,
            "fields": [
                {"name": "s", "parameter": "spo2", "unit": "%", "source": "pleth", "low": 50, "high": 100},
                {"name": "h", "parameter": "HR", "unit": "/min", "scale": 2, "offset": 1, "no_value": ["0"]},
            ],
        }
    )
    assert spec.link_settings == LinkSettings(19200, 8, "E", 2, False, True)
    assert spec.fields[0] == FieldSpec("s", Parameter.SPO2, "%", source="pleth", low=50, high=100)
    assert spec.fields[1].no_value == ("0",)
    samples, _ = parse(spec, b"S45 H70 01.05.2024 10:00\rS97 H0 01.05.2024 10:01\r")
    assert [(s.parameter, s.value, s.valid) for s in samples] == [
        (Parameter.SPO2, 45.0, False),  # below the configured low
        (Parameter.HR, 141.0, True),
        (Parameter.SPO2, 97.0, True),
        (Parameter.HR, None, False),  # "0" is this device's no-value marker
    ]
    assert samples[0].monitor_time == datetime(2024, 5, 1, 10, 0)
    assert "out_of_range" in samples[0].flags


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"fields": [{"name": "A", "parameter": "HR", "unit": "/min"}]}, "mode", "required"),
        ({"mode": "kv", "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}]}, "mode", "'regex'"),
        ({"mode": "key_value"}, "fields", "at least one"),
        ({"mode": "key_value", "fields": []}, "fields", "at least one"),
        ({"mode": "key_value", "fields": ["SPO2"]}, "fields[0]", "table"),
        (
            {"mode": "key_value", "fields": [{"parameter": "HR", "unit": "/min"}]},
            "fields[0].name",
            "required",
        ),
        (
            {"mode": "key_value", "fields": [{"name": "A", "parameter": "Pulse", "unit": "/min"}]},
            "fields[0].parameter",
            "unknown parameter 'Pulse' (known: HR, PR, SpO2",
        ),
        (
            {"mode": "key_value", "fields": [{"name": "A", "parameter": "HR", "unit": 5}]},
            "fields[0].unit",
            "string",
        ),
        (
            {"mode": "key_value", "fields": [{"name": "A", "parameter": "HR", "unit": "/min", "scale": "x"}]},
            "fields[0].scale",
            "number",
        ),
        (
            {"mode": "key_value", "fields": [{"name": "A", "parameter": "HR", "unit": "/min", "scale": 0}]},
            "fields[0].scale",
            "not be 0",
        ),
        (
            {
                "mode": "key_value",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min", "low": 9, "high": 1}],
            },
            "fields[0].low",
            "above high",
        ),
        (
            {
                "mode": "key_value",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min", "colour": "red"}],
            },
            "fields[0].colour",
            "unknown key",
        ),
        (
            {
                "mode": "key_value",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min", "no_value": "--"}],
            },
            "fields[0].no_value",
            "list",
        ),
        (
            {
                "mode": "regex",
                "pattern": r"HR=(?P<hr>\d+)",
                "fields": [{"name": "HR", "parameter": "HR", "unit": "/min"}],
            },
            "fields[0].name",
            "no group named 'HR' (groups: hr)",
        ),
        (
            {
                "mode": "regex",
                "pattern": r"HR=(\d+",
                "fields": [{"name": "hr", "parameter": "HR", "unit": "/min"}],
            },
            "pattern",
            "not a valid regular expression",
        ),
        (
            {"mode": "regex", "fields": [{"name": "hr", "parameter": "HR", "unit": "/min"}]},
            "pattern",
            "needs",
        ),
        (
            {
                "mode": "regex",
                "pattern": r"(?P<hr>\d+)",
                "time_field": "t",
                "fields": [{"name": "hr", "parameter": "HR", "unit": "/min"}],
            },
            "time_field",
            "no group named 't'",
        ),
        (
            {
                "mode": "key_value",
                "fields": [
                    {"name": "A", "parameter": "HR", "unit": "/min"},
                    {"name": "A", "parameter": "PR", "unit": "/min"},
                ],
            },
            "fields[1].name",
            "already read by fields[0]",
        ),
        (
            {
                "mode": "key_value",
                "fields": [
                    {"name": "A", "parameter": "HR", "unit": "/min"},
                    {"name": "B", "parameter": "HR", "unit": "/min"},
                ],
            },
            "fields[1].parameter",
            "different source",
        ),
        (
            {
                "mode": "key_value",
                "assign": " ",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}],
            },
            "assign",
            "separator",
        ),
        (
            {
                "mode": "key_value",
                "separator": ";",
                "assign": ";",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}],
            },
            "assign",
            "separator",
        ),
        (
            {"mode": "key_value", "fields": [{"name": "HEART RATE", "parameter": "HR", "unit": "/min"}]},
            "fields[0].name",
            "separator",
        ),
        (
            {
                "mode": "key_value",
                "line_ending": "crcr",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}],
            },
            "line_ending",
            "'crlf'",
        ),
        (
            {"mode": "key_value", "baud": 9600, "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}]},
            "baud",
            "unknown key (known: assign, baudrate",
        ),
        (
            {
                "mode": "key_value",
                "baudrate": "9600",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}],
            },
            "baudrate",
            "integer",
        ),
        (
            {
                "mode": "key_value",
                "parity": "even",
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}],
            },
            "parity",
            "N, E, O",
        ),
        (
            {
                "mode": "key_value",
                "stopbits": 3,
                "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}],
            },
            "stopbits",
            "1, 1.5 or 2",
        ),
        (
            {"mode": "key_value", "rtscts": 1, "fields": [{"name": "A", "parameter": "HR", "unit": "/min"}]},
            "rtscts",
            "true or false",
        ),
    ],
)
def test_mistakes_name_the_field(data: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(LineFormatError) as caught:
        line_format_from_mapping(data)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"line_format.{path}: ")
    assert words in str(caught.value)


def test_specs_built_in_code_are_validated_too() -> None:
    with pytest.raises(LineFormatError, match=r"line_format\.scale: must be a finite number.*field 'X'"):
        FieldSpec("X", Parameter.HR, "/min", scale=float("nan"))
    with pytest.raises(LineFormatError, match="parameter: must be a Parameter"):
        FieldSpec("X", "HR", "/min")  # type: ignore[arg-type]
    with pytest.raises(LineFormatError, match=r"fields\[0\]\.name: the pattern has no group named 'SPO2'"):
        LineFormat(mode="regex", pattern="(?P<spo2>.*)", fields=(SPO2,))
    with pytest.raises(TypeError):
        LineFormatParser("dev", {"mode": "key_value"})  # type: ignore[arg-type]


# -- reading lines ---------------------------------------------------------------------------


def test_key_value_mode() -> None:
    samples, parser = parse(KV, b"SPO2=097% HR=145 PI=2.1\r\nHR=--- SPO2=96\r\n")
    assert [(s.parameter, s.value, s.valid) for s in samples] == [
        (Parameter.SPO2, 97.0, True),
        (Parameter.HR, 145.0, True),
        (Parameter.SPO2, 96.0, True),  # in the order of the fields, whatever the line's order
        (Parameter.HR, None, False),
    ]
    assert samples[3].flags == {"no_value"}
    assert all(s.source == "pleth" and s.monitor == "dev" and s.host_ns == 3 for s in samples)
    assert parser.stats.records_ok == 2 and parser.stats.garbage_bytes == 0


def test_key_value_with_other_separators() -> None:
    spec = LineFormat(mode="key_value", separator=";", assign=":", fields=(SPO2, HR))
    samples, parser = parse(spec, b"SPO2: 97 ; HR:120;junk\n")
    assert values(samples) == {Parameter.SPO2: 97.0, Parameter.HR: 120.0}
    assert parser.stats.garbage_bytes == len(b"junk")


def test_key_value_pattern_filters_lines() -> None:
    spec = LineFormat(mode="key_value", pattern=r"^DATA ", fields=(SPO2,))
    samples, parser = parse(spec, b"DATA SPO2=90\nINFO SPO2=12\n")
    assert [s.value for s in samples] == [90.0]
    assert parser.stats.records_bad == 1


@pytest.mark.parametrize(
    "line",
    [
        b"PI=2.1 X=3",  # none of the configured keys
        b"SPO2=97 HR=120 SPO2=96 HR=121",  # two lines glued: a key twice
        b"no keys at all",
    ],
)
def test_key_value_lines_that_are_not_records(line: bytes) -> None:
    assert_not_a_record(LineFormatParser("dev", KV), line + b"\r\n", garbage_bytes=len(line))


def test_regex_mode_scale_offset_time_and_optional_groups() -> None:
    samples, parser = parse(VENT, b"T=10:00:01 PIP=245 PEEP=XXX FIO2=0.35\nT=10:00:02 PIP=250 PEEP=52\n")
    first, second = samples[:3], samples[3:]
    assert [s.parameter for s in first] == [Parameter.PIP, Parameter.PEEP, Parameter.FIO2]
    assert (first[0].value, first[2].value) == pytest.approx((24.5, 35.0))
    assert first[1].value is None and first[1].flags == {"no_value"} and not first[1].valid
    assert first[0].unit == "cmH2O" and first[2].unit == "%"
    assert first[0].monitor_time == datetime(1900, 1, 1, 10, 0, 1)
    assert values(second) == pytest.approx({Parameter.PIP: 25.0, Parameter.PEEP: 5.2})  # no FiO2 group
    assert parser.stats.records_ok == 2


def test_regex_mode_rejects_what_does_not_match_and_flags_bad_values() -> None:
    samples, parser = parse(VENT, b"hello\nT=10:00:03 PIP=2x5 PEEP=-- FIO2=2\nT=99:00:00 PIP=1 PEEP=1\n")
    assert parser.stats.records_bad == 1
    pip, peep, fio2, late = samples[0], samples[1], samples[2], samples[3]
    assert pip.value is None and pip.flags == {"malformed"} and not pip.valid
    assert peep.value is None and peep.flags == {"no_value"}  # any run of dashes is no value
    assert fio2.value == 200.0 and fio2.flags == {"out_of_range"} and not fio2.valid
    assert late.value == pytest.approx(0.1) and late.monitor_time is None
    assert late.flags == {"time_unreadable"} and late.valid


@pytest.mark.parametrize(
    ("raw", "value", "status"),
    [
        ("97", 97.0, "ok"),
        (" 097% ", 97.0, "ok"),
        ("-3.5", -3.5, "ok"),
        ("+2", 2.0, "ok"),
        (".5", 0.5, "ok"),
        ("37.2 °C", 37.2, "ok"),
        ("85*", 85.0, "ok"),
        ("---", None, "no_value"),
        ("--.-", None, "no_value"),
        ("+--", None, "no_value"),
        ("", None, "no_value"),
        ("9 8", None, "malformed"),
        ("1e3", None, "malformed"),
        ("nan", None, "malformed"),
        ("inf", None, "malformed"),
        ("0x10", None, "malformed"),
        ("12-", None, "malformed"),
    ],
)
def test_read_value(raw: str, value: float | None, status: str) -> None:
    rv = read_value(raw)
    assert (rv.value, rv.status) == (value, status)


def test_default_ranges_apply_only_in_the_canonical_unit() -> None:
    spec = LineFormat(
        mode="key_value",
        fields=(FieldSpec("A", Parameter.FIO2, "%"), FieldSpec("B", Parameter.TEMP, "°F")),
    )
    samples, _ = parse(spec, b"A=120 B=98.6\n")
    assert [s.valid for s in samples] == [False, True]


@pytest.mark.parametrize(
    ("ending", "data", "expected"),
    [
        ("crlf", b"SPO2=90\r\nSPO2=91\nSPO2=92\r\n", [90.0]),  # a lone LF is not a line end
        ("lf", b"SPO2=90\r\nSPO2=91\n", [90.0, 91.0]),  # CR before LF is stripped
        ("cr", b"SPO2=90\r\nSPO2=91\r", [90.0, 91.0]),  # LF after CR is stripped
        ("any", b"SPO2=90\rSPO2=91\nSPO2=92\r\n", [90.0, 91.0, 92.0]),
    ],
)
def test_line_endings(ending: str, data: bytes, expected: list[float]) -> None:
    spec = LineFormat(mode="key_value", fields=(SPO2,), line_ending=ending)  # type: ignore[arg-type]
    samples, _ = parse(spec, data)
    assert [s.value for s in samples] == expected


def test_link_settings_come_from_the_spec_then_the_constructor() -> None:
    spec = LineFormat(mode="key_value", fields=(SPO2,), link_settings=LinkSettings(19200, parity="E"))
    assert PARSERS["line_format"] is LineFormatParser
    assert LineFormatParser("dev", spec).link_settings == LinkSettings(19200, parity="E")
    parser = make_parser("line_format", "dev", spec=spec, baudrate=4800, stopbits=2)
    assert parser.link_settings == LinkSettings(4800, parity="E", stopbits=2)
    assert LineFormatParser.link_settings == LinkSettings()  # the class default is untouched


@pytest.mark.usefixtures("logs")
def test_the_link_opens_the_port_with_the_specs_settings(port_opens: list[dict[str, Any]]) -> None:
    spec = LineFormat(mode="key_value", fields=(SPO2,), link_settings=LinkSettings(38400, 7, "O", 2))
    with running(SerialLink("dev", "loop://", LineFormatParser("dev", spec), lambda s: None)):
        pass  # connected: the port is open
    assert {"baudrate": 38400, "bytesize": 7, "parity": "O", "stopbits": 2}.items() <= port_opens[0].items()


@pytest.mark.usefixtures("logs")
def test_round_trip_through_a_pty_and_the_link(pty_pair: PtyPair, collector: Collector) -> None:
    link = pty_link("dev", pty_pair, LineFormatParser("dev", VENT), collector)
    with running(link):
        for i in range(5):
            os.write(pty_pair.master_fd, f"T=10:00:0{i} PIP={200 + i} PEEP=50\n".encode())
        assert wait_for(lambda: len(collector.values(Parameter.PIP)) == 5)
    assert collector.values(Parameter.PIP) == pytest.approx([20.0, 20.1, 20.2, 20.3, 20.4])


# -- the line reader: chunking, overlong lines, garbage ----------------------------------------


def reader_of(ending: str) -> LineFormatParser:
    return LineFormatParser("dev", SPECS[ending], max_line=64)


def feed_whole(ending: str, data: bytes) -> tuple[list[VitalSample], ParserStats]:
    parser = reader_of(ending)
    return parser.feed(data, CHUNK_NS), parser.stats


PARTIAL = b"O2=97 HR"  # the end of a line the port opened into
GLUED = b"SPO2=94\nSPO2=95 HR=105"  # a lost CR: one CR LF line, two lines in "any" mode
GARBLED = (
    PARTIAL
    + b"\r\n"
    + b"SPO2=90 HR=100\r\n"
    + b"\x00SPO2=91 HR=\x00101\r\n"
    + b"Q" * 63
    + b"\r\r\n"  # 64 bytes with its CR: exactly max_line, still a line
    + b"SPO2=92" * 12
    + b"\r\r\n"  # overlong, ending in a CR that is content
    + b"SPO2=93 HR=103\r\n"
    + b"\r\n"
    + GLUED
    + b"\r\n"
    + b"HR=---\r\n"
)
# 64 bytes (max_line) in CR LF mode: buffered with its CR it is 65, and must still be kept.
EXACT = b"SPO2=" + b"1" * 59 + b"\r\n" + b"SPO2=" + b"1" * 60 + b"\r\n" + b"SPO2=95\r\n"
SPECS = {
    ending: LineFormat(mode="key_value", fields=(SPO2, HR), line_ending=ending) for ending in ("crlf", "any")
}


@pytest.mark.parametrize("ending", ["crlf", "any"])
@pytest.mark.parametrize("data", [GARBLED, EXACT], ids=["garbled", "exact"])
def test_seeded_random_chunkings_agree(ending: str, data: bytes) -> None:
    chunkings = seeded_chunkings(data, seed=2048, rounds=150, max_cuts=39)
    assert_chunking_invariant(lambda: reader_of(ending), data, chunkings)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    ending=st.sampled_from(["crlf", "any"]),
    data=st.sampled_from([GARBLED, EXACT]),
    cuts=st.lists(st.integers(0, len(GARBLED))),
)
def test_any_chunking_gives_the_same_samples(ending: str, data: bytes, cuts: list[int]) -> None:
    assert_chunking_invariant(lambda: reader_of(ending), data, [cuts])


def test_garbled_crlf_stream_resyncs_and_counts() -> None:
    samples, stats = feed_whole("crlf", GARBLED)
    assert [s.value for s in samples if s.parameter is Parameter.SPO2] == [90.0, 91.0, 93.0]
    assert [s.value for s in samples if s.parameter is Parameter.HR] == [100.0, 101.0, 103.0, None]
    # Partial first line, the Q line, the overlong line, the glued line.
    assert (stats.records_ok, stats.records_bad) == (4, 4)
    assert stats.garbage_bytes == len(PARTIAL) + 2 + 64 + 85 + len(GLUED)
    assert stats.bytes_in == len(GARBLED)


def test_garbled_stream_in_any_mode_splits_the_glued_line() -> None:
    samples, stats = feed_whole("any", GARBLED)
    assert [s.value for s in samples if s.parameter is Parameter.SPO2] == [90.0, 91.0, 93.0, 94.0, 95.0]
    assert (stats.records_ok, stats.records_bad) == (6, 3)  # partial, Q, overlong


def test_exact_max_line_is_kept_one_more_is_dropped() -> None:
    samples, stats = feed_whole("crlf", EXACT)
    assert [s.value for s in samples] == [float("1" * 59), 95.0]
    assert (stats.records_ok, stats.records_bad, stats.garbage_bytes) == (2, 1, 65)


def test_memory_stays_bounded_without_line_ends() -> None:
    parser = LineFormatParser("dev", KV, max_line=100)
    for _ in range(50):
        assert parser.feed(b"x" * 97 + b"\r", 0) == []
    assert len(parser._reader._buf) <= 101
    assert parser.stats.garbage_bytes >= 49 * 98
    assert [s.value for s in parser.feed(b"\nSPO2=90\r\n", 0)] == [90.0]
    assert parser.stats.records_bad == 1


def test_reset_forgets_the_partial_line() -> None:
    parser = LineFormatParser("dev", KV)
    parser.feed(b"SPO2=9", 0)
    parser.reset()
    assert parser.feed(b"1\r\n", 0) == []
    assert parser.stats.garbage_bytes == len(b"SPO2=9") + 1


def test_line_reader_stamps_first_bytes_and_rejects_bad_arguments() -> None:
    stats = ParserStats()
    reader = LineReader(stats, line_ending="crlf")
    assert reader.push(b"ab", 1) == [] and reader.push(b"c\r", 2) == []
    lines = reader.push(b"\nde\r\nf", 3)
    assert [(x.text, x.host_ns) for x in lines] == [("abc", 1), ("de", 3)]
    assert [(x.text, x.host_ns) for x in reader.push(b"\r\n", 4)] == [("f", 3)]
    with pytest.raises(ValueError, match="line_ending"):
        LineReader(stats, line_ending="crcr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_line"):
        LineReader(stats, max_line=0)


lines = st.sampled_from([b"SPO2=90 HR=100", b"HR=---", b"", b"\x00", b"SPO2=", b"=", b"SPO2=SPO2=1"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(st.binary(max_size=120), lines), max_size=20),
    ending=st.sampled_from(["crlf", "any"]),
)
def test_random_bytes_never_raise_and_the_next_line_is_read(parts: list[bytes], ending: str) -> None:
    good = assert_resyncs_after(lambda: reader_of(ending), b"\r\n".join(parts) + b"\r\n", b"SPO2=93\r\n")
    assert [s.value for s in good] == [93.0]


@given(
    marker=st.one_of(st.from_regex(r"\A[+-]?-{1,4}(\.-{1,2})?\Z"), st.sampled_from(["XXX", "n/a"])),
    mode=st.sampled_from(["key_value", "regex"]),
)
def test_no_value_markers_never_become_numbers(marker: str, mode: str) -> None:
    field = FieldSpec("v", Parameter.SPO2, "%", no_value=("XXX", "n/a", "---"))
    spec = LineFormat(mode=mode, pattern=r"v=(?P<v>\S*)" if mode == "regex" else None, fields=(field,))  # type: ignore[arg-type]
    samples, _ = parse(spec, f"v={marker}\n".encode())
    assert len(samples) == 1
    assert_no_value(samples[0])


def test_garbage_counting_is_per_byte_when_nothing_is_a_record() -> None:
    data = bytes(range(256)) * 4
    _, stats = feed_whole("any", data)
    payload = re.sub(rb"[\r\n]", b"", data)
    assert stats.records_ok == 0
    assert stats.garbage_bytes == len(payload)


# One whole line of each format, and the shortest tail of it that still holds the line end.
GOOD_LINES = {
    "key_value": (KV, b"SPO2=95 HR=140\r\n", 2),
    "regex": (VENT, b"T=10:00:01 PIP=245 PEEP=50 FIO2=0.35\n", 1),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(sorted(GOOD_LINES)), data=st.data())
def test_corrupted_and_truncated_lines_then_resync(mode: str, data: st.DataObject) -> None:
    # A line with one byte hit, then one whose beginning was lost (the port opened mid-line),
    # still holding its line end: the next whole line reads as it does on its own. A hit line
    # may still be read, but what it gives obeys the same rules as any sample.
    spec, line, ending = GOOD_LINES[mode]
    position = data.draw(st.integers(0, len(line) - 1), label="position")
    value = data.draw(st.integers(0, 255), label="value")
    cut = data.draw(st.integers(1, len(line) - ending), label="cut")
    garbage = damaged(line, position, value, truncate=False) + line[cut:]
    after = assert_resyncs_after(lambda: LineFormatParser("dev", spec), garbage, line)
    assert all(s.valid for s in after) and len(after) in (2, 3)
