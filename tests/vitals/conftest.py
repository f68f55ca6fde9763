"""Fixtures for the vitals tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vitals_testkit import Collector, MonitorServer


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def monitor_server() -> Iterator[MonitorServer]:
    server = MonitorServer()
    server.start()
    yield server
    server.stop()
