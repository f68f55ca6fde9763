"""``read_command`` and ``simulate_command``: captures, ptys, simulators, exit codes, output."""

from __future__ import annotations

import io
import json
import os
import select
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from vitals_testkit import STEADY, wait_for

from cli.vitals_tools import read_command, simulate_command
from vitals.ge_s5 import CLASS_BASIC
from vitals.ge_s5 import frame as ge_frame
from vitals.line_format import FieldSpec, LineFormat, line_format_from_mapping
from vitals.medibus import REQ_MEASURED_CP1
from vitals.medibus import response as medibus_response
from vitals.nellcor import NellcorParser
from vitals.pty import PtyPair
from vitals.sample import Parameter
from vitals.simulators import ge_s5 as ge_sim
from vitals.simulators import medibus as medibus_sim
from vitals.simulators.line_format import DEMO_TABLE
from vitals.simulators.masimo import EXC_NO_SENSOR, MasimoSimulator, masimo_line
from vitals.simulators.nellcor import NellcorSimulator, heading_rows, nellcor_row
from vitals.simulators.nonin import NoninSimulator, nonin_line

T0 = datetime(2024, 5, 1, 10, 0, 0)
KEYS = {
    "parameter",
    "value",
    "unit",
    "valid",
    "source",
    "flags",
    "alarm",
    "monitor",
    "host_time",
    "monitor_time",
}


def records(out: io.StringIO) -> list[dict[str, Any]]:
    lines = out.getvalue().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert all(set(r) == KEYS for r in parsed)
    return parsed


def run_read(protocol: str, **kwargs: Any) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    with capture_logs():
        code = read_command(protocol, out=out, err=err, **kwargs)
    return code, records(out), err.getvalue()


# -- replaying a capture -------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """A raw capture, and what replaying it must print."""

    data: bytes
    valid: set[tuple[str, float, str, str]]  # (parameter, value, unit, source) of valid samples
    records: str  # the summary's record counts
    monitor_time: datetime | None = T0  # of the first valid sample; None for a clockless family

    @property
    def parameters(self) -> set[str]:
        return {parameter for parameter, *_ in self.valid}


OXIMETRY = {("SpO2", 97.0, "%", "pleth"), ("HR", 145.0, "/min", "pleth")}
# PROTOCOLS.md §2.10, the synthetic extended-poll reply: HR 142, SpO2 91, pleth pulse NaN.
INTELLIVUE_WORKED_REPLY = bytes.fromhex(
    "C0 11 01 00 74 E1 00 00 02 00 02 00 6C 00 01 00 07 00 66 00 21 00 00 00 00 F1 3B 00 5C "
    "00 01 00 00 00 12 D6 87 20 24 05 17 10 30 15 00 00 01 00 06 00 00 00 01 00 42 "
    "00 00 00 03 00 3C "
    "01 01 00 01 00 0E 09 50 00 0A 41 82 00 00 0A A0 00 00 00 8E "
    "01 02 00 01 00 0E 09 50 00 0A 4B B8 00 00 02 20 00 00 00 5B "
    "01 03 00 01 00 0E 09 50 00 0A 48 22 00 00 0A A0 00 7F FF FF "
    "81 CE C1"
)
# The same reply with one value byte hit on the wire: its FCS no longer holds.
INTELLIVUE_HIT = INTELLIVUE_WORKED_REPLY.replace(bytes.fromhex("00 00 00 8E"), bytes.fromhex("00 00 00 8F"))
GE_T0 = int((T0 - datetime(1970, 1, 1)).total_seconds())


def ge_displayed(displayed: ge_sim.Displayed) -> bytes:
    return ge_frame(ge_sim.phdb_record(GE_T0, [(CLASS_BASIC, ge_sim.basic_block(displayed))]))


def medibus_cp1(values: dict[int, tuple[float | None, int]]) -> bytes:
    return medibus_response(REQ_MEASURED_CP1, medibus_sim.measured_data(values))


CAPTURES = {
    "masimo": Capture(
        b"7 SPO2=097% BPM=064\r\n"  # the partial line a port opens into
        + masimo_line(T0, 97, 145, 2.5)
        + masimo_line(T0 + timedelta(seconds=1), None, None, None, exc=EXC_NO_SENSOR),
        OXIMETRY,
        "records ok 2, bad 1",
    ),
    "nellcor": Capture(
        heading_rows("N-595", "1.0.0.1", "3F2A", (85, 100), (100, 180))
        + nellcor_row(T0, 97, 145, 50)
        + b"\xff\xfe line noise\r\n"
        + nellcor_row(T0 + timedelta(seconds=2), None, None, None, status=("SO",)),
        OXIMETRY,
        "records ok 2, bad 1",
    ),
    "nonin": Capture(
        nonin_line(97, 145) + b"SPO2=9" + b"\r\n" + nonin_line(None, None),
        OXIMETRY,
        "records ok 2, bad 1",
        monitor_time=None,  # Nonin lines carry no clock
    ),
    "intellivue": Capture(
        INTELLIVUE_HIT + INTELLIVUE_WORKED_REPLY,
        {("HR", 142.0, "/min", "ECG"), ("SpO2", 91.0, "%", "pleth")},
        "records ok 1, bad 1",
        monitor_time=datetime(2024, 5, 17, 10, 30, 15),
    ),
    "ge_s5": Capture(
        ge_displayed(ge_sim.Displayed(hr=145, spo2=97, pr=144))
        + b"\x7e\x31\x00garbage\x7e"
        + ge_displayed(ge_sim.Displayed()),  # the sensors off: every value invalid
        {("HR", 145.0, "/min", "ECG"), ("SpO2", 97.0, "%", "pleth"), ("PR", 144.0, "/min", "pleth")},
        "records ok 2, bad 1",
    ),
    "medibus": Capture(
        medibus_cp1({0xF0: (30, 0), 0x7D: (22.5, 1), 0xE1: (145, 0)})
        + b"\x01$F0  3"  # a reply cut off
        + medibus_cp1({0xF0: (None, 0), 0x7D: (None, 1), 0xE1: (None, 0)}),
        {
            ("FiO2", 30.0, "%", "InspO2"),
            ("PIP", 22.5, "mbar", "PeakBreathingPressure"),
            ("PR", 145.0, "/min", "PulseRateOximeter"),
        },
        "records ok 2, bad 1",
        monitor_time=None,  # Medibus replies carry no clock
    ),
}


@pytest.mark.parametrize("protocol", sorted(CAPTURES))
def test_a_capture_is_replayed_as_json_lines(protocol: str, tmp_path: Path) -> None:
    expected = CAPTURES[protocol]
    capture = tmp_path / f"{protocol}.raw"
    capture.write_bytes(expected.data)
    before = datetime.now(UTC)
    code, recs, err = run_read(protocol, file=capture, monitor="ox")
    after = datetime.now(UTC)
    assert code == 0
    valid = [r for r in recs if r["valid"]]
    shown = {(r["parameter"], r["value"], r["unit"], r["source"]) for r in valid}
    assert {v for v in shown if v[0] in expected.parameters} == expected.valid
    assert all(r["monitor"] == "ox" for r in recs)
    dashed = [r for r in recs if not r["valid"]]
    assert dashed and all(r["value"] is None and "no_value" in r["flags"] for r in dashed)
    for r in recs:
        host = datetime.fromisoformat(r["host_time"])
        assert host.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= host <= after + timedelta(seconds=1)
    first_time = None if expected.monitor_time is None else expected.monitor_time.isoformat()
    assert valid[0]["monitor_time"] == first_time
    # The summary says what was read and what was thrown away.
    assert err.count("\n") == 1
    assert f"ox ({protocol}): {len(recs)} samples, {len(valid)} valid; {expected.records};" in err
    assert f"of {len(expected.data)} bytes" in err


def test_a_capture_without_a_valid_value_exits_1(tmp_path: Path) -> None:
    capture = tmp_path / "dashes.raw"
    capture.write_bytes(nonin_line(None, None) * 3 + b"garbage\r\n")
    code, recs, err = run_read("nonin", file=capture)
    assert code == 1
    assert len(recs) == 6 and not any(r["valid"] for r in recs)
    assert "0 valid" in err and "no valid sample" in err


def test_an_empty_capture_exits_1(tmp_path: Path) -> None:
    capture = tmp_path / "empty.raw"
    capture.write_bytes(b"")
    assert run_read("masimo", file=capture)[:2] == (1, [])


def test_a_capture_through_a_line_format(tmp_path: Path) -> None:
    spec = LineFormat(mode="key_value", fields=(FieldSpec("O2", Parameter.FIO2, "%", source="blender"),))
    capture = tmp_path / "blender.raw"
    capture.write_bytes(b"O2=30\r\nO2=--\r\n")
    code, recs, _ = run_read("line_format", file=capture, line_format=spec, monitor="blender")
    assert code == 0
    assert [(r["parameter"], r["value"], r["valid"], r["source"]) for r in recs] == [
        ("FiO2", 30.0, True, "blender"),
        ("FiO2", None, False, "blender"),
    ]


def test_a_large_capture_is_read_in_chunks(tmp_path: Path) -> None:
    capture = tmp_path / "long.raw"
    capture.write_bytes(b"".join(nonin_line(90 + i % 10, 120) for i in range(5_000)))
    code, recs, err = run_read("nonin", file=capture)
    assert code == 0 and len(recs) == 10_000
    assert "records ok 5000, bad 0; garbage 0 of" in err


@pytest.mark.parametrize(
    ("protocol", "kwargs", "message"),
    [
        ("masimo", {}, "exactly one"),
        ("masimo", {"port": "loop://", "file": Path("x")}, "exactly one"),
        ("masimo", {"port": "loop://", "seconds": -1}, "negative"),
        ("pulseox", {"file": Path("x")}, "unknown monitor protocol 'pulseox' (known: "),
        ("line_format", {"file": Path("x")}, "needs a line format"),
        (
            "masimo",
            {
                "file": Path("x"),
                "line_format": LineFormat(mode="key_value", fields=(FieldSpec("A", Parameter.HR, "/min"),)),
            },
            "line_format only",
        ),
        ("masimo", {"file": Path("/nonexistent/capture.raw")}, "cannot read the capture"),
    ],
)
def test_usage_errors_exit_2_with_a_message(protocol: str, kwargs: dict[str, Any], message: str) -> None:
    code, recs, err = run_read(protocol, **kwargs)
    assert code == 2 and recs == []
    assert message in err


# -- reading a port --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "make"),
    [
        ("masimo", lambda fd: MasimoSimulator(fd, interval_s=0.05, script=STEADY, start_time=T0)),
        ("nellcor", lambda fd: NellcorSimulator(fd, interval_s=0.05, script=STEADY, start_time=T0)),
        ("nonin", lambda fd: NoninSimulator(fd, interval_s=0.05, script=STEADY)),
    ],
)
def test_a_pty_fed_by_a_simulator_is_read_through_the_link(
    protocol: str, make: Any, pty_pair: PtyPair
) -> None:
    sim = make(pty_pair.master_fd)
    sim.start()
    try:
        code, recs, err = run_read(protocol, port=pty_pair.slave_path, seconds=0.8, monitor="ox")
    finally:
        sim.stop()
    assert code == 0
    assert {r["value"] for r in recs if r["parameter"] == "SpO2" and r["valid"]} == {95.0}
    assert {r["value"] for r in recs if r["parameter"] == "HR" and r["valid"]} == {140.0}
    assert len(recs) >= 2 * 8
    assert "link live, reconnects 0" in err


def test_a_silent_port_exits_1_and_says_why(pty_pair: PtyPair) -> None:
    code, recs, err = run_read("nonin", port=pty_pair.slave_path, seconds=0.3)
    assert (code, recs) == (1, [])
    assert "0 samples" in err and "no valid sample" in err


def test_a_port_that_cannot_be_opened_exits_1_with_the_error() -> None:
    code, recs, err = run_read("masimo", port="/nonexistent/ttyUSB9", seconds=0.3)
    assert (code, recs) == (1, [])
    assert "link lost" in err and "open failed" in err


@pytest.mark.parametrize(
    ("overrides", "opened_with"),
    [
        ({}, {"baudrate": 19200, "parity": "E", "stopbits": 1, "rtscts": True, "xonxoff": False}),
        (
            {"baudrate": 9600, "parity": "N", "stopbits": 2, "rtscts": False, "xonxoff": True},
            {"baudrate": 9600, "parity": "N", "stopbits": 2, "rtscts": False, "xonxoff": True},
        ),
    ],
)
def test_a_port_is_read_with_the_protocols_settings_unless_overridden(
    port_opens: list[dict[str, Any]], overrides: dict[str, Any], opened_with: dict[str, Any]
) -> None:
    run_read("ge_s5", port="loop://", seconds=0.2, **overrides)
    assert port_opens and opened_with.items() <= port_opens[0].items()


def test_the_command_line_passes_the_line_settings_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import main as cli

    seen: dict[str, Any] = {}

    def fake_read(protocol: str, **kwargs: Any) -> int:
        seen.update(kwargs, protocol=protocol)
        return 0

    monkeypatch.setattr("cli.vitals_tools.read_command", fake_read)
    monkeypatch.setattr("recorder.logs.configure_logging", lambda *args: None)  # leave logging be
    argv = ["vitals", "read", "--protocol", "medibus", "--port", "/dev/ttyUSB0", "--parity", "N"]
    assert cli.main([*argv, "--stopbits", "2", "--no-rtscts", "--xonxoff"]) == 0
    assert {k: seen[k] for k in ("parity", "stopbits", "rtscts", "xonxoff", "baudrate")} == {
        "parity": "N", "stopbits": 2, "rtscts": False, "xonxoff": True, "baudrate": None,
    }  # fmt: skip
    assert cli.main(argv) == 0
    assert (seen["rtscts"], seen["xonxoff"], seen["stopbits"]) == (None, None, None)  # the protocol's own


def test_the_stop_event_ends_a_read(pty_pair: PtyPair) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    code, _, _ = run_read("masimo", port=pty_pair.slave_path, stop=stop)
    assert code == 1 and time.monotonic() - started < 2.0


# -- simulate -----------------------------------------------------------------------------------


class _Lines(io.StringIO):
    """A StringIO another thread may poll while the command writes to it."""

    def first_line(self) -> str | None:
        text = self.getvalue()
        return text.split("\n", 1)[0] if "\n" in text else None


def simulate_in_background(
    protocol: str, **kwargs: Any
) -> tuple[threading.Thread, threading.Event, _Lines, list[int]]:
    out, stop, result = _Lines(), threading.Event(), []

    def run() -> None:
        result.append(simulate_command(protocol, out=out, err=io.StringIO(), stop=stop, **kwargs))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, stop, out, result


class _StopOnValid(io.StringIO):
    """Output that ends the read (through ``stop``) at the first valid SpO2 line."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def write(self, text: str) -> int:
        if '"parameter": "SpO2"' in text and '"valid": true' in text:
            self._stop.set()
        return super().write(text)


@pytest.mark.parametrize("protocol", ["masimo", "nellcor", "nonin"])
def test_simulate_prints_a_path_that_read_can_use(protocol: str) -> None:
    # time_scale compresses the no-sensor and pulse-search phases, so values come within seconds.
    thread, stop, out, result = simulate_in_background(protocol, time_scale=100.0)
    try:
        assert wait_for(lambda: out.first_line() is not None)
        path = out.first_line()
        assert path is not None and path.startswith("/dev/pts/") and os.path.exists(path)
        read_stop = threading.Event()
        read_out = _StopOnValid(read_stop)
        with capture_logs():
            code = read_command(
                protocol, port=path, seconds=5.0, out=read_out, err=io.StringIO(), stop=read_stop
            )
    finally:
        stop.set()
        thread.join(3.0)
    assert code == 0
    assert any(r["valid"] and r["parameter"] == "SpO2" for r in records(read_out))
    assert result == [0] and not thread.is_alive()
    assert not os.path.exists(path)  # the pty went with the simulator


def read_master(fd: int, timeout_s: float) -> bytes:
    """What arrived on a pty master within ``timeout_s``; b"" while no one has the slave open."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.02)[0]:
            try:
                return os.read(fd, 4096)
            except OSError:  # EIO: the slave side is not open (yet)
                time.sleep(0.02)
    return b""


def test_simulate_on_a_serial_device(pty_pair: PtyPair) -> None:
    # The simulator opens a serial device (here a pty slave) with pyserial and prints there; the
    # master side stands in for the recorder's end of the cable.
    thread, stop, _, result = simulate_in_background("nellcor", port=pty_pair.slave_path, seconds=5.0)
    parser = NellcorParser("host")
    try:
        deadline = time.monotonic() + 2.0
        while parser.stats.records_ok == 0 and time.monotonic() < deadline:
            parser.feed(read_master(pty_pair.master_fd, 0.1), 0)
    finally:
        stop.set()
        thread.join(3.0)
    assert parser.info_lines == 3 and parser.stats.records_ok == 1  # headings, first row
    assert parser.info is not None and parser.info.model == "N-595"
    assert result == [0]


def test_simulate_ends_after_seconds() -> None:
    out = _Lines()
    started = time.monotonic()
    assert simulate_command("nonin", seconds=0.3, out=out) == 0
    assert 0.3 <= time.monotonic() - started < 1.5
    assert (out.first_line() or "").startswith("/dev/pts/")


def test_a_line_format_simulator_is_read_with_its_demo_table() -> None:
    thread, stop, out, result = simulate_in_background("line_format", time_scale=100.0)
    try:
        assert wait_for(lambda: out.first_line() is not None)
        path = out.first_line()
        assert path is not None
        read_stop = threading.Event()
        read_out = _StopOnValid(read_stop)
        with capture_logs():
            code = read_command(
                "line_format", port=path, line_format=line_format_from_mapping(DEMO_TABLE),
                seconds=5.0, out=read_out, err=io.StringIO(), stop=read_stop,
            )  # fmt: skip
    finally:
        stop.set()
        thread.join(3.0)
    assert code == 0 and result == [0]
    assert any(r["valid"] and r["parameter"] == "SpO2" for r in records(read_out))


@pytest.mark.parametrize(
    ("protocol", "kwargs", "message"),
    [
        ("pulseox", {}, "unknown monitor protocol"),
        ("masimo", {"time_scale": 0}, "positive"),
        ("masimo", {"port": "/nonexistent/ttyUSB9"}, "cannot open /nonexistent/ttyUSB9"),
    ],
)
def test_simulate_usage_errors_exit_2(protocol: str, kwargs: dict[str, Any], message: str) -> None:
    err = io.StringIO()
    assert simulate_command(protocol, seconds=0.1, out=io.StringIO(), err=err, **kwargs) == 2
    assert message in err.getvalue()


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_ends_the_read_quietly(tmp_path: Path) -> None:
    capture = tmp_path / "many.raw"
    capture.write_bytes(nonin_line(97, 140) * 10)
    err = io.StringIO()
    assert read_command("nonin", file=capture, out=_ClosedPipe(), err=err) == 0
    assert "samples, 20 valid" in err.getvalue()  # the first chunk was read and counted
