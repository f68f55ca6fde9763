"""What the numbers in a Philips IntelliVue Data Export reply mean.

A numeric observation carries a physio id, a MeasurementState, a unit code and a FLOAT. This
module holds how each is read: the FLOAT type with its special values (NaN, NRes, ±INF), which
never become numbers; the MeasurementState bits that make a value invalid or only flag it; the
tables from physio id, label string and unit code to what we record; and the plausible range of
each parameter per unit. Reading the messages that carry them is ``vitals.intellivue_messages``.

Sources (PROTOCOLS.md §2): ``xeonfusion/VSCaptureMP:Class2.cs`` (MeasurementState bits) and
``Class3.cs`` (``ReadIDLabelString``); ``part-cw/LNhealth:modules/ivueparser/ivue.scm`` (states
that discard a value); ``mdpnp/mdpnp:devices/philips/src/main/java/org/mdpnp/devices/philips/
intellivue/`` (``data/Float.java`` special values, ``data/ObservedValue.java`` and
``data/UnitCode.java`` codes). None of it was checked against a monitor.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from vitals.sample import Parameter

# -- FLOAT-Type (Float.java) -----------------------------------------------------------------------

FLOAT_NAN: Final = 0x7FFFFF
FLOAT_NRES: Final = 0x800000
FLOAT_POS_INF: Final = 0x7FFFFE
FLOAT_NEG_INF: Final = 0x800002
FLOAT_RESERVED: Final = 0x800001
# The specials are defined with exponent 0; they are recognised by mantissa alone so that a
# marker with a stray exponent still never becomes a number.
_FLOAT_SPECIAL: Final[Mapping[int, str]] = {
    FLOAT_NAN: "nan",
    FLOAT_NRES: "nres",
    FLOAT_POS_INF: "infinite",
    FLOAT_NEG_INF: "infinite",
    FLOAT_RESERVED: "reserved",
}


@dataclass(frozen=True, slots=True)
class FloatValue:
    """A decoded FLOAT: ``value`` is None exactly when ``special`` names the marker."""

    value: float | None
    special: str | None = None


def decode_float(raw: int) -> FloatValue:
    """``raw`` is the 32-bit FLOAT: int8 exponent, int24 two's-complement mantissa, m·10^e."""
    return FloatValue(*float_value(raw))


# Cached: a monitor repeats the same few FLOATs (a steady heart rate, an unset value), and this
# runs for every numeric of every poll reply. Bounded, since noise can bring any numbers.
@functools.lru_cache(maxsize=4096)
def float_value(raw: int) -> tuple[float | None, str | None]:
    """``decode_float`` as a plain (value, special) pair: no FloatValue built for every numeric."""
    mantissa = raw & 0xFFFFFF
    special = _FLOAT_SPECIAL.get(mantissa)
    if special is not None:
        return None, special
    if mantissa & 0x800000:
        mantissa -= 0x1000000
    exponent = (raw >> 24) & 0xFF
    if exponent & 0x80:
        exponent -= 0x100
    # Dividing by a power of ten keeps 365·10^-1 at 36.5 rather than 36.500000000000004.
    value = mantissa / 10**-exponent if exponent < 0 else float(mantissa * 10**exponent)
    return value, None


def encode_float(value: float, decimals: int = 0) -> int:
    """The FLOAT for ``value`` with ``decimals`` digits after the point (for simulators, tests)."""
    mantissa = round(value * 10.0**decimals)
    if not -0x7FFFFD <= mantissa <= 0x7FFFFD:
        raise ValueError(f"{value} does not fit a FLOAT with {decimals} decimals")
    return ((-decimals & 0xFF) << 24) | (mantissa & 0xFFFFFF)


# -- MeasurementState (Class2.cs IntelliVue.MeasurementState) ------------------------------------------

# States that make a value unusable whatever number it carries. LNhealth discards on
# (state & 0xF800), which is exactly these five.
_STATE_INVALIDATING: Final[Mapping[int, str]] = {
    0x8000: "invalid",
    0x4000: "questionable",
    0x2000: "unavailable",
    0x1000: "calibration_ongoing",
    0x0800: "test_data",
}
# Reported but the value stays valid. Demo data is a real display value of a monitor in demo
# mode, so it is shown, flagged, never silently taken for a patient's.
_STATE_NOTED: Final[Mapping[int, str]] = {
    0x0400: "demo_data",
    0x0040: "early_indication",
    0x0020: "msmt_ongoing",
    0x0002: "in_alarm",
    0x0001: "alarm_inhibited",
}
STATE_IN_ALARM: Final = 0x0002
STATE_VALIDATED: Final = 0x0080  # manually validated; the normal case for such values, no flag
_STATE_KNOWN: Final = sum(_STATE_INVALIDATING) | sum(_STATE_NOTED) | STATE_VALIDATED


@functools.lru_cache(maxsize=512)  # a monitor uses a handful of states; decoding is per numeric
def decode_state(state: int) -> tuple[bool, frozenset[str]]:
    """(still valid, flag names) for a MeasurementState; unknown bits as ``state_0x....``."""
    flags = {name for bit, name in _STATE_INVALIDATING.items() if state & bit}
    valid = not flags
    flags.update(name for bit, name in _STATE_NOTED.items() if state & bit)
    unknown = state & ~_STATE_KNOWN & 0xFFFF
    flags.update(f"state_0x{1 << i:04x}" for i in range(16) if unknown >> i & 1)
    return valid, frozenset(flags)


# -- what the numbers mean (ObservedValue.java, UnitCode.java, PROTOCOLS.md §2.8) ----------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """Which parameter a physio id or label stands for, and where the value comes from."""

    parameter: Parameter
    source: str = ""


PHYSIO_METRICS: Final[Mapping[int, Metric]] = {
    0x4182: Metric(Parameter.HR, "ECG"),  # NOM_ECG_CARD_BEAT_RATE
    0x4822: Metric(Parameter.PR, "pleth"),  # NOM_PLETH_PULS_RATE
    0x480A: Metric(Parameter.PR, "pulse"),  # NOM_PULS_RATE, source not said
    0x4BB8: Metric(Parameter.SPO2, "pleth"),  # NOM_PULS_OXIM_SAT_O2
    0x4BB0: Metric(Parameter.PI, "pleth"),  # NOM_PULS_OXIM_PERF_REL
    0x500A: Metric(Parameter.RR, "impedance"),  # NOM_RESP_RATE
    0x5012: Metric(Parameter.RR, "airway"),  # NOM_AWAY_RESP_RATE
    0x4A05: Metric(Parameter.NBP_SYS),
    0x4A06: Metric(Parameter.NBP_DIA),
    0x4A07: Metric(Parameter.NBP_MEAN),
    0x50B0: Metric(Parameter.ETCO2, "airway"),  # NOM_AWAY_CO2_ET
    0x5284: Metric(Parameter.FIO2, "airway"),  # NOM_CONC_AWAY_O2_INSP (gas module)
    0x7498: Metric(Parameter.FIO2, "ventilator"),  # NOM_VENT_CONC_AWAY_O2_INSP
    0x51A8: Metric(Parameter.PEEP),  # NOM_VENT_PRESS_AWAY_END_EXP_POS
    0x5109: Metric(Parameter.PIP),  # NOM_PRESS_AWAY_INSP_MAX
    0x510B: Metric(Parameter.MAP_AW),  # NOM_PRESS_AWAY_INSP_MEAN
    0x513C: Metric(Parameter.VTE),  # NOM_VOL_AWAY_TIDAL; VTI when its label says inspiratory
    0x4B48: Metric(Parameter.TEMP),  # NOM_TEMP
}
PHYSIO_TIDAL_VOLUME: Final = 0x513C

#: Values sent as NOM_METRIC_NOS carry only their label; these are the labels monitors and
#: ventilators show (vitaldb-docs ``Intellivue_Ventilator_Settings.md`` lists FiO2, PEEP, PIP, TV,
#: RRaw among others). Keys are lower case without blanks, dots, dashes or underscores. Settings
#: such as "sFiO2" are deliberately absent: a set value is not a measurement.
LABEL_METRICS: Final[Mapping[str, Parameter]] = {
    "fio2": Parameter.FIO2,
    "peep": Parameter.PEEP,
    "pip": Parameter.PIP,
    "ppeak": Parameter.PIP,
    "pmean": Parameter.MAP_AW,
    "mawp": Parameter.MAP_AW,
    "tv": Parameter.VTE,
    "vt": Parameter.VTE,
    "vte": Parameter.VTE,
    "tve": Parameter.VTE,
    "tvexp": Parameter.VTE,
    "vtexp": Parameter.VTE,
    "vti": Parameter.VTI,
    "tvi": Parameter.VTI,
    "tvin": Parameter.VTI,
    "tvinsp": Parameter.VTI,
    "vtinsp": Parameter.VTI,
    "rr": Parameter.RR,
    "rraw": Parameter.RR,
    "awrr": Parameter.RR,
    "etco2": Parameter.ETCO2,
    "leak": Parameter.LEAK,
}
#: Source of a value known only by its label: an external device behind IntelliBridge/VueLink.
LABEL_SOURCE: Final = "external"

UNIT_CODES: Final[Mapping[int, str]] = {
    0x0200: "",  # NOM_DIM_DIMLESS
    0x0220: "%",  # NOM_DIM_PERCENT
    0x0652: "mL",  # NOM_DIM_MILLI_L
    0x0AA0: "/min",  # NOM_DIM_BEAT_PER_MIN
    0x0AE0: "/min",  # NOM_DIM_RESP_PER_MIN
    0x0F03: "kPa",  # NOM_DIM_KILO_PASCAL
    0x0F20: "mmHg",  # NOM_DIM_MMHG
    0x0F40: "cmH2O",  # NOM_DIM_CM_H2O
    0x17A0: "°C",  # NOM_DIM_DEGC
}

# Plausible ranges per parameter and unit. A value outside is a corrupted or misread number, not
# physiology; a unit not listed for its parameter means we do not know how to read the number.
_PRESSURE_NBP: Final = {"mmHg": (0.0, 300.0), "kPa": (0.0, 40.0)}
_AIRWAY: Final = {"cmH2O": (0.0, 120.0)}
_TIDAL: Final = {"mL": (0.0, 3000.0)}
RANGES: Final[Mapping[Parameter, Mapping[str, tuple[float, float]]]] = {
    Parameter.HR: {"/min": (0.0, 350.0)},
    Parameter.PR: {"/min": (0.0, 350.0)},
    Parameter.SPO2: {"%": (0.0, 100.0)},
    Parameter.PI: {"": (0.0, 100.0), "%": (0.0, 100.0)},
    Parameter.RR: {"/min": (0.0, 250.0)},
    Parameter.NBP_SYS: _PRESSURE_NBP,
    Parameter.NBP_DIA: _PRESSURE_NBP,
    Parameter.NBP_MEAN: _PRESSURE_NBP,
    Parameter.ETCO2: {"mmHg": (0.0, 150.0), "kPa": (0.0, 20.0), "%": (0.0, 20.0)},
    Parameter.FIO2: {"%": (0.0, 100.0)},
    Parameter.PEEP: _AIRWAY,
    Parameter.PIP: _AIRWAY,
    Parameter.MAP_AW: _AIRWAY,
    Parameter.VTE: _TIDAL,
    Parameter.VTI: _TIDAL,
    Parameter.LEAK: {"%": (0.0, 100.0)},
    Parameter.TEMP: {"°C": (0.0, 50.0)},
}


def normalise_label(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch not in " ._-\t")


# Cached: a monitor sends the same few labels with every poll reply, and decoding UTF-16 was a
# quarter of the cost of reading a reply. Bounded, since noise can bring any bytes.
@functools.lru_cache(maxsize=1024)
def decode_label_string(raw: bytes) -> str:
    """NOM_ATTR_ID_LABEL_STRING value: u16 byte count, then UTF-16BE text (ASCII tolerated).

    VSCaptureMP reads the bytes as UTF-8 and strips NULs, which works for the UTF-16BE text
    monitors send; decoding UTF-16 properly also keeps non-ASCII labels such as "ΔSpO2".
    """
    if len(raw) < 2:
        return ""
    text = raw[2 : 2 + int.from_bytes(raw[:2], "big")]
    if len(text) % 2 == 0 and text[0::2].count(0) * 2 >= len(text) // 2:
        decoded = text.decode("utf-16-be", errors="replace")
    else:
        decoded = text.decode("latin-1")
    return decoded.replace("\0", "").strip()


def encode_label_string(label: str) -> bytes:
    text = label.encode("utf-16-be")
    return len(text).to_bytes(2, "big") + text
