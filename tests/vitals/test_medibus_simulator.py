"""The Medibus ventilator simulator: replies parse back to its values; it talks like a device;
round trips over a real pty through SerialLink, including a device that stops answering."""

from __future__ import annotations

import socket

import pytest
from vitals_testkit import (
    Collector,
    assert_only_values,
    by_parameter,
    falls_silent,
    mean_of,
    parse_clean,
    pty_link,
    read_for,
    running,
    sensor_off_then_on,
    wait_for,
)

from vitals.link import SerialLink
from vitals.medibus import (
    ICC,
    NOP,
    REQ_MEASURED_CP1,
    REQ_MEASURED_CP2,
    MedibusParser,
    command,
    response,
)
from vitals.pty import PtyPair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.medibus import (
    VENTILATOR_ID,
    MedibusSimulator,
    Ventilation,
    VentilationCourse,
    measured_data,
    value_field,
)

STEADY = VentilationCourse(
    vt_start_ml_kg=5, vt_end_ml_kg=5, pip_start=22, pip_end=22, fio2_step_s=0, noise=0
)  # fmt: skip


def parse(data: bytes) -> list[VitalSample]:
    return parse_clean(MedibusParser("sim"), data)


@pytest.mark.parametrize(
    ("value", "decimals", "field"),
    [(21.0, 0, b"  21"), (22.46, 1, b"22.5"), (5.0, 1, b" 5.0"), (0.614, 2, b"0.61"), (123.4, 1, b" 123"),
     (None, 1, b"----"), (12345.0, 0, b"9999")],
)  # fmt: skip
def test_value_field(value: float | None, decimals: int, field: bytes) -> None:
    assert value_field(value, decimals) == field


def test_replies_round_trip_through_the_parser() -> None:
    v = Ventilation(fio2=30, pip=21.5, peep=5, mean=9.8, rr=48, vte=15.3, vti=17.0, mv=0.73, leak_pct=10)
    s = by_parameter(parse(response(REQ_MEASURED_CP1, measured_data(v.cp1()))))
    assert {p: x.value for p, x in s.items()} == {
        Parameter.FIO2: 30.0,
        Parameter.PIP: 21.5,
        Parameter.PEEP: 5.0,
        Parameter.MAP_AW: 9.8,
        Parameter.RR: 48.0,
        Parameter.VTE: 15.3,
        Parameter.MV: 0.73,
        Parameter.LEAK: 10.0,
    }
    assert all(x.valid for x in s.values())
    cp2 = by_parameter(parse(response(REQ_MEASURED_CP2, measured_data(v.cp2()))))
    assert (cp2[Parameter.VTE].value, cp2[Parameter.VTI].value) == (15.3, 17.0)


def test_course_is_neonatal_ventilation() -> None:
    sim = MedibusSimulator(-1, seed=2)
    early = [sim.ventilation_at(t) for t in range(0, 30)]
    late = [sim.ventilation_at(t) for t in range(400, 430)]
    mean = mean_of
    assert mean(early, "fio2") == 21 and mean(late, "fio2") == 30
    assert 23 < mean(early, "pip") <= 25.5 and 19 < mean(late, "pip") < 21  # PIP 25 → 20
    assert 11 < mean(early, "vte") < 14 and 17 < mean(late, "vte") < 19  # 4 → 6 mL/kg of 3 kg
    for v in early + late:
        assert v.peep == 5 and 40 <= float(v.rr) <= 60  # type: ignore[arg-type]
        assert float(v.vti) > float(v.vte)  # type: ignore[arg-type]


def test_device_answers_like_a_ventilator() -> None:
    sim = MedibusSimulator(-1, course=STEADY)
    assert sim.reply_to(REQ_MEASURED_CP1, 1) is None  # no session yet
    assert sim.reply_to(ICC, 1) == response(ICC)
    reply = sim.reply_to(REQ_MEASURED_CP1, 2)
    assert reply is not None and by_parameter(parse(reply))[Parameter.PIP].value == 22.0
    assert sim.reply_to(NOP, 2) == response(NOP)
    assert sim.reply_to(0x52, 2) == response(0x52, VENTILATOR_ID)
    assert sim.reply_to(0x28, 2) == response(0x28)
    assert sim.reply_to(0x55, 2) == response(0x55)  # stop: the session ends
    assert sim.reply_to(REQ_MEASURED_CP1, 3) is None


def test_disconnected_patient_gives_dashes_but_fio2_stays() -> None:
    sim = MedibusSimulator(-1, course=STEADY)
    sim.reply_to(ICC, 0)
    sim.sensor_off()
    reply = sim.reply_to(REQ_MEASURED_CP1, 1)
    assert reply is not None and b"----" in reply
    s = by_parameter(parse(reply))
    assert s[Parameter.FIO2].valid and s[Parameter.FIO2].value == 30.0
    airway = [x for p, x in s.items() if p is not Parameter.FIO2]
    assert len(airway) == 7
    assert all(x.value is None and not x.valid and x.flags == {"no_value"} for x in airway)
    sim.sensor_on()
    reply = sim.reply_to(REQ_MEASURED_CP1, 2)
    assert reply is not None and all(x.valid for x in parse(reply))


def test_registered_as_the_medibus_simulator() -> None:
    assert isinstance(make_simulator("medibus", -1, time_scale=2.0, seed=1), MedibusSimulator)


# -- the device's side of the conversation ------------------------------------------------------


def test_device_opens_with_icc_sends_nops_and_counts_answers(wire: tuple[socket.socket, int]) -> None:
    host, fd = wire
    with MedibusSimulator(fd, nop_interval_s=0.1, course=STEADY) as sim:
        first = read_for(host, 0.35)
        assert first.startswith(command(ICC)) and first.count(command(NOP)) >= 2
        host.sendall(response(ICC) + response(NOP))
        host.sendall(command(ICC) + command(REQ_MEASURED_CP1) + b"\x1b$00\r")  # the last is corrupt
        replies = read_for(host, 0.2)
    assert response(ICC) in replies and response(0x15) in replies
    assert len(parse(replies.replace(command(NOP), b""))) == 8
    assert sim.host_answers == 2 and sim.commands_seen == 2 and sim.corrupt_seen == 1


# -- over a real pty, through the link ----------------------------------------------------------


def vent_link(pair: PtyPair, parser: MedibusParser, collector: Collector, **options: float) -> SerialLink:
    return pty_link("vent", pair, parser, collector, **options)


def test_round_trip_over_a_pty(pty_pair: PtyPair, collector: Collector) -> None:
    sim = MedibusSimulator(pty_pair.master_fd, course=STEADY, nop_interval_s=0.2)
    parser = MedibusParser("vent", poll_interval_s=0.1)
    with running(vent_link(pty_pair, parser, collector), sim, device_first=True) as link:
        assert wait_for(lambda: len(collector.values(Parameter.PIP)) >= 5)
        assert wait_for(lambda: sim.host_answers >= 2)  # the host answered the device's ICC and a NOP
    # VTE: 5 mL/kg of 3 kg.
    steady = {Parameter.PIP: 22.0, Parameter.PEEP: 5.0, Parameter.FIO2: 30.0, Parameter.VTE: 15.0}
    assert_only_values(collector, steady)
    assert all(s.monitor == "vent" for s in collector.samples)
    assert parser.device_commands >= 2
    stats = link.health().stats
    assert stats.records_bad == 0 and stats.garbage_bytes == 0


def test_disconnected_patient_over_the_pty(pty_pair: PtyPair, collector: Collector) -> None:
    sim = MedibusSimulator(pty_pair.master_fd, course=STEADY)
    link = vent_link(pty_pair, MedibusParser("vent", poll_interval_s=0.1), collector)
    with running(link, sim, device_first=True):
        sensor_off_then_on(sim, collector, Parameter.PIP)
    assert set(collector.values(Parameter.PIP, valid=False)) == {None}
    assert collector.values(Parameter.FIO2, valid=False) == []


def test_parser_reinitialises_when_the_device_forgets_the_session(
    pty_pair: PtyPair, collector: Collector
) -> None:
    sim = MedibusSimulator(pty_pair.master_fd, course=STEADY, nop_interval_s=0.2)
    parser = MedibusParser("vent", poll_interval_s=0.1, reply_timeout_s=0.2, reinit_after_s=0.5)
    link = vent_link(pty_pair, parser, collector, silence_timeout_s=30.0)
    # The device restarts: no answers, session forgotten.
    with running(link, sim, device_first=True), falls_silent(sim, collector, Parameter.PIP, recover_s=3.0):
        assert wait_for(lambda: parser.reinits >= 1, 3.0)
    assert link.health().reconnects == 0  # the parser's ICC brought it back, not a reconnect


def test_link_reconnects_and_initialises_again_after_silence(pty_pair: PtyPair, collector: Collector) -> None:
    sim = MedibusSimulator(pty_pair.master_fd, course=STEADY, nop_interval_s=0.2)
    parser = MedibusParser("vent", poll_interval_s=0.1)
    link = vent_link(pty_pair, parser, collector, silence_timeout_s=0.6)
    with running(link, sim, device_first=True), falls_silent(sim, collector, Parameter.PIP, recover_s=5.0):
        assert wait_for(lambda: link.health().state == "lost", 3.0)
    health = link.health()
    assert health.reconnects >= 1 and "silent" in (health.last_error or "")
    assert parser.reinits == 0  # the reconnect's greeting did it
