"""The bedside button, end to end: a contact on a serial port's modem lines drives the recorder.

The daemon runs in this process with ``button.port = "loop://"``: pyserial's loop port mirrors
RTS to CTS and DTR to DSR, so setting RTS is pressing the button (the contact joins the supply
line to CTS) and DSR shows the lamp the daemon drives on DTR. Everything after the port is the
production path: ModemLineButton → gestures → session control → store → audit log.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from config.loading import parse_config
from control.button import ModemLineButton
from recorder.daemon import Daemon, wait_for_frames
from store.keys import Identity
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

pytestmark = pytest.mark.slow


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


HOLD_S = 2


@contextlib.contextmanager
def running(tmp_path: Path, extra: str = "") -> Iterator[Daemon]:
    config = parse_config(
        f"""
[station]
control_socket = "{tmp_path / 'control.sock'}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{tmp_path / 'recordings'}"
segment_seconds = 2
recipients = ["{Identity.generate().recipient}"]
[session]
preroll_s = 2
[button]
kind = "serial"
port = "loop://"
line = "CTS"
supply_line = "DTR"
lamp_line = "none"
double_press_ms = 300
long_press_s = 1.5
{extra}
"""
    )
    # loop:// has two outputs and mirrors each onto an input. The test presses through RTS (seen
    # on CTS, the contact line), the supply sits on DTR; no output is left for a lamp, so the
    # lamp is read from the controller (its wiring has its own tests).
    d = Daemon(config, [Identity.generate().recipient])
    stop = threading.Event()
    loop = threading.Thread(target=d.run, args=(stop,), daemon=True)
    d.start()
    loop.start()
    try:
        assert wait_for_frames(d)
        yield d
    finally:
        stop.set()
        loop.join()
        d.shutdown()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with running(tmp_path) as d:
        yield d


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[tuple[Daemon, MasimoSimulator]]:
    """The same station with a simulated Masimo oximeter: sensor on after 1 s, values 1 s later."""
    pty = open_pty_pair()
    simulator = MasimoSimulator(
        pty.master_fd, interval_s=0.5, script=StabilisationScript(no_sensor_s=1.0, acquire_s=1.0)
    )
    extra = f"""
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{pty.slave_path}"
[triggers]
vitals_hold_s = {HOLD_S}
post_roll_s = 60
"""
    try:
        with running(tmp_path, extra) as d:
            yield d, simulator
    finally:
        simulator.stop()
        pty.close()


def port_of(d: Daemon) -> serial.Serial:
    assert d.button is not None
    source = d.button.source
    assert isinstance(source, ModemLineButton)
    wait_until(lambda: source.port is not None, 5, "the button port to open")
    assert source.port is not None
    return source.port


def press(port: serial.Serial, seconds: float) -> None:
    port.rts = True
    time.sleep(seconds)
    port.rts = False


def state(d: Daemon) -> dict[str, Any]:
    return d.status().to_json()


def lamp_now(d: Daemon) -> bool:
    return d.controller.lamp(time.monotonic_ns())


def test_short_press_starts_and_stops_and_the_lamp_says_so(daemon: Daemon) -> None:
    port = port_of(daemon)
    assert not lamp_now(daemon)
    press(port, 0.2)
    wait_until(lambda: state(daemon)["state"] == "recording", 3, "the button to start")
    assert state(daemon)["reason"].startswith("toggle by button")
    assert lamp_now(daemon)  # steady on while recording
    time.sleep(2.5)
    press(port, 0.2)
    wait_until(lambda: state(daemon)["state"] == "idle", 5, "the button to stop")
    last = state(daemon)["last_session"]
    assert not last["discarded"] and last["segments"] >= 1
    assert Path(last["path"]).exists()


def test_long_press_discards_everything_of_the_session(daemon: Daemon, tmp_path: Path) -> None:
    port = port_of(daemon)
    press(port, 0.2)
    wait_until(lambda: state(daemon)["state"] == "recording", 3, "the button to start")
    session = tmp_path / "recordings" / state(daemon)["session"]
    time.sleep(3)
    assert any(session.glob("*.ts.age"))

    port.rts = True
    wait_until(lambda: state(daemon)["armed_discard"], 4, "the lamp to ask for confirmation")
    seen = set()
    for _ in range(30):
        seen.add(lamp_now(daemon))
        time.sleep(0.02)
    assert seen == {True, False}  # blinking, not steady
    assert state(daemon)["state"] == "recording"  # nothing happens until the release
    port.rts = False
    wait_until(lambda: state(daemon)["state"] == "idle", 5, "the discard")

    now = state(daemon)
    assert now["do_not_record"] and now["last_session"]["discarded"]
    assert not session.exists()
    assert not any((tmp_path / "recordings").iterdir())
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    discard = [e for e in entries if e["event"] == "recording_discarded"]
    assert len(discard) == 1 and discard[0]["session"] == session.name
    assert "button" in discard[0]["reason"]


def test_double_press_sets_a_marker(daemon: Daemon) -> None:
    port = port_of(daemon)
    press(port, 0.2)
    wait_until(lambda: state(daemon)["state"] == "recording", 3, "the button to start")
    press(port, 0.1)
    time.sleep(0.1)
    press(port, 0.1)
    time.sleep(0.6)
    assert state(daemon)["state"] == "recording"  # a double press is not a stop
    assert state(daemon)["markers"] == 1


def test_a_hold_right_after_a_stopping_tap_discards_that_recording(daemon: Daemon, tmp_path: Path) -> None:
    port = port_of(daemon)
    press(port, 0.2)
    wait_until(lambda: state(daemon)["state"] == "recording", 3, "the button to start")
    session = tmp_path / "recordings" / state(daemon)["session"]
    time.sleep(2.5)
    press(port, 0.2)  # someone hesitated: a tap (stop) ...
    wait_until(lambda: state(daemon)["state"] == "idle", 5, "the stop")
    assert session.exists()
    press(port, 2.0)  # ... then the long press they meant
    wait_until(lambda: not session.exists(), 5, "the stopped recording to be discarded")
    assert state(daemon)["do_not_record"]
    assert state(daemon)["last_session"]["discarded"]


def test_a_long_press_discards_an_automatic_recording_and_nothing_is_kept_after(
    monitored: tuple[Daemon, MasimoSimulator], tmp_path: Path
) -> None:
    daemon, simulator = monitored
    port = port_of(daemon)
    simulator.start()  # the sensor goes on the baby: the trigger starts the recording
    wait_until(lambda: state(daemon)["state"] == "recording", 20, "the automatic start")
    assert state(daemon)["automatic"]
    session = tmp_path / "recordings" / state(daemon)["session"]
    wait_until(lambda: any(session.glob("*.ts.age")), 10, "a segment to be written")

    port.rts = True  # consent refused: the long press
    wait_until(lambda: state(daemon)["armed_discard"], 4, "the lamp to ask for confirmation")
    port.rts = False
    wait_until(lambda: state(daemon)["state"] == "idle", 5, "the discard")
    now = state(daemon)
    assert now["do_not_record"] and now["last_session"]["discarded"]
    assert not session.exists() and not any((tmp_path / "recordings").iterdir())

    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    started = [e for e in entries if e["event"] == "recording_started"]
    discarded = [e for e in entries if e["event"] == "recording_discarded"]
    assert [(e["session"], e["trigger"]) for e in started] == [(session.name, "vitals")]
    assert [e["session"] for e in discarded] == [session.name] and "button" in discarded[0]["reason"]
    assert discarded[0]["files"] >= 3

    # The sensor stays on, yet under "do not record" nothing starts and no pre-roll is kept.
    wait_until(
        lambda: all(c["preroll_bytes"] == 0 for c in state(daemon)["cameras"].values()), 2, "no pre-roll"
    )
    deadline = time.monotonic() + HOLD_S + 2
    while time.monotonic() < deadline:
        now = state(daemon)
        assert now["state"] == "idle" and now["vitals_valid_for_s"] > 0
        assert all(c["preroll_bytes"] == 0 for c in now["cameras"].values())
        time.sleep(0.2)
    assert not any((tmp_path / "recordings").iterdir())


def test_a_socket_discard_right_after_a_stop_destroys_that_recording(daemon: Daemon, tmp_path: Path) -> None:
    port = port_of(daemon)
    press(port, 0.2)
    wait_until(lambda: state(daemon)["state"] == "recording", 3, "the button to start")
    session = tmp_path / "recordings" / state(daemon)["session"]
    time.sleep(2.5)
    assert daemon.handle_request({"cmd": "stop", "by": "command line"})["state"] == "idle"
    assert session.is_dir()
    reply = daemon.handle_request({"cmd": "discard", "by": "Baby Jansen, MRN 123456"})
    assert reply["ok"] and session.name in reply["note"] and "discarded" in reply["note"]
    assert not session.exists()
    assert reply["do_not_record"] and reply["last_session"]["discarded"]
    audit = (tmp_path / "audit.jsonl").read_text()
    assert "Jansen" not in audit and "123456" not in audit
    entries = [json.loads(line) for line in audit.splitlines()]
    assert [e["session"] for e in entries if e["event"] == "recording_discarded"] == [session.name]
