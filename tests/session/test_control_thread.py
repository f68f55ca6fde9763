"""Session control on its own thread: the button is polled and its lamp blinks while a stop is
being carried out, and events from every thread are carried out one at a time, in order.

The button is the production path on pyserial's ``loop://`` port, where RTS shows on CTS (the
test presses through RTS) and DTR on DSR (the lamp, read back on DSR). A segment file made slow
on purpose stands for a disk that takes seconds to finish a camera's last segment.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from test_controller import Station, video

from control.button import ButtonController, ModemLineButton
from control.gestures import Gesture, GestureRecognizer
from session.directory import SessionDirectory
from session.machine import Event

SLOW_CLOSE_S = 3.0
LONG_PRESS_S = 0.6


class SlowSegment:
    """A segment file whose close takes ``SLOW_CLOSE_S`` (a disk that stalls)."""

    closing = threading.Event()  # set once a close has begun
    closed = threading.Event()  # set once it has finished

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, data: bytes, /) -> int:
        written: int = self._inner.write(data)
        return written

    def close(self) -> None:
        SlowSegment.closing.set()
        time.sleep(SLOW_CLOSE_S)
        self._inner.close()
        SlowSegment.closed.set()

    def abort(self) -> None:
        self._inner.abort()


class SeenButton(ModemLineButton):
    """The real modem-line button, noting when a poll first sees it pressed."""

    def __init__(self) -> None:
        super().__init__("loop://", line="CTS", supply_line=None, lamp_line="DTR")
        self.first_seen_ns: int | None = None

    def pressed(self) -> bool | None:
        level = super().pressed()
        if level and self.first_seen_ns is None:
            self.first_seen_ns = time.monotonic_ns()
        return level


@pytest.fixture
def station(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Station]:
    SlowSegment.closing.clear()
    SlowSegment.closed.clear()
    opened = SessionDirectory.open_segment

    def slow_open(self: SessionDirectory, camera: str, index: int) -> Any:
        return SlowSegment(opened(self, camera, index))

    monkeypatch.setattr(SessionDirectory, "open_segment", slow_open)
    made = Station(tmp_path, ("closeup",), "[button]\nidle_long_press = \"nothing\"\n", lambda: 0)
    made.controller.start()
    yield made
    made.controller.stop()
    made.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_press_while_a_segment_is_finalised_is_seen_at_once_and_the_lamp_blinks(station: Station) -> None:
    c = station.controller
    gestures: list[Gesture] = []
    source = SeenButton()

    def on_gesture(g: Gesture) -> None:
        gestures.append(g)
        c.on_gesture(g)

    button = ButtonController(
        source,
        on_gesture,
        lamp=c.lamp,
        recognizer=GestureRecognizer(double_press_ms=200, long_press_s=LONG_PRESS_S),
    )
    button.start()
    try:
        wait_until(lambda: source.port is not None, 5, "the button's port to open")
        port: serial.Serial = source.port  # type: ignore[assignment]
        c.handle(Event.START, by="command line")
        for i in range(22):  # 1.5 s of video: a segment is open (they are 2 s long)
            station.recorders[0].write(video(i))
        # A tap stops the recording: the stop is carried out on the control thread, where the
        # camera's last segment takes SLOW_CLOSE_S to close.
        port.rts = True
        time.sleep(0.1)
        port.rts = False
        wait_until(SlowSegment.closing.is_set, 5, "the stop to reach the segment's close")
        assert gestures == [Gesture.SHORT]

        # Pressed again while that close is still going on: the button thread sees it at once.
        source.first_seen_ns = None
        pressed_ns = time.monotonic_ns()
        port.rts = True
        wait_until(lambda: source.first_seen_ns is not None, 2, "the press to be seen")
        assert source.first_seen_ns is not None
        seen_after_s = (source.first_seen_ns - pressed_ns) / 1e9
        assert seen_after_s <= 0.1, f"the press was seen {seen_after_s:.3f} s after it was made"

        # Held past the long press: "release to discard" blinks fast, still during the close.
        wait_until(lambda: Gesture.LONG_ARMED in gestures, LONG_PRESS_S + 1, "the long press to arm")
        levels = []
        for _ in range(100):  # 1 s at 10 ms: 2.5 flashes a second show as about 5 changes
            levels.append(port.dsr)
            time.sleep(0.01)
        assert not SlowSegment.closed.is_set(), "the slow close ended before the lamp was read"
        changes = sum(1 for a, b in itertools.pairwise(levels) if a != b)
        assert changes >= 3, f"the lamp changed {changes} times in 1 s while the stop went on"
        port.rts = False  # released: consent refused for the recording just stopped
    finally:
        wait_until(lambda: Gesture.LONG in gestures, 3, "the release")
        c.drain()
        button.stop()

    # Carried out in the order they came: the stop, then the discard of what it stopped.
    assert [e["event"] for e in station.entries() if e["event"].startswith("recording_")] == [
        "recording_started",
        "recording_stopped",
        "recording_discarded",
    ]
    assert not c.recording and not any(station.recordings.iterdir())


def test_events_from_many_threads_are_carried_out_on_the_control_thread_one_at_a_time(
    station: Station,
) -> None:
    c = station.controller
    ran_on: set[str] = set()
    original = c._handle

    def spy(event: Event, **kwargs: Any) -> dict[str, Any]:
        ran_on.add(threading.current_thread().name)
        return original(event, **kwargs)

    c._handle = spy  # type: ignore[method-assign]
    replies: list[dict[str, Any]] = []

    def press_start() -> None:
        replies.append(c.handle(Event.START, by="command line"))

    threads = [threading.Thread(target=press_start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    c.tick()
    c.drain()
    assert ran_on == {"session-control"}
    assert len(replies) == 8 and all(r["ok"] for r in replies)
    assert [e["event"] for e in station.entries("recording_started")] == ["recording_started"]
    c.handle(Event.STOP, by="command line")
