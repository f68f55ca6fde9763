"""The Nonin simulator: its lines parse back, and it round-trips through a pty and SerialLink."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs
from vitals_testkit import STEADY, Collector, wait_for

from vitals.link import SerialLink
from vitals.nonin import NoninParser
from vitals.pty import PtyPair, open_pty_pair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.masimo import StabilisationScript
from vitals.simulators.nonin import NoninSimulator, nonin_line

FAST: dict[str, Any] = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2}


def parse(data: bytes) -> list[VitalSample]:
    parser = NoninParser("sim")
    samples = parser.feed(data, 0)
    assert parser.stats.records_bad == 0 and parser.stats.garbage_bytes == 0
    return samples


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    pair = open_pty_pair()
    yield pair
    pair.close()


@pytest.mark.parametrize(("spo2", "rate"), [(97.0, 145.0), (6.0, 60.0), (100.0, 0.0)])
def test_line_round_trips(spo2: float, rate: float) -> None:
    line = nonin_line(spo2, rate)
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    assert line.startswith(b"SPO2=") and b" HR=" in line
    samples = parse(line)
    assert [s.value for s in samples] == [spo2, rate]
    assert all(s.valid for s in samples)


def test_dashes_fast_and_event() -> None:
    assert nonin_line(None, None) == b"SPO2=--- HR=---\r\n"
    assert nonin_line(95, 140, fast=True, event=True) == b"SPO2=095 HR=140 F*\r\n"
    samples = parse(nonin_line(None, 140, event=True))
    assert samples[0].value is None and not samples[0].valid
    assert samples[1].value == 140.0 and samples[1].flags == {"event_marker"}


def test_script_sensor_and_event_marker() -> None:
    now = [0.0]
    sim = NoninSimulator(-1, script=StabilisationScript(no_sensor_s=10, acquire_s=5), clock=lambda: now[0])
    assert sim.reading_at(12) == (None, None)
    assert None not in sim.reading_at(20)
    sim.sensor_off()
    assert sim.reading_at(21) == (None, None)
    now[0] = 30.0
    sim.sensor_on()
    assert sim.reading_at(32) == (None, None)  # looking for the pulse again
    assert None not in sim.reading_at(36)
    sim.mark_event()
    assert sim.line_at(36).endswith(b"*\r\n")
    assert not sim.line_at(37).endswith(b"*\r\n")  # one press, one marker


def test_the_factory_builds_it() -> None:
    sim = make_simulator("nonin", -1, time_scale=2.0)
    assert isinstance(sim, NoninSimulator) and (sim.interval_s, sim.time_scale) == (1.0, 2.0)


def test_thread_writes_on_cadence() -> None:
    r, w = os.pipe()
    try:
        sim = NoninSimulator(w, interval_s=0.05, script=StabilisationScript(no_sensor_s=0.2, acquire_s=0.1))
        started = time.monotonic()
        with sim:
            time.sleep(0.8)
        elapsed = time.monotonic() - started
        data = b""
        while select.select([r], [], [], 0)[0]:
            data += os.read(r, 65536)
    finally:
        os.close(r)
        os.close(w)
    lines = data.split(b"\r\n")[:-1]
    assert abs(len(lines) - elapsed / 0.05) <= 3
    spo2 = [s for s in parse(data) if s.parameter is Parameter.SPO2]
    assert spo2[0].value is None and spo2[-1].valid
    assert sim.lines_written == len(lines) and sim.write_errors == 0


def test_round_trip_through_a_pty_and_the_link(pty_pair: PtyPair, collector: Collector) -> None:
    script = StabilisationScript(
        no_sensor_s=0.3, acquire_s=0, spo2_start=93, spo2_end=93, bpm_start=128, bpm_end=128,
        spo2_noise=0, bpm_noise=0, pi_noise=0,
    )  # fmt: skip
    sim = NoninSimulator(pty_pair.master_fd, interval_s=0.05, script=script)
    link = SerialLink("pox", pty_pair.slave_path, NoninParser("pox"), collector, **FAST)
    with capture_logs():
        link.start()
        try:
            assert wait_for(lambda: link.health().state == "connected")
            sim.start()
            assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 3)
            sim.mark_event()
            assert wait_for(lambda: any("event_marker" in s.flags for s in collector.samples))
        finally:
            sim.stop()
            link.stop()
    assert set(collector.values(Parameter.SPO2)) == {93.0}
    assert set(collector.values(Parameter.HR)) == {128.0}
    assert set(collector.values(Parameter.SPO2, valid=False)) == {None}
    assert link.health().stats.records_ok >= 3


def test_a_monitor_that_goes_quiet_is_read_again_after_the_reconnect(
    pty_pair: PtyPair, collector: Collector
) -> None:
    sim = NoninSimulator(pty_pair.master_fd, interval_s=0.05, script=STEADY)
    link = SerialLink(
        "pox", pty_pair.slave_path, NoninParser("pox"), collector, silence_timeout_s=0.3, **FAST
    )
    logs: list[MutableMapping[str, Any]]
    with capture_logs() as logs:
        link.start()
        try:
            assert wait_for(lambda: link.health().state == "connected")
            sim.start()
            assert wait_for(lambda: collector.count() >= 4)
            sim.stop()  # switched to standby: the port goes quiet
            assert wait_for(lambda: link.health().reconnects >= 1, 3.0)
            before = collector.count()
            sim.start()  # back on
            assert wait_for(lambda: collector.count() >= before + 4, 2.0)
        finally:
            sim.stop()
            link.stop()
    lost = [e for e in logs if e["event"] == "serial link lost"]
    assert lost and "silent" in lost[0]["reason"]
    assert set(collector.values(Parameter.SPO2)) == {95.0}
