"""The one sample model every monitor family's parser produces."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import NamedTuple


class Parameter(enum.StrEnum):
    """Fixed vocabulary of physiological parameters, independent of the monitor that sent them.

    HR or PR, the rule every family follows: HR is the heart rate a monitor reports as such, and
    ``source`` says where it was counted ("ECG" or "pleth", or a pressure channel where a patient
    monitor counts it there). A pulse oximeter's only rate is HR from the pleth (Masimo ``BPM``,
    Nellcor, Nonin): at the table it is the heart rate the team reads. PR is a separate pleth
    pulse rate a device reports beside a heart rate of its own, or one that is not its main
    reading: a patient monitor's SpO2 pulse rate next to its ECG HR (IntelliVue 0x4822, GE's SpO2
    block) and a ventilator's oximeter pulse rate (Medibus 0xE1). So HR never silently changes
    meaning with the monitor, and a display that wants "a heart rate" takes HR, then PR.
    """

    HR = "HR"  # heart rate as the monitor reports it; ``source`` says ECG or pleth
    PR = "PR"  # a pleth pulse rate reported beside the monitor's own HR (see above)
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
