"""The vitals board answers "what was known when this frame was captured"."""

from __future__ import annotations

from sync.board import VitalsBoard
from vitals.sample import Parameter, VitalSample

S = 1_000_000_000


def sample(param: Parameter, value: float | None, t_s: float, valid: bool = True) -> VitalSample:
    return VitalSample(param, value, "%", valid and value is not None, int(t_s * S), "ox")


def test_as_of_never_shows_a_value_from_the_future() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.SPO2, 90, 1.0), sample(Parameter.SPO2, 95, 2.0)])
    assert board.as_of(int(1.5 * S), 3.0)[Parameter.SPO2].latest.value == 90
    assert board.as_of(int(2.0 * S), 3.0)[Parameter.SPO2].latest.value == 95
    assert Parameter.SPO2 not in board.as_of(int(0.5 * S), 3.0)


def test_staleness_uses_the_monitor_limit() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.HR, 120, 1.0)])
    fresh = board.as_of(int(3.5 * S), {"ox": 3.0})[Parameter.HR]
    stale = board.as_of(int(4.5 * S), {"ox": 3.0})[Parameter.HR]
    assert not fresh.stale and stale.stale
    assert stale.age_s == 3.5


def test_no_value_keeps_the_last_valid_apart() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.SPO2, 91, 1.0), sample(Parameter.SPO2, None, 2.0)])
    value = board.as_of(int(2.1 * S), 3.0)[Parameter.SPO2]
    assert value.latest.value is None and not value.latest.valid
    assert value.last_valid is not None and value.last_valid.value == 91


def test_history_is_bounded_in_time_and_keeps_order() -> None:
    board = VitalsBoard(history_s=10)
    board.add(sample(Parameter.HR, 100 + i, float(i)) for i in range(30))
    history = board.history_since(0)
    assert [s.value for s in history] == [100 + i for i in range(19, 30)]
    assert [s.value for s in board.history_since(25 * S)] == [125, 126, 127, 128, 129]


def from_monitor(monitor: str, value: float | None, t_s: float) -> VitalSample:
    return VitalSample(Parameter.HR, value, "/min", value is not None, int(t_s * S), monitor)


def test_priority_decides_between_monitors_and_falls_back_when_one_goes_quiet() -> None:
    board = VitalsBoard(priority=["patient-monitor", "oximeter"])
    board.add([from_monitor("oximeter", 150, 1.0), from_monitor("patient-monitor", 148, 1.5)])
    chosen = board.as_of(int(2 * S), 3.0)[Parameter.HR]
    assert (chosen.latest.monitor, chosen.latest.value) == ("patient-monitor", 148)
    board.add([from_monitor("oximeter", 151, 4.0)])
    fallback = board.as_of(int(5 * S), 3.0)[Parameter.HR]  # the patient monitor went quiet
    assert (fallback.latest.monitor, fallback.latest.value, fallback.stale) == ("oximeter", 151, False)


def test_a_valid_value_beats_a_no_value_from_the_preferred_monitor() -> None:
    board = VitalsBoard(priority=["patient-monitor", "oximeter"])
    board.add([from_monitor("patient-monitor", None, 1.0), from_monitor("oximeter", 140, 1.0)])
    chosen = board.as_of(int(1.5 * S), 3.0)[Parameter.HR]
    assert chosen.latest.monitor == "oximeter"


def test_a_forgotten_patient_is_neither_shown_nor_handed_to_a_recording() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.HR, 154, 10.0), sample(Parameter.SPO2, 85, 10.0)])
    board.forget_before(20 * S)  # that stabilisation ended at 20 s
    assert board.as_of(30 * S, 3.0) == {}
    assert board.history_since(0) == []
    board.add([sample(Parameter.HR, 120, 40.0)])  # the next baby
    shown = board.as_of(41 * S, 3.0)
    assert set(shown) == {Parameter.HR} and shown[Parameter.HR].latest.value == 120
    assert [s.value for s in board.history_since(0)] == [120]


def test_a_value_older_than_the_limit_is_dashes_not_a_greyed_number() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.HR, 154, 10.0)])
    greyed = board.as_of(40 * S, 3.0, max_age_s=60)[Parameter.HR]
    assert greyed.stale and greyed.latest.value == 154
    assert Parameter.HR not in board.as_of(71 * S, 3.0, max_age_s=60)
