"""What the overlay shows at a frame's time: board values turned into labelled, formatted text.

The overlay draws text; this module decides the text: which parameters in which order (the
configured panel), how many decimals, in which unit, and that a missing value is shown as
missing (never as 0).

Units: one unit per parameter for the whole recording, whichever monitor a value comes from.
A ventilator sends airway pressures in mbar, a patient monitor in cmH2O; as the board falls back
from one to the other the number would otherwise change unit under the reviewer's eyes. Values
are converted for the picture only: the samples, and so the vitals log, keep the monitor's own
value and unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from capture.overlay import ShownValue
from config.models import OVERLAY_PARAMETERS
from sync.board import BoardValue
from vitals.sample import Parameter

PressureUnit = Literal["cmH2O", "mbar"]
DEFAULT_PARAMETERS = tuple(Parameter(name) for name in OVERLAY_PARAMETERS)


@dataclass(frozen=True, slots=True)
class _Display:
    label: str
    unit: str
    decimals: int


# How each parameter is labelled and formatted; the order on the panel is the configured one.
# The unit is the one shown when the monitor names none.
_DISPLAY: dict[Parameter, _Display] = {
    Parameter.HR: _Display("HR", "/min", 0),
    Parameter.SPO2: _Display("SpO2", "%", 0),
    Parameter.FIO2: _Display("FiO2", "%", 0),
    Parameter.PIP: _Display("PIP", "cmH2O", 0),
    Parameter.PEEP: _Display("PEEP", "cmH2O", 0),
    Parameter.MAP_AW: _Display("MAP", "cmH2O", 0),
    Parameter.VTE: _Display("Vte", "mL", 1),
    Parameter.VTI: _Display("Vti", "mL", 1),
    Parameter.MV: _Display("MV", "L/min", 2),
    Parameter.LEAK: _Display("Leak", "%", 0),
    Parameter.RR: _Display("RR", "/min", 0),
    Parameter.PR: _Display("PR", "/min", 0),
    Parameter.PI: _Display("PI", "%", 2),
    Parameter.ETCO2: _Display("etCO2", "mmHg", 0),
    Parameter.FICO2: _Display("FiCO2", "mmHg", 0),
    Parameter.ETO2: _Display("etO2", "%", 0),
    Parameter.TEMP: _Display("Temp", "°C", 1),
    Parameter.NBP_SYS: _Display("NBPs", "mmHg", 0),
    Parameter.NBP_DIA: _Display("NBPd", "mmHg", 0),
    Parameter.NBP_MEAN: _Display("NBPm", "mmHg", 0),
    Parameter.IBP_SYS: _Display("IBPs", "mmHg", 0),
    Parameter.IBP_DIA: _Display("IBPd", "mmHg", 0),
    Parameter.IBP_MEAN: _Display("IBPm", "mmHg", 0),
    Parameter.SPCO: _Display("SpCO", "%", 1),
    Parameter.SPMET: _Display("SpMet", "%", 1),
    Parameter.SPHB: _Display("SpHb", "g/dL", 1),
    Parameter.PVI: _Display("PVI", "%", 0),
}
_AIRWAY = frozenset({Parameter.PIP, Parameter.PEEP, Parameter.MAP_AW})
# Size of each unit in mbar (hPa): 1 cmH2O = 98.0665 Pa exactly, so 1 mbar = 1.01972 cmH2O.
_IN_MBAR: dict[str, float] = {"mbar": 1.0, "hpa": 1.0, "cmh2o": 0.980665, "kpa": 10.0}
# Gas and blood pressures are shown in mmHg; a monitor set to kPa is converted (1 kPa = 7.50062
# mmHg). A CO2 sent as % of the ambient pressure is not: that needs the pressure, so it is shown
# in its own unit rather than as a guess.
_MMHG = frozenset(
    {
        Parameter.ETCO2,
        Parameter.FICO2,
        Parameter.NBP_SYS,
        Parameter.NBP_DIA,
        Parameter.NBP_MEAN,
        Parameter.IBP_SYS,
        Parameter.IBP_DIA,
        Parameter.IBP_MEAN,
    }
)
_IN_MMHG: dict[str, float] = {"mmhg": 1.0, "kpa": 7.500617}
_ALWAYS = (Parameter.HR, Parameter.SPO2)  # shown (as dashes) even before any monitor speaks
# Where a value came from matters for these (HR from ECG or from the pleth); for the rest the
# source is implied and would only crowd the panel.
_SHOW_SOURCE = (Parameter.HR, Parameter.SPO2, Parameter.PR)


def format_value(value: float | None, decimals: int) -> str | None:
    if value is None:
        return None
    return f"{value:.{decimals}f}"


def _fresh_and_valid(known: BoardValue | None) -> bool:
    return known is not None and not known.stale and known.latest.valid


def _in_unit(
    parameter: Parameter, value: float | None, unit: str, pressure_unit: PressureUnit
) -> tuple[float | None, str]:
    """``value`` in this parameter's display unit, or as sent where its unit is not one we can
    convert from (never a number under a unit it was not measured in)."""
    target: str
    if parameter in _AIRWAY:
        table, target = _IN_MBAR, pressure_unit
    elif parameter in _MMHG:
        table, target = _IN_MMHG, "mmHg"
    else:
        return value, unit
    size = table.get(unit.lower())
    if size is None:
        return value, unit
    return (None if value is None else value * size / table[target.lower()]), target


def _shown(
    known: BoardValue, display: _Display, label: str, show_source: bool, pressure_unit: PressureUnit
) -> ShownValue:
    latest = known.latest
    # Only the newest sample may be shown. When it says "no value" (sensor off, value withdrawn)
    # the panel shows dashes, fresh or stale: an older number would claim a reading the monitor
    # has since taken back. So a number shown is always ``latest``, and its age is that sample's.
    sample = latest if latest.valid else None
    value, unit = _in_unit(
        latest.parameter, sample.value if sample else None, latest.unit or display.unit, pressure_unit
    )
    text = format_value(value, display.decimals)
    # The monitor went quiet: greyed, with the age of what it last said.
    stale_s = known.age_s if known.stale else None
    return ShownValue(
        label=label,
        text=text,
        unit=unit,
        source=latest.source if show_source else "",
        monitor=latest.monitor,
        stale_s=stale_s,
        alarm=latest.alarm and sample is not None and stale_s is None,
    )


def shown_values(
    board: dict[Parameter, BoardValue],
    *,
    parameters: Sequence[Parameter] = DEFAULT_PARAMETERS,
    pressure_unit: PressureUnit = "cmH2O",
) -> tuple[ShownValue, ...]:
    """The configured ``parameters`` the board knows, in that order (HR and SpO2 as dashes even
    before any monitor speaks); a parameter not listed is never shown."""
    out: list[ShownValue] = []
    # A patient monitor without ECG (or an oximeter family that names it so) sends the pleth
    # pulse rate as PR and no HR: the team still reads it as the heart rate, so it takes the HR
    # slot, labelled with where it came from, whenever no fresh valid HR exists.
    pulse = board.get(Parameter.PR)
    hr_from_pulse = (
        Parameter.HR in parameters
        and not _fresh_and_valid(board.get(Parameter.HR))
        and _fresh_and_valid(pulse)
    )
    for parameter in parameters:
        display = _DISPLAY[parameter]
        if hr_from_pulse and parameter in (Parameter.HR, Parameter.PR):
            if parameter is Parameter.HR:
                assert pulse is not None
                shown = _shown(pulse, _DISPLAY[Parameter.PR], display.label, True, pressure_unit)
                out.append(replace(shown, source=shown.source or "pleth"))
            continue  # PR is already on the panel, in the HR slot
        known = board.get(parameter)
        if known is None:
            if parameter in _ALWAYS:
                out.append(ShownValue(display.label, None, display.unit))
            continue
        out.append(_shown(known, display, display.label, parameter in _SHOW_SOURCE, pressure_unit))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class FrameStatus:
    """What the status line says of one frame: REC and its elapsed time, PRE-ROLL or STANDBY."""

    recording: bool
    elapsed_s: float | None  # from the start; None unless recording
    kept_as_preroll: bool  # idle, and the pre-roll ring keeps it (see OverlayState)


def frame_status(
    t_ns: int,
    recording_since_ns: int | None,
    *,
    keeps_preroll: bool,
    recording_until_ns: int | None = None,
) -> FrameStatus:
    """The status of a frame captured at ``t_ns``, judged by its capture time, not by when it is
    drawn: a frame captured just before the start but drawn after it is pre-roll in the
    recording, and says PRE-ROLL rather than REC 00:00. ``keeps_preroll`` is False under "do
    not record" or without a pre-roll: such an idle frame is never kept, and says STANDBY.
    ``recording_until_ns`` is a stop being carried out: a frame captured after it is not in
    the recording (the cameras write only what came before the stop) and waits in the pre-roll
    ring like any idle frame."""
    stopped = recording_until_ns is not None and t_ns >= recording_until_ns
    if recording_since_ns is not None and t_ns >= recording_since_ns and not stopped:
        return FrameStatus(True, (t_ns - recording_since_ns) / 1e9, False)
    return FrameStatus(False, None, keeps_preroll)
