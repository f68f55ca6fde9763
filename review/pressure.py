"""Airway pressures on one scale: monitors and ventilators report them in cmH2O or in mbar (hPa),
and a reviewer comparing PIP across devices must not read 20 mbar against 20 cmH2O as equal.

1 mbar = 100 Pa; 1 cmH2O = 98.0665 Pa (conventional, g = 9.80665 m/s²), so 1 mbar = 1.01972 cmH2O.
"""

from __future__ import annotations

CMH2O = "cmH2O"
CMH2O_PER_MBAR = 100.0 / 98.0665
AIRWAY_PRESSURES = frozenset({"PIP", "PEEP", "MAP_AW"})
_PER_UNIT = {"cmh2o": 1.0, "mbar": CMH2O_PER_MBAR, "hpa": CMH2O_PER_MBAR}


def in_cmh2o(value: float, unit: str) -> float | None:
    """``value`` in cmH2O, or None for a unit that is not a pressure this knows."""
    factor = _PER_UNIT.get(unit.replace(" ", "").replace("₂", "2").lower())
    return None if factor is None else value * factor
