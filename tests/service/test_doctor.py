"""``neoflix-capture doctor`` against a good station, broken ones, and a running recorder."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_testkit import camera_status, daemon_status

from config.loading import parse_config
from control.socket import ControlServer
from recorder.doctor import estimated_bits_per_second, run_doctor
from store.keys import Identity
from vitals.pty import PtyPair, open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript


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


def station(tmp: Path, *, port: str, recipients: str | None = None, camera: str | None = None) -> Path:
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
protocol = "masimo"
port = "{port}"

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


def test_a_running_recorder_is_asked_instead_of_opening_its_devices(tmp_path: Path) -> None:
    # The port does not exist: doctor must not try it, since the recorder holds the devices.
    config = station(tmp_path, port=str(tmp_path / "held-by-the-recorder"))
    status = daemon_status(
        {"closeup": camera_status(frames=900)}, audio="live", monitors={"oximeter": "connected"}
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


def test_free_space_estimate_is_in_a_sane_range() -> None:
    config = parse_config(
        """
[[cameras]]
name = "closeup"
source = { kind = "test_pattern" }
"""
    )
    mbit = estimated_bits_per_second(config) / 1e6
    assert 1.0 < mbit < 4.0  # 720p30 at CRF 23: a couple of Mbit/s
