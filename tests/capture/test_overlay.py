"""The vitals overlay: what reviewers and the bedside team read on the picture, and its cache."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from capture.overlay import (
    LocalClock,
    OverlayRenderer,
    OverlayState,
    ShownValue,
    format_age,
    format_clock,
    format_duration,
    local_clock,
)

Image = npt.NDArray[np.uint8]

T0 = datetime(2024, 5, 1, 14, 3, 27, 250_000, tzinfo=UTC)
SIZES = [(640, 480), (1280, 720), (1920, 1080)]

HR = ShownValue("HR", "142", "/min", source="ECG", monitor="IntelliVue MX450")
SPO2 = ShownValue("SpO2", "91", "%", source="pleth", monitor="Radical-7")
VALUES = (
    HR,
    SPO2,
    ShownValue("FiO2", "0.30", "", monitor="O2 analyser"),
    ShownValue("PIP", "25", "cmH2O", monitor="Monivent"),
    ShownValue("PEEP", "5", "cmH2O", monitor="Monivent"),
    ShownValue("Vte", None, "mL", monitor="Monivent"),
    ShownValue("Leak", "12", "%", monitor="Monivent", stale_s=12.4),
)


def state(**changes: object) -> OverlayState:
    base = OverlayState(
        table="Table 1",
        camera="close-up",
        utc=T0,
        recording=True,
        elapsed_s=205.3,
        since_birth_s=133.0,
        values=VALUES,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def quiet(values: tuple[ShownValue, ...]) -> OverlayState:
    """No colour from the status strip (STANDBY, no birth marker): only the values carry colour."""
    return state(recording=False, elapsed_s=None, since_birth_s=None, values=values)


def noise(width: int, height: int, seed: int = 0) -> Image:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def grey(width: int, height: int, level: int = 120) -> Image:
    return np.full((height, width, 3), level, np.uint8)


def drawn(renderer: OverlayRenderer, s: OverlayState, frame: Image | None = None) -> Image:
    out = grey(renderer.width, renderer.height) if frame is None else frame.copy()
    renderer.draw(out, s)
    return out


def panel(renderer: OverlayRenderer, frame: Image) -> Image:
    x, y, w, h = renderer.panel_rect
    return frame[y : y + h, x : x + w]


def saturation(img: Image) -> npt.NDArray[np.int16]:
    as_int = img.astype(np.int16)
    spread: npt.NDArray[np.int16] = as_int.max(axis=2) - as_int.min(axis=2)
    return spread


def red_pixels(img: Image) -> int:
    b, g, r = (img[..., i].astype(np.int16) for i in range(3))
    return int(np.count_nonzero((r > 180) & (g < 90) & (b < 90)))


# --- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "00:00"),
        (59.99, "00:59"),
        (205.3, "03:25"),
        (3599.9, "59:59"),
        (3600.0, "1:00:00"),
        (36_000 + 61.5, "10:01:01"),
        (-5.2, "-00:05"),
        (float("nan"), "--:--"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (12.9, "12 s"), (59.99, "59 s"), (60.0, "1 min"), (3599.0, "59 min"),
     (7300.0, "2 h"), (-1.0, "0 s"), (float("inf"), "old")],
)  # fmt: skip
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


def test_format_clock_is_utc_truncated_to_the_second() -> None:
    cest = timezone(timedelta(hours=2))
    assert format_clock(datetime(2024, 5, 1, 16, 3, 27, 999_999, tzinfo=cest)) == "14:03:27"


def test_state_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        state(utc=datetime(2024, 5, 1, 14, 3, 27))
    with pytest.raises(ValueError, match="aware"):
        state(no_signal_since=datetime(2024, 5, 1, 14, 3, 27))


# --- where it draws ---------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_draw_changes_the_panel_and_nothing_else(width: int, height: int) -> None:
    r = OverlayRenderer(width, height)
    before = noise(width, height)
    after = drawn(r, state(), before)

    x, y, w, h = r.panel_rect
    assert x >= 0 and x + w <= width and y >= 0 and y + h <= height
    assert x > width // 2, "the column sits at the right side, away from the infant"
    assert np.mean(panel(r, after) != panel(r, before)) > 0.9
    outside = np.ones((height, width), bool)
    outside[y : y + h, x : x + w] = False
    assert np.array_equal(after[outside], before[outside])


def test_draw_refuses_a_frame_of_another_size() -> None:
    r = OverlayRenderer(1280, 720)
    with pytest.raises(ValueError, match="1280x720"):
        r.draw(grey(640, 480), state())
    with pytest.raises(ValueError):
        r.draw(np.zeros((720, 1280, 3), np.float32), state())


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_hr_digits_are_big_and_scale_with_height(width: int, height: int) -> None:
    r = OverlayRenderer(width, height)
    out = drawn(r, quiet((replace(HR, text="888", monitor="", source=""),)), grey(width, height, 0))
    b, g, rr = (panel(r, out)[..., i].astype(np.int16) for i in range(3))
    rows = np.flatnonzero(((g > 150) & (rr < 150) & (b < 150)).any(axis=1))
    assert rows.size, "HR is drawn in its monitor colour"
    assert rows[-1] - rows[0] + 1 >= 48 * height / 720


def test_hr_and_spo2_come_first_whatever_the_order() -> None:
    r = OverlayRenderer(1280, 720)
    fio2 = ShownValue("FiO2", "0.30", "")
    assert np.array_equal(drawn(r, state(values=(fio2, HR, SPO2))), drawn(r, state(values=(HR, SPO2, fio2))))


# --- what it shows ----------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_rec_indicator_is_red_only_while_recording(width: int, height: int) -> None:
    r = OverlayRenderer(width, height)
    recording = drawn(r, state(values=(), since_birth_s=None))
    idle = drawn(r, quiet(()))
    assert red_pixels(panel(r, recording)) > 50 * (height / 720) ** 2
    assert red_pixels(idle) == 0
    # A solid red dot, not only red letters: a blob survives an erosion wider than any stroke.
    b, g, rr = (panel(r, recording)[..., i].astype(np.int16) for i in range(3))
    red = ((rr > 180) & (g < 90) & (b < 90)).astype(np.uint8)
    k = round(9 * height / 720) | 1
    assert cv2.erode(red, np.ones((k, k), np.uint8)).any()


def test_stale_value_is_grey_and_shows_its_age() -> None:
    r = OverlayRenderer(1280, 720)
    fresh = drawn(r, quiet((HR,)))
    stale = drawn(r, quiet((replace(HR, stale_s=12.3),)))
    assert np.count_nonzero(saturation(panel(r, fresh)) > 100) > 500
    assert saturation(panel(r, stale)).max() <= 6, "a stale value carries no colour"
    older = drawn(r, quiet((replace(HR, stale_s=13.3),)))
    assert not np.array_equal(stale, older), "the age is drawn"


def test_stale_wins_over_an_old_alarm() -> None:
    r = OverlayRenderer(1280, 720)
    stale_alarm = drawn(r, quiet((replace(HR, stale_s=30.0, alarm=True),)))
    assert red_pixels(stale_alarm) == 0
    assert saturation(panel(r, stale_alarm)).max() <= 6


@pytest.mark.parametrize("value", [HR, ShownValue("PEEP", "5", "cmH2O")])
def test_alarm_is_drawn_on_red(value: ShownValue) -> None:
    r = OverlayRenderer(1280, 720)
    calm = drawn(r, quiet((value,)))
    alarm = drawn(r, quiet((replace(value, alarm=True),)))
    assert red_pixels(calm) == 0
    assert red_pixels(alarm) > 200


@pytest.mark.parametrize(
    ("value", "dashes"),
    [(HR, "---"), (SPO2, "---"), (ShownValue("PEEP", "5", "cmH2O"), "--")],
)
def test_no_value_is_dashes_never_zero(value: ShownValue, dashes: str) -> None:
    r = OverlayRenderer(1280, 720)
    missing = drawn(r, state(values=(replace(value, text=None),)))
    zero = drawn(r, state(values=(replace(value, text="0"),)))
    explicit = drawn(r, state(values=(replace(value, text=dashes),)))
    assert not np.array_equal(missing, zero)
    assert np.array_equal(missing, explicit)


def test_source_and_monitor_are_shown() -> None:
    r = OverlayRenderer(1280, 720)
    base = drawn(r, state(values=(HR,)))
    assert not np.array_equal(base, drawn(r, state(values=(replace(HR, source="pleth"),))))
    assert not np.array_equal(base, drawn(r, state(values=(replace(HR, monitor="Radical-7"),))))


def test_status_strip_shows_time_elapsed_birth_and_table() -> None:
    r = OverlayRenderer(1280, 720)
    base = drawn(r, state())
    for changed in (
        state(utc=T0 + timedelta(seconds=1)),
        state(utc=T0 + timedelta(days=1)),
        state(elapsed_s=206.0),
        state(since_birth_s=None),
        state(table="Table 2"),
        state(camera="room"),
        state(no_signal_since=T0),
    ):
        assert not np.array_equal(base, drawn(r, changed)), changed


# --- the cache ----------------------------------------------------------------------------------


def test_unchanged_view_reuses_the_cached_panel() -> None:
    r = OverlayRenderer(1280, 720)
    frame = noise(1280, 720)
    first = drawn(r, state(), frame)
    assert r.renders == 1
    # Same displayed text: a later instant within the same second, a stale age within its second.
    same_second = state(utc=T0 + timedelta(milliseconds=700), elapsed_s=205.9)
    assert np.array_equal(drawn(r, same_second, frame), first)
    aged = state(values=(*VALUES[:-1], replace(VALUES[-1], stale_s=12.9)))
    drawn(r, aged, frame)
    assert r.renders == 1

    drawn(r, state(utc=T0 + timedelta(seconds=1)), frame)
    assert r.renders == 2
    drawn(r, state(utc=T0 + timedelta(seconds=1), values=(replace(HR, text="143"), *VALUES[1:])))
    assert r.renders == 3


def test_cached_panel_draws_what_a_fresh_render_draws() -> None:
    cached = OverlayRenderer(1280, 720)
    frame = noise(1280, 720)
    drawn(cached, state(), frame)
    again = drawn(cached, state(), noise(1280, 720, seed=1))
    fresh = drawn(OverlayRenderer(1280, 720), state(), noise(1280, 720, seed=1))
    assert cached.renders == 1
    assert np.array_equal(again, fresh)


# --- cameras whose profile turns the vitals off -------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_disabled_panel_draws_the_status_strip_only(width: int, height: int) -> None:
    strip = OverlayRenderer(width, height, enabled_panel=False)
    full = OverlayRenderer(width, height)
    before = noise(width, height)
    a = drawn(strip, state(), before)
    b = drawn(strip, state(values=(replace(HR, text="60", alarm=True), SPO2)), before)
    assert np.array_equal(a, b), "no vital sign reaches the picture"
    assert strip.renders == 1

    drawn(full, state(), before)
    x, y, w, h = strip.panel_rect
    assert 0 < h < full.panel_rect[3] / 2
    outside = np.ones((height, width), bool)
    outside[y : y + h, x : x + w] = False
    assert np.array_equal(a[outside], before[outside])
    assert red_pixels(panel(strip, drawn(strip, state(), grey(width, height)))) > 0, "REC shows"


# --- a lost camera ------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_no_signal_frame(width: int, height: int) -> None:
    r = OverlayRenderer(width, height)
    lost = state(no_signal_since=T0 - timedelta(seconds=42))
    frame = r.no_signal_frame(lost)
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    corner = frame[height - 20 :, :20].reshape(-1, 3)
    assert (corner == corner[0]).all() and 20 <= int(corner[0][0]) <= 70, "dark grey background"
    x = r.panel_rect[0]
    middle = frame[height // 3 : 2 * height // 3, :x]
    assert red_pixels(middle) > 1000 * (height / 720) ** 2, "NO SIGNAL, large, in the middle"
    later = r.no_signal_frame(state(no_signal_since=T0 - timedelta(seconds=41)))
    assert not np.array_equal(frame[:, :x], later[:, :x]), "the since time is drawn"
    assert np.array_equal(r.no_signal_frame(lost), frame)


def test_no_signal_frame_carries_the_normal_panel() -> None:
    r = OverlayRenderer(1280, 720)
    lost = state(no_signal_since=T0)
    frame = r.no_signal_frame(lost)
    other_hr = r.no_signal_frame(replace(lost, values=(replace(HR, text="99"), *VALUES[1:])))
    x, y, w, h = r.panel_rect
    assert not np.array_equal(frame[y : y + h, x : x + w], other_hr[y : y + h, x : x + w])
    assert np.array_equal(frame[:, : x - 1], other_hr[:, : x - 1])


# --- one renderer per camera thread ------------------------------------------------------------


def test_renderers_in_parallel_threads_match_sequential_ones() -> None:
    states = [state(utc=T0 + timedelta(seconds=i), elapsed_s=float(i)) for i in range(20)]

    def run(width: int, height: int) -> Image:
        r = OverlayRenderer(width, height)
        frame = grey(width, height)
        for s in states:
            frame = grey(width, height)
            r.draw(frame, s)
        return frame

    expected = {size: run(*size) for size in SIZES}
    results: dict[tuple[int, int], Image] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, run(*s))) for s in SIZES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for size in SIZES:
        assert np.array_equal(results[size], expected[size])


# --- a picture to look at -----------------------------------------------------------------------


def test_example_frame_png(tmp_path: Path) -> None:
    """Writes a 720p example under tmp_path, for a person to judge legibility."""
    frame = grey(1280, 720, 200)
    cv2.ellipse(frame, (640, 360), (140, 180), 10, 0, 360, (150, 170, 230), -1)
    values = (*VALUES, replace(SPO2, label="PR", text=None, unit="/min", alarm=True))
    OverlayRenderer(1280, 720).draw(frame, state(values=values))
    path = tmp_path / "overlay-720p.png"
    assert cv2.imwrite(str(path), frame)
    back = cv2.imread(str(path))
    assert back is not None and back.shape == (720, 1280, 3)


def test_a_full_column_says_how_many_values_it_left_out() -> None:
    r = OverlayRenderer(1280, 720)
    rows = tuple(ShownValue(f"P{i}", str(i), "cmH2O") for i in range(30))
    some = drawn(r, state(values=(HR, SPO2, *rows[:20])))
    _x, y, _w, h = r.panel_rect
    assert y + h <= 720
    more = drawn(r, state(values=(HR, SPO2, *rows)))
    assert r.panel_rect[3] == h
    assert not np.array_equal(some, more), "the count of values left out is drawn"


# --- local time beside UTC ----------------------------------------------------------------------

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.mark.parametrize(
    ("utc", "clock", "zone", "date", "utc_clock"),
    [
        (datetime(2024, 1, 15, 13, 3, 12, 900_000, tzinfo=UTC), "14:03:12", "CET", "2024-01-15", "13:03:12"),
        (datetime(2024, 7, 15, 13, 3, 12, tzinfo=UTC), "15:03:12", "CEST", "2024-07-15", "13:03:12"),
        # Local midnight has passed, UTC's has not: the date is the one the team lived.
        (datetime(2024, 7, 15, 22, 30, 0, tzinfo=UTC), "00:30:00", "CEST", "2024-07-16", "22:30:00"),
    ],
)
def test_local_clock_in_a_named_zone(utc: datetime, clock: str, zone: str, date: str, utc_clock: str) -> None:
    assert local_clock(utc, AMSTERDAM) == LocalClock(clock, zone, date, utc_clock)


def test_local_clock_in_utc_is_one_line() -> None:
    assert local_clock(T0, UTC) == LocalClock("14:03:27", "UTC", "2024-05-01", None)


def test_local_clock_of_the_system_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    try:
        assert local_clock(T0, None) == local_clock(T0, AMSTERDAM)
    finally:
        monkeypatch.undo()
        time.tzset()


def changed_rows(a: Image, b: Image) -> npt.NDArray[np.intp]:
    return np.flatnonzero((a != b).any(axis=(1, 2)))


def test_local_time_is_the_clock_line_and_utc_the_line_below() -> None:
    """Judged on pixels: two zones with the same name and different offsets. At the same UTC
    instant only the local clock may differ; at the same local time only the UTC line."""
    plus2 = OverlayRenderer(1280, 720, local_zone=timezone(timedelta(hours=2), "CEST"))
    plus3 = OverlayRenderer(1280, 720, local_zone=timezone(timedelta(hours=3), "CEST"))
    at_t0 = drawn(plus2, quiet(()))
    local_differs = changed_rows(at_t0, drawn(plus3, quiet(())))
    utc_differs = changed_rows(at_t0, drawn(plus3, replace(quiet(()), utc=T0 - timedelta(hours=1))))
    assert local_differs.size and utc_differs.size
    assert utc_differs.min() > local_differs.max(), "UTC is drawn below the local clock"
    # The local clock is the larger text: its line is the taller.
    assert np.ptp(local_differs) > np.ptp(utc_differs)


def test_a_zone_that_is_utc_all_year_draws_the_utc_clock_alone() -> None:
    alone = OverlayRenderer(1280, 720, local_zone=UTC)
    utc_only = drawn(alone, state())
    etc_utc = OverlayRenderer(1280, 720, local_zone=ZoneInfo("Etc/UTC"))
    assert np.array_equal(drawn(etc_utc, state()), utc_only)
    zoned = OverlayRenderer(1280, 720, local_zone=AMSTERDAM)
    assert not np.array_equal(drawn(zoned, state()), utc_only)
    assert zoned.panel_rect[3] > alone.panel_rect[3], "a zone beside UTC takes a line of its own"


def test_the_column_keeps_its_size_when_the_clocks_change() -> None:
    r = OverlayRenderer(1280, 720, local_zone=AMSTERDAM)
    drawn(r, state(utc=datetime(2024, 1, 15, 13, 3, 12, tzinfo=UTC)))
    winter = r.panel_rect
    drawn(r, state(utc=datetime(2024, 7, 15, 13, 3, 12, tzinfo=UTC)))
    assert r.panel_rect == winter


# --- pre-roll -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_an_idle_frame_kept_as_pre_roll_says_so_and_never_in_red(width: int, height: int) -> None:
    r = OverlayRenderer(width, height)
    standby = drawn(r, quiet(()))
    preroll = drawn(r, replace(quiet(()), kept_as_preroll=True))
    assert not np.array_equal(standby, preroll), "PRE-ROLL is not STANDBY"
    assert red_pixels(preroll) == 0 and saturation(panel(r, preroll)).max() <= 6
    # Only the status word changes: the rows below it do not move.
    rows = changed_rows(standby, preroll)
    assert rows.max() < r.panel_rect[1] + 40 * height / 720
    # Once it records, the same frame says REC, whatever the pre-roll flag.
    assert np.array_equal(drawn(r, state(kept_as_preroll=True)), drawn(r, state()))


# --- how many values ------------------------------------------------------------------------------

FIO2 = ShownValue("FiO2", "30", "%", monitor="SLE6000")
PIP = ShownValue("PIP", "25", "cmH2O", monitor="SLE6000")
PEEP = ShownValue("PEEP", "5", "cmH2O", monitor="SLE6000")


def test_values_beyond_the_maximum_are_counted_never_drawn() -> None:
    r = OverlayRenderer(1280, 720, max_values=3)
    with_pip = drawn(r, quiet((HR, SPO2, FIO2, PIP)))
    assert r.values_left_out == 1
    assert np.array_equal(with_pip, drawn(r, quiet((HR, SPO2, FIO2, PEEP)))), "the fourth is not drawn"
    assert not np.array_equal(with_pip, drawn(r, quiet((HR, SPO2, FIO2)))), "+1 more is drawn"
    assert r.values_left_out == 0
    assert not np.array_equal(with_pip, drawn(r, quiet((HR, SPO2, FIO2, PIP, PEEP)))), "+2 more"
    assert r.values_left_out == 2


def test_the_maximum_keeps_the_first_values_given_and_draws_hr_first() -> None:
    r = OverlayRenderer(1280, 720, max_values=2)
    # The configured order decides what is kept; the big digits still come first.
    assert np.array_equal(drawn(r, quiet((FIO2, HR, SPO2, PIP))), drawn(r, quiet((HR, FIO2, PEEP, PIP))))
    assert r.values_left_out == 2


def test_the_note_counts_values_beyond_the_maximum_and_beyond_the_column() -> None:
    values = (HR, SPO2, *(ShownValue(f"P{i}", str(i), "cmH2O") for i in range(30)))
    capped, uncapped = OverlayRenderer(1280, 720, max_values=25), OverlayRenderer(1280, 720)
    # The column holds fewer than 23 rows at 720p: the cap and the column's end both leave
    # values out, and the one note counts them all.
    assert np.array_equal(drawn(capped, state(values=values)), drawn(uncapped, state(values=values)))
    assert capped.values_left_out == uncapped.values_left_out > 32 - 25


def test_max_values_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_values"):
        OverlayRenderer(1280, 720, max_values=0)
