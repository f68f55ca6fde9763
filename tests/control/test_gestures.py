"""The gesture recognizer: every press sequence as a row, with bounce, ticks and interruptions.

Steps are written ``d<ms>`` (reading: pressed), ``u<ms>`` (reading: released) and ``t<ms>``
(tick); each gesture is written ``<gesture>@<ms of the call that reported it>``. Default timings:
debounce 30 ms, double window 400 ms, long press 3 s, longest press 10 s.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.gestures import Gesture, GestureRecognizer

MS = 1_000_000


def run(steps: str, recognizer: GestureRecognizer | None = None) -> list[str]:
    rec = recognizer or GestureRecognizer()
    seen: list[str] = []
    for step in steps.split():
        kind, t = step[0], int(float(step[1:]) * MS)
        got = rec.tick(t) if kind == "t" else rec.edge(kind == "d", t)
        seen += [f"{g}@{step[1:]}" for g in got]
    return seen


TABLE = [
    ("tap: reported when the double window has passed", "d0 u100 t499 t500", ["short@500"]),
    ("tap: a late tick still reports it", "d0 u100 t5000", ["short@5000"]),
    ("tap: repeated readings are not edges", "d0 d10 d20 u100 u110 t500", ["short@500"]),
    (
        "tap with contact bounce on press and release: one short",
        "d0 u2 d4 u6 d9 u150 d152 u155 t554 t555",
        ["short@555"],
    ),
    ("glitch shorter than the debounce: nothing", "d0 u29 t1000", []),
    ("a press held exactly the debounce time counts", "d0 u30 t1000", ["short@1000"]),
    ("a dropout while held does not split the press", "d0 u1000 d1010 u2000 t2400", ["short@2400"]),
    ("double", "d0 u100 d300 u400 t429 t430", ["double@430"]),
    ("double: second press just inside the window", "d0 u100 d499 u600 t630", ["double@630"]),
    (
        "double with bounce on every edge",
        "d0 u3 d6 u100 d104 u107 d300 u301 d305 u400 d402 u404 t434",
        ["double@434"],
    ),
    (
        "second press after the window: two shorts",
        "d0 u100 d500 u600 t1000",
        ["short@500", "short@1000"],
    ),
    (
        "triple tap: a double, then a short",
        "d0 u100 d200 u300 t330 d400 u500 t900",
        ["double@330", "short@900"],
    ),
    (
        "long: armed at 3 s, confirmed on release",
        "d0 t2999 t3000 u3500 t3530",
        ["long_armed@3000", "long@3530"],
    ),
    ("long: release seen before any tick", "d0 u3500 t3530", ["long_armed@3500", "long@3530"]),
    (
        "released just before 3 s while the release was still bouncing: a short, never armed",
        "d0 u2990 t3000 t3020 t3389 t3390",
        ["short@3390"],
    ),
    (
        "release bounce while armed: one long",
        "d0 t3000 u3500 d3505 u3510 t3539 t3540",
        ["long_armed@3000", "long@3540"],
    ),
    (
        "held beyond 10 s: cancelled, and the release does nothing",
        "d0 t3000 t9999 t10000 u12000 t12030 t20000",
        ["long_armed@3000", "long_cancelled@10000"],
    ),
    (
        "after a cancelled press the next tap works",
        "d0 t3000 t10000 u12000 d13000 u13100 t13500",
        ["long_armed@3000", "long_cancelled@10000", "short@13500"],
    ),
    ("one late tick past both limits", "d0 t30 t11000", ["long_armed@11000", "long_cancelled@11000"]),
    (
        "a press in the double window that becomes long: the tap, then a long press",
        "d0 u100 d300 t3299 t3300 u4000 t4030",
        ["short@3300", "long_armed@3300", "long@4030"],
    ),
    (
        "a press in the double window held past 10 s",
        "d0 u100 d300 t3300 t10300 u11000 t12000",
        ["short@3300", "long_armed@3300", "long_cancelled@10300"],
    ),
]


@pytest.mark.parametrize(("steps", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_sequence(steps: str, expected: list[str]) -> None:
    assert run(steps) == expected


def test_timings_are_configurable() -> None:
    rec = GestureRecognizer(debounce_ms=0, double_press_ms=100, long_press_s=1.0, long_press_max_s=2.0)
    assert run("d0 u50 t149 t150 d200 t1199 t1200 u1300", rec) == [
        "short@150",
        "long_armed@1200",
        "long@1300",
    ]


def test_without_doubles_a_tap_is_reported_on_release() -> None:
    rec = GestureRecognizer(double_press_ms=0)
    assert run("d0 u100 t129 t130 d200 u300 t330", rec) == ["short@130", "short@330"]


def test_armed_property_follows_the_hold() -> None:
    rec = GestureRecognizer()
    rec.edge(True, 0)
    rec.tick(3000 * MS)
    assert rec.armed
    assert rec.edge(False, 3100 * MS) == []
    assert rec.armed  # the release is still being debounced
    assert rec.tick(3130 * MS) == [Gesture.LONG]
    assert not rec.armed


def test_time_going_backwards_is_taken_as_the_last_time() -> None:
    assert run("d1000 u1100 t900 t1499 t1500") == ["short@1500"]


# -- interruptions: the device is lost or read afresh ---------------------------------------------


def test_resync_reports_a_finished_tap() -> None:
    rec = GestureRecognizer()
    rec.edge(True, 0)
    rec.edge(False, 100 * MS)
    rec.tick(200 * MS)
    assert rec.resync(250 * MS) == [Gesture.SHORT]


def test_resync_while_armed_cancels_the_discard() -> None:
    rec = GestureRecognizer()
    rec.edge(True, 0)
    assert rec.tick(3000 * MS) == [Gesture.LONG_ARMED]
    assert rec.resync(3500 * MS) == [Gesture.LONG_CANCELLED]
    assert not rec.armed


def test_resync_forgets_a_press_in_progress() -> None:
    rec = GestureRecognizer()
    rec.edge(True, 0)
    assert rec.resync(1000 * MS) == []
    assert rec.resync(1100 * MS) == []  # twice is harmless


def test_a_button_already_down_after_resync_is_ignored_until_released() -> None:
    rec = GestureRecognizer()
    rec.resync(0)
    assert rec.edge(True, 10 * MS) == []  # held (or stuck) when we started reading
    assert rec.tick(20_000 * MS) == []  # never arms, never cancels
    assert run("u20100 d21000 u21100 t21500", rec) == ["short@21500"]


def test_a_released_baseline_then_a_tap() -> None:
    rec = GestureRecognizer()
    rec.resync(0)
    assert run("u0 d100 u200 t600", rec) == ["short@600"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"debounce_ms": -1},
        {"double_press_ms": -1},
        {"long_press_s": 0},
        {"long_press_s": 3.0, "long_press_max_s": 3.0},
    ],
)
def test_impossible_timings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GestureRecognizer(**kwargs)


# -- bounce never changes the outcome -------------------------------------------------------------

# Clean sequences: (times in ms of alternating press/release readings, expected gestures).
CLEAN = {
    "tap": ([0, 200], [Gesture.SHORT]),
    "double": ([0, 200, 450, 650], [Gesture.DOUBLE]),
    "long": ([0, 4000], [Gesture.LONG_ARMED, Gesture.LONG]),
    "tap then hold": ([0, 200, 450, 5000], [Gesture.SHORT, Gesture.LONG_ARMED, Gesture.LONG]),
}

even_bursts = st.lists(st.floats(0.05, 10.0), max_size=6).map(lambda g: g[: len(g) // 2 * 2])
bursts = st.lists(even_bursts, min_size=4, max_size=4)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(CLEAN)), gaps=bursts, poll=st.sampled_from([0, 10, 20]))
def test_contact_bounce_never_adds_or_loses_a_gesture(name: str, gaps: list[list[float]], poll: int) -> None:
    times, expected = CLEAN[name]
    rec = GestureRecognizer()
    got: list[Gesture] = []
    for i, start in enumerate(times):
        pressed = i % 2 == 0
        t = float(start * MS)
        got += rec.edge(pressed, int(t))
        # An even number of extra toggles, each closer than the debounce: ends where it began.
        state = pressed
        for gap in gaps[i]:
            t += gap * MS
            state = not state
            got += rec.edge(state, int(t))
        if poll:  # a poller between this edge and the next
            nxt = times[i + 1] if i + 1 < len(times) else start + 200
            for tick in range(start + poll, nxt, poll):
                got += rec.tick(tick * MS)
    got += rec.tick((times[-1] + 20_000) * MS)
    assert got == expected
