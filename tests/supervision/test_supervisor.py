"""The one supervised loop, with a device made to order: states, back-off, logs once, a failing
receiver, a prompt stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from supervision.backoff import Backoff
from supervision.supervisor import Supervisor


def wait_for(check: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return False


class Device:
    """Opens when ``plugged``; delivers ``per_connection`` items, then is lost."""

    def __init__(self, per_connection: int = 3) -> None:
        self.plugged = threading.Event()
        self.plugged.set()
        self.per_connection = per_connection
        self.opens: list[float] = []
        self.closes = 0
        self.receiver: Callable[[int], None] = lambda i: None

    def describe(self) -> str:
        return "a test device"

    def open(self) -> None:
        self.opens.append(time.monotonic())
        if not self.plugged.is_set():
            raise OSError("unplugged")

    def serve(self, device: Supervisor) -> str:
        for i in range(self.per_connection):
            if device.stopping.is_set():
                return "stopped"
            device.delivered(time.monotonic_ns())
            try:
                self.receiver(i)
            except Exception:
                device.callback_failed(time.monotonic_ns(), "receiver")
        return "ran dry"

    def close(self) -> None:
        self.closes += 1


def test_states_and_each_change_logged_once() -> None:
    dev = Device(per_connection=2)
    dev.plugged.clear()
    with capture_logs() as logs:
        sup = Supervisor("camera", "cam", dev, backoff=Backoff(0.01, 0.02))
        assert sup.health().state == "connecting"
        sup.start()
        assert wait_for(lambda: len(dev.opens) >= 4)  # retried, quietly
        lost = sup.health()
        assert lost.state == "lost" and lost.last_error == "open failed: OSError: unplugged"
        assert lost.lost_since_utc is not None and sup.lost_since() == lost.lost_since_utc
        dev.plugged.set()
        assert wait_for(lambda: sup.health().delivered >= 6)
        dev.plugged.clear()
        assert wait_for(lambda: len(dev.opens) >= 12)
        assert sup.stop()
    events = [e["event"] for e in logs]
    # The first delivery is "live" (not a recovery); each loss after it is logged once.
    assert events[0] == "camera_lost" and events[1] == "camera_live"
    assert events.count("camera_live") == 1
    assert sup.health().state == "stopped"
    assert dev.closes == len(dev.opens)  # every open matched by a close


def test_backoff_doubles_to_its_cap_and_starts_again_after_a_connection_that_delivered() -> None:
    backoff = Backoff(0.5, 2.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.next() == 0.5
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_a_device_that_opens_and_dies_is_not_hammered() -> None:
    dev = Device(per_connection=0)  # opens, delivers nothing, ends
    sup = Supervisor("monitor", "ox", dev, backoff=Backoff(0.02, 0.08))
    sup.start()
    assert wait_for(lambda: len(dev.opens) >= 6, 3.0)
    sup.stop()
    gaps = [b - a for a, b in zip(dev.opens, dev.opens[1:], strict=False)]
    assert gaps[0] < 0.06 and gaps[-1] > 0.07  # 0.02, 0.04, 0.08, capped
    assert sup.health().reconnects == 0 and sup.health().delivered == 0


def test_a_failing_receiver_is_counted_never_fatal() -> None:
    dev = Device(per_connection=10**9)

    def broken(i: int) -> None:
        raise RuntimeError("bug downstream")

    dev.receiver = broken
    with capture_logs() as logs:
        sup = Supervisor("audio", "mic", dev, callback_log_interval_s=60)
        sup.start()
        assert wait_for(lambda: sup.health().callback_errors >= 100)
        assert sup.health().state == "live"
        sup.stop()
    assert [e["event"] for e in logs].count("audio_callback_failed") == 1  # logged sparingly


def test_stop_is_prompt_during_a_long_backoff() -> None:
    dev = Device()
    dev.plugged.clear()
    sup = Supervisor("button", "button", dev, backoff=Backoff(30, 60))
    sup.start()
    assert wait_for(lambda: sup.health().state == "lost")
    t = time.monotonic()
    assert sup.stop(2.0)
    assert time.monotonic() - t < 0.5
    with pytest.raises(RuntimeError):
        sup.start()  # runs once


class FakeClock:
    """Monotonic nanoseconds that move only when a test (or the back-off below) moves them."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.ns = int(start_s * 1e9)

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)


class PolicyTime(Backoff):
    """The policy's waits, recorded and passed on the fake clock instead of slept."""

    def __init__(self, clock: FakeClock, initial_s: float, maximum_s: float) -> None:
        super().__init__(initial_s, maximum_s)
        self.clock = clock
        self.waits: list[float] = []

    def next(self) -> float:
        wait = super().next()
        self.waits.append(wait)
        self.clock.advance(wait)
        return 0.0


class ScriptedDevice:
    """One script entry per connection: an exception fails the open; a number is how many items
    the connection delivers (0.1 s apart on the fake clock) before it runs dry. After the script
    the device opens and stays silent until stopped."""

    def __init__(self, clock: FakeClock, script: list[int | Exception]) -> None:
        self.clock = clock
        self.script = list(script)
        self.current: int | Exception | None = None
        self.done = threading.Event()
        self.closes = 0

    def describe(self) -> str:
        return "a scripted device"

    def open(self) -> None:
        self.current = self.script.pop(0) if self.script else None
        if isinstance(self.current, Exception):
            raise self.current

    def serve(self, device: Supervisor) -> str:
        if self.current is None:
            self.done.set()
            device.stopping.wait()
            return "stopped"
        assert isinstance(self.current, int)
        for _ in range(self.current):
            self.clock.advance(0.1)
            device.delivered(self.clock())
        return "ran dry"

    def close(self) -> None:
        self.closes += 1


def test_backoff_doubles_while_retries_fail_and_starts_again_after_a_recovery() -> None:
    clock = FakeClock()
    unplugged = OSError("unplugged")
    dev = ScriptedDevice(clock, [unplugged, unplugged, unplugged, 5, unplugged, unplugged, 3])
    policy = PolicyTime(clock, 1.0, 4.0)
    with capture_logs() as logs:
        sup = Supervisor("monitor", "ox", dev, clock_ns=clock, backoff=policy)
        sup.start()
        assert dev.done.wait(3.0)
        health = sup.health()
        assert sup.stop()
    # 1, 2, 4 while the open fails; back to 1 after the connection that delivered; and again.
    assert policy.waits == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0, 1.0]
    # Each change of state is one line; the failed retries in between are none.
    assert [e["event"] for e in logs] == [
        "monitor_lost",
        "monitor_live",
        "monitor_lost",
        "monitor_recovered",
        "monitor_lost",
    ]
    recovered = next(e for e in logs if e["event"] == "monitor_recovered")
    assert recovered["lost_for_s"] == 7.1  # waits 1 + 2 + 4, then the first item 0.1 s in
    assert recovered["reconnects"] == 1 and recovered["monitor"] == "ox"
    assert health.state == "lost" and health.last_error == "ran dry"  # the last one fell silent
    assert health.delivered == 8 and health.reconnects == 1
    assert health.lost_since_ns == health.since_ns == clock.ns - int(1e9)  # lost, then waited 1 s
    assert health.rate == 10.0  # the last connection's three items, 0.1 s apart
    assert dev.closes == 8  # every connection closed, the failed opens too
    assert sup.health().state == "stopped" and not sup.running


def test_rate_counts_only_recent_items() -> None:
    clock = FakeClock()
    dev = ScriptedDevice(clock, [4])
    sup = Supervisor("camera", "cam", dev, clock_ns=clock, backoff=PolicyTime(clock, 10.0, 10.0))
    sup.start()
    assert dev.done.wait(3.0)
    assert sup.health().rate == 0.0  # the four items are 10 s old: nothing arrives now
    sup.stop()


class Breaking(Device):
    """Delivers once, then raises from the read; its close fails too."""

    def serve(self, device: Supervisor) -> str:
        device.delivered(time.monotonic_ns())
        raise ValueError("bad frame")

    def close(self) -> None:
        self.closes += 1
        raise OSError("gone")


def test_a_device_that_raises_is_lost_with_its_words_and_retried() -> None:
    dev = Breaking()
    with capture_logs() as logs:
        sup = Supervisor("camera", "cam", dev, backoff=Backoff(0.01, 0.01))
        sup.start()
        assert wait_for(lambda: len(dev.opens) >= 3)
        health = sup.health()
        assert sup.stop()
    assert health.last_error == "ValueError: bad frame"
    assert health.reconnects >= 1  # each connection delivered, so each reopen is a recovery
    assert any(e["event"] == "camera_close_failed" and e["error"] == "OSError: gone" for e in logs)
    assert dev.closes >= 3


def test_every_device_reports_the_same_fields_under_the_same_names() -> None:
    from dataclasses import fields

    from control.button import ButtonHealth
    from supervision.health import STATES, DeviceHealth
    from vitals.link import LinkHealth

    common = [f.name for f in fields(DeviceHealth)]
    for extended in (LinkHealth, ButtonHealth):
        assert [f.name for f in fields(extended)][: len(common)] == common
    assert STATES == ("connecting", "live", "lost", "stopped")
