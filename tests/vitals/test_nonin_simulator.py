"""The Nonin simulator: its lines parse back, and it round-trips through a pty and SerialLink."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from vitals_testkit import (
    STEADY,
    Collector,
    assert_only_values,
    parse_clean,
    pty_link,
    run_on_a_pipe,
    running,
    wait_for,
)

from vitals.nonin import NoninParser
from vitals.pty import PtyPair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.masimo import StabilisationScript
from vitals.simulators.nonin import NoninSimulator, nonin_line


def parse(data: bytes) -> list[VitalSample]:
    return parse_clean(NoninParser("sim"), data)


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
    script = StabilisationScript(no_sensor_s=0.2, acquire_s=0.1)
    run = run_on_a_pipe(lambda fd: NoninSimulator(fd, interval_s=0.05, script=script), 0.8)
    lines = run.data.split(b"\r\n")[:-1]
    assert abs(len(lines) - run.elapsed_s / 0.05) <= 3
    spo2 = [s for s in parse(run.data) if s.parameter is Parameter.SPO2]
    assert spo2[0].value is None and spo2[-1].valid
    assert run.device.lines_written == len(lines) and run.device.write_errors == 0


@pytest.mark.usefixtures("logs")
def test_round_trip_through_a_pty_and_the_link(pty_pair: PtyPair, collector: Collector) -> None:
    script = StabilisationScript(
        no_sensor_s=0.3, acquire_s=0, spo2_start=93, spo2_end=93, bpm_start=128, bpm_end=128,
        spo2_noise=0, bpm_noise=0, pi_noise=0,
    )  # fmt: skip
    sim = NoninSimulator(pty_pair.master_fd, interval_s=0.05, script=script)
    with running(pty_link("pox", pty_pair, NoninParser("pox"), collector), sim) as link:
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 3)
        sim.mark_event()
        assert wait_for(lambda: any("event_marker" in s.flags for s in collector.samples))
    assert_only_values(collector, {Parameter.SPO2: 93.0, Parameter.HR: 128.0})
    assert set(collector.values(Parameter.SPO2, valid=False)) == {None}
    assert link.health().stats.records_ok >= 3


def test_a_monitor_that_goes_quiet_is_read_again_after_the_reconnect(
    pty_pair: PtyPair, collector: Collector, logs: list[MutableMapping[str, Any]]
) -> None:
    sim = NoninSimulator(pty_pair.master_fd, interval_s=0.05, script=STEADY)
    link = pty_link("pox", pty_pair, NoninParser("pox"), collector, silence_timeout_s=0.3)
    with running(link, sim):
        assert wait_for(lambda: collector.count() >= 4)
        sim.stop()  # switched to standby: the port goes quiet
        assert wait_for(lambda: link.health().state == "lost", 3.0)
        assert wait_for(lambda: link.health().port_open, 2.0)  # reopened, still quiet
        before = collector.count()
        sim.start()  # back on
        assert wait_for(lambda: collector.count() >= before + 4, 2.0)
        assert link.health().reconnects == 1
    lost = [e for e in logs if e["event"] == "monitor_lost"]
    assert lost and "silent" in lost[0]["error"]
    assert set(collector.values(Parameter.SPO2)) == {95.0}
