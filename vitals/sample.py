"""The one sample model every monitor family's parser produces."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import NamedTuple


class Parameter(enum.StrEnum):
    """Fixed vocabulary of physiological parameters, independent of the monitor that sent them."""

    HR = "HR"  # heart rate; ``source`` says ECG or pleth
    PR = "PR"  # pulse rate from the pleth
    SPO2 = "SpO2"
    PI = "PI"  # perfusion index
    SPCO = "SpCO"
    SPMET = "SpMet"
    SPHB = "SpHb"
    PVI = "PVI"
    FIO2 = "FiO2"
    RR = "RR"
    PIP = "PIP"
    PEEP = "PEEP"
    MAP_AW = "MAP_AW"  # mean airway pressure
    VTI = "VTI"
    VTE = "VTE"
    LEAK = "LEAK"
    ETCO2 = "ETCO2"
    NBP_SYS = "NBP_SYS"
    NBP_DIA = "NBP_DIA"
    NBP_MEAN = "NBP_MEAN"
    TEMP = "TEMP"
    IBP_SYS = "IBP_SYS"  # invasive pressures; ``source`` names the channel (ART, CVP, P1...)
    IBP_DIA = "IBP_DIA"
    IBP_MEAN = "IBP_MEAN"
    FICO2 = "FICO2"  # inspired CO2
    ETO2 = "ETO2"  # end-tidal O2
    MV = "MV"  # minute volume


class VitalSample(NamedTuple):
    """One value of one parameter as a monitor reported it.

    ``value`` is ``None`` when the monitor said "no value" (dashes, NaN markers): such a marker
    never becomes a number. ``valid`` is False when the value is missing or the monitor flagged
    it (exception bits, invalid state); ``flags`` names why, in the monitor's own terms.

    A NamedTuple rather than a frozen dataclass: parsers make one per value, and a tuple is built
    several times faster (about 0.5 µs against 4 µs), which is most of a parser's cost.
    """

    parameter: Parameter
    value: float | None
    unit: str
    valid: bool
    host_ns: int  # arrival on the host, on the one monotonic clock (sync.clock)
    monitor: str = ""  # which configured monitor sent it
    source: str = ""  # e.g. "pleth" or "ECG" for HR
    flags: frozenset[str] = frozenset()
    alarm: bool = False
    monitor_time: datetime | None = None  # the monitor's own clock, where it sends one (naive)
