"""What the overlay says about each parameter: never an old number as if it were current."""

from __future__ import annotations

from capture.overlay import ShownValue
from recorder.overlay_view import shown_values
from sync.board import VitalsBoard
from vitals.sample import Parameter, VitalSample

S = 1_000_000_000


def sample(
    param: Parameter, value: float | None, t_s: float, *, monitor: str = "ox", source: str = ""
) -> VitalSample:
    unit = "%" if param is Parameter.SPO2 else "/min"
    return VitalSample(param, value, unit, value is not None, int(t_s * S), monitor, source)


def shown(board: VitalsBoard, t_s: float, label: str, stale_after_s: float = 3.0) -> ShownValue:
    values = shown_values(board.as_of(int(t_s * S), stale_after_s))
    return next(v for v in values if v.label == label)


def test_a_withdrawn_value_is_never_shown_again_even_when_stale() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.SPO2, 91, 0.0), sample(Parameter.SPO2, None, 600.0)])
    fresh_no_value = shown(board, 601.0, "SpO2")
    assert fresh_no_value.text is None and fresh_no_value.stale_s is None
    stale_no_value = shown(board, 605.0, "SpO2")
    assert stale_no_value.text is None  # dashes, not the "91" of ten minutes ago
    assert stale_no_value.stale_s == 5.0  # the age of the "no value" it shows


def test_a_stale_number_carries_the_age_of_that_number() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.SPO2, 88, 0.0), sample(Parameter.SPO2, 91, 10.0)])
    value = shown(board, 15.0, "SpO2")
    assert (value.text, value.stale_s) == ("91", 5.0)


def test_pulse_rate_takes_the_hr_slot_when_no_monitor_sends_hr() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.PR, 142, 1.0, monitor="intellivue", source="pleth")])
    values = shown_values(board.as_of(int(1.5 * S), 3.0))
    hr = next(v for v in values if v.label == "HR")
    assert (hr.text, hr.source, hr.monitor, hr.stale_s) == ("142", "pleth", "intellivue", None)
    assert not any(v.label == "PR" for v in values)  # shown once, in the HR slot


def test_pulse_rate_without_a_named_source_is_labelled_pleth() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.PR, 120, 1.0, monitor="medibus")])
    assert shown(board, 1.5, "HR").source == "pleth"


def test_a_fresh_hr_keeps_its_slot_and_pulse_rate_keeps_its_row() -> None:
    board = VitalsBoard()
    board.add(
        [
            sample(Parameter.HR, 150, 1.0, monitor="monitor", source="ECG"),
            sample(Parameter.PR, 147, 1.0, monitor="monitor", source="pleth"),
        ]
    )
    values = shown_values(board.as_of(int(1.5 * S), 3.0))
    assert [(v.label, v.text, v.source) for v in values if v.label in ("HR", "PR")] == [
        ("HR", "150", "ECG"),
        ("PR", "147", "pleth"),
    ]


def test_pulse_rate_stands_in_when_the_ecg_hr_goes_quiet_or_says_no_value() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.HR, 150, 0.0, monitor="ecg", source="ECG")])
    board.add([sample(Parameter.PR, 148, t, monitor="ox", source="pleth") for t in range(11)])
    assert (shown(board, 10.0, "HR").text, shown(board, 10.0, "HR").source) == ("148", "pleth")
    board.add([sample(Parameter.HR, None, 10.5, monitor="ecg", source="ECG")])
    assert shown(board, 10.6, "HR").text == "148"


def test_no_hr_and_no_pulse_rate_shows_dashes() -> None:
    board = VitalsBoard()
    board.add([sample(Parameter.PR, None, 1.0, monitor="ox", source="pleth")])
    assert shown(board, 1.5, "HR").text is None
