"""The IntelliVue simulator: its course, its replies, and the parser talking to it over a real pty."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import serial
from vitals_testkit import Collector, parse_clean, pty_link, read_for, running, wait_for

from vitals.intellivue import ClientTiming, IntelliVueParser, Phase
from vitals.intellivue_framing import encode_frame
from vitals.link import SerialLink
from vitals.pty import PtyPair, open_pty_pair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.intellivue import (
    STATE_UNAVAILABLE,
    IntelliVueSimulator,
    NeonatalCourse,
    poll_reply,
)

T0 = datetime(2024, 5, 1, 10, 0, 0)
EXACT = NeonatalCourse(spo2_acquire_s=0, noise=0)
VENT = (Parameter.FIO2, Parameter.PEEP, Parameter.PIP)


def parse(
    sim: IntelliVueSimulator, t_s: float, *, parser: IntelliVueParser | None = None, labels: bool = True
) -> dict[Parameter, VitalSample]:
    parser = parser or IntelliVueParser("sim")
    message = poll_reply(1, sim.observations_at(t_s, with_labels=labels), rel_time=0)
    return {s.parameter: s for s in parse_clean(parser, encode_frame(message))}


def test_registered_as_the_protocols_simulator() -> None:
    sim = make_simulator("intellivue", -1)
    assert isinstance(sim, IntelliVueSimulator)


def test_course_is_a_stabilisation() -> None:
    sim = IntelliVueSimulator(-1, seed=3)
    assert sim.reading_at(5).spo2 is None and sim.reading_at(5).pleth_state == STATE_UNAVAILABLE
    early = [sim.reading_at(t).spo2 for t in range(20, 50)]
    late = [sim.reading_at(t).spo2 for t in range(600, 630)]
    early_hr = [sim.reading_at(t).hr for t in range(0, 30)]
    late_hr = [sim.reading_at(t).hr for t in range(600, 630)]
    assert 55 < statistics.mean(early) < 72  # type: ignore[arg-type]
    assert statistics.mean(late) > 90  # type: ignore[arg-type]
    assert 85 < statistics.mean(early_hr) < 115
    assert 140 < statistics.mean(late_hr) < 160
    assert len(set(late)) > 1, "values carry noise"
    assert max(late) <= 100  # type: ignore[type-var]
    fio2 = [sim.reading_at(t).fio2 for t in (0, 180, 900)]
    assert fio2[0] < fio2[1] and fio2[2] < fio2[1], "FiO2 titrated up, then weaned"


def test_nbp_is_measured_every_few_minutes() -> None:
    course = NeonatalCourse()
    assert course.nbp(59) is None
    first, same, second = course.nbp(60), course.nbp(239), course.nbp(240)
    assert first == same and second != first and first is not None and second is not None
    systolic, diastolic, mean = first
    assert diastolic < mean < systolic


def test_sensor_off_and_back_on() -> None:
    now = [0.0]
    sim = IntelliVueSimulator(-1, course=NeonatalCourse(spo2_acquire_s=5), clock=lambda: now[0])
    assert sim.reading_at(10).spo2 is not None
    sim.sensor_off()
    off = parse(sim, 11)
    for p in (Parameter.SPO2, Parameter.PR):
        assert off[p].value is None and not off[p].valid
        assert off[p].flags == {"no_value", "unavailable"}
    assert off[Parameter.HR].valid  # ECG does not care about the oximeter probe
    now[0] = 20.0
    sim.sensor_on()
    assert sim.reading_at(22).spo2 is None  # acquiring again
    assert sim.reading_at(26).spo2 is not None


def test_replies_parse_back_to_the_reading() -> None:
    sim = IntelliVueSimulator(-1, course=EXACT)
    reading = sim.reading_at(300)
    s = parse(sim, 300)
    assert s[Parameter.HR].value == round(reading.hr) and s[Parameter.HR].source == "ECG"
    assert s[Parameter.SPO2].value == round(reading.spo2)  # type: ignore[arg-type]
    assert s[Parameter.PR].source == "pleth"
    assert s[Parameter.RR].value == round(reading.rr)
    assert s[Parameter.FIO2].value == reading.fio2
    assert s[Parameter.PEEP].value == 5.0
    assert s[Parameter.PIP].value == pytest.approx(reading.pip, abs=0.05)
    assert reading.nbp is not None
    assert [s[p].value for p in (Parameter.NBP_SYS, Parameter.NBP_DIA, Parameter.NBP_MEAN)] == [
        round(v) for v in reading.nbp
    ]
    assert all(x.valid and x.flags == frozenset() for x in s.values())


def test_external_ventilator_values_are_named_by_label() -> None:
    sim = IntelliVueSimulator(-1, course=EXACT, external_ventilator=True)
    parser = IntelliVueParser("sim")
    first = parse(sim, 30, parser=parser)
    later = parse(sim, 31, parser=parser, labels=False)  # only values: the labels are remembered
    for s in (first, later):
        assert {p: s[p].source for p in VENT} == dict.fromkeys(VENT, "external")
        assert s[Parameter.PEEP].value == 5.0


def test_demo_mode_is_flagged() -> None:
    s = parse(IntelliVueSimulator(-1, course=EXACT, demo=True), 100)
    assert all(x.valid and "demo_data" in x.flags for x in s.values())


# -- over a real pty ---------------------------------------------------------------------------


@dataclass
class Bench:
    pair: PtyPair
    sim: IntelliVueSimulator
    parser: IntelliVueParser
    link: SerialLink
    collector: Collector

    def values(self, parameter: Parameter) -> list[float | None]:
        return self.collector.values(parameter)


@contextmanager
def bench(
    *, timing: ClientTiming | None = None, silence_timeout_s: float = 10.0, **options: Any
) -> Iterator[Bench]:
    options = {"reply_interval_s": 0.1, "course": EXACT, "start_time": T0, **options}
    with open_pty_pair() as pair:
        sim = IntelliVueSimulator(pair.master_fd, **options)
        parser = IntelliVueParser("bed 1", timing=timing)
        collector = Collector()
        link = pty_link("bed 1", pair, parser, collector, silence_timeout_s=silence_timeout_s)
        with running(link, sim, device_first=True):
            yield Bench(pair, sim, parser, link, collector)


def test_round_trip_through_the_link() -> None:
    with bench(time_scale=120.0) as b:
        # 120 script seconds per second: the first NBP is measured half a second in.
        assert wait_for(lambda: any(v is not None for v in b.values(Parameter.NBP_SYS)), 5.0)
        assert b.parser.phase is Phase.ASSOCIATED
    samples = b.collector.samples
    seen = {s.parameter for s in samples if s.valid}
    assert seen >= {Parameter.HR, Parameter.SPO2, Parameter.PR, Parameter.RR, *VENT, Parameter.NBP_SYS}
    assert {s.source for s in samples if s.parameter is Parameter.HR} == {"ECG"}
    assert {s.monitor for s in samples} == {"bed 1"}
    hr = [v for v in b.values(Parameter.HR) if v is not None]
    assert hr == sorted(hr), "heart rate rises through the course"
    stamps = [s.monitor_time for s in samples if s.parameter is Parameter.HR]
    assert all(t is not None and t >= T0 for t in stamps) and stamps == sorted(stamps)  # type: ignore[operator]
    assert (b.sim.aarqs, b.sim.associations, b.sim.extended_polls) == (1, 1, 1)
    health = b.link.health()
    assert health.stats.records_bad == 0 and health.stats.garbage_bytes == 0
    assert health.reconnects == 0


def test_sensor_off_arrives_as_no_value() -> None:
    with bench() as b:
        assert wait_for(lambda: len(b.values(Parameter.SPO2)) >= 2)
        b.sim.sensor_off()
        n = b.collector.count()
        assert wait_for(lambda: b.collector.count() > n + 20)
    spo2 = [s for s in b.collector.samples[n:] if s.parameter is Parameter.SPO2]
    assert spo2[-1].value is None and spo2[-1].flags == {"no_value", "unavailable"}
    assert [s for s in b.collector.samples[n:] if s.parameter is Parameter.HR][-1].valid


def test_a_silent_monitor_is_reconnected_and_associated_again() -> None:
    with bench(silence_timeout_s=0.6) as b:
        assert wait_for(lambda: b.collector.count() > 0)
        b.sim.stop()  # the monitor stops answering
        assert wait_for(lambda: b.link.health().state == "lost", 3.0)
        # Reset on reopening the port, AARQ sent, nobody answers.
        assert wait_for(lambda: b.parser.phase is Phase.ASSOCIATING)
        n = b.collector.count()
        b.sim.start()  # back, with the association forgotten
        assert wait_for(lambda: b.collector.count() > n + 10, 5.0)
        assert b.parser.phase is Phase.ASSOCIATED
        assert b.sim.associations == 2 and b.sim.aarqs >= 2
        health = b.link.health()
        assert health.state == "live" and health.reconnects == 1


def test_the_poll_is_reissued_before_its_period_runs_out() -> None:
    with bench(timing=ClientTiming(poll_period_s=0.5)) as b:
        time.sleep(1.6)
        recent = b.collector.count()
        assert wait_for(lambda: b.collector.count() > recent, 0.5), "data still flows after three periods"
    assert b.sim.extended_polls >= 3


def test_without_reissue_the_monitor_stops_after_the_period() -> None:
    # Never re-issued within the test, no keep-alive: the monitor's poll runs out after 0.5 s.
    quiet = ClientTiming(
        poll_period_s=0.5,
        reissue_fraction=100.0,
        keepalive_after_s=60.0,
        life_tick_s=60.0,
        silence_restart_s=60.0,
    )
    with bench(timing=quiet) as b:
        assert wait_for(lambda: b.collector.count() > 0)
        time.sleep(0.7)
        n = b.collector.count()
        time.sleep(0.6)
        assert b.collector.count() == n
    assert b.sim.extended_polls == 1


def test_refusals_are_retried_until_accepted() -> None:
    with bench(refusals=2, timing=ClientTiming(retry_delay_s=0.2)) as b:
        assert wait_for(lambda: b.collector.count() > 0, 5.0)
    assert (b.sim.aarqs, b.sim.associations) == (3, 1)


def test_linked_results_come_through() -> None:
    with bench(linked_results=True) as b:
        assert wait_for(lambda: len(b.values(Parameter.PIP)) >= 3)
    assert {s.parameter for s in b.collector.samples} >= {Parameter.HR, Parameter.SPO2, *VENT}
    assert b.link.health().stats.records_bad == 0


def test_a_mute_client_is_aborted_and_associates_again() -> None:
    mute = ClientTiming(
        keepalive_after_s=60.0,
        life_tick_s=60.0,
        silence_restart_s=60.0,
        poll_period_s=60.0,
        retry_delay_s=0.2,
    )
    with bench(timing=mute, host_timeout_s=0.5) as b:
        assert wait_for(lambda: b.sim.aborts_sent >= 1, 3.0)
        assert wait_for(lambda: b.sim.associations >= 2, 3.0)
        n = b.collector.count()
        assert wait_for(lambda: b.collector.count() > n)


def test_keep_alives_keep_a_strict_monitor_talking() -> None:
    # The monitor drops a client it has not heard from for 0.8 s; life ticks every 0.3 s prevent it.
    lively = ClientTiming(life_tick_s=0.3, poll_period_s=60.0)
    with bench(timing=lively, host_timeout_s=0.8) as b:
        time.sleep(1.6)
        assert b.sim.single_polls >= 3
    assert (b.sim.aborts_sent, b.sim.associations) == (0, 1)


def test_nothing_is_sent_before_an_association_and_a_port_object_works() -> None:
    # The simulator on a pyserial port (the slave side), a bare parser driving the master side.
    pair = open_pty_pair()
    port = serial.Serial(pair.slave_path, timeout=0.05)
    sim = IntelliVueSimulator(port, course=EXACT, reply_interval_s=0.1)
    sim.start()
    try:
        parser = IntelliVueParser("iv")
        ext_poll_without_association = bytes.fromhex(
            "C011010030E10000020001002800010007002200210000000000000000F13B001400010001000600000001"
            "0008F13E00040003A9805871C1"
        )
        os.write(pair.master_fd, b"\x00junk" + ext_poll_without_association)
        assert read_for(pair.master_fd, 0.4) == b"", "a monitor never associated says nothing"
        os.write(pair.master_fd, parser.greeting())
        samples: list[VitalSample] = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(samples) < 20:
            samples += parser.feed(read_for(pair.master_fd, 0.05), time.monotonic_ns())
            os.write(pair.master_fd, parser.poll(time.monotonic_ns()) or b"")
        assert len(samples) >= 20 and parser.phase is Phase.ASSOCIATED
    finally:
        sim.stop()
        port.close()
        pair.close()
    assert parser.stats.records_bad == 0 and parser.stats.garbage_bytes == 0
