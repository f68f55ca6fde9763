"""The GE S/5 simulator: records parse back to its values; it answers requests like a monitor;
round trips over a real pty through SerialLink, including a monitor that stops answering."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta

import pytest
from vitals_testkit import (
    Collector,
    assert_only_values,
    falls_silent,
    mean_of,
    parse_clean,
    pty_link,
    read_for,
    run_on_a_pipe,
    running,
    sensor_off_then_on,
    wait_for,
)

from vitals.ge_s5 import (
    DEFAULT_CLASSES,
    DRI_LEVEL_2009,
    GeS5Parser,
    frame,
    phdb_request,
    transmission_request,
)
from vitals.link import SerialLink
from vitals.pty import PtyPair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.ge_s5 import (
    Displayed,
    GeS5Simulator,
    StabilisationCourse,
    TransmissionRequest,
    basic_block,
    ext3_block,
    phdb_record,
    raw_value,
)

T0 = datetime(2024, 5, 1, 10, 0, 0)
STEADY = StabilisationCourse(
    hr_start=142, hr_end=142, spo2_start=95, spo2_end=95, fio2_step_s=0, pip_start=22, pip_end=22,
    vte_start_ml=15, vte_end_ml=15, etco2_end_mmhg=38, etco2_rise_s=0, nibp_at_s=0, noise=0,
)  # fmt: skip


def parse(data: bytes) -> list[VitalSample]:
    return parse_clean(GeS5Parser("sim"), data)


def values(samples: list[VitalSample]) -> dict[tuple[Parameter, str], float | None]:
    return {(s.parameter, s.source): s.value for s in samples}


def test_record_round_trips_through_the_parser() -> None:
    d = Displayed(
        hr=141, spo2=96.5, pr=139, nibp=(60, 33, 44), temp=36.8, etco2_mmhg=38.0, fico2_mmhg=0.0,
        rr_co2=45, eto2=26.0, fio2=30.0, rr=45, ppeak=21.5, peep=5.0, tv_insp=17.0, tv_exp=15.3,
        mv=0.69, pmean=10.5,
    )  # fmt: skip
    unix = int((T0 - datetime(1970, 1, 1)).total_seconds())
    samples = parse(frame(phdb_record(unix, [(0, basic_block(d)), (3, ext3_block(d))])))
    v = values(samples)
    assert v[(Parameter.HR, "ECG")] == 141
    assert v[(Parameter.SPO2, "pleth")] == 96.5
    assert v[(Parameter.PR, "pleth")] == 139
    assert (v[(Parameter.NBP_SYS, "")], v[(Parameter.NBP_DIA, "")], v[(Parameter.NBP_MEAN, "")]) == (
        60,
        33,
        44,
    )
    assert v[(Parameter.TEMP, "SKIN")] == pytest.approx(36.8)
    assert v[(Parameter.ETCO2, "CO2")] == pytest.approx(38.0, abs=0.05)
    assert v[(Parameter.FIO2, "")] == 30.0 and v[(Parameter.ETO2, "")] == 26.0
    assert v[(Parameter.PIP, "spirometry")] == 21.5 and v[(Parameter.PEEP, "spirometry")] == 5.0
    assert v[(Parameter.VTE, "spirometry")] == pytest.approx(15.3)
    assert v[(Parameter.VTI, "spirometry")] == pytest.approx(17.0)
    assert v[(Parameter.MV, "spirometry")] == pytest.approx(0.69)
    assert v[(Parameter.MAP_AW, "spirometry")] == 10.5
    assert all(s.valid and s.monitor_time == T0 for s in samples)
    assert not any(p in (Parameter.IBP_SYS, Parameter.IBP_MEAN) for p, _ in v)  # no invasive lines


def test_missing_values_go_out_as_markers() -> None:
    assert raw_value(None, 1) == -32767 and raw_value("not_updated", 1) == -32766
    samples = parse(frame(phdb_record(1, [(0, basic_block(Displayed()))])))
    assert samples and all(s.value is None and not s.valid for s in samples)
    assert all(s.flags == {"no_value", "invalid"} for s in samples)


def test_course_is_a_stabilisation() -> None:
    sim = GeS5Simulator(-1, seed=4)
    early = [sim.displayed_at(t) for t in range(0, 30)]
    late = [sim.displayed_at(t) for t in range(600, 630)]
    mean = mean_of
    assert 85 < mean(early, "hr") < 110 and mean(late, "hr") > 140
    assert 55 < mean(early, "spo2") < 72 and mean(late, "spo2") > 90
    assert mean(early, "fio2") == 21 and mean(late, "fio2") == 30
    assert mean(late, "etco2_mmhg") > 30
    for d in early + late:
        assert 40 <= float(d.rr) <= 60  # type: ignore[arg-type]
        assert 11 <= float(d.tv_exp) <= 19  # type: ignore[arg-type]  # 4–6 mL/kg of 3 kg
        assert 19 <= float(d.ppeak) <= 26 and d.peep == 5  # type: ignore[arg-type]
    assert early[0].nibp == (None, None, None) and late[0].nibp == STEADY.nibp


def test_sensor_off_invalidates_spo2_and_pulse_rate_only() -> None:
    sim = GeS5Simulator(-1, course=STEADY)
    sim.sensor_off()
    off = parse(frame(sim.record_at(10, DEFAULT_CLASSES)))
    bad = {s.parameter for s in off if not s.valid}
    assert bad == {Parameter.SPO2, Parameter.PR}
    assert all(s.value is None and "no_value" in s.flags for s in off if s.parameter in bad)
    sim.sensor_on()
    assert all(s.valid for s in parse(frame(sim.record_at(11, DEFAULT_CLASSES))))


def test_registered_as_the_ge_s5_simulator() -> None:
    assert isinstance(make_simulator("ge_s5", -1, time_scale=2.0, seed=1), GeS5Simulator)


# -- the monitor's side of the conversation -----------------------------------------------------


def test_answers_only_at_its_own_dri_level(wire: tuple[socket.socket, int]) -> None:
    host, fd = wire
    with GeS5Simulator(fd, time_scale=50, dri_level=DRI_LEVEL_2009, course=STEADY) as sim:
        host.sendall(frame(phdb_request(0x09, 5)) + frame(phdb_request(0x07, 5)))
        assert read_for(host, 0.3) == b""
        assert sim.requests_seen == 2 and sim.requests_ignored == 2
        host.sendall(transmission_request(5))  # at every level, as the parser sends it
        data = read_for(host, 0.45)
    assert sim.requests_ignored == 6
    hr = [s for s in parse(data) if s.parameter is Parameter.HR]
    # 5 s at time_scale 50 is one record every 0.1 s, the first at once.
    assert 3 <= len(hr) <= 6 and {s.value for s in hr} == {142}


def test_stop_and_single_requests(wire: tuple[socket.socket, int]) -> None:
    host, fd = wire
    with GeS5Simulator(fd, time_scale=50, course=STEADY) as sim:
        host.sendall(frame(phdb_request(0x09, 5)))
        assert read_for(host, 0.35)
        host.sendall(frame(phdb_request(0x09, 0)))  # stop
        read_for(host, 0.1)
        assert read_for(host, 0.3) == b""
        host.sendall(frame(phdb_request(0x09, -1)))  # one record
        single = read_for(host, 0.3)
        assert sim.records_sent >= 3
    assert len([s for s in parse(single) if s.parameter is Parameter.HR]) == 1


# -- over a real pty, through the link ----------------------------------------------------------


def ge_link(pair: PtyPair, parser: GeS5Parser, collector: Collector, **options: float) -> SerialLink:
    return pty_link("ge", pair, parser, collector, **options)


def test_round_trip_over_a_pty(pty_pair: PtyPair, collector: Collector) -> None:
    sim = GeS5Simulator(pty_pair.master_fd, time_scale=50, course=STEADY, start_time=T0)
    with running(ge_link(pty_pair, GeS5Parser("ge"), collector), sim, device_first=True) as link:
        assert wait_for(lambda: len(collector.values(Parameter.HR)) >= 3)
    steady = {Parameter.HR: 142.0, Parameter.SPO2: 95.0, Parameter.PEEP: 5.0, Parameter.FIO2: 30.0}
    assert_only_values(collector, steady)
    assert collector.values(Parameter.SPO2, valid=False) == []
    stamps = [s.monitor_time for s in collector.samples]
    assert all(s is not None and T0 <= s < T0 + timedelta(seconds=10) for s in stamps)
    # The monitor answered exactly one of the five requests of the greeting.
    assert sim.requests_seen == 5 and sim.requests_ignored == 4
    stats = link.health().stats
    assert stats.records_bad == 0 and stats.garbage_bytes == 0 and stats.records_ok >= 3


def test_sensor_off_over_the_pty(pty_pair: PtyPair, collector: Collector) -> None:
    sim = GeS5Simulator(pty_pair.master_fd, time_scale=50, course=STEADY)
    with running(ge_link(pty_pair, GeS5Parser("ge"), collector), sim, device_first=True):
        sensor_off_then_on(sim, collector, Parameter.SPO2)
    assert set(collector.values(Parameter.SPO2, valid=False)) == {None}
    assert set(collector.values(Parameter.HR, valid=False)) == set()


def test_parser_asks_again_when_the_monitor_forgets_the_request(
    pty_pair: PtyPair, collector: Collector
) -> None:
    sim = GeS5Simulator(pty_pair.master_fd, time_scale=50, course=STEADY)
    parser = GeS5Parser("ge", resend_after_s=0.5)
    link = ge_link(pty_pair, parser, collector, silence_timeout_s=30.0)
    # The monitor's interface restarts: request forgotten.
    with running(link, sim, device_first=True), falls_silent(sim, collector, Parameter.HR, recover_s=3.0):
        time.sleep(0.7)  # a resend happens and is ignored while it is down
    assert parser.requests_resent >= 2
    assert link.health().reconnects == 0  # the parser brought it back, not a reconnect


def test_link_reconnects_and_requests_again_after_silence(pty_pair: PtyPair, collector: Collector) -> None:
    sim = GeS5Simulator(pty_pair.master_fd, time_scale=50, course=STEADY)
    link = ge_link(pty_pair, GeS5Parser("ge"), collector, silence_timeout_s=0.6)
    with running(link, sim, device_first=True), falls_silent(sim, collector, Parameter.HR, recover_s=5.0):
        assert wait_for(lambda: link.health().state == "lost", 3.0)
    health = link.health()
    assert health.reconnects >= 1 and "silent" in (health.last_error or "")
    assert sim.requests_seen >= 10  # the greeting came again with the reconnect


def test_writes_to_a_closed_descriptor_are_counted() -> None:
    def asked_to_send(fd: int) -> GeS5Simulator:
        sim = GeS5Simulator(fd, time_scale=100, course=STEADY)
        sim._handle(TransmissionRequest(0x09, record_type=1, interval_s=5, classes=DEFAULT_CLASSES))
        return sim

    sim = run_on_a_pipe(asked_to_send, 0.2, read=False).device
    assert sim.write_errors >= 1 and sim.records_sent == 0
