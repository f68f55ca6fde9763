"""The demo: the real daemon on synthetic sources, ending with a playable, decrypted export.

A test-pattern camera with the vitals overlay, a second "room" camera with a tone as its audio,
and a simulated Masimo pulse oximeter writing into a pseudo-terminal that the daemon reads as a
real serial port. As at the bedside, the recording starts by itself once the oximeter's sensor is
on the baby and reports valid values, beginning with the pre-roll from before; a "birth" marker
and the stop go through the control socket, exactly as ``neoflix-capture mark``/``stop`` do.
The session is then exported with the identity generated for the occasion.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.loading import parse_config
from control.socket import request
from recorder.daemon import Daemon, wait_for_frames
from recorder.logs import configure_logging
from recorder.recipients import resolve_recipients
from review.export import export_session
from session.layout import audit_log_path
from store.keys import Identity, identity_file_text
from vitals.pty import open_pty_pair
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

PREROLL_S = 4.0
HOLD_S = 2.0
TIME_SCALE = 8.0  # the simulated stabilisation runs this much faster than the clock
# The trigger fires about PREROLL_S + 1 + 1 + HOLD_S (~8 s) in; on a slow, busy machine a few
# times that. Past this something is wrong, and the demo says so instead of waiting forever.
START_TIMEOUT_S = 60.0


class DemoError(Exception):
    """The demo cannot go on (and says why)."""


def wait_for_recording(
    status: Callable[[], dict[str, Any]],
    timeout_s: float = START_TIMEOUT_S,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The daemon's status once it records; ``DemoError`` when it has not started in time."""
    deadline = clock() + timeout_s
    while True:
        current = status()
        if current.get("state") == "recording":
            return current
        if clock() >= deadline:
            monitors = current.get("monitors") or {}
            raise DemoError(
                f"the recording did not start by itself within {timeout_s:.0f} s (state "
                f"{current.get('state')!r}, {current.get('vitals_samples', 0)} vitals samples, "
                f"monitors {json.dumps(monitors, default=str)[:300]}): the oximeter's values "
                "never reached the trigger"
            )
        sleep(0.2)


def demo_config(out: Path, recipient: str, serial_port: str) -> str:
    return f"""
[station]
table = "Demo table"
control_socket = "{out / 'run' / 'control.sock'}"

[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 1280
height = 720
fps = 30
overlay = true
audio = false

[[cameras]]
name = "room"
source = {{ kind = "test_pattern" }}
width = 640
height = 360
fps = 30
overlay = false
audio = true

[audio]
source = {{ kind = "tone", frequency_hz = 440.0 }}

[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{serial_port}"

[storage]
directory = "{out / 'recordings'}"
segment_seconds = 10
recipients = ["{recipient}"]

[session]
preroll_s = {PREROLL_S}

[triggers]
vitals_hold_s = {HOLD_S}

[logging]
format = "console"
"""


def run_demo(out: Path, *, seconds: float = 30.0, verbose: bool = False) -> int:
    out = out.resolve()
    if (out / "recordings").exists() and any((out / "recordings").iterdir()):
        print(f"{out}: holds an earlier demo; choose an empty directory", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    configure_logging("console", "info" if verbose else "warning")

    identity = Identity.generate()
    identity_path = out / "identity.txt"
    identity_path.write_text(identity_file_text(identity, datetime.now(UTC)))
    identity_path.chmod(0o600)

    pty = open_pty_pair()
    # The sensor goes on once the pre-roll has filled; the monitor then searches for a pulse.
    script = StabilisationScript(no_sensor_s=(PREROLL_S + 1.0) * TIME_SCALE, acquire_s=TIME_SCALE)
    simulator = MasimoSimulator(pty.master_fd, time_scale=TIME_SCALE, script=script)
    text = demo_config(out, str(identity.recipient), pty.slave_path)
    (out / "config.toml").write_text(text)
    config = parse_config(text, source=str(out / "config.toml"))
    daemon = Daemon(config, resolve_recipients(config.storage))

    stop = threading.Event()
    main_loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    simulator.start()
    daemon.start()
    main_loop.start()
    try:
        sock = config.station.control_socket
        print(f"recorder running, filling {PREROLL_S:.0f} s of pre-roll; no sensor on the baby yet ...")
        wait_for_frames(daemon)
        try:
            status = wait_for_recording(lambda: request(sock, "status"))
        except DemoError as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            return 2
        started = str(status["reason"])
        print(f"recording started by itself: {started}")
        print(request(sock, "mark", label="birth", by="demo")["note"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            status = request(sock, "status")
            print(f"  recording {status['elapsed_s']:.0f} s, vitals {status['vitals_samples']}")
        reply = request(sock, "stop", by="demo")
        print(reply["note"])
    finally:
        stop.set()
        main_loop.join()
        daemon.shutdown()
        simulator.stop()
        pty.close()

    summary = reply.get("last_session") or {}
    session_dir = Path(summary.get("path", ""))
    result = export_session(session_dir, [identity], out / "export")
    files = [p for p in (out / "recordings").rglob("*") if p.is_file()]
    encrypted = sum(1 for p in files if _is_age_file(p))
    print()
    print("Demo finished.")
    print(f"  session        {summary.get('session')}")
    print(f"  segments       {summary.get('segments')} ({summary.get('media_s')} s of media)")
    print(f"  started        {started}")
    print(f"  stopped        {summary.get('reason')}")
    print(f"  pre-roll       {json.dumps(summary.get('preroll_s'))} s")
    print(f"  markers        {summary.get('markers')}")
    print(f"  frames dropped {summary.get('frames_dropped')}")
    print(f"  vitals         {summary.get('vitals_samples')} samples")
    print(f"  edge wrote     {out / 'recordings'} ({len(files)} files, {encrypted} of them age files)")
    audit = audit_log_path(config.storage.directory, config.storage.audit_log)
    print(f"  audit log      {audit} (plain text, no patient data)")
    print(f"  review key     {identity_path}")
    for camera, path in result.videos.items():
        print(f"  export         {path} ({result.video_seconds[camera]:.1f} s)")
    if result.vitals_csv:
        print(f"  export         {result.vitals_csv} ({result.vitals_rows} rows)")
    if result.trends_svg:
        print(f"  export         {result.trends_svg}")
    if result.markers_csv:
        print(f"  export         {result.markers_csv} ({len(result.markers)} markers)")
    if result.viewer:
        print(f"  review page    {result.viewer} (open it in a browser)")
    for warning in result.warnings:
        print(f"  warning        {warning}")
    return 0 if result.videos and encrypted == len(files) else 1


def _is_age_file(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(22) == b"age-encryption.org/v1\n"
