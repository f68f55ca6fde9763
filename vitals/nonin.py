"""Nonin pulse oximeter real-time serial output (Avant 9600, 7500FO, BT4000, 2500, 8500) → samples.

Once per second the oximeter prints one line, unasked, ending CR LF::

    SPO2=097 HR=145
    SPO2=--- HR=---          no reading (no sensor, no pulse)
    SPO2=097 HR=145 F        "fast" values (DIP switch 8 up on the Avant 9600 / BT4000)
    SPO2=097 HR=145*         event marker: ON/STANDBY was pressed
    12:30:05 SPO2=097 HR=145 8600V / 8600MV: the monitor's clock in front

The values are SpO2 in % and the pulse rate from the pleth in /min. ``---`` is "no data" and
never becomes a number; ``*`` marks an event (a button press), not an alarm, and is kept as the
flag ``event_marker``; ``F`` becomes the flag ``fast``. A header naming the model, time and date
is sent at power-up; its layout is not published, so it is counted as a bad record and skipped,
like any other line that is not a reading. The 8600V prints the time of day without a date, so
it is not turned into ``monitor_time`` (a time without a day would mislead more than help).

Sources (operator's manuals, the stored public pages; PROTOCOLS.md §5): Avant 9600 §5.3 (8 data
bits, 2 stop bits, CR/LF, once per second, ``F`` format); 7500FO "Serial Patient Data Output"
(9600, 8 data bits, 2 stop bits, CR/LF, ``*`` at the end of a line as event marker); BT4000 /
Avant 4000 "Real-Time Patient Data Output" (9600 8N1, ``SPO2=--- HR=---`` when no data, ``F``
and ``*``); 2500 / 8500 (9 data bits with the 9th always mark: readable as 8N1 or 8N2); 8600V
(``HH:MM:SS SPO2=XXX HR=YYY``). The manuals write ``XXX``: whether values are zero- or
blank-padded is not stated, so both are read. Not verified against a device.
"""

from __future__ import annotations

import functools
import re
from typing import ClassVar, Final

from vitals.lines import DEFAULT_MAX_LINE, LineReader
from vitals.parser import LinkSettings, MonitorParser
from vitals.sample import Parameter, VitalSample

_LINE: Final = re.compile(
    r"(?:[0-9]{2}:[0-9]{2}:[0-9]{2}\s+)?"
    r"SPO2=\s*(?P<spo2>[0-9]{1,3}|-{1,3})\s+HR=\s*(?P<hr>[0-9]{1,3}|-{1,3})"
    r"(?P<marks>(?:\s*[F*])*)",
    re.ASCII | re.IGNORECASE,
)
_SOURCE: Final = "pleth"
# SpO2 0–100 %; pulse rate 0–350 /min, the range every parser here uses (Nonin displays 18–321).
_SPO2_HIGH: Final = 100.0
_HR_HIGH: Final = 350.0
# (event marker, fast) → the flags every sample of the line carries. Shared constants: a line
# arrives every second and nearly always has neither mark, so no set is built per sample.
_NO_FLAGS: Final = frozenset[str]()
_MARK_FLAGS: Final = {
    (False, False): _NO_FLAGS,
    (True, False): frozenset({"event_marker"}),
    (False, True): frozenset({"fast"}),
    (True, True): frozenset({"event_marker", "fast"}),
}
_NO_VALUE: Final = frozenset({"no_value"})
_OUT_OF_RANGE: Final = frozenset({"out_of_range"})
# Builds a sample from a tuple of all ten fields, in order, as VitalSample._make does but without
# its Python frame and length check: calling VitalSample(...) runs a generated Python __new__ and
# was a measurable part of a line's cost.
_new_sample: Final = functools.partial(tuple.__new__, VitalSample)


def parse_line(line: str, host_ns: int, monitor: str) -> list[VitalSample] | None:
    """The SpO2 and pulse-rate samples of one stripped line; None when it is not a reading."""
    m = _LINE.fullmatch(line)
    if m is None:
        return None
    spo2, hr, marks = m.groups()
    if marks:
        marks = marks.upper()
        line_flags = _MARK_FLAGS["*" in marks, "F" in marks]
    else:
        line_flags = _NO_FLAGS  # the usual line
    spo2_value, spo2_valid, spo2_flags = _reading(spo2, _SPO2_HIGH, line_flags)
    hr_value, hr_valid, hr_flags = _reading(hr, _HR_HIGH, line_flags)
    # Pulse rate in the HR slot with source "pleth", as for the other oximeters.
    return [
        _new_sample(
            (Parameter.SPO2, spo2_value, "%", spo2_valid, host_ns, monitor, _SOURCE, spo2_flags, False, None)
        ),
        _new_sample(
            (Parameter.HR, hr_value, "/min", hr_valid, host_ns, monitor, _SOURCE, hr_flags, False, None)
        ),
    ]


# Cached: a value is one of a few hundred strings ("097", "---") and the line's flags one of four
# sets, so each combination is judged once, and a line costs two lookups instead of two reads,
# range checks and set unions.
@functools.lru_cache(maxsize=4096)
def _reading(raw: str, high: float, line_flags: frozenset[str]) -> tuple[float | None, bool, frozenset[str]]:
    """(value, valid, flags) of one value that _LINE matched, ranged 0 to ``high``."""
    # _LINE admits only 1–3 digits or 1–3 dashes here, so this reads the value as
    # lines.read_value would: dashes are "no data", digits a number.
    if raw[0] == "-":
        return None, False, line_flags | _NO_VALUE
    value = float(raw)
    if not 0.0 <= value <= high:
        return value, False, line_flags | _OUT_OF_RANGE
    return value, True, line_flags


class NoninParser(MonitorParser):
    """Incremental Nonin ASCII parser: complete lines only, resyncs on the next good line."""

    protocol: ClassVar[str] = "nonin"
    # 8N2 on the Avant 9600 and 7500FO, 8N1 on the BT4000. A receiver set to one stop bit reads
    # a sender using two without error (the second stop bit is idle line to it), so 1 is the
    # default that reads every model; configuration may still say 2.
    link_settings: ClassVar[LinkSettings] = LinkSettings(baudrate=9600, stopbits=1)

    def __init__(self, monitor: str, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        super().__init__(monitor)
        self._reader = LineReader(self.stats, line_ending="any", max_line=max_line)

    def reset(self) -> None:
        self._reader.reset()

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        try:
            samples: list[VitalSample] = []
            reader, monitor = self._reader, self.monitor  # once per chunk, not once per line
            for line in reader.push(data, host_ns):
                record = parse_line(line.text, line.host_ns, monitor)
                if record is None:
                    reader.reject(line)
                else:
                    reader.accept(line)
                    samples += record
            return samples
        except Exception:
            # Unreachable by design; the contract is never to raise into the reader thread.
            self.stats.records_bad += 1
            self.reset()
            return []
