"""Button sources and the supervised controller.

The controller runs on a stepping clock (each call is 20 ms later), so a 3 s hold takes some
hundred-odd polls and well under a second, whatever the machine's load. Modem lines go through
pyserial's ``loop://``, where RTS shows on CTS and DTR on DSR; evdev through a stand-in module.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from control.button import (
    EV_KEY,
    EV_SYN,
    SYN_DROPPED,
    SYN_REPORT,
    ButtonController,
    ButtonSource,
    EvdevButton,
    KeyState,
    ModemLineButton,
    ScriptedButton,
)
from control.gestures import Gesture, GestureRecognizer
from control.lamp import lamp_level, lamp_pattern

MS = 1_000_000
KEY_ENTER = 28
FAST: dict[str, Any] = {"backoff_initial_s": 0.001, "backoff_max_s": 0.005, "poll_ms": 1}


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class SteppingClock:
    """Every call is ``step_ms`` later than the one before; ``peek`` reads without stepping."""

    def __init__(self, step_ms: int = 20) -> None:
        self._now = 0
        self._step = step_ms * MS
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._now += self._step
            return self._now

    def peek(self) -> int:
        with self._lock:
            return self._now


class Recorder:
    """The daemon's side: gestures in, lamp level out, both on the controller's thread."""

    def __init__(self, recording: bool = False) -> None:
        self.gestures: list[Gesture] = []
        self.recording = recording
        self.armed = False

    def on_gesture(self, gesture: Gesture) -> None:
        self.gestures.append(gesture)
        self.armed = gesture is Gesture.LONG_ARMED

    def lamp(self, t_ns: int) -> bool:
        return lamp_level(lamp_pattern(self.recording, self.armed, do_not_record=False), t_ns)


def run_script(
    script: list[tuple[float, bool | None]], until_s: float, recorder: Recorder | None = None, **kwargs: Any
) -> tuple[Recorder, ScriptedButton, ButtonController]:
    clock = SteppingClock()
    button = ScriptedButton(script, clock_ns=clock.peek)
    rec = recorder or Recorder()
    controller = ButtonController(button, rec.on_gesture, lamp=rec.lamp, clock_ns=clock, **{**FAST, **kwargs})
    controller.start()
    try:
        assert wait_for(lambda: clock.peek() > until_s * 1e9)
    finally:
        assert controller.stop()
    return rec, button, controller


# -- the controller, on a scripted button ---------------------------------------------------------


def test_tap_is_a_short() -> None:
    rec, _, controller = run_script([(0.5, True), (0.6, False)], until_s=1.5)
    assert rec.gestures == [Gesture.SHORT]
    assert controller.health().gestures == 1
    assert controller.health().state == "stopped"


def test_double_tap_is_a_double() -> None:
    rec, *_ = run_script([(0.5, True), (0.6, False), (0.8, True), (0.9, False)], until_s=2)
    assert rec.gestures == [Gesture.DOUBLE]


def test_hold_arms_then_release_confirms_and_the_lamp_blinks_meanwhile() -> None:
    rec, button, _ = run_script([(0.5, True), (4.5, False)], until_s=5.5)
    assert rec.gestures == [Gesture.LONG_ARMED, Gesture.LONG]
    changes = button.lamp_changes
    assert changes[0][1] is False  # dark while idle, set once on connect
    lit = [at for at, on in changes if on]
    # Armed at 3.5 s, released at 4.5 s (seen 30 ms later): fast blink in between, dark after.
    assert lit and all(3.5 <= at <= 4.6 for at in lit)
    assert len(lit) >= 2
    assert changes[-1][1] is False


def test_lamp_follows_the_callback_not_the_button() -> None:
    _, button, _ = run_script([], until_s=1, recorder=Recorder(recording=True))
    assert [on for _, on in button.lamp_changes] == [True]  # set once, not on every poll


def test_a_failing_callback_is_counted_and_polling_goes_on() -> None:
    clock = SteppingClock()
    button = ScriptedButton([(0.2, True), (0.3, False), (1.5, True), (1.6, False)], clock_ns=clock.peek)
    seen: list[Gesture] = []

    def on_gesture(gesture: Gesture) -> None:
        seen.append(gesture)
        raise RuntimeError("daemon bug")

    with capture_logs() as logs:
        controller = ButtonController(button, on_gesture, lamp=lambda t: False, clock_ns=clock, **FAST)
        controller.start()
        assert wait_for(lambda: clock.peek() > 2.5e9)
        controller.stop()
    assert seen == [Gesture.SHORT, Gesture.SHORT]
    assert controller.health().callback_errors == 2
    # Logged once per minute of the controller's clock, not per failure.
    assert len([e for e in logs if e["event"] == "button_callback_failed"]) == 1


def test_unplugged_and_back_reconnects_logging_each_change_once() -> None:
    script: list[tuple[float, bool | None]] = [(0.3, None), (1.0, False), (1.5, True), (1.6, False)]
    with capture_logs() as logs:
        rec, button, controller = run_script(script, until_s=2.5)
    assert rec.gestures == [Gesture.SHORT]
    assert button.opens == 2  # the failed opens in between do not count
    health = controller.health()
    assert health.reconnects == 1
    assert health.last_error == "open failed: OSError: scripted button is unplugged"
    names = [e["event"] for e in logs if e["event"].startswith("button_") and e["event"] != "button_gesture"]
    assert names == ["button_live", "button_lost", "button_recovered"]


def test_unplugged_while_armed_cancels_the_discard() -> None:
    rec, *_ = run_script([(0.2, True), (3.5, None), (4.0, False)], until_s=4.5)
    assert rec.gestures == [Gesture.LONG_ARMED, Gesture.LONG_CANCELLED]
    assert not rec.armed


def test_a_button_held_through_a_reconnect_is_not_a_press() -> None:
    script: list[tuple[float, bool | None]] = [
        (0.2, True), (1.0, None), (1.5, True), (5.0, False), (5.5, True), (5.6, False)
    ]  # fmt: skip
    rec, *_ = run_script(script, until_s=6.5)
    assert rec.gestures == [Gesture.SHORT]  # only the tap after it


def test_a_button_stuck_from_the_start_does_nothing() -> None:
    rec, *_ = run_script([(0.0, True)], until_s=12)
    assert rec.gestures == []


def test_recognizer_timings_come_from_the_owner() -> None:
    recognizer = GestureRecognizer(long_press_s=1.0, long_press_max_s=2.0)
    rec, *_ = run_script([(0.2, True), (1.5, False)], until_s=2, recognizer=recognizer)
    assert rec.gestures == [Gesture.LONG_ARMED, Gesture.LONG]


def test_scripted_button_rejects_an_unordered_script() -> None:
    with pytest.raises(ValueError, match="time order"):
        ScriptedButton([(1.0, True), (0.5, False)])


def test_every_source_fits_the_interface() -> None:
    sources: list[ButtonSource] = [ModemLineButton("loop://"), EvdevButton("/dev/null"), ScriptedButton([])]
    assert all(s.describe() for s in sources)


# -- modem lines through loop:// ------------------------------------------------------------------


@pytest.fixture
def loop_button() -> Iterator[ModemLineButton]:
    # On loop:// the test plays the button: RTS (shown on CTS) is the contact, so no supply line.
    button = ModemLineButton("loop://", line="CTS", lamp_line="DTR", supply_line=None)
    button.open()
    yield button
    button.close()


def test_modem_line_reads_the_contact(loop_button: ModemLineButton) -> None:
    port = loop_button.port
    assert port is not None
    assert loop_button.pressed() is False  # unused outputs start off
    port.rts = True
    assert loop_button.pressed() is True
    port.rts = False
    assert loop_button.pressed() is False


def test_modem_line_drives_the_lamp(loop_button: ModemLineButton) -> None:
    port = loop_button.port
    assert port is not None
    assert port.dsr is False  # the lamp starts dark
    loop_button.set_lamp(True)
    assert port.dsr is True
    loop_button.set_lamp(False)
    assert port.dsr is False


def test_modem_line_active_low() -> None:
    button = ModemLineButton("loop://", line="DSR", lamp_line=None, supply_line=None, active_low=True)
    button.open()
    try:
        assert button.port is not None
        assert button.pressed() is True  # DTR (shown on DSR) off: the normally-closed contact is open
        button.port.dtr = True
        assert button.pressed() is False
    finally:
        button.close()


def test_modem_line_supply_is_on_from_the_start() -> None:
    button = ModemLineButton("loop://", line="CTS", supply_line="RTS", lamp_line="DTR")
    button.open()
    try:
        # On loop:// the supply shows on CTS itself, as if the button were held.
        assert button.pressed() is True
        assert button.port is not None and button.port.dsr is False
    finally:
        button.close()
    assert button.port is None and button.pressed() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"line": "TX"}, "line must be"),
        ({"lamp_line": "CTS"}, "lamp_line must be"),
        ({"lamp_line": "RTS", "supply_line": "RTS"}, "both the lamp and"),
    ],
)
def test_modem_line_refuses_impossible_wiring(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModemLineButton("loop://", **kwargs)


def test_modem_line_describes_its_wiring() -> None:
    assert ModemLineButton("/dev/ttyUSB0").describe() == "button on CTS from RTS of /dev/ttyUSB0, lamp on DTR"


def test_controller_on_loop_port_press_lamp_and_reconnect() -> None:
    button = ModemLineButton("loop://", supply_line=None)
    rec = Recorder()
    recognizer = GestureRecognizer(double_press_ms=100)
    with capture_logs() as logs:
        controller = ButtonController(button, rec.on_gesture, lamp=rec.lamp, recognizer=recognizer, **FAST)
        controller.start()
        try:
            assert wait_for(lambda: controller.health().state == "live")
            port = button.port
            assert port is not None
            port.rts = True
            time.sleep(0.15)
            port.rts = False
            assert wait_for(lambda: rec.gestures == [Gesture.SHORT])
            rec.recording = True
            assert wait_for(lambda: port.dsr)  # the lamp shows the recording
            port.close()  # the adapter vanishes
            assert wait_for(lambda: controller.health().reconnects == 1)
            assert button.port is not port and button.port is not None
            assert wait_for(lambda: button.port is not None and button.port.dsr)  # lamp set again
        finally:
            assert controller.stop()
    assert button.port is None
    lost = [e for e in logs if e["event"] == "button_lost"]
    assert len(lost) == 1 and "PortNotOpenError" in lost[0]["error"]


def test_controller_keeps_retrying_a_missing_port_and_logs_it_once() -> None:
    button = ModemLineButton("/nonexistent/ttyUSB9")
    with capture_logs() as logs:
        controller = ButtonController(button, lambda g: None, lamp=lambda t: False, **FAST)
        controller.start()
        time.sleep(0.1)
        controller.stop()
    health = controller.health()
    assert health.state == "stopped" and health.reconnects == 0
    assert health.last_error is not None and "open failed" in health.last_error
    assert [e["event"] for e in logs] == ["button_lost"]


def test_controller_is_started_once() -> None:
    controller = ButtonController(ScriptedButton([]), lambda g: None, lamp=lambda t: False, **FAST)
    controller.start()
    try:
        with pytest.raises(RuntimeError):
            controller.start()
    finally:
        controller.stop()


# -- USB HID through evdev ------------------------------------------------------------------------


KEY_TABLE = [
    ("down", [(EV_KEY, KEY_ENTER, 1)], True, False),
    ("down then up", [(EV_KEY, KEY_ENTER, 1), (EV_KEY, KEY_ENTER, 0)], False, False),
    ("auto-repeat is still down", [(EV_KEY, KEY_ENTER, 1), (EV_KEY, KEY_ENTER, 2)], True, False),
    ("another key", [(EV_KEY, 57, 1)], False, False),
    ("another event type with our code", [(4, KEY_ENTER, 1)], False, False),
    ("reports are not keys", [(EV_SYN, SYN_REPORT, 0)], False, False),
    (
        "events after SYN_DROPPED are not trusted; the report after them asks for a resync",
        [(EV_SYN, SYN_DROPPED, 0), (EV_KEY, KEY_ENTER, 1), (EV_SYN, SYN_REPORT, 0)],
        False,
        True,
    ),
    (
        "dropped, not yet reported",
        [(EV_SYN, SYN_DROPPED, 0), (EV_KEY, KEY_ENTER, 1)],
        False,
        False,
    ),
]


@pytest.mark.parametrize(
    ("events", "pressed", "resync"), [row[1:] for row in KEY_TABLE], ids=[row[0] for row in KEY_TABLE]
)
def test_key_state(events: list[tuple[int, int, int]], pressed: bool, resync: bool) -> None:
    keys = KeyState(KEY_ENTER)
    for event in events:
        keys.feed(*event)
    assert (keys.pressed, keys.needs_resync) == (pressed, resync)


class FakeInputDevice:
    """Stands in for an ``evdev.InputDevice``: plays the (type, code, value) tuples it is fed."""

    def __init__(self, held: set[int] | None = None) -> None:
        self.pending: list[tuple[int, int, int]] = []
        self.held = set(held or ())
        self.grabbed = self.closed = self.gone = False

    def feed(self, events: Iterable[tuple[int, int, int]]) -> None:
        self.pending.extend(events)

    def read(self) -> Iterator[types.SimpleNamespace]:
        if self.gone:
            raise OSError(19, "No such device")
        if not self.pending:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        events, self.pending = self.pending, []
        return iter(types.SimpleNamespace(type=t, code=c, value=v) for t, c, v in events)

    def active_keys(self) -> list[int]:
        return sorted(self.held)

    def grab(self) -> None:
        self.grabbed = True

    def close(self) -> None:
        self.closed = True


class FakeEvdev:
    """What the test plugs in: event nodes by path, opened through a stand-in ``evdev`` module."""

    def __init__(self) -> None:
        self.devices: dict[str, FakeInputDevice] = {}

    def plug(self, path: str, held: set[int] | None = None) -> FakeInputDevice:
        self.devices[path] = FakeInputDevice(held)
        return self.devices[path]

    def open(self, path: str) -> FakeInputDevice:
        if path not in self.devices:
            raise FileNotFoundError(2, "No such file or directory", path)
        device = self.devices[path]
        device.closed = False
        return device


@pytest.fixture
def fake_evdev(monkeypatch: pytest.MonkeyPatch) -> FakeEvdev:
    fake = FakeEvdev()
    module = types.ModuleType("evdev")
    module.InputDevice = fake.open  # type: ignore[attr-defined]
    module.ecodes = types.SimpleNamespace(ecodes={"KEY_ENTER": KEY_ENTER, "BTN_0": 256})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "evdev", module)
    return fake


def test_evdev_button_follows_key_events(fake_evdev: FakeEvdev) -> None:
    device = fake_evdev.plug("/dev/input/by-id/usb-footswitch-event-kbd")
    button = EvdevButton("/dev/input/by-id/usb-footswitch-event-kbd", "KEY_ENTER")
    button.open()
    assert device.grabbed
    assert button.pressed() is False  # nothing queued
    device.feed([(EV_KEY, KEY_ENTER, 1), (EV_SYN, SYN_REPORT, 0)])
    assert button.pressed() is True
    device.feed([(EV_KEY, KEY_ENTER, 2), (EV_SYN, SYN_REPORT, 0)])
    assert button.pressed() is True
    device.feed([(EV_KEY, KEY_ENTER, 0), (EV_SYN, SYN_REPORT, 0)])
    assert button.pressed() is False
    button.set_lamp(True)  # no lamp: nothing happens
    button.close()
    assert device.closed and button.pressed() is None


def test_evdev_button_starts_from_the_held_keys_and_resyncs_after_a_drop(
    fake_evdev: FakeEvdev,
) -> None:
    device = fake_evdev.plug("/dev/input/event3", held={256})
    button = EvdevButton("/dev/input/event3", 256, grab=False)
    button.open()
    assert not device.grabbed
    assert button.pressed() is True
    device.held.clear()
    device.feed([(EV_SYN, SYN_DROPPED, 0), (EV_KEY, 256, 1), (EV_SYN, SYN_REPORT, 0)])
    assert button.pressed() is False  # from the device's key state, not the unreliable event
    button.close()


def test_evdev_button_unplugged_raises_for_the_controller(fake_evdev: FakeEvdev) -> None:
    device = fake_evdev.plug("/dev/input/event3")
    button = EvdevButton("/dev/input/event3")
    button.open()
    device.gone = True
    with pytest.raises(OSError, match="No such device"):
        button.pressed()
    button.close()


def test_evdev_button_unknown_key_name(fake_evdev: FakeEvdev) -> None:
    fake_evdev.plug("/dev/input/event3")
    with pytest.raises(ValueError, match="unknown key 'KEY_BIGRED'"):
        EvdevButton("/dev/input/event3", "KEY_BIGRED").open()


def test_evdev_button_with_the_controller(fake_evdev: FakeEvdev) -> None:
    device = fake_evdev.plug("/dev/input/event3")
    rec = Recorder()
    recognizer = GestureRecognizer(double_press_ms=100)
    controller = ButtonController(
        EvdevButton("/dev/input/event3"), rec.on_gesture, lamp=rec.lamp, recognizer=recognizer, **FAST
    )
    controller.start()
    try:
        assert wait_for(lambda: controller.health().state == "live")
        device.feed([(EV_KEY, KEY_ENTER, 1), (EV_SYN, SYN_REPORT, 0)])
        time.sleep(0.1)
        device.feed([(EV_KEY, KEY_ENTER, 0), (EV_SYN, SYN_REPORT, 0)])
        assert wait_for(lambda: rec.gestures == [Gesture.SHORT])
    finally:
        controller.stop()
    assert device.closed


def test_a_button_that_fails_mid_read_is_lost_once_with_its_words(fake_evdev: FakeEvdev) -> None:
    device = fake_evdev.plug("/dev/input/event3")
    button = EvdevButton("/dev/input/event3")
    controller = ButtonController(button, lambda g: None, lamp=lambda t: False, **FAST)
    with capture_logs() as logs:
        controller.start()
        try:
            assert wait_for(lambda: controller.health().state == "live")
            device.gone = True  # opens again, fails at every read: retried, quietly
            assert wait_for(lambda: controller.health().state == "lost")
            time.sleep(0.05)
            assert controller.health().last_error == "OSError: [Errno 19] No such device"
            device.gone = False
            assert wait_for(lambda: controller.health().state == "live")
        finally:
            controller.stop()
    names = [e["event"] for e in logs if e["event"].startswith("button_")]
    assert names == ["button_live", "button_lost", "button_recovered"]


class LamplessButton(ScriptedButton):
    """Reads fine; its lamp's output line fails."""

    def set_lamp(self, on: bool) -> None:
        raise OSError("lamp line")


def test_a_failing_lamp_line_is_a_loss_that_says_so() -> None:
    controller = ButtonController(LamplessButton([]), lambda g: None, lamp=lambda t: True, **FAST)
    controller.start()
    try:
        assert wait_for(lambda: controller.health().last_error is not None)
        assert controller.health().last_error == "lamp: OSError: lamp line"
        assert controller.running
    finally:
        controller.stop()


def test_evdev_missing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"pip install neoflix-capture\[hid\]"):
        EvdevButton("/dev/input/event3").open()


def test_evdev_missing_device(fake_evdev: FakeEvdev) -> None:
    with pytest.raises(FileNotFoundError):
        EvdevButton("/dev/input/event9").open()
