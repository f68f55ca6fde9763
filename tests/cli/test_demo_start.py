"""The demo waits for its recording to start, but not forever."""

from __future__ import annotations

from typing import Any

import pytest

from cli.demo import DemoError, wait_for_recording


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_returns_the_status_once_recording() -> None:
    states = iter(["idle", "idle", "recording"])
    clock = Clock()
    status = wait_for_recording(lambda: {"state": next(states), "reason": "vitals"}, 60, clock=clock,
                                sleep=clock.sleep)
    assert status["reason"] == "vitals"


def test_a_trigger_that_never_fires_ends_with_a_clear_error() -> None:
    clock = Clock()
    idle: dict[str, Any] = {"state": "idle", "vitals_samples": 0, "monitors": {"oximeter": {"state": "lost"}}}
    with pytest.raises(DemoError, match=r"did not start by itself within 60 s \(state 'idle', 0 vitals"):
        wait_for_recording(lambda: idle, 60, clock=clock, sleep=clock.sleep)
    assert 60 <= clock.now < 61
