"""What every monitor family that prints text lines shares: cutting bytes into lines, reading a value.

Many monitors print one text line per reading. ``LineReader`` cuts the byte stream into lines
(any chunking gives the same lines), stamps each line with the arrival of its first byte, drops
NULs and overlong lines, and counts what it could not use. Families (``vitals.nellcor``,
``vitals.nonin``, ``vitals.line_format``) hold one and only say what a line means.
``read_value`` reads one printed value: a "no value" marker (the listed ones, or any run of
dashes) is never a number.

What the line reader does with NULs and partial first lines follows what PROTOCOLS.md gathered
for the Masimo line format (``Iukekini/Baby-Monitor-Masimo-Pulse-Oximeter:scripts/Devices/
RAD7.py``: leading NULs and a partial first record after the port opens).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from vitals.parser import ParserStats

LineEnding = Literal["crlf", "lf", "cr", "any"]

#: Default cap on one line: the longest lines these families print are well under 200 bytes.
DEFAULT_MAX_LINE: Final = 2048

_TERMINATORS: Final[Mapping[str, bytes]] = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}


class Line(NamedTuple):
    """One complete, non-blank line: stripped text, arrival of its first byte, bytes it took."""

    text: str  # latin-1 decoded, so every byte maps; records are ASCII anyway
    host_ns: int
    size: int


# Builds a Line from a tuple of its three fields, as Line._make does but without its Python frame:
# cheaper than Line(...)'s generated Python __new__, on every line.
_new_line: Final = functools.partial(tuple.__new__, Line)


class LineReader:
    """Cuts a byte stream into lines for a line family's parser; any chunking, the same lines.

    It owns the parser's byte accounting: ``bytes_in``, NULs and stray blanks as garbage, and
    lines longer than ``max_line`` as bad records. The parser says which lines were records
    (``accept``) and which were not (``reject``). A family holds one, rather than inheriting
    from a shared base, so no family module depends on another's parser class.
    """

    def __init__(
        self, stats: ParserStats, *, line_ending: LineEnding = "any", max_line: int = DEFAULT_MAX_LINE
    ) -> None:
        if line_ending not in _TERMINATORS and line_ending != "any":
            raise ValueError(f"line_ending must be one of crlf, lf, cr, any, not {line_ending!r}")
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        self.stats = stats
        self.line_ending: LineEnding = line_ending
        self.max_line = max_line
        self._buf = bytearray()
        self._buf_ns = 0  # arrival of the first byte now in _buf
        self._discarding = False  # inside an overlong line: drop until its end

    def accept(self, line: Line) -> None:
        del line
        self.stats.records_ok += 1

    def reject(self, line: Line) -> None:
        self.stats.records_bad += 1
        self.stats.garbage_bytes += line.size

    def reset(self) -> None:
        """Drop the partial line (counted as garbage): the next bytes start a new line."""
        self.stats.garbage_bytes += len(self._buf)
        self._buf.clear()
        self._discarding = False

    def push(self, data: bytes, host_ns: int) -> list[Line]:
        """The lines ``data`` (arrived at ``host_ns``) completes, in order."""
        self.stats.bytes_in += len(data)
        if not data:
            return []
        if self._buf:
            start_ns = self._buf_ns
            chunk = bytes(self._buf) + data
            self._buf.clear()
        else:
            start_ns = host_ns
            chunk = bytes(data)
        raw_lines, rest = self._split(chunk)
        lines: list[Line] = []
        if raw_lines:
            if self._discarding:
                # The end of an overlong line: its bytes were counted as they were dropped.
                self._discarding = False
                self.stats.garbage_bytes += len(raw_lines[0])
                self.stats.records_bad += 1
            else:
                self._line(raw_lines[0], start_ns, lines)
            max_line = self.max_line
            for raw in itertools.islice(raw_lines, 1, None):
                # The usual line (no NULs, not too long, not blank) is taken here rather than in
                # _line, and an empty one, which has nothing to count and which every CR LF in
                # "any" mode leaves, is skipped: a line costs a few microseconds, and a call per
                # line was a noticeable part of that.
                if not raw:
                    continue
                stripped = raw.strip()
                if stripped and len(raw) <= max_line and 0 not in raw:
                    lines.append(_new_line((stripped.decode("latin-1"), host_ns, len(raw))))
                else:
                    self._line(raw, host_ns, lines)
        self._keep(rest, start_ns if not raw_lines else host_ns)
        return lines

    def _split(self, chunk: bytes) -> tuple[list[bytes], bytes]:
        """Complete lines (terminators removed) and the unterminated rest."""
        if self.line_ending == "any":
            cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
            if cut < 0:
                return [], chunk
            # CR LF, LF CR, lone CR or LF all end a line; the empty lines between are skipped.
            return chunk[:cut].replace(b"\r", b"\n").split(b"\n"), chunk[cut + 1 :]
        term = _TERMINATORS[self.line_ending]
        cut = chunk.rfind(term)
        if cut < 0:
            return [], chunk
        return chunk[:cut].split(term), chunk[cut + len(term) :]

    def _keep(self, rest: bytes, rest_ns: int) -> None:
        """Buffer the unterminated tail; a tail longer than a line can be is noise."""
        if not rest:
            return
        # With CR LF endings a trailing CR may be the first half of the next terminator: keep it
        # whatever else is dropped, or the line end would be missed when the LF comes later.
        hold = 1 if self.line_ending == "crlf" and rest.endswith(b"\r") else 0
        if self._discarding:
            self.stats.garbage_bytes += len(rest) - hold
            self._buf += rest[len(rest) - hold :]
            self._buf_ns = rest_ns
            return
        self._buf += rest
        self._buf_ns = rest_ns
        if len(self._buf) - hold > self.max_line:
            self.stats.garbage_bytes += len(self._buf) - hold
            del self._buf[: len(self._buf) - hold]
            self._discarding = True

    def _line(self, raw: bytes, host_ns: int, out: list[Line]) -> None:
        """Append ``raw`` to ``out`` as a Line if it is one; count it otherwise."""
        # Length first, NULs included: the buffered path drops a line on the same count, so a
        # line is judged the same whichever chunks it arrived in.
        if len(raw) > self.max_line:
            self.stats.records_bad += 1
            self.stats.garbage_bytes += len(raw)
            return
        nuls = raw.count(0)
        if nuls:
            # Padding some monitors send around port open: noise, not part of a record.
            self.stats.garbage_bytes += nuls
            raw = raw.replace(b"\0", b"")
        stripped = raw.strip()
        if not stripped:
            # Blank lines (the empty "line" inside CR LF in "any" mode) are not records; stray
            # blanks are noise, stray CR/LF are line ends.
            self.stats.garbage_bytes += len(raw) - raw.count(b"\r") - raw.count(b"\n")
            return
        out.append(_new_line((stripped.decode("latin-1"), host_ns, len(raw))))


# -- reading one value -------------------------------------------------------------------------

# A number, optionally followed by a suffix without digits: a unit echo ("98%", "37.2 C") or a
# flag ("85*"). Exponents, inf and nan are not numbers any monitor prints, so they are rejected.
_NUMBER: Final = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*(?:[^0-9.+\-\s][^0-9]*)?")
_DASH_CHARS: Final = frozenset("-+.")


@dataclass(frozen=True, slots=True)
class RawValue:
    """One printed value as read: ``value`` is None unless ``status`` is "ok"."""

    value: float | None
    status: Literal["ok", "no_value", "malformed"]


def read_value(raw: str, no_value: Sequence[str] = ("---", "--", "-", "")) -> RawValue:
    """Read a printed value; a listed marker or any run of dashes (``--.-``, ``+--``) → no value."""
    text = raw.strip()
    if text in no_value or raw in no_value:
        return RawValue(None, "no_value")
    # Dashes fill a field's width when there is no reading; a sign or decimal point may stay.
    if "-" in text and set(text) <= _DASH_CHARS:
        return RawValue(None, "no_value")
    m = _NUMBER.fullmatch(text)
    if m is None:
        return RawValue(None, "malformed")
    return RawValue(float(m.group(1)), "ok")
