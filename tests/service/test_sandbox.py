"""The real daemon records under the unit's system call filter, W^X rule and address families.

systemd itself cannot run here, so ``sandbox_kit`` installs the seccomp rules the unit file asks
for, read from the unit itself; as root, /proc is also mounted the way ProcSubset=pid and
ProtectProc=invisible mount it. A library that needs a forbidden call (a JIT wanting
writable+executable memory, a netlink socket, a scheduler call from @resources) breaks capture
here before it breaks a station.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import decrypt_file
from store.keys import Identity
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

HERE = Path(__file__).resolve().parent
UNIT = HERE.parents[1] / "systemd" / "neoflix-capture.service"

sys.path.insert(0, str(HERE))
import sandbox_kit  # noqa: E402  (a script beside this test, also run as a program)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"),
    pytest.mark.skipif(not sandbox_kit.available(), reason="needs libseccomp (Debian package libseccomp2)"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package ffmpeg)"),
]


def proc_subset_prefix() -> list[str]:
    """As root: a private mount namespace with /proc as ProcSubset=pid + ProtectProc=invisible."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         "mount -t proc -o subset=pid,hidepid=invisible proc /proc && test ! -e /proc/cpuinfo"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return []  # no mount namespaces here (a container without CAP_SYS_ADMIN)
    mount = 'mount -t proc -o subset=pid,hidepid=invisible proc /proc && exec "$0" "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", mount]


def test_daemon_records_inside_the_units_seccomp_sandbox(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
         "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    identity = Identity.generate()
    pty = open_pty_pair()
    simulator = MasimoSimulator(
        pty.master_fd, interval_s=0.5, script=StabilisationScript(no_sensor_s=0, acquire_s=0)
    )
    sock = tmp_path / "control.sock"
    config = tmp_path / "station.toml"
    config.write_text(
        f"""
[station]
control_socket = "{sock}"

[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15

[[cameras]]
name = "room"
source = {{ kind = "file", path = "{clip}" }}
width = 320
height = 240
fps = 15
overlay = false
audio = true

[audio]
source = {{ kind = "tone" }}

[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{pty.slave_path}"

[encoding]
preset = "ultrafast"

[storage]
directory = "{tmp_path / 'recordings'}"
segment_seconds = 2
recipients = ["{identity.recipient}"]

[session]
preroll_s = 1

[logging]
format = "json"
"""
    )
    sandbox = [sys.executable, str(HERE / "sandbox_kit.py"), str(UNIT), "--"]
    daemon_argv = [sys.executable, "-m", "cli.main", "run", "--config", str(config)]
    log_path = tmp_path / "daemon.log"

    def cli(*args: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args, "--socket", str(sock)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(done.stdout) if args[-1] == "--json" else {}

    simulator.start()
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(
            proc_subset_prefix() + sandbox + daemon_argv, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            assert daemon.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(2)
        cli("start")
        time.sleep(5)
        cli("stop")
        status = cli("status", "--json")
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        simulator.stop()
        pty.close()
    log_text = log_path.read_text()
    assert code == 0, log_text[-3000:]
    cameras = status["cameras"]
    assert isinstance(cameras, dict)
    for name in ("closeup", "room"):
        assert cameras[name]["health"]["state"] == "live", cameras[name]
        assert cameras[name]["write_errors"] == 0
    assert status["audio"]["state"] == "live"  # type: ignore[index]
    assert status["monitors"]["oximeter"]["state"] == "live"  # type: ignore[index]
    assert '"level": "error"' not in log_text, log_text[-3000:]
    segments = sorted((tmp_path / "recordings").rglob("room-*.ts.age"))
    assert len(segments) >= 2
    assert decrypt_file(segments[0], [identity])[:1] == b"\x47"  # an MPEG-TS sync byte


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)", "Errno 97"),
        ("import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)", "Errno 1"),
        ("import os; os.sched_setaffinity(0, os.sched_getaffinity(0))", "Errno 1"),  # @resources
        ("import os; os.setgroups(os.getgroups())", "Errno 1"),  # @privileged
    ],
)
def test_the_sandbox_refuses_what_the_unit_forbids(code: str, refused: str) -> None:
    """Without this, the recording test above could pass with no sandbox at all."""
    if "setgroups" not in code or os.geteuid() == 0:
        outside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert outside.returncode == 0, outside.stderr  # the same call is fine outside
    inside = subprocess.run(
        [sys.executable, str(HERE / "sandbox_kit.py"), str(UNIT), "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert inside.returncode != 0
    assert refused in inside.stderr, inside.stderr
