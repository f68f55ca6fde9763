"""What the overlay shows at a frame's time: board values turned into labelled, formatted text.

The overlay draws text; this module decides the text: which parameters in which order, how
many decimals, and that a missing value is shown as missing (never as 0).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def shown_values(board: dict[Parameter, BoardValue]) -> tuple[ShownValue, ...]:
    out: list[ShownValue] = []
    for parameter, display in _DISPLAY.items():
        known = board.get(parameter)
        if known is None:
            if parameter in _ALWAYS:
                out.append(ShownValue(display.label, None, display.unit))
            continue
        if known.stale:
            # The monitor went quiet: show the last valid value greyed, with its age.
            sample = known.last_valid
            text = format_value(sample.value if sample else None, display.decimals)
            stale_s: float | None = known.age_s
        else:
            # Fresh: a current "no value" (sensor off) shows dashes, never an older number.
            sample = known.latest if known.latest.valid else None
            text = format_value(sample.value if sample else None, display.decimals)
            stale_s = None
        shown = sample or known.latest
        out.append(
            ShownValue(
                label=display.label,
                text=text,
                unit=shown.unit or display.unit,
                source=shown.source if parameter in _SHOW_SOURCE else "",
                monitor=shown.monitor,
                stale_s=stale_s,
                alarm=shown.alarm and stale_s is None,
            )
        )
    for parameter, known in board.items():
        if parameter not in _DISPLAY and known.latest.valid and not known.stale:
            s = known.latest
            out.append(
                ShownValue(
                    str(parameter), format_value(s.value, 1), s.unit, s.source, s.monitor
                )
            )
    return tuple(out)
