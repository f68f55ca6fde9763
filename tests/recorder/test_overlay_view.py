"""What the overlay says about each parameter: never an old number as if it were current."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from capture.overlay import OverlayRenderer, OverlayState, ShownValue
from config.models import OverlayConfig
from recorder.overlay_view import DEFAULT_PARAMETERS, frame_status, shown_values
from sync.board import VitalsBoard
from vitals.sample import Parameter, VitalSample

S = 1_000_000_000
T_UTC = datetime(2024, 5, 1, 13, 3, 12, tzinfo=UTC)


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


# --- one unit per parameter for the whole recording ---------------------------------------------


def pressure(param: Parameter, value: float | None, unit: str, t_s: float, monitor: str) -> VitalSample:
    return VitalSample(param, value, unit, value is not None, int(t_s * S), monitor, "")


def test_airway_pressures_keep_one_unit_when_another_monitor_takes_over() -> None:
    """The ventilator (mbar) goes quiet and the patient monitor (cmH2O) takes over: the panel
    stays in cmH2O, the ventilator's 30 mbar shown as the 31 cmH2O it is."""
    board = VitalsBoard(priority=["ventilator", "monitor"])
    board.add([pressure(Parameter.PIP, 30.0, "mbar", 0.0, "ventilator")])
    board.add([pressure(Parameter.PIP, 24.0, "cmH2O", t, "monitor") for t in range(11)])
    board.add([pressure(Parameter.PEEP, 5.0, "mbar", 0.0, "ventilator")])
    from_ventilator = shown(board, 0.5, "PIP")
    assert (from_ventilator.text, from_ventilator.unit, from_ventilator.monitor) == (
        "31",
        "cmH2O",
        "ventilator",
    )
    assert (shown(board, 0.5, "PEEP").text, shown(board, 0.5, "PEEP").unit) == ("5", "cmH2O")
    from_monitor = shown(board, 10.0, "PIP")
    assert (from_monitor.text, from_monitor.unit, from_monitor.monitor) == ("24", "cmH2O", "monitor")


def test_one_monitor_that_changes_its_unit_draws_the_same_picture() -> None:
    board = VitalsBoard()
    board.add([pressure(Parameter.PIP, 30.0, "mbar", 0.0, "ventilator")])
    board.add([pressure(Parameter.PIP, 30.6, "cmH2O", 1.0, "ventilator")])
    r = OverlayRenderer(1280, 720)

    def frame(t_s: float) -> np.ndarray:
        values = shown_values(board.as_of(int(t_s * S), 3.0), parameters=(Parameter.PIP,))
        out = np.full((720, 1280, 3), 120, np.uint8)
        r.draw(out, OverlayState("Table 1", "closeup", T_UTC, False, None, None, values))
        return out

    assert np.array_equal(frame(0.5), frame(1.5))


def test_airway_pressures_in_mbar_when_so_configured() -> None:
    board = VitalsBoard()
    board.add(
        [
            pressure(Parameter.PEEP, 6.0, "cmH2O", 0.0, "monitor"),
            pressure(Parameter.PIP, 25, "mbar", 0.0, "vent"),
        ]
    )
    values = shown_values(board.as_of(S // 2, 3.0), pressure_unit="mbar")
    assert [(v.label, v.text, v.unit) for v in values if v.unit == "mbar"] == [
        ("PIP", "25", "mbar"),
        ("PEEP", "6", "mbar"),
    ]


def test_a_pressure_in_a_unit_without_a_known_factor_keeps_its_own() -> None:
    board = VitalsBoard()
    board.add(
        [pressure(Parameter.PIP, 0.4, "psi", 0.0, "vent"), pressure(Parameter.ETCO2, 5.3, "kPa", 0.0, "mon")]
    )
    assert (shown(board, 0.5, "PIP").text, shown(board, 0.5, "PIP").unit) == ("0", "psi")
    assert (shown(board, 0.5, "etCO2").text, shown(board, 0.5, "etCO2").unit) == ("40", "mmHg")


def test_the_samples_keep_the_monitors_value_and_unit() -> None:
    """What the vitals log is written from (the board's history) is never converted."""
    board = VitalsBoard()
    sent = pressure(Parameter.PIP, 30.0, "mbar", 0.0, "ventilator")
    board.add([sent])
    assert shown(board, 0.5, "PIP").unit == "cmH2O"
    assert board.history_since(0) == [sent]


# --- the configured panel ---------------------------------------------------------------------


def every_parameter(board: VitalsBoard, monitor: str, t_s: float) -> None:
    board.add([VitalSample(p, 10.0, "", True, int(t_s * S), monitor, "") for p in Parameter])


def test_the_panel_shows_the_configured_parameters_in_their_order() -> None:
    board = VitalsBoard()
    every_parameter(board, "mon", 1.0)
    order = (Parameter.RR, Parameter.MV, Parameter.SPO2, Parameter.PEEP)
    labels = [v.label for v in shown_values(board.as_of(int(1.5 * S), 3.0), parameters=order)]
    assert labels == ["RR", "MV", "SpO2", "PEEP"]


def test_an_unlisted_parameter_is_not_shown_even_before_a_monitor_speaks() -> None:
    assert [v.label for v in shown_values({}, parameters=(Parameter.SPO2, Parameter.PIP))] == ["SpO2"]
    board = VitalsBoard()
    board.add([sample(Parameter.PR, 142, 1.0, source="pleth")])
    # Without HR on the panel the pulse rate has no HR slot to take: it is shown as PR, if listed.
    assert shown_values(board.as_of(int(1.5 * S), 3.0), parameters=(Parameter.SPO2,))[0].label == "SpO2"
    values = shown_values(board.as_of(int(1.5 * S), 3.0), parameters=(Parameter.PR,))
    assert [(v.label, v.text) for v in values] == [("PR", "142")]


def test_the_default_panel_lists_every_parameter_in_a_resuscitations_order() -> None:
    assert sorted(DEFAULT_PARAMETERS) == sorted(Parameter)
    assert DEFAULT_PARAMETERS[:8] == (
        Parameter.HR, Parameter.SPO2, Parameter.FIO2, Parameter.PIP, Parameter.PEEP,
        Parameter.RR, Parameter.MV, Parameter.VTE,
    )  # fmt: skip
    board = VitalsBoard()
    every_parameter(board, "mon", 1.0)
    assert len(shown_values(board.as_of(int(1.5 * S), 3.0))) == len(Parameter)


OXIMETER = {Parameter.HR: (142, "/min"), Parameter.SPO2: (91, "%"), Parameter.PI: (1.2, "%"),
            Parameter.PVI: (14, "%")}  # fmt: skip
VENTILATOR = {Parameter.FIO2: (30, "%"), Parameter.PIP: (25, "mbar"), Parameter.PEEP: (5, "mbar"),
              Parameter.MAP_AW: (11, "mbar"), Parameter.RR: (60, "/min"), Parameter.MV: (0.32, "L/min"),
              Parameter.VTE: (5.4, "mL"), Parameter.VTI: (5.9, "mL"), Parameter.LEAK: (12, "%")}  # fmt: skip
MONITOR = {Parameter.HR: (145, "/min"), Parameter.PR: (143, "/min"), Parameter.RR: (58, "/min"),
           Parameter.ETCO2: (38, "mmHg"), Parameter.TEMP: (36.8, "°C"),
           Parameter.NBP_MEAN: (40, "mmHg")}  # fmt: skip


def test_three_monitors_at_720p_keep_rr_and_mv_on_the_panel() -> None:
    """The case reviewers met: an oximeter, a ventilator and a patient monitor, everything they
    send, on the default panel with local time and UTC and the time since birth. RR and MV are
    drawn; what is left out is what the maximum leaves out (nothing for want of room), and the
    note counts it."""
    board = VitalsBoard(priority=["oximeter", "ventilator", "monitor"])
    for monitor, sent in (("oximeter", OXIMETER), ("ventilator", VENTILATOR), ("monitor", MONITOR)):
        board.add([VitalSample(p, v, unit, True, S, monitor, "") for p, (v, unit) in sent.items()])
    config = OverlayConfig()
    values = shown_values(
        board.as_of(S + S // 2, 3.0), parameters=config.shown_parameters(), pressure_unit=config.pressure_unit
    )
    drawn_labels = [v.label for v in values][: config.max_parameters]
    assert drawn_labels == ["HR", "SpO2", "FiO2", "PIP", "PEEP", "RR", "MV", "Vte"]
    r = OverlayRenderer(1280, 720, local_zone=ZoneInfo("Europe/Amsterdam"), max_values=config.max_parameters)
    frame = np.full((720, 1280, 3), 120, np.uint8)
    r.draw(frame, OverlayState("Table 1", "closeup", T_UTC, True, 12.0, 40.0, values))
    assert r.values_left_out == len(values) - config.max_parameters > 0


# --- REC, PRE-ROLL or STANDBY -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t_s", "since_s", "keeps", "expected", "until_s"),
    [
        (9.9, None, True, (False, None, True), None),  # idle: goes into the pre-roll ring
        (9.9, None, False, (False, None, False), None),  # do not record: never kept
        (9.9, 10.0, True, (False, None, True), None),  # captured before the start, drawn after it
        (10.0, 10.0, True, (True, 0.0, False), None),
        (75.5, 10.0, True, (True, 65.5, False), None),
        # A stop at 80 s being carried out: what came before it is still the recording's.
        (79.9, 10.0, True, (True, 69.9, False), 80.0),
        # Captured after the stop, while the cameras drain: the pre-roll of a next recording.
        (80.0, 10.0, True, (False, None, True), 80.0),
        (80.5, 10.0, False, (False, None, False), 80.0),
    ],
)
def test_frame_status_by_capture_time(
    t_s: float,
    since_s: float | None,
    keeps: bool,
    expected: tuple[bool, float | None, bool],
    until_s: float | None,
) -> None:
    since = None if since_s is None else int(since_s * S)
    until = None if until_s is None else int(until_s * S)
    status = frame_status(int(t_s * S), since, keeps_preroll=keeps, recording_until_ns=until)
    assert (status.recording, status.elapsed_s, status.kept_as_preroll) == pytest.approx(expected)
