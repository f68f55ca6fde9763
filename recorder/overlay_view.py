"""What the overlay shows at a frame's time: board values turned into labelled, formatted text.

The overlay draws text; this module decides the text: which parameters in which order, how
many decimals, and that a missing value is shown as missing (never as 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from capture.overlay import ShownValue
from sync.board import BoardValue
from vitals.sample import Parameter


@dataclass(frozen=True, slots=True)
class _Display:
    label: str
    unit: str
    decimals: int


# HR and SpO2 first (the overlay draws the first two largest), then the ventilation parameters
# Leiden shows, then anything else a monitor happens to send.
_DISPLAY: dict[Parameter, _Display] = {
    Parameter.HR: _Display("HR", "/min", 0),
    Parameter.SPO2: _Display("SpO2", "%", 0),
    Parameter.FIO2: _Display("FiO2", "%", 0),
    Parameter.PIP: _Display("PIP", "cmH2O", 0),
    Parameter.PEEP: _Display("PEEP", "cmH2O", 0),
    Parameter.VTE: _Display("Vte", "mL", 1),
    Parameter.LEAK: _Display("Leak", "%", 0),
    Parameter.RR: _Display("RR", "/min", 0),
    Parameter.PR: _Display("PR", "/min", 0),
    Parameter.PI: _Display("PI", "%", 2),
    Parameter.ETCO2: _Display("etCO2", "mmHg", 0),
    Parameter.TEMP: _Display("Temp", "°C", 1),
}
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


def _shown(known: BoardValue, display: _Display, label: str, show_source: bool) -> ShownValue:
    latest = known.latest
    # Only the newest sample may be shown. When it says "no value" (sensor off, value withdrawn)
    # the panel shows dashes, fresh or stale: an older number would claim a reading the monitor
    # has since taken back. So a number shown is always ``latest``, and its age is that sample's.
    sample = latest if latest.valid else None
    text = format_value(sample.value if sample else None, display.decimals)
    # The monitor went quiet: greyed, with the age of what it last said.
    stale_s = known.age_s if known.stale else None
    return ShownValue(
        label=label,
        text=text,
        unit=latest.unit or display.unit,
        source=latest.source if show_source else "",
        monitor=latest.monitor,
        stale_s=stale_s,
        alarm=latest.alarm and sample is not None and stale_s is None,
    )


def shown_values(board: dict[Parameter, BoardValue]) -> tuple[ShownValue, ...]:
    out: list[ShownValue] = []
    # A patient monitor without ECG (or an oximeter family that names it so) sends the pleth
    # pulse rate as PR and no HR: the team still reads it as the heart rate, so it takes the HR
    # slot, labelled with where it came from, whenever no fresh valid HR exists.
    pulse = board.get(Parameter.PR)
    hr_from_pulse = not _fresh_and_valid(board.get(Parameter.HR)) and _fresh_and_valid(pulse)
    for parameter, display in _DISPLAY.items():
        if hr_from_pulse and parameter in (Parameter.HR, Parameter.PR):
            if parameter is Parameter.HR:
                assert pulse is not None
                shown = _shown(pulse, _DISPLAY[Parameter.PR], display.label, True)
                out.append(replace(shown, source=shown.source or "pleth"))
            continue  # PR is already on the panel, in the HR slot
        known = board.get(parameter)
        if known is None:
            if parameter in _ALWAYS:
                out.append(ShownValue(display.label, None, display.unit))
            continue
        out.append(_shown(known, display, display.label, parameter in _SHOW_SOURCE))
    for parameter, known in board.items():
        if parameter not in _DISPLAY and known.latest.valid and not known.stale:
            s = known.latest
            out.append(
                ShownValue(
                    str(parameter), format_value(s.value, 1), s.unit, s.source, s.monitor
                )
            )
    return tuple(out)
