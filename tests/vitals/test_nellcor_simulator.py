"""The N-595 simulator: its table parses back, and it round-trips through a pty and SerialLink."""

from __future__ import annotations

import os
import select
import time
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import pytest
import serial
from vitals_testkit import (
    STEADY,
    Collector,
    assert_only_values,
    by_parameter,
    parse_clean,
    pty_link,
    run_on_a_pipe,
    running,
    wait_for,
)

from vitals.nellcor import NellcorParser
from vitals.pty import PtyPair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.masimo import StabilisationScript
from vitals.simulators.nellcor import XOFF, XON, NellcorSimulator, heading_rows, nellcor_row

T0 = datetime(2024, 5, 1, 10, 0, 0)


def parse(data: bytes) -> tuple[list[VitalSample], NellcorParser]:
    parser = NellcorParser("sim")
    return parse_clean(parser, data), parser


@pytest.mark.parametrize(("spo2", "rate"), [(97.0, 145.0), (60.0, 90.0), (100.0, 0.0)])
def test_row_round_trips(spo2: float, rate: float) -> None:
    row = nellcor_row(T0, spo2, rate, 42, status=("MO",))
    assert row.endswith(b"\r\n") and row.count(b"\n") == 1
    s = by_parameter(parse(row)[0])
    assert (s[Parameter.SPO2].value, s[Parameter.HR].value) == (spo2, rate)
    assert s[Parameter.SPO2].monitor_time == T0
    assert s[Parameter.HR].flags == {"motion"}


def test_values_beyond_limits_are_starred_and_missing_ones_dashed() -> None:
    row = nellcor_row(T0, 80, 190, None, status=("SL", "PH"), spo2_limits=(85, 95), pr_limits=(100, 180))
    assert b" 80* " in row and b" 190* " in row and b"---" in row
    s = by_parameter(parse(row)[0])
    assert s[Parameter.SPO2].alarm and s[Parameter.HR].alarm
    row = nellcor_row(T0, None, None, None, status=("SD",))
    assert all(x.value is None and "sensor_disconnect" in x.flags for x in parse(row)[0])


def test_headings_are_understood_by_the_parser() -> None:
    _, parser = parse(heading_rows("N-595", "1.2.0.0", "A1B2", (85, 95), (100, 180)))
    assert parser.info_lines == 3
    assert parser.info is not None and parser.info.spo2_limits == (85, 95)


def test_script_phases() -> None:
    sim = NellcorSimulator(-1, script=StabilisationScript(no_sensor_s=20, acquire_s=8), seed=1)
    assert sim.reading_at(5)[3] == ("SD",) and sim.reading_at(5)[0] is None
    assert sim.reading_at(25)[3] == ("PS",)
    spo2, rate, amplitude, status = sim.reading_at(40)
    assert spo2 is not None and rate is not None and amplitude is not None
    assert "SL" in status  # ~60 % early on, below the 85 % limit
    assert sim.reading_at(1200)[3] == ()  # settled inside the limits
    sim.sensor_off()
    assert sim.reading_at(1201)[3] == ("SO",)
    sim.sensor_off(unplugged=True)
    assert sim.reading_at(1201)[3] == ("SD",)


def read_until_quiet(fd: int, quiet_s: float = 0.15) -> bytes:
    data = b""
    while select.select([fd], [], [], quiet_s)[0]:
        data += os.read(fd, 65536)
    return data


def test_thread_prints_headings_then_rows_and_honours_xon_xoff(pty_pair: PtyPair) -> None:
    # The simulator on a pyserial port (a pty slave); the master is the host's end of the cable.
    port = serial.serial_for_url(pty_pair.slave_path, timeout=0.1)
    fd = pty_pair.master_fd
    try:
        sim = NellcorSimulator(port, interval_s=0.05, script=STEADY, start_time=T0, heading_every=5)
        sim.start()
        time.sleep(0.5)
        os.write(fd, bytes([XOFF]))
        assert wait_for(lambda: sim.paused, 1.0)
        before = read_until_quiet(fd)
        time.sleep(0.3)
        assert select.select([fd], [], [], 0)[0] == []  # XOFF: nothing while paused
        os.write(fd, bytes([XON]))
        assert wait_for(lambda: not sim.paused, 1.0)
        time.sleep(0.2)
        sim.stop()
        after = read_until_quiet(fd)
    finally:
        port.close()
    samples, parser = parse(before + after)
    assert parser.info_lines >= 3 * 2  # headings at start and after every 5 rows
    assert parser.stats.records_ok == sim.rows_written >= 8
    assert {s.value for s in samples if s.parameter is Parameter.SPO2} == {95.0}
    assert b"SpO2 Limit" in before.split(b"\r\n")[0]


def test_the_factory_builds_it_with_the_devices_interval() -> None:
    sim = make_simulator("nellcor", -1, time_scale=3.0)
    assert isinstance(sim, NellcorSimulator)
    assert (sim.interval_s, sim.time_scale) == (2.0, 3.0)


def test_write_errors_are_counted_not_raised() -> None:
    sim = run_on_a_pipe(lambda fd: NellcorSimulator(fd, interval_s=0.02), 0.15, read=False).device
    assert sim.write_errors >= 3 and sim.rows_written == 0


# -- through a real pty and the serial link -----------------------------------------------------


@pytest.mark.usefixtures("logs")
def test_round_trip_through_a_pty_and_the_link(pty_pair: PtyPair, collector: Collector) -> None:
    script = StabilisationScript(
        no_sensor_s=0.3, acquire_s=0.2, spo2_start=91, spo2_end=91, bpm_start=152, bpm_end=152,
        spo2_noise=0, bpm_noise=0, pi_noise=0,
    )  # fmt: skip
    sim = NellcorSimulator(pty_pair.master_fd, interval_s=0.05, script=script, start_time=T0)
    parser = NellcorParser("pox")
    with running(pty_link("pox", pty_pair, parser, collector), sim) as link:
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 3)
    assert_only_values(collector, {Parameter.SPO2: 91.0, Parameter.HR: 152.0})
    # The no-sensor and pulse-search rows came through as dashes, never as numbers.
    invalid = [s for s in collector.samples if not s.valid]
    assert invalid and all(s.value is None for s in invalid)
    assert {"sensor_disconnect", "pulse_search"} <= set().union(*(s.flags for s in invalid))
    assert all(s.monitor == "pox" and s.source == "pleth" for s in collector.samples)
    assert parser.info is not None and parser.info.model == "N-595"
    assert link.health().stats.records_bad <= 1  # at most the row the port opened into


def test_a_stalled_monitor_is_woken_by_the_reconnect_greeting(
    pty_pair: PtyPair, collector: Collector, logs: list[MutableMapping[str, Any]]
) -> None:
    sim = NellcorSimulator(pty_pair.master_fd, interval_s=0.05, script=STEADY, start_time=T0)
    link = pty_link("pox", pty_pair, NellcorParser("pox"), collector, silence_timeout_s=0.4)
    with running(link, sim):
        assert wait_for(lambda: collector.count() >= 4)
        sim.stall()  # the data port stops sending, as the manual says it may
        assert wait_for(lambda: link.health().state == "lost", 3.0)
        assert wait_for(lambda: not sim.paused, 1.0)  # the XON of the new connection
        before = collector.count()
        assert wait_for(lambda: collector.count() >= before + 4, 2.0)
        assert link.health().reconnects == 1
    lost = [e for e in logs if e["event"] == "monitor_lost"]
    assert lost and "silent" in lost[0]["error"]
    assert set(collector.values(Parameter.SPO2)) == {95.0}


def test_stop_is_prompt_with_the_devices_2_s_interval(pty_pair: PtyPair) -> None:
    reader = os.open(pty_pair.slave_path, os.O_RDWR | os.O_NOCTTY)  # so the master is not EIO
    try:
        sim = NellcorSimulator(pty_pair.master_fd)
        sim.start()
        time.sleep(0.3)  # inside the wait for the next row, listening for XON/XOFF
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 0.5
        assert sim._thread is None
    finally:
        os.close(reader)
