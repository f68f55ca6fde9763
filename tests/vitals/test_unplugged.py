"""Every family survives its adapter being pulled and plugged back in.

The link opens a stable name (as udev gives a USB adapter, ``/dev/neoflix/monitor-0``); the pty
behind it goes away and a new one comes up under the same name, with a fresh simulator that
remembers nothing of the old connection. For the protocols where the host talks first
(IntelliVue, GE, Medibus) values come back only if the parser greets the device again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from vitals_testkit import FAST_RETRY, Collector, wait_for

from vitals.families import make_parser
from vitals.link import SerialLink
from vitals.pty import PtyPair, open_pty_pair
from vitals.simulators import MonitorSimulator, make_simulator
from vitals.simulators.line_format import DEMO_FORMAT

# Each family at a test's pace: several records a second, past any no-sensor opening quickly.
PACE: dict[str, dict[str, Any]] = {
    "masimo": {"interval_s": 0.05, "time_scale": 60},
    "nellcor": {"interval_s": 0.05, "time_scale": 60},
    "nonin": {"interval_s": 0.05, "time_scale": 60},
    "intellivue": {"reply_interval_s": 0.1, "time_scale": 60},
    "ge_s5": {"time_scale": 50},
    "medibus": {"time_scale": 60},
    "line_format": {"interval_s": 0.05, "time_scale": 60},
}
# What a family's parser needs besides its name: a line format reads the lines its config describes.
PARSER_OPTIONS: dict[str, dict[str, Any]] = {"line_format": {"spec": DEMO_FORMAT}}

# How a link changes state, in the one vocabulary every device logs in.
TRANSITIONS = ("monitor_live", "monitor_lost", "monitor_recovered")


class Adapter:
    """A USB-serial adapter behind a stable name, with a monitor on its far end."""

    def __init__(self, name: Path, protocol: str) -> None:
        self.name = name
        self.protocol = protocol
        self.pair: PtyPair | None = None
        self.monitor: MonitorSimulator | None = None

    def plug_in(self) -> None:
        self.pair = open_pty_pair()
        self.name.symlink_to(self.pair.slave_path)
        self.monitor = make_simulator(self.protocol, self.pair.master_fd, **PACE[self.protocol])
        self.monitor.start()

    def pull_out(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        self.name.unlink(missing_ok=True)
        if self.pair is not None:
            self.pair.close()
        self.monitor, self.pair = None, None


@contextmanager
def supervised(protocol: str, port: Path, collector: Collector) -> Iterator[SerialLink]:
    link = SerialLink(
        "bed", str(port), make_parser(protocol, "bed", **PARSER_OPTIONS.get(protocol, {})), collector,
        **FAST_RETRY,
        silence_timeout_s=3.0,
    )  # fmt: skip
    link.start()
    try:
        yield link
    finally:
        started = time.monotonic()
        link.stop()
        assert time.monotonic() - started < 1.5, "stopping the link must not hang"


def valid_count(collector: Collector) -> int:
    return sum(1 for s in collector.samples if s.valid)


@pytest.mark.parametrize("protocol", sorted(PACE))
def test_values_come_back_after_the_adapter_is_unplugged(protocol: str, tmp_path: Path) -> None:
    adapter = Adapter(tmp_path / "monitor-0", protocol)
    collector = Collector()
    logs: list[MutableMapping[str, Any]]
    with capture_logs() as logs:
        adapter.plug_in()
        try:
            with supervised(protocol, adapter.name, collector) as link:
                assert wait_for(lambda: valid_count(collector) >= 3, 8.0), f"no values: {link.health()}"
                adapter.pull_out()
                assert wait_for(lambda: link.health().state == "lost", 4.0)
                time.sleep(0.5)  # several retries against a name that is not there
                assert link.health().state == "lost"
                assert link.running
                before = valid_count(collector)
                adapter.plug_in()
                assert wait_for(lambda: valid_count(collector) >= before + 3, 8.0), (
                    f"no values after plugging back in: {link.health()}"
                )
                health = link.health()
        finally:
            adapter.pull_out()
    assert health.state == "live" and health.reconnects == 1
    assert all(s.monitor == "bed" for s in collector.samples)
    transitions = [e["event"] for e in logs if e["event"] in TRANSITIONS]
    assert transitions[:3] == ["monitor_live", "monitor_lost", "monitor_recovered"]
    assert transitions.count("monitor_lost") == 1, transitions  # once, not once per retry
