"""The one supervised loop, with a device made to order: states, back-off, logs once, a failing
receiver, a prompt stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from supervision.health import Backoff
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
