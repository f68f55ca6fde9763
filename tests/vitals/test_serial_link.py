"""SerialLink end to end: simulator → pty or TCP → pyserial → parser → callback, with failures."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import serial
from structlog.testing import capture_logs
from vitals_testkit import FAST_RETRY, STEADY, Collector, MonitorServer, running, wait_for

from vitals.link import SerialLink
from vitals.masimo import MasimoParser
from vitals.pty import PtyPair, open_pty_pair
from vitals.sample import Parameter, VitalSample
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript, masimo_line

RADICAL7_LINE = masimo_line(datetime(2024, 1, 1, 0, 0, 0), 93, 140, 2.0, exc=0x20)
Logs = list[MutableMapping[str, Any]]

# How a link changes state, in the one vocabulary every device logs in.
TRANSITIONS = ("monitor_live", "monitor_lost", "monitor_recovered")


def events(logs: Logs, name: str) -> Logs:
    return [e for e in logs if e["event"] == name]


def make_link(url: str, collector: Collector, **kwargs: Any) -> SerialLink:
    return SerialLink("pox", url, MasimoParser("pox"), collector, **{**FAST_RETRY, **kwargs})


def test_simulator_values_arrive_through_a_real_pty(
    pty_pair: PtyPair, collector: Collector, logs: Logs
) -> None:
    script = StabilisationScript(
        no_sensor_s=0.3, acquire_s=0, spo2_start=91, spo2_end=91, bpm_start=152, bpm_end=152,
        spo2_noise=0, bpm_noise=0, pi_noise=0,
    )  # fmt: skip
    sim = MasimoSimulator(pty_pair.master_fd, interval_s=0.05, script=script)
    ticks = itertools.count(1_000_000, 1000)
    link = make_link(pty_pair.slave_path, collector, clock_ns=lambda: next(ticks))
    assert link.health().state == "connecting"
    with running(link, sim):
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 3)
    assert set(collector.values(Parameter.SPO2)) == {91.0}
    assert set(collector.values(Parameter.HR)) == {152.0}
    # The no-sensor phase came through as dashes, never as numbers.
    assert set(collector.values(Parameter.SPO2, valid=False)) == {None}
    assert all(s.monitor == "pox" and s.source == "pleth" for s in collector.samples)
    health = link.health()
    assert health.stats.records_ok >= 3
    assert health.stats.bytes_in > 0
    # Stamps come from the injected clock, in arrival order.
    stamps = [s.host_ns for s in collector.samples]
    assert stamps == sorted(stamps) and stamps[0] >= 1_000_000
    assert health.last_sample_ns == stamps[-1]
    assert len(events(logs, "monitor_live")) == 1


def test_link_survives_the_pty_vanishing_and_follows_a_new_one(
    tmp_path: Path, collector: Collector, logs: Logs
) -> None:
    # The link opens a stable name, as udev gives a USB adapter; a bare /dev/pts/N can be reused
    # by any other pty on the machine the moment ours closes.
    stable = tmp_path / "monitor-0"
    first = open_pty_pair()
    stable.symlink_to(first.slave_path)
    sim = MasimoSimulator(first.master_fd, interval_s=0.05, script=STEADY)
    link = make_link(str(stable), collector)
    link.start()
    second: PtyPair | None = None
    try:
        assert wait_for(lambda: link.health().port_open)
        assert link.health().state == "connecting"  # open, but nothing has arrived yet
        sim.start()
        assert wait_for(lambda: link.health().state == "live")
        assert wait_for(lambda: collector.count() > 0)
        # The adapter is pulled: its name goes, then the device.
        sim.stop()
        stable.unlink()
        first.close()
        assert wait_for(lambda: link.health().state == "lost", 2.0)
        time.sleep(0.6)  # several retries against a name that is not there
        health = link.health()
        assert health.state == "lost"
        assert "No such file" in (health.last_error or "")
        assert link.running
        # It is plugged back in and comes up under the same name.
        second = open_pty_pair()
        stable.symlink_to(second.slave_path)
        before = collector.count()
        sim = MasimoSimulator(second.master_fd, interval_s=0.05, script=STEADY)
        assert wait_for(lambda: link.health().port_open, 2.0)
        assert link.health().state == "lost"  # the port is back, the monitor not yet
        sim.start()
        assert wait_for(lambda: collector.count() > before, 2.0)
        assert link.health().state == "live"
    finally:
        sim.stop()
        t = time.monotonic()
        link.stop()
        assert time.monotonic() - t < 1.0
        first.close()
        if second is not None:
            second.close()
    assert link.health().reconnects == 1
    assert [e["event"] for e in logs if e["event"] in TRANSITIONS] == [
        "monitor_live",
        "monitor_lost",  # once, not once per retry
        "monitor_recovered",
    ]


def test_reconnects_when_the_monitor_comes_back(
    monitor_server: MonitorServer, collector: Collector, logs: Logs
) -> None:
    link = make_link(monitor_server.url, collector)
    link.start()
    try:
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 2)
        monitor_server.stop()  # the serial-to-Ethernet converter reboots
        assert wait_for(lambda: link.health().state == "lost", 2.0)
        lost_since = link.health().since_ns
        time.sleep(0.5)  # refused connections meanwhile
        before = collector.count()
        monitor_server.start()
        assert wait_for(lambda: link.health().state == "live", 2.0)
        assert wait_for(lambda: collector.count() > before + 5, 2.0)
    finally:
        link.stop()
    health = link.health()
    assert health.reconnects == 1
    assert health.since_ns > lost_since
    assert set(collector.values(Parameter.SPO2)) == {95.0}
    assert [e["event"] for e in logs if e["event"] in TRANSITIONS] == [
        "monitor_live",
        "monitor_lost",
        "monitor_recovered",
    ]


def test_a_silent_port_is_reopened_and_logged_once(collector: Collector) -> None:
    # A USB adapter whose monitor is switched off: the port opens every time and stays silent.
    server = MonitorServer(silent=True)
    server.start()
    link = make_link(server.url, collector, silence_timeout_s=0.3)
    with capture_logs() as logs:
        link.start()
        try:
            assert wait_for(lambda: server.accepted >= 3, 4.0)
            health = link.health()
        finally:
            link.stop()
            server.stop()
    transitions = [e for e in logs if e["event"] in TRANSITIONS]
    assert [e["event"] for e in transitions] == ["monitor_lost"]  # once, not once per reopen
    assert "silent" in transitions[0]["error"]
    assert health.state == "lost" and health.reconnects == 0
    assert collector.count() == 0


def test_a_silent_port_counts_as_live_once_the_monitor_talks(collector: Collector, logs: Logs) -> None:
    server = MonitorServer(silent=True)
    server.start()
    link = make_link(server.url, collector, silence_timeout_s=0.3)
    link.start()
    try:
        assert wait_for(lambda: server.accepted >= 2, 3.0)
        server.silent = False  # the monitor is switched on: the next connection carries data
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 2, 3.0)
    finally:
        link.stop()
        server.stop()
    assert [e["event"] for e in logs if e["event"] in TRANSITIONS] == [
        "monitor_lost",  # silent from the start
        "monitor_live",  # the first connection that carried data
    ]
    assert link.health().reconnects == 0


def test_unreachable_port_retries_with_backoff_and_logs_once(collector: Collector, logs: Logs) -> None:
    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    attempts: list[float] = []
    original = SerialLink.open

    def counting(self: SerialLink) -> None:
        attempts.append(time.monotonic())
        original(self)

    link = make_link(f"socket://127.0.0.1:{port}", collector)
    link.open = counting.__get__(link)  # type: ignore[method-assign]
    link.start()
    time.sleep(1.0)
    lost = link.health()
    link.stop()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert 4 <= len(attempts) <= 12
    assert gaps[0] < 0.15 and max(gaps) < 0.35  # 0.05, 0.1, 0.2, then capped at 0.2
    assert gaps[2] > gaps[0] * 2
    assert lost.state == "lost" and link.health().state == "stopped"
    assert "open failed" in (lost.last_error or "")
    assert len(events(logs, "monitor_lost")) == 1


class OneLinePort:
    """A port that delivers one line (or nothing) and then reports the device gone."""

    def __init__(self, line: bytes) -> None:
        self._pending = line
        self.in_waiting = 0

    def read(self, size: int = 1) -> bytes:
        if not self._pending:
            raise serial.SerialException("device disconnected")
        data, self._pending = self._pending[:size], self._pending[size:]
        self.in_waiting = len(self._pending)
        return data

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("line", "restarts"), [(RADICAL7_LINE, True), (b"", False)])
def test_backoff_restarts_only_after_a_connection_that_carried_data(
    monkeypatch: pytest.MonkeyPatch, collector: Collector, line: bytes, restarts: bool
) -> None:
    opens: list[float] = []

    def open_port(url: str, **kwargs: Any) -> OneLinePort:
        opens.append(time.monotonic())
        return OneLinePort(line)

    monkeypatch.setattr(serial, "serial_for_url", open_port)
    link = make_link("fake://", collector, backoff_initial_s=0.04, backoff_max_s=1.0)
    with capture_logs():
        link.start()
        time.sleep(0.7)
        link.stop()
    gaps = [b - a for a, b in itertools.pairwise(opens)]
    if restarts:
        # Every connection delivered a line: each retry waits the initial delay again.
        assert len(opens) >= 8
        assert max(gaps) < 0.15
        assert link.health().reconnects == len(opens) - 1
        assert len(collector.values(Parameter.SPO2, valid=False)) >= 8
    else:
        # 0.04, 0.08, 0.16, 0.32: the delay doubles while connections carry nothing.
        assert 3 <= len(opens) <= 5
        assert gaps[-1] > 3 * gaps[0]


def test_greeting_and_poll_bytes_are_sent(collector: Collector) -> None:
    # loop:// returns what is written, so bytes the parser asks to send come back as input.
    greeting = masimo_line(datetime(2024, 1, 1, 0, 0, 0), 90, 120, 1.0)
    polled = masimo_line(datetime(2024, 1, 1, 0, 0, 1), 91, 121, 1.0)

    class TalkFirst(MasimoParser):
        protocol = "test-talk-first"
        polls = 0

        def greeting(self) -> bytes:
            return greeting

        def poll(self, now_ns: int) -> bytes:
            self.polls += 1
            return polled if self.polls == 3 else b""

    with running(SerialLink("pox", "loop://", TalkFirst("pox"), collector, **FAST_RETRY)):
        assert wait_for(lambda: len(collector.values(Parameter.SPO2)) >= 2)
    assert collector.values(Parameter.SPO2) == [90.0, 91.0]


def test_a_failing_callback_does_not_stop_reading(monitor_server: MonitorServer, logs: Logs) -> None:
    calls: list[list[VitalSample]] = []

    def broken(samples: list[VitalSample]) -> None:
        calls.append(samples)
        raise RuntimeError("bug downstream")

    link = SerialLink("pox", monitor_server.url, MasimoParser("pox"), broken, **FAST_RETRY)
    with running(link):
        assert wait_for(lambda: len(calls) >= 5)
        health = link.health()
    assert health.callback_errors >= 5
    assert health.state == "live"
    assert health.reconnects == 0
    assert len(events(logs, "monitor_callback_failed")) == 1


@pytest.mark.usefixtures("logs")
def test_a_raising_parser_is_contained(monitor_server: MonitorServer, collector: Collector) -> None:
    class Exploding(MasimoParser):
        protocol = "test-exploding"
        fed = 0

        def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
            self.fed += 1
            if self.fed % 2:
                raise ValueError("parser bug")
            return super().feed(data, host_ns)

    parser = Exploding("pox")
    link = SerialLink("pox", monitor_server.url, parser, collector, **FAST_RETRY)
    with running(link):
        assert wait_for(lambda: parser.fed >= 10)
        assert link.health().state == "live"


def test_stop_is_prompt_in_every_state(monitor_server: MonitorServer, collector: Collector) -> None:
    # Connected and reading.
    link = make_link(monitor_server.url, collector)
    link.start()
    assert wait_for(lambda: collector.count() > 0)
    t = time.monotonic()
    link.stop()
    assert time.monotonic() - t < 1.0
    # Waiting out a long backoff.
    path = f"/nonexistent/tty-{os.getpid()}"
    link = SerialLink("pox", path, MasimoParser("pox"), collector, backoff_initial_s=10)
    link.start()
    assert wait_for(lambda: link.health().state == "lost")
    t = time.monotonic()
    link.stop()
    assert time.monotonic() - t < 1.0
    assert not any(th.name == "serial-link-pox" and th.is_alive() for th in threading.enumerate())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}),
        ({"baudrate": 19200, "parity": "E"}, {"baudrate": 19200, "parity": "E", "bytesize": 8}),
    ],
)
def test_port_opens_with_the_parsers_settings_unless_overridden(
    port_opens: list[dict[str, Any]], overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    with running(SerialLink("pox", "loop://", MasimoParser("pox"), lambda s: None, **overrides)):
        pass  # opened: the settings are what it opened with
    assert port_opens and expected.items() <= port_opens[0].items()
    assert port_opens[0]["timeout"] is not None  # reads never block forever


def test_an_even_parity_link_on_a_pty_survives_a_reconnect(
    pty_pair: PtyPair, collector: Collector, port_opens: list[dict[str, Any]]
) -> None:
    # GE and Medibus default to even parity; Linux refuses to re-open a pty with PARENB, so a
    # simulator's pty would be read only until the first reconnect.
    sim = MasimoSimulator(pty_pair.master_fd, interval_s=0.05, script=STEADY)
    link = make_link(pty_pair.slave_path, collector, parity="E", silence_timeout_s=0.3)
    with running(link, sim):
        assert wait_for(lambda: collector.count() > 0)
        sim.stop()  # silent: the link gives up on this connection and opens the port again
        assert wait_for(lambda: link.health().state == "lost", 2.0)
        assert wait_for(lambda: link.health().port_open, 2.0)
        before = collector.count()
        sim.start()
        assert wait_for(lambda: collector.count() > before, 2.0)
    health = link.health()
    assert health.reconnects == 1 and "open failed" not in (health.last_error or "")
    # The first open keeps the parity asked for; the pty refuses it after that, and goes without.
    assert port_opens[0]["parity"] == "E" and port_opens[-1]["parity"] == "N"


def test_an_even_parity_link_keeps_its_parity_on_a_real_port(port_opens: list[dict[str, Any]]) -> None:
    with running(SerialLink("pox", "loop://", MasimoParser("pox"), lambda s: None, parity="E")):
        pass
    assert port_opens[0]["parity"] == "E"
