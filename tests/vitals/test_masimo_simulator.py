"""The Radical-7 simulator: its lines parse back to its values, and its script is a stabilisation."""

from __future__ import annotations

import statistics
import time
from datetime import datetime

import pytest
import serial
from vitals_testkit import by_parameter, parse_clean, run_on_a_pipe

from vitals.masimo import MasimoParser
from vitals.sample import Parameter, VitalSample
from vitals.simulators.masimo import (
    EXC_NO_SENSOR,
    EXC_PULSE_SEARCH,
    EXC_SENSOR_OFF,
    MasimoSimulator,
    StabilisationScript,
    masimo_line,
)

T0 = datetime(2024, 5, 1, 10, 0, 0)


def parse(data: bytes) -> list[VitalSample]:
    return parse_clean(MasimoParser("sim"), data)


@pytest.mark.parametrize(("spo2", "bpm", "pi"), [(97.0, 145.0, 2.31), (60.0, 90.0, 0.55), (100.0, 0.0, 20.0)])
def test_line_round_trips(spo2: float, bpm: float, pi: float) -> None:
    line = masimo_line(T0, spo2, bpm, pi, spco=1.5, spmet=0.4, pvi=12, pidelta=-3)
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    s = by_parameter(parse(line))
    assert s[Parameter.SPO2].value == spo2
    assert s[Parameter.HR].value == bpm
    assert s[Parameter.PI].value == pytest.approx(pi)
    assert s[Parameter.SPCO].value == pytest.approx(1.5)
    assert s[Parameter.SPMET].value == pytest.approx(0.4)
    assert s[Parameter.PVI].value == 12
    assert all(x.valid for x in s.values())
    assert s[Parameter.SPO2].monitor_time == T0


def test_missing_values_are_dashes() -> None:
    line = masimo_line(T0, None, None, None, exc=EXC_NO_SENSOR)
    assert b"SPO2=---%" in line and b"BPM=---" in line and b"PI=--.--%" in line
    assert b"PIDELTA=+--" in line
    for sample in parse(line):
        assert sample.value is None and not sample.valid
    assert "no_sensor" in by_parameter(parse(line))[Parameter.SPO2].flags


def test_script_phases_and_trends() -> None:
    script = StabilisationScript(no_sensor_s=20, acquire_s=8)
    sim = MasimoSimulator(-1, script=script, seed=3)
    assert sim.reading_at(5).exc == EXC_NO_SENSOR and sim.reading_at(5).spo2 is None
    assert sim.reading_at(25).exc == EXC_PULSE_SEARCH and sim.reading_at(25).bpm is None
    early = [sim.reading_at(t).spo2 for t in range(30, 60)]
    late = [sim.reading_at(t).spo2 for t in range(600, 630)]
    early_hr = [sim.reading_at(t).bpm for t in range(30, 60)]
    late_hr = [sim.reading_at(t).bpm for t in range(600, 630)]
    assert all(v is not None for v in early + late + early_hr + late_hr)
    assert 55 < statistics.mean(early) < 72  # type: ignore[arg-type]
    assert statistics.mean(late) > 90  # type: ignore[arg-type]
    assert 85 < statistics.mean(early_hr) < 115  # type: ignore[arg-type]
    assert 140 < statistics.mean(late_hr) < 160  # type: ignore[arg-type]
    assert len(set(late)) > 1, "values carry noise"
    assert max(late) <= 100  # type: ignore[type-var]


def test_sensor_off_and_back_on() -> None:
    now = [0.0]
    script = StabilisationScript(no_sensor_s=0, acquire_s=5)
    sim = MasimoSimulator(-1, script=script, clock=lambda: now[0])
    assert sim.reading_at(10).spo2 is not None
    sim.sensor_off()
    off = by_parameter(parse(sim.line_at(11)))
    assert off[Parameter.SPO2].value is None and "sensor_off" in off[Parameter.SPO2].flags
    sim.sensor_off(unplugged=True)
    assert sim.reading_at(12).exc == EXC_NO_SENSOR
    now[0] = 20.0
    sim.sensor_on()
    assert sim.reading_at(22).exc == EXC_PULSE_SEARCH  # searching for the pulse again
    assert sim.reading_at(26).spo2 is not None
    assert sim.reading_at(26).exc != EXC_SENSOR_OFF


def test_thread_writes_lines_to_a_descriptor_on_cadence() -> None:
    script = StabilisationScript(no_sensor_s=0.3, acquire_s=0.3)
    run = run_on_a_pipe(
        lambda fd: MasimoSimulator(fd, interval_s=0.05, time_scale=1.0, script=script, start_time=T0), 1.0
    )
    assert run.stop_s < 0.5
    lines = run.data.split(b"\r\n")[:-1]
    assert abs(len(lines) - run.elapsed_s / 0.05) <= 3
    samples = parse(run.data)
    spo2 = [s for s in samples if s.parameter is Parameter.SPO2]
    assert spo2[0].value is None and "no_sensor" in spo2[0].flags
    assert spo2[-1].valid and spo2[-1].value is not None
    assert run.device.lines_written == len(lines) and run.device.write_errors == 0


def test_thread_writes_to_a_pyserial_port() -> None:
    port = serial.serial_for_url("loop://", timeout=0.5)
    sim = MasimoSimulator(port, interval_s=0.02, script=StabilisationScript(0, 0))
    with sim:
        time.sleep(0.2)
    data = port.read(port.in_waiting)
    port.close()
    assert len(parse(data)) >= 5 * 3


def test_write_errors_are_counted_not_raised() -> None:
    # Nobody reads: every write fails with a broken pipe.
    sim = run_on_a_pipe(lambda fd: MasimoSimulator(fd, interval_s=0.02), 0.15, read=False).device
    assert sim.write_errors >= 3 and sim.lines_written == 0
