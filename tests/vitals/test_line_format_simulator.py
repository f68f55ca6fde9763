"""The line_format simulator: lines its demo format reads, over a pty, through the link."""

from __future__ import annotations

from vitals_testkit import STEADY, Collector, assert_only_values, parse_clean, pty_link, running, wait_for

from vitals.line_format import LineFormatParser, line_format_from_mapping
from vitals.pty import PtyPair
from vitals.sample import Parameter
from vitals.simulators import make_simulator
from vitals.simulators.line_format import DEMO_FORMAT, DEMO_TABLE, LineFormatSimulator, demo_line


def test_the_demo_table_is_the_demo_format() -> None:
    assert line_format_from_mapping(DEMO_TABLE) == DEMO_FORMAT


def test_demo_lines_read_back_with_dashes_as_no_value() -> None:
    samples = parse_clean(
        LineFormatParser("blender", DEMO_FORMAT), demo_line(95, 140, 30) + demo_line(None, None, 30)
    )
    assert [(s.parameter, s.value, s.valid, s.source) for s in samples] == [
        (Parameter.SPO2, 95.0, True, "pleth"),
        (Parameter.HR, 140.0, True, "pleth"),
        (Parameter.FIO2, 30.0, True, "blender"),
        (Parameter.SPO2, None, False, "pleth"),
        (Parameter.HR, None, False, "pleth"),
        (Parameter.FIO2, 30.0, True, "blender"),
    ]


def test_the_registry_knows_it() -> None:
    sim = make_simulator("line_format", 1)
    assert isinstance(sim, LineFormatSimulator)


def test_round_trip_through_a_pty_with_the_sensor_off_and_on(pty_pair: PtyPair, collector: Collector) -> None:
    sim = LineFormatSimulator(pty_pair.master_fd, interval_s=0.05, script=STEADY, fio2=40)
    link = pty_link("blender", pty_pair, LineFormatParser("blender", DEMO_FORMAT), collector)
    with running(link, sim):
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 3)
        sim.sensor_off()
        assert wait_for(lambda: len(collector.values(Parameter.SPO2, valid=False)) >= 2)
        sim.sensor_on()
        before = len(collector.values(Parameter.SPO2))
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) > before)
    assert_only_values(collector, {Parameter.SPO2: 95.0, Parameter.HR: 140.0, Parameter.FIO2: 40.0})
    assert set(collector.values(Parameter.SPO2, valid=False)) == {None}
    assert link.health().stats.records_bad <= 1  # at most the line the port opened into
