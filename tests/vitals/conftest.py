"""Fixtures for the vitals tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import serial
from structlog.testing import capture_logs

# The shared checks live in vitals_testkit, which pytest does not rewrite as it does test modules:
# without this their bare asserts would fail without showing the values compared.
pytest.register_assert_rewrite("vitals_testkit")

from vitals_testkit import Collector, MonitorServer  # noqa: E402 - after the rewrite is registered

from vitals.pty import PtyPair, open_pty_pair  # noqa: E402


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def monitor_server() -> Iterator[MonitorServer]:
    server = MonitorServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    pair = open_pty_pair()
    yield pair
    pair.close()


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """What the code under test logged (and kept off the output)."""
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def wire() -> Iterator[tuple[socket.socket, int]]:
    """Both ends of a cable: the host's socket, and the descriptor a simulator is given."""
    host, device = socket.socketpair()
    yield host, device.fileno()
    host.close()
    device.close()


@pytest.fixture
def port_opens(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The settings of every port opened through ``serial.serial_for_url`` (which still opens it)."""
    opened: list[dict[str, Any]] = []
    real = serial.serial_for_url

    def spy(url: str, **kwargs: Any) -> Any:
        opened.append(kwargs)
        return real(url, **kwargs)

    monkeypatch.setattr(serial, "serial_for_url", spy)
    return opened
