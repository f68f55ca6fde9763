"""Several monitors at once, each through its own simulator on a real pty, into one daemon.

A Philips IntelliVue (the host must associate and poll), a GE S/5 (the host must request the
displayed values) and a Masimo oximeter (streams by itself) feed the same recording; both the
monitors' own protocols and the wiring check command go through the production paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from store.age_reader import decrypt_file
from store.keys import Identity
from vitals.pty import open_pty_pair
from vitals.simulators import make_simulator

pytestmark = pytest.mark.slow


def test_three_monitor_families_record_into_one_session(tmp_path: Path) -> None:
    identity = Identity.generate()
    ptys = {p: open_pty_pair() for p in ("intellivue", "ge_s5", "masimo")}
    sims = {p: make_simulator(p, pty.master_fd, time_scale=20.0) for p, pty in ptys.items()}
    config = parse_config(
        f"""
[station]
control_socket = "{tmp_path / 'control.sock'}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 10
[[monitors]]
name = "patient-monitor"
protocol = "intellivue"
port = "{ptys['intellivue'].slave_path}"
[[monitors]]
name = "anaesthesia"
protocol = "ge_s5"
port = "{ptys['ge_s5'].slave_path}"
parity = "N"        # a pty refuses to reopen with even parity; real adapters do not
rtscts = false      # a pty has no modem lines
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{ptys['masimo'].slave_path}"
[storage]
directory = "{tmp_path / 'recordings'}"
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
[triggers]
vitals = false
"""
    )
    for sim in sims.values():
        sim.start()
    daemon = Daemon(config, [identity.recipient])
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    daemon.start()
    loop.start()
    try:
        assert wait_for_frames(daemon)
        daemon.handle_request({"cmd": "start"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            monitors = daemon.status().to_json()["monitors"]
            if all(m["stats"]["records_ok"] >= 2 for m in monitors.values()):
                break
            time.sleep(0.5)
        time.sleep(1)
        status = daemon.status().to_json()
        daemon.handle_request({"cmd": "stop"})
    finally:
        stop.set()
        loop.join()
        daemon.shutdown()
        for sim in sims.values():
            sim.stop()
        for pty in ptys.values():
            pty.close()

    for name, health in status["monitors"].items():
        assert health["state"] == "live", (name, health)
        assert health["stats"]["records_ok"] >= 2, (name, health)
    # The simulators' clocks run on ours (the Masimo one in local time, to the second).
    offset = status["monitors"]["oximeter"]["clock_offset_s"]
    assert offset is not None and abs(offset) < 2.0
    session = Path(daemon.status().session.last_session["path"])
    plain = decrypt_file(session / "vitals.jsonl.age", [identity])
    records = [json.loads(line) for line in plain.splitlines()]
    by_monitor = {r["monitor"] for r in records if r["valid"]}
    assert by_monitor == {"patient-monitor", "anaesthesia", "oximeter"}
    hr_sources = {(r["monitor"], r["source"]) for r in records if r["parameter"] == "HR" and r["valid"]}
    assert ("patient-monitor", "ECG") in hr_sources and ("oximeter", "pleth") in hr_sources


def test_wiring_check_reads_a_simulated_monitor(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "cli.main"]
    sim = subprocess.Popen(
        [*cli, "simulate", "--protocol", "medibus", "--time-scale", "10", "--seconds", "20"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert sim.stdout is not None
        port = sim.stdout.readline().strip()
        assert port.startswith("/dev/")
        read = subprocess.run(
            [*cli, "vitals", "read", "--protocol", "medibus", "--port", port, "--seconds", "6",
             "--monitor", "ventilator"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert read.returncode == 0, read.stderr
    samples = [json.loads(line) for line in read.stdout.splitlines()]
    assert samples and all(s["monitor"] == "ventilator" for s in samples)
    assert {"PEEP", "FiO2"} <= {s["parameter"] for s in samples if s["valid"]}
    assert "records ok" in read.stderr
