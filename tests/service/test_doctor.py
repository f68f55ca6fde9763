"""``neoflix-capture doctor`` against a good station, broken ones, and a running recorder."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import shutil
import sys
import tempfile
import termios
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import serial
from service_testkit import camera_status, daemon_status

from cli.doctor import run_doctor
from control.socket import ControlServer
from store.keys import Identity
from vitals.pty import PtyPair, open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript, masimo_line


@pytest.fixture
def oximeter() -> Iterator[PtyPair]:
    """A Radical-7 on a pty that shows valid values from its first line, four lines a second."""
    pty = open_pty_pair()
    simulator = MasimoSimulator(
        pty.master_fd, interval_s=0.25, script=StabilisationScript(no_sensor_s=0, acquire_s=0)
    )
    simulator.start()
    yield pty
    simulator.stop()
    pty.close()


def station(
    tmp: Path,
    *,
    port: str,
    recipients: str | None = None,
    camera: str | None = None,
    monitor: str = 'protocol = "masimo"',
) -> Path:
    """A station with one camera, audio and one monitor "oximeter" on ``port``; ``monitor`` is the
    rest of that monitor's table (its protocol and any settings)."""
    recipients = recipients if recipients is not None else f'["{Identity.generate().recipient}"]'
    camera = camera or '{ kind = "test_pattern" }'
    path = tmp / "station.toml"
    path.write_text(
        f"""
[station]
control_socket = "{tmp / 'control.sock'}"

[[cameras]]
name = "closeup"
source = {camera}
width = 320
height = 240
fps = 15
audio = true

[audio]
source = {{ kind = "tone" }}

[[monitors]]
name = "oximeter"
port = "{port}"
{monitor}

[storage]
directory = "{tmp / 'recordings'}"
recipients = {recipients}
"""
    )
    return path


def doctor(config: Path, timeout_s: float = 4.0) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(config, out, service_name="neoflix-capture-test", timeout_s=timeout_s)
    print(out.getvalue())
    return code, out.getvalue()


def levels(text: str) -> dict[str, str]:
    """'camera closeup' → 'OK', from the report's lines."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^(OK|WARN|FAIL) +([^:]+):", line)
        if m:
            found.setdefault(m.group(2), m.group(1))
    return found


def test_a_good_station_passes(tmp_path: Path, oximeter: PtyPair) -> None:
    code, text = doctor(station(tmp_path, port=oximeter.slave_path))
    found = levels(text)
    assert code == 0, text
    assert found["config"] == "OK"
    assert found["recipients"] == "OK"
    assert found["camera closeup"] == "OK"
    assert "delivers 320x240" in text
    assert found["audio"] == "OK"
    assert "delivers sound (peak" in text
    assert found["monitor oximeter"] == "OK"
    assert re.search(r"valid values after [\d.]+ s \(.*SpO2 \d+ %", text)
    assert re.search(r"storage: .* writable, [\d.]+ GB free: about \d+ (hours|minutes) of recording", text)
    assert "does not exist yet: made at the first recording" in text  # never called writable itself
    assert found["retention"] == "OK"
    assert "sessions are deleted 30 days after they start; 0 session(s) stored" in text
    assert "clock" in found and "service" in found  # whatever this machine says, it is said
    assert "Nothing blocks recording" in text


def test_retention_is_explained_but_never_blocks_recording(tmp_path: Path) -> None:
    config = station(tmp_path, port="/nonexistent/ttyUSB0")
    stale = tmp_path / "recordings" / "20200101T000000Z-0a0b0c"
    stale.mkdir(parents=True)
    (stale / "closeup-000001.ts.age").write_bytes(bytes(2048))
    _, text = doctor(config, timeout_s=0.5)
    assert levels(text)["retention"] == "WARN"
    assert "1 session(s) stored (0.0 GB), the oldest started 2020-01-01 00:00 UTC; 1 a day past it" in text
    assert "systemctl start neoflix-capture" in text  # no recorder runs here to delete it

    config.write_text(config.read_text().replace("[storage]\n", "[storage]\nretention_days = 0\n"))
    _, text = doctor(config, timeout_s=0.5)
    assert levels(text)["retention"] == "WARN"
    assert "off: sessions stay until deleted by hand" in text and "privacy officer" in text
    assert stale.exists()  # the doctor only looks


def test_an_invalid_config_names_the_field(tmp_path: Path) -> None:
    config = station(tmp_path, port="loop://")
    config.write_text(config.read_text().replace("fps = 15", "fps = 120"))
    code, text = doctor(config)
    assert code == 1
    assert levels(text)["config"] == "FAIL"
    assert "cameras[0].fps: Input should be less than or equal to 60 (got 120)" in text
    assert "1 problem(s) block recording" in text


def test_a_broken_station_says_what_to_do(tmp_path: Path) -> None:
    config = station(
        tmp_path,
        port=str(tmp_path / "ttyUSB-gone"),
        recipients="[]",
        camera=f'{{ kind = "file", path = "{tmp_path / "missing.mp4"}" }}',
    )
    code, text = doctor(config, timeout_s=2.0)
    found = levels(text)
    assert code == 1
    assert found["recipients"] == "FAIL"
    assert "refuses to record" in text and "neoflix-capture keygen" in text
    assert found["camera closeup"] == "FAIL"
    assert "no such file" in text
    assert found["monitor oximeter"] == "FAIL"
    assert "is the adapter plugged in" in text
    assert "3 problem(s) block recording" in text


def test_a_silent_monitor_is_explained(tmp_path: Path) -> None:
    pty = open_pty_pair()  # a port that opens but on which nothing is ever said
    try:
        code, text = doctor(station(tmp_path, port=pty.slave_path), timeout_s=1.0)
    finally:
        pty.close()
    assert code == 1
    assert levels(text)["camera closeup"] == "OK"
    assert levels(text)["monitor oximeter"] == "FAIL"
    assert "nothing arrived within 7 s (a masimo monitor sends about every 2 s)" in text
    assert "ASCII 1" in text


def test_a_monitor_silent_past_its_silence_timeout_is_not_called_unopenable(tmp_path: Path) -> None:
    # The link gives up on a silent port after silence_timeout_s and reports it lost; that is the
    # monitor saying nothing, not a port that cannot be opened.
    pty = open_pty_pair()
    try:
        config = station(tmp_path, port=pty.slave_path, monitor='protocol = "masimo"\nsilence_timeout_s = 2')
        code, text = doctor(config, timeout_s=1.0)
    finally:
        pty.close()
    assert code == 1
    assert levels(text)["monitor oximeter"] == "FAIL"
    assert "cannot open" not in text
    assert "nothing arrived within 7 s" in text


class LineMonitor:
    """A monitor on a pty that prints ``line`` four times a second, but only while the port is
    set up the way it needs (``wants`` judges the line settings, termios' c_cflag): at the wrong
    settings it sends what a UART then makes of its bytes, garbage."""

    def __init__(self, pty: PtyPair, line: bytes, wants: Callable[[int], bool] = lambda _: True) -> None:
        self._pty = pty
        self._line = line
        self._wants = wants
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LineMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            # The master sees the line settings the reader gave the slave.
            cflag = termios.tcgetattr(self._pty.master_fd)[2]
            data = self._line if self._wants(cflag) else bytes(b | 0x80 for b in self._line)
            with contextlib.suppress(OSError):
                os.write(self._pty.master_fd, data)


LINE_FORMAT_MONITOR = """protocol = "line_format"

[monitors.line_format]
mode = "key_value"
line_ending = "crlf"

[[monitors.line_format.fields]]
name = "SPO2"
parameter = "SpO2"
unit = "%"

[[monitors.line_format.fields]]
name = "HR"
parameter = "HR"
unit = "/min"
"""


def test_a_line_format_monitor_is_read_with_its_line_table(tmp_path: Path) -> None:
    with open_pty_pair() as pty, LineMonitor(pty, b"SPO2=93 HR=141\r\n"):
        code, text = doctor(station(tmp_path, port=pty.slave_path, monitor=LINE_FORMAT_MONITOR))
    assert code == 0, text
    assert levels(text)["monitor oximeter"] == "OK"
    assert re.search(r"line_format on .* at 9600 baud 8N1: valid values after [\d.]+ s", text)
    assert "SpO2 93 %" in text and "HR 141 /min" in text


def test_a_monitor_is_opened_with_its_configured_line_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This monitor sends 2 stop bits, even parity and RTS/CTS. A pty keeps the stop bits and the
    # flow control (the fake monitor checks those) but not the parity, so the port's opening is
    # watched for that one.
    opened: list[dict[str, Any]] = []
    real_open = serial.serial_for_url

    def watched_open(url: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs)
        return real_open(url, *args, **kwargs)

    monkeypatch.setattr(serial, "serial_for_url", watched_open)
    line = masimo_line(datetime(2026, 1, 1, 12, 0, 0), 96, 138, 2.1)
    needs = 'protocol = "masimo"\nparity = "E"\nstopbits = 2\nrtscts = true'

    def wants(cflag: int) -> bool:
        return bool(cflag & termios.CSTOPB) and bool(cflag & termios.CRTSCTS)

    with open_pty_pair() as pty, LineMonitor(pty, line, wants):
        code, text = doctor(station(tmp_path, port=pty.slave_path, monitor=needs))
    assert code == 0, text
    assert levels(text)["monitor oximeter"] == "OK"
    assert "masimo on" in text and "at 9600 baud 8E2 RTS/CTS: valid values" in text
    ours = [o for o in opened if o.get("parity") is not None]
    assert ours and all((o["parity"], o["stopbits"], o["rtscts"]) == ("E", 2, True) for o in ours)


def test_a_running_recorder_is_asked_instead_of_opening_its_devices(tmp_path: Path) -> None:
    # The port does not exist: doctor must not try it, since the recorder holds the devices.
    config = station(tmp_path, port=str(tmp_path / "held-by-the-recorder"))
    status = daemon_status(
        {"closeup": camera_status(frames=900)}, audio="live", monitors={"oximeter": "live"}
    )

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **status}

    server = ControlServer(tmp_path / "control.sock", handler)
    server.start()
    try:
        code, text = doctor(config)
    finally:
        server.stop()
    found = levels(text)
    assert code == 0, text
    assert found["recorder"] == "OK"
    assert found["camera closeup"] == "OK"
    assert "live at 30.0 fps (config 15)" in text
    assert "checked through the running recorder" in text
    assert found["monitor oximeter"] == "OK"


def key_file(path: Path, mode: int) -> Path:
    path.write_text(f"# the review workstation\n{Identity.generate().recipient}\n")
    path.chmod(mode)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="a file only root can read needs root to make and read")
def test_a_key_file_only_root_can_read_blocks_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Doctor runs as root and can read it; the recorder runs as its own user and cannot.
    monkeypatch.setattr("cli.doctor.SERVICE_USER", "nobody")
    keys = key_file(tmp_path / "recipients.txt", 0o600)
    config = station(tmp_path, port="/nonexistent/ttyUSB0", recipients="[]")
    config.write_text(config.read_text().replace("[storage]\n", f'[storage]\nrecipients_file = "{keys}"\n'))
    _, text = doctor(config, timeout_s=0.5)
    assert levels(text)["recipients"] == "FAIL"
    assert f"storage.recipients_file {keys} cannot be read by the service user nobody" in text
    assert "so the service refuses to record" in text and "install -m 0640 -o root -g nobody" in text

    # The service user is root itself (the check is of the service's access, not doctor's).
    monkeypatch.setattr("cli.doctor.SERVICE_USER", "root")
    _, text = doctor(config, timeout_s=0.5)
    assert levels(text)["recipients"] == "OK"


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/home", os.W_OK), reason="needs a folder of its own under /home"
)
def test_a_key_file_under_home_is_hidden_from_the_service(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="neoflix-doctor-test-", dir="/home"))
    try:
        keys = key_file(home / "recipients.txt", 0o644)
        config = station(tmp_path, port="/nonexistent/ttyUSB0", recipients="[]")
        config.write_text(
            config.read_text().replace("[storage]\n", f'[storage]\nrecipients_file = "{keys}"\n')
        )
        _, text = doctor(config, timeout_s=0.5)
    finally:
        shutil.rmtree(home)
    assert levels(text)["recipients"] == "FAIL"
    assert f"storage.recipients_file {keys} is under /home, which the service's sandbox hides" in text


def test_a_usb_button_needs_its_library_and_doctor_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("evdev", reason="the hid extra (evdev-binary) is in the dev extra on x86_64")
    config = station(tmp_path, port="/nonexistent/ttyUSB0")
    node = tmp_path / "usb-footswitch-event-kbd"
    node.touch()
    config.write_text(config.read_text() + f'\n[button]\nkind = "hid"\ndevice = "{node}"\n')

    _, text = doctor(config, timeout_s=0.5)
    assert levels(text)["button library"] == "OK"
    assert re.search(r"OK   button library: evdev imports \(evdev(-binary)? [\d.]+", text)

    monkeypatch.setitem(sys.modules, "evdev", None)  # as on a PC installed without the extra
    code, text = doctor(config, timeout_s=0.5)
    assert code == 1
    assert levels(text)["button library"] == "FAIL"
    package = "evdev-binary" if platform.machine() == "x86_64" else "evdev"
    assert f"/opt/neoflix-capture/venv/bin/python -m pip install {package}\n" in text
    assert levels(text)["button"] == "OK"  # the device is there; only its library is missing
