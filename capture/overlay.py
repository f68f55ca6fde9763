"""The vitals overlay burned into every camera frame before it is encoded.

Reviewers watch a stabilisation weeks later and must read, on the picture itself, what the
monitors showed at that moment: HR and SpO2 large, the ventilation parameters smaller, stale
values greyed with their age, missing values as dashes (never a fake 0), alarms marked. A status
strip says whether the camera records (or what it draws is pre-roll), the local time and UTC, the
table and the time since birth.

Layout: one semi-transparent dark column in the top-right corner. The cameras look down at the
infant in the middle of a 16:9 picture, so a narrow column at the side hides the least of the
table; the status strip sits at its top, so with the vitals turned off (an identifiable room view)
only that small strip remains.

Cost: this runs on every frame at 30 fps next to libx264 on a 2-core PC. The column is rendered
(text, outline, alpha) into cached arrays only when something it shows changes; the cache key is
the displayed text itself, with times truncated to the displayed second. Every other frame costs
one multiply and one add over the column's pixels.

One renderer per camera thread: a renderer holds its cache and is not shared between threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "LocalClock",
    "OverlayRenderer",
    "OverlayState",
    "ShownValue",
    "format_age",
    "format_clock",
    "format_duration",
    "local_clock",
    "zone_names",
]

Image = npt.NDArray[np.uint8]
Colour = tuple[int, int, int]  # BGR

# HR and SpO2 (and the oximeter's pulse rate, an HR by another name) get the large digits.
_BIG_LABELS = frozenset({"HR", "PR", "SPO2"})

_SANS = cv2.FONT_HERSHEY_SIMPLEX
_BOLD = cv2.FONT_HERSHEY_DUPLEX  # double-stroked: reads heavier for the numbers

# Colours (BGR). HR green and SpO2 cyan follow the bedside monitors' conventions, so the picture
# reads like the monitor the team looked at. Stale text is pure grey so it carries no colour.
_PANEL_BG: Colour = (18, 18, 18)
_PANEL_ALPHA = 0.7  # dark enough for white text over a lit white sheet, light enough to see through
_WHITE: Colour = (245, 245, 245)
_LABEL: Colour = (210, 210, 210)
_DIM: Colour = (165, 165, 165)
_STALE: Colour = (128, 128, 128)
_RULE: Colour = (90, 90, 90)
_REC_RED: Colour = (40, 40, 235)
_ALARM_BG: Colour = (30, 30, 205)
_BIRTH: Colour = (40, 200, 255)  # amber: the time axis the review is organised around
_NO_SIGNAL_FRAME_BG: Colour = (40, 40, 40)
_PARAM_COLOURS: dict[str, Colour] = {
    "HR": (90, 235, 90),
    "PR": (90, 235, 90),
    "SPO2": (245, 215, 50),
}


@dataclass(frozen=True, slots=True)
class ShownValue:
    """One parameter as the overlay shows it; ``text`` is already formatted by the caller."""

    label: str  # "HR", "SpO2", "FiO2", "PIP", "PEEP", "Vte", "Leak", ...
    text: str | None  # "142", "91", "0.30"; None = no value, shown as dashes
    unit: str  # "/min", "%", "cmH2O", "mL"
    source: str = ""  # "pleth" or "ECG": reviewers must know where HR came from
    monitor: str = ""  # which monitor sent it, shown small when non-empty
    stale_s: float | None = None  # None = fresh; else its age, drawn greyed with that age
    alarm: bool = False  # the monitor flagged an alarm: drawn inverted on red, never blinking


@dataclass(frozen=True, slots=True)
class OverlayState:
    """Everything one frame's overlay shows."""

    table: str
    camera: str
    utc: datetime  # aware; shown as hh:mm:ss UTC and the date
    recording: bool
    elapsed_s: float | None  # recording elapsed; None when not recording
    since_birth_s: float | None  # None when no birth marker exists
    values: tuple[ShownValue, ...]  # display order; HR and SpO2 are drawn first and largest
    no_signal_since: datetime | None = None  # aware; the camera is lost since then
    # Why nothing is being saved, in a few words ("DISK FULL"): drawn in red where REC or
    # STANDBY would be, so the bedside never trusts a recording that is not being written.
    alert: str | None = None
    # Not recording, and this frame goes into the pre-roll ring: the only way a reviewer ever
    # sees it is as the pre-roll of a recording that starts within the next pre-roll seconds.
    # The overlay is burned in before anyone knows whether that start comes, so the frame says
    # what it will be if it is seen at all: PRE-ROLL (grey, never red, so it cannot pass for
    # REC). False (no pre-roll kept: "do not record", or none configured) draws STANDBY.
    kept_as_preroll: bool = False

    def __post_init__(self) -> None:
        # A naive time would be drawn as UTC whatever it meant: refuse it where it is made.
        if self.utc.utcoffset() is None:
            raise ValueError("OverlayState.utc must be timezone-aware")
        if self.no_signal_since is not None and self.no_signal_since.utcoffset() is None:
            raise ValueError("OverlayState.no_signal_since must be timezone-aware")


# --- formatting: the displayed strings are also the cache key ----------------------------------


def format_clock(t: datetime) -> str:
    """hh:mm:ss in UTC, truncated to the second like a wall clock."""
    return t.astimezone(UTC).strftime("%H:%M:%S")


@dataclass(frozen=True, slots=True)
class LocalClock:
    """The clock lines as drawn: "14:03:12 CET 2024-05-01", then "13:03:12 UTC"."""

    clock: str  # local hh:mm:ss
    zone: str  # its abbreviation: "CET", "CEST"; "UTC" where local time is UTC
    date: str  # the local date
    utc_clock: str | None  # hh:mm:ss UTC; None where local time is UTC (one line says it all)


def local_clock(t: datetime, zone: tzinfo | None) -> LocalClock:
    """``t`` as the overlay's clock shows it in ``zone`` (``None``: the system's local time;
    ``UTC`` itself: the UTC clock alone). Truncated to the second like a wall clock."""
    utc = t.astimezone(UTC)
    if zone is UTC:
        return LocalClock(utc.strftime("%H:%M:%S"), "UTC", utc.strftime("%Y-%m-%d"), None)
    local = utc.astimezone(zone)
    return LocalClock(
        local.strftime("%H:%M:%S"), local.tzname() or "", local.strftime("%Y-%m-%d"), utc.strftime("%H:%M:%S")
    )


def zone_names(zone: tzinfo | None, year: int) -> tuple[tuple[str, float], ...]:
    """(abbreviation, UTC offset in hours) of ``zone`` in January and July of ``year``: its
    winter and summer time. ``None`` is the system's local time, as the C library gives it."""
    out = []
    for month in (1, 7):
        local = datetime(year, month, 1, 12, tzinfo=UTC).astimezone(zone)
        offset = local.utcoffset()
        out.append((local.tzname() or "", offset.total_seconds() / 3600 if offset is not None else 0.0))
    return tuple(out)


def format_duration(seconds: float) -> str:
    """mm:ss below an hour, h:mm:ss above; truncated to the second; a minus sign if negative."""
    if not math.isfinite(seconds):  # a drawing must never raise in a camera thread
        return "--:--"
    sign = "-" if seconds < 0 else ""
    total = math.floor(abs(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m:02d}:{s:02d}"


def format_age(seconds: float) -> str:
    """Age of a stale value: "12 s", "4 min", "2 h"."""
    if not math.isfinite(seconds):
        return "old"
    total = max(0, math.floor(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min"
    return f"{total // 3600} h"


@dataclass(frozen=True, slots=True)
class _ValueView:
    label: str
    text: str
    unit: str
    source: str
    monitor: str
    age: str | None  # None = fresh
    alarm: bool
    colour: Colour


@dataclass(frozen=True, slots=True)
class _View:
    """What the column shows, as text. Equal views draw identical pixels."""

    table: str
    camera: str
    clock: LocalClock
    recording: bool
    preroll: bool
    elapsed: str | None
    birth: str | None
    no_signal: str | None
    alert: str | None
    big: tuple[_ValueView, ...]
    rows: tuple[_ValueView, ...]
    more: int  # values beyond the configured maximum: counted in "+N more", never drawn


def _value_view(v: ShownValue, big: bool) -> _ValueView:
    stale = v.stale_s is not None
    return _ValueView(
        label=v.label,
        text=v.text if v.text is not None else ("---" if big else "--"),
        unit=v.unit,
        source=v.source,
        monitor=v.monitor,
        age=format_age(v.stale_s) if v.stale_s is not None else None,
        # A stale alarm flag is old news: grey wins, so colour always means "current".
        alarm=v.alarm and not stale,
        colour=_STALE if stale else _PARAM_COLOURS.get(v.label.upper(), _WHITE),
    )


def _birth(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    text = format_duration(seconds)
    return f"T{text}" if text.startswith("-") else f"T+{text}"


def _view(state: OverlayState, with_vitals: bool, zone: tzinfo | None, max_values: int | None) -> _View:
    """``zone`` None: the system's local time; ``zone`` UTC: one UTC clock line only."""
    big: list[_ValueView] = []
    rows: list[_ValueView] = []
    more = 0
    if with_vitals:
        # The cap follows the order given (the configured panel's priority); beyond it values
        # are only counted. Of those kept, HR and SpO2 are drawn first and large.
        shown = state.values
        if max_values is not None and len(shown) > max_values:
            more = len(shown) - max_values
            shown = shown[:max_values]
        for v in shown:
            is_big = v.label.upper() in _BIG_LABELS
            (big if is_big else rows).append(_value_view(v, is_big))
    return _View(
        table=state.table,
        camera=state.camera,
        clock=local_clock(state.utc, zone),
        recording=state.recording,
        preroll=state.kept_as_preroll and not state.recording,
        elapsed=(
            format_duration(state.elapsed_s) if state.recording and state.elapsed_s is not None else None
        ),
        birth=_birth(state.since_birth_s),
        no_signal=(format_clock(state.no_signal_since) if state.no_signal_since is not None else None),
        alert=state.alert,
        big=tuple(big),
        rows=tuple(rows),
        more=more,
    )


# --- text metrics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    font: int
    scale: float
    thickness: int
    cap: int  # pixel height of a digit
    ascent: int  # from the top of a digit down to the baseline (putText's origin)


def _digit_extent(font: int, scale: float, thickness: int) -> tuple[int, int]:
    """(height, ascent) of a rendered "0", measured on pixels: font metrics differ between
    OpenCV releases (stroked Hershey in 4.x, outline fonts in 5.x), pixels do not."""
    (w, h), base = cv2.getTextSize("0", font, scale, thickness)
    pad = 4 + 2 * thickness
    buf = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
    origin_y = h + pad
    cv2.putText(buf, "0", (pad, origin_y), font, scale, 255, thickness, cv2.LINE_AA)
    rows = np.flatnonzero(buf.max(axis=1) > 127)
    if rows.size == 0:
        return max(1, h), max(1, h)
    return int(rows[-1] - rows[0] + 1), int(origin_y - rows[0])


def _style(font: int, digit_px: float, thickness: int) -> _Style:
    """A font scale whose digits are ``digit_px`` tall (thickness adds to the height in 4.x)."""
    scale = 1.0
    for _ in range(3):
        cap, _ascent = _digit_extent(font, scale, thickness)
        scale *= digit_px / cap
    cap, ascent = _digit_extent(font, scale, thickness)
    return _Style(font, scale, thickness, cap, ascent)


def _width(text: str, st: _Style) -> int:
    (w, _h), _base = cv2.getTextSize(text, st.font, st.scale, st.thickness)
    return int(w)


def _fit(text: str, st: _Style, max_w: int) -> str:
    """``text`` shortened with a trailing "." until it fits ``max_w`` pixels."""
    if _width(text, st) <= max_w:
        return text
    while len(text) > 1 and _width(text + ".", st) > max_w:
        text = text[:-1]
    return text + "."


def _filled(height: int, width: int, colour: Colour) -> Image:
    # cv2 fills in one pass; numpy broadcasting over a 3-wide last axis is ~100x slower.
    img: Image = np.empty((height, width, 3), np.uint8)
    cv2.rectangle(img, (0, 0), (width - 1, height - 1), colour, -1)
    return img


class _Canvas:
    """Colour and coverage drawn together, so the alpha follows exactly what was drawn."""

    def __init__(self, background: Image) -> None:
        self.bgr: Image = background.copy()
        self.mask: Image = np.zeros(background.shape[:2], np.uint8)

    def text(self, s: str, x: int, top: int, st: _Style, colour: Colour) -> int:
        """Draws ``s`` with its digits' top at ``top``; returns its width."""
        org = (int(x), int(top + st.ascent))
        cv2.putText(self.bgr, s, org, st.font, st.scale, colour, st.thickness, cv2.LINE_AA)
        cv2.putText(self.mask, s, org, st.font, st.scale, 255, st.thickness, cv2.LINE_AA)
        return _width(s, st)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        cv2.rectangle(self.bgr, (x0, y0), (x1, y1), colour, -1)
        cv2.rectangle(self.mask, (x0, y0), (x1, y1), 255, -1)

    def dot(self, cx: int, cy: int, r: int, colour: Colour) -> None:
        cv2.circle(self.bgr, (cx, cy), r, colour, -1, cv2.LINE_AA)
        cv2.circle(self.mask, (cx, cy), r, 255, -1, cv2.LINE_AA)

    def rule(self, x0: int, x1: int, y: int, thickness: int) -> None:
        # Part of the translucent background, not of the opaque foreground: no mask.
        cv2.line(self.bgr, (x0, y), (x1, y), _RULE, thickness)


class OverlayRenderer:
    """Draws an :class:`OverlayState` onto frames of one size.

    Not thread-safe by design: each camera thread owns its renderer, and with it its cache.
    ``renders`` counts how often the column was re-rendered (the rest only blends the cache);
    ``panel_rect`` is (x, y, width, height) of the column last drawn, in frame pixels;
    ``values_left_out`` how many of the values last drawn the "+N more" note stood for.

    ``local_zone`` is the zone of the clock the team reads (``None``: the system's local time);
    UTC is shown beside it, on its own line, unless the zone is UTC all year. ``max_values``
    caps how many values are drawn, the first ones given (HR and SpO2 count).
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        enabled_panel: bool = True,
        local_zone: tzinfo | None = None,
        max_values: int | None = None,
    ) -> None:
        if width < 160 or height < 120:
            raise ValueError(f"frame {width}x{height} is too small for the overlay")
        if max_values is not None and max_values < 1:
            raise ValueError(f"max_values must be at least 1, got {max_values}")
        self.width = width
        self.height = height
        self.enabled_panel = enabled_panel
        self.max_values = max_values
        self.renders = 0
        self.values_left_out = 0
        # The layout is fixed here, for the zone's winter and summer time alike, so the column
        # neither grows nor drops the date when the clocks change.
        names = zone_names(local_zone, datetime.now(UTC).year)
        self._zone: tzinfo | None = UTC if all(offset == 0 for _n, offset in names) else local_zone
        zone_labels = ("UTC",) if self._zone is UTC else ("UTC", *(n for n, _o in names))

        s = height / 720  # everything scales with the frame height
        self._s = s
        self._pad = max(4, round(12 * s))
        self._gap = max(2, round(6 * s))
        self._margin = max(4, round(10 * s))
        self._big = _style(_BOLD, 54 * s, max(2, round(3 * s)))
        self._status = _style(_BOLD, 22 * s, max(1, round(2 * s)))
        self._mid = _style(_BOLD, 20 * s, max(1, round(2 * s)))
        self._label = _style(_SANS, max(10.0, 15 * s), max(1, round(1.5 * s)))
        self._small = _style(_SANS, max(9.0, 12 * s), 1)
        self._outline = max(1, round(1.5 * s))  # dark rim around opaque glyphs

        # Fixed columns, sized from the widest text they hold, so digits never jump sideways.
        self._big_digits_w = _width("888", self._big)
        self._big_unit_w = max(_width(t, self._small) for t in ("/min", "59 min"))
        self._row_label_w = max(_width(t, self._label) for t in ("FiO2", "PEEP", "Leak"))
        self._row_value_w = _width("0000", self._mid)
        self._row_unit_w = _width("cmH2O", self._small)
        self._row_age_w = _width("59 min", self._small)
        inner = max(
            self._big_digits_w + self._gap + self._big_unit_w,
            self._row_label_w + self._row_value_w + self._row_unit_w + self._row_age_w + 3 * self._gap,
            _width("REC 0:00:00", self._status) + self._status.cap + self._gap,
            # The clock line: local time, its zone and the date (UTC has a line of its own).
            _width("00:00:00", self._mid)
            + max(_width(z, self._small) for z in zone_labels)
            + _width("0000-00-00", self._small)
            + 2 * self._gap,
            _width("Resus table 1", self._label) + _width("close-up", self._small) + 2 * self._gap,
        )
        self._panel_w = min(inner + 2 * self._pad, width // 2)
        self._panel_x = width - self._margin - self._panel_w
        self._panel_y = self._margin

        self._background = _filled(height - 2 * self._margin, self._panel_w, _PANEL_BG)
        self._view: _View | None = None
        self._premult: Image = np.zeros((0, 0, 3), np.uint8)
        self._inverse: Image = np.zeros((0, 0, 3), np.uint8)
        self._scratch: Image = np.zeros((0, 0, 3), np.uint8)
        self._no_signal_key: tuple[str, str] | None = None
        self._no_signal_base: Image = np.zeros((0, 0, 3), np.uint8)

    @property
    def panel_rect(self) -> tuple[int, int, int, int]:
        return (self._panel_x, self._panel_y, self._panel_w, self._premult.shape[0])

    # --- per frame ------------------------------------------------------------------------

    def draw(self, frame: Image, state: OverlayState) -> None:
        """Draw in place on a BGR uint8 frame of size width x height."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a {self.width}x{self.height} BGR uint8 frame, "
                f"got shape {frame.shape} {frame.dtype}"
            )
        view = _view(state, self.enabled_panel, self._zone, self.max_values)
        if view != self._view:
            self._render(view)
            self._view = view
        h = self._premult.shape[0]
        roi = frame[self._panel_y : self._panel_y + h, self._panel_x : self._panel_x + self._panel_w]
        # frame * (1 - alpha) + premultiplied panel, on the column only, in uint8 with
        # OpenCV's saturating SIMD arithmetic: no float copy of the frame.
        cv2.multiply(roi, self._inverse, dst=self._scratch, scale=1 / 255)
        out = cv2.add(self._scratch, self._premult, dst=roi)
        if out is not roi:  # OpenCV could not write through this view: copy instead
            roi[...] = out

    def no_signal_frame(self, state: OverlayState) -> Image:
        """A dark grey frame with NO SIGNAL since ... in the middle, plus the usual column: it
        stands in for a lost camera's frames so the timeline stays continuous and the gap shows."""
        since = format_clock(state.no_signal_since) if state.no_signal_since is not None else "--:--:--"
        key = (since, state.camera)
        if key != self._no_signal_key:
            self._no_signal_base = self._render_no_signal(since, state.camera)
            self._no_signal_key = key
        frame = self._no_signal_base.copy()
        self.draw(frame, state)
        return frame

    # --- rendering, only when the view changed -----------------------------------------------

    def _render(self, view: _View) -> None:
        self.renders += 1
        c = _Canvas(self._background)
        y = self._render_status(c, view)
        if view.big or view.rows:
            rule_y = y + self._gap // 2
            c.rule(self._pad, self._panel_w - self._pad, rule_y, max(1, round(self._s)))
            y = rule_y + 2 * self._gap
            for v in view.big:
                y = self._render_big(c, v, y)
            above = view.big[-1].monitor if view.big else ""
            y = self._render_rows(c, view.rows, y, above, view.more)
        else:
            self.values_left_out = view.more
        used = min(c.bgr.shape[0], y + self._pad - self._gap)
        self._set_panel(c.bgr[:used], c.mask[:used])

    def _render_status(self, c: _Canvas, view: _View) -> int:
        x, right, y = self._pad, self._panel_w - self._pad, self._pad
        st = self._status
        if view.alert is not None:
            r = max(3, round(st.cap * 0.5))
            c.dot(x + r, y + st.cap // 2, r, _REC_RED)
            alert = _fit(view.alert, self._label, right - x - 2 * r - self._gap)
            c.text(alert, x + 2 * r + self._gap, y + (st.cap - self._label.cap) // 2, self._label, _REC_RED)
        elif view.recording:
            r = max(3, round(st.cap * 0.5))
            c.dot(x + r, y + st.cap // 2, r, _REC_RED)
            tx = x + 2 * r + self._gap
            tx += c.text("REC", tx, y, st, _REC_RED)
            if view.elapsed is not None:
                c.text(view.elapsed, tx + self._gap, y, st, _WHITE)
        else:
            # Discreet, but on the same line height so nothing below jumps when REC starts.
            idle = "PRE-ROLL" if view.preroll else "STANDBY"
            c.text(idle, x, y + (st.cap - self._label.cap) // 2, self._label, _DIM)
        y += st.cap + 2 * self._gap

        # The clock with the date on its right; then the table, whole, with the camera on the
        # right: a reviewer must be able to tell tables apart, so the table name is never cut
        # while the camera name is the one that gives way.
        # Local time first, large: it is the time the team spoke and wrote down; UTC below it,
        # small, for matching other systems' logs.
        clock = view.clock
        clock_w = c.text(clock.clock, x, y, self._mid, _WHITE)
        zone_x = x + clock_w + self._gap
        zone_w = c.text(clock.zone, zone_x, y + self._mid.cap - self._small.cap, self._small, _DIM)
        date_w = _width(clock.date, self._small)
        if zone_x + zone_w + self._gap + date_w <= right:
            c.text(clock.date, right - date_w, y + self._mid.cap - self._small.cap, self._small, _DIM)
        y += self._mid.cap + 2 * self._gap
        if clock.utc_clock is not None:
            c.text(f"{clock.utc_clock} UTC", x, y, self._small, _DIM)
            y += self._small.cap + 2 * self._gap

        small_top = y + self._label.cap - self._small.cap
        table = _fit(view.table, self._label, right - x)
        table_w = c.text(table, x, y, self._label, _LABEL)
        camera_room = right - (x + table_w + 2 * self._gap)
        if view.camera and camera_room >= _width("cam.", self._small):
            camera = _fit(view.camera, self._small, camera_room)
            c.text(camera, right - _width(camera, self._small), small_top, self._small, _DIM)
        y += self._label.cap + 2 * self._gap

        if view.birth is not None:
            w = c.text(view.birth, x, y, self._mid, _BIRTH)
            c.text(
                "since birth",
                x + w + self._gap,
                y + self._mid.cap - self._small.cap,
                self._small,
                _DIM,
            )
            y += self._mid.cap + 2 * self._gap

        if view.no_signal is not None:
            # An opaque red bar: a lost camera must never pass for a still scene.
            g = self._gap
            h = self._mid.cap + self._small.cap + 3 * g
            c.rect(0, y - g, self._panel_w - 1, y - g + h, _ALARM_BG)
            c.text("NO SIGNAL", x, y, self._mid, _WHITE)
            y += self._mid.cap + g
            c.text(
                _fit(f"since {view.no_signal} UTC", self._small, right - x),
                x,
                y,
                self._small,
                _WHITE,
            )
            y += self._small.cap + 3 * g
        return y

    def _render_big(self, c: _Canvas, v: _ValueView, y: int) -> int:
        x, right = self._pad, self._panel_w - self._pad
        lab, small, big = self._label, self._small, self._big
        label_colour = _STALE if v.age is not None else _LABEL
        lx = x + c.text(v.label, x, y, lab, label_colour) + self._gap
        if v.source:
            lx += c.text(v.source, lx, y + lab.cap - small.cap, small, label_colour) + self._gap
        if v.monitor:
            m = _fit(v.monitor, small, right - lx - self._gap)
            c.text(m, right - _width(m, small), y + lab.cap - small.cap, small, _DIM)
        y += lab.cap + 2 * self._gap

        digits_right = x + self._big_digits_w
        text = _fit(v.text, big, self._big_digits_w + self._gap)
        tw = _width(text, big)
        tx = digits_right - tw
        if v.alarm:
            g = self._gap
            c.rect(tx - g, y - g, digits_right + g, y + big.cap + g, _ALARM_BG)
        c.text(text, tx, y, big, _WHITE if v.alarm else v.colour)
        ux = digits_right + 2 * self._gap
        c.text(_fit(v.unit, small, right - ux), ux, y, small, label_colour)
        if v.age is not None:
            c.text(v.age, ux, y + big.cap - small.cap, small, _STALE)
        return y + big.cap + 3 * self._gap

    def _render_rows(self, c: _Canvas, rows: tuple[_ValueView, ...], y: int, above: str, more: int) -> int:
        """The smaller rows; a monitor's name heads its rows only where it differs from above.
        ``more`` values were left out before these (the configured maximum)."""
        g = self._gap
        row_h = self._mid.cap + 2 * g + g // 2
        heading_h = self._small.cap + 2 * g + g // 2
        limit = c.bgr.shape[0] - self._pad
        monitor = above
        self.values_left_out = more
        for i, v in enumerate(rows):
            heading = bool(v.monitor) and v.monitor != monitor
            need = row_h + (heading_h if heading else 0)
            if i < len(rows) - 1 or more:
                need += self._small.cap + g  # room for the note below, should the next not fit
            if y + need > limit:
                # The column is full: say so rather than silently dropping parameters.
                self.values_left_out = len(rows) - i + more
                break
            if heading:
                y = self._render_monitor_heading(c, v.monitor, y)
            monitor = v.monitor
            y = self._render_row(c, v, y)
        if self.values_left_out:
            c.text(f"+{self.values_left_out} more", self._pad, y, self._small, _DIM)
            return y + self._small.cap + g
        return y

    def _render_monitor_heading(self, c: _Canvas, monitor: str, y: int) -> int:
        right = self._panel_w - self._pad
        y += self._gap  # set off from the block above: a heading belongs to the rows below it
        c.text(_fit(monitor, self._small, right - self._pad), self._pad, y, self._small, _DIM)
        return y + self._small.cap + self._gap + self._gap // 2

    def _render_row(self, c: _Canvas, v: _ValueView, y: int) -> int:
        x, right = self._pad, self._panel_w - self._pad
        mid, lab, small = self._mid, self._label, self._small
        stale = v.age is not None
        label_colour = _STALE if stale else _LABEL
        base = y + mid.cap  # label, unit and age share the value's baseline
        lw = c.text(_fit(v.label, lab, self._row_label_w + self._gap), x, base - lab.cap, lab, label_colour)
        value_right = x + self._row_label_w + self._gap + self._row_value_w
        if v.source:
            src = _fit(v.source, small, value_right - (x + lw + self._gap) - self._row_value_w)
            c.text(src, x + lw + self._gap // 2, base - small.cap, small, label_colour)
        text = _fit(v.text, mid, self._row_value_w + self._gap)
        tx = value_right - _width(text, mid)
        if v.alarm:
            g = self._gap // 2 + 1
            c.rect(tx - g, y - g, value_right + g, base + g, _ALARM_BG)
        c.text(text, tx, y, mid, _WHITE if v.alarm else v.colour)
        ux = value_right + self._gap
        age_x = right - self._row_age_w
        c.text(_fit(v.unit, small, age_x - ux - self._gap), ux, base - small.cap, small, label_colour)
        if v.age is not None:
            c.text(v.age, right - _width(v.age, small), base - small.cap, small, _STALE)
        return base + 2 * self._gap + self._gap // 2

    def _set_panel(self, bgr: Image, mask: Image) -> None:
        """Alpha from what was drawn: opaque glyphs with a dark rim, translucent elsewhere."""
        k = 2 * self._outline + 1
        rim = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        alpha = np.maximum(rim, np.uint8(round(_PANEL_ALPHA * 255)))
        alpha3 = cv2.merge([alpha, alpha, alpha])
        # Under the rim the colour layer is still the panel's dark background: that is the
        # outline, and the antialiased glyph edges blend into it rather than into the picture.
        self._premult = np.ascontiguousarray(cv2.multiply(bgr, alpha3, scale=1 / 255), np.uint8)
        self._inverse = np.ascontiguousarray(255 - alpha3, np.uint8)
        self._scratch = np.empty_like(self._premult)

    def _render_no_signal(self, since: str, camera: str) -> Image:
        frame = _filled(self.height, self.width, _NO_SIGNAL_FRAME_BG)
        # Centred in the part of the picture the column does not cover.
        free_w = self._panel_x - self._margin
        lines = (
            ("NO SIGNAL", _style(_BOLD, 80 * self._s, max(2, round(4 * self._s))), _REC_RED),
            (f"since {since} UTC", _style(_BOLD, 34 * self._s, max(1, round(2 * self._s))), _WHITE),
            (camera, _style(_SANS, 22 * self._s, max(1, round(1.5 * self._s))), _DIM),
        )
        gap = round(30 * self._s)
        total = sum(st.cap for _t, st, _c in lines) + gap * (len(lines) - 1)
        y = (self.height - total) // 2
        for text, st, colour in lines:
            text = _fit(text, st, free_w - 2 * self._pad)
            x = max(self._pad, (free_w - _width(text, st)) // 2)
            cv2.putText(
                frame,
                text,
                (x, y + st.ascent),
                st.font,
                st.scale,
                colour,
                st.thickness,
                cv2.LINE_AA,
            )
            y += st.cap + gap
        return frame
