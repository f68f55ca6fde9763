"""Benchmark: parser throughput per monitor family, and the vitals threads' CPU while recording.

1. Recorded streams: each family's simulator talks to its parser through a real pty and the
   supervised link for a few seconds (associations, polls and replies included); the bytes the
   host received are the recording. Each is repeated to about 2 MB and fed to a fresh parser in
   4 KiB chunks; reported as MB/s, as a multiple of what the family's serial line can carry, and
   as a multiple of what its monitor really sends.
2. What a monitor really sends: each family's simulator at its own pace (time scale 1, every
   numeric it has) talks to its parser through a pty for ``--rate-seconds``, all families at
   once; the bytes the host received per second are that family's monitor rate.
3. The daemon in this process records 720p30 with three monitors (IntelliVue, GE S/5, Masimo,
   each on its own pty) for 30 s; the CPU time of the serial-link threads is read from
   /proc/self/task and reported as a share of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from store.keys import Identity
from vitals.families import make_parser
from vitals.link import SerialLink
from vitals.parser import MonitorParser
from vitals.pty import open_pty_pair
from vitals.sample import VitalSample
from vitals.simulators import make_simulator
from vitals.simulators.line_format import DEMO_FORMAT

FAMILIES = ("masimo", "intellivue", "ge_s5", "medibus", "nellcor", "nonin", "line_format")
# What a family's parser needs besides its name: the line format reads its simulator's demo table.
PARSER_OPTIONS: dict[str, dict[str, Any]] = {"line_format": {"spec": DEMO_FORMAT}}
PTY_OVERRIDES: dict[str, dict[str, Any]] = {
    "ge_s5": {"parity": "N", "rtscts": False},
    "medibus": {"parity": "N"},
}


class Tap:
    """A parser stand-in for the link that records what the host received."""

    def __init__(self, parser: MonitorParser) -> None:
        self.parser = parser
        self.link_settings = parser.link_settings
        self.received = bytearray()

    def feed(self, data: bytes, host_ns: int) -> list[VitalSample]:
        self.received += data
        return self.parser.feed(data, host_ns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


def new_parser(protocol: str) -> MonitorParser:
    return make_parser(protocol, "bench", **PARSER_OPTIONS.get(protocol, {}))


def record_stream(protocol: str, seconds: float, time_scale: float = 30.0) -> bytes:
    pty = open_pty_pair()
    sim = make_simulator(protocol, pty.master_fd, time_scale=time_scale)
    tap = Tap(new_parser(protocol))
    link = SerialLink("bench", pty.slave_path, tap, lambda s: None, **PTY_OVERRIDES.get(protocol, {}))  # type: ignore[arg-type]
    sim.start()
    link.start()
    time.sleep(seconds)
    link.stop()
    sim.stop()
    pty.close()
    return bytes(tap.received)


def monitor_rates(protocols: list[str], seconds: float) -> dict[str, float]:
    """Bytes per second each family's monitor sends at its own pace, recorded side by side."""
    streams: dict[str, bytes] = {}

    def record(protocol: str) -> None:
        streams[protocol] = record_stream(protocol, seconds, time_scale=1.0)

    threads = [threading.Thread(target=record, args=(p,)) for p in protocols]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {p: len(streams[p]) / seconds for p in protocols}


def throughput(protocol: str, stream: bytes, monitor_bytes_s: float | None = None) -> dict[str, Any]:
    repeat = max(1, (2 << 20) // max(1, len(stream)))
    data = stream * repeat
    parser = new_parser(protocol)
    samples = 0
    start = time.process_time()
    for i in range(0, len(data), 4096):
        samples += len(parser.feed(data[i : i + 4096], i))
    cpu = time.process_time() - start
    baud = parser.link_settings.baudrate
    line_bytes_s = baud / 10  # start + 8 data + stop bits per byte
    mb_s = len(data) / cpu / 1e6
    result: dict[str, Any] = {
        "recorded_bytes": len(stream),
        "fed_mb": round(len(data) / 1e6, 2),
        "samples": samples,
        "mb_per_s": round(mb_s, 2),
        "times_line_rate": round(mb_s * 1e6 / line_bytes_s),
        "records_ok": parser.stats.records_ok,
        "records_bad": parser.stats.records_bad,
    }
    if monitor_bytes_s:
        result["monitor_bytes_per_s"] = round(monitor_bytes_s)
        result["times_monitor_rate"] = round(mb_s * 1e6 / monitor_bytes_s)
    return result


def thread_cpu_s(native_ids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in native_ids:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def vitals_cpu_while_recording(seconds: float) -> dict[str, Any]:
    identity = Identity.generate()
    families = ("intellivue", "ge_s5", "masimo")
    ptys = {p: open_pty_pair() for p in families}
    sims = {p: make_simulator(p, ptys[p].master_fd) for p in families}
    work = Path(tempfile.mkdtemp(prefix="neoflix-bench-vitals-"))
    monitors = "".join(
        f"""
[[monitors]]
name = "{p}"
protocol = "{p}"
port = "{ptys[p].slave_path}"
"""
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in PTY_OVERRIDES.get(p, {}).items())
        for p in families
    )
    config = parse_config(
        f"""
[station]
control_socket = "{work / "control.sock"}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
{monitors}
[storage]
directory = "{work / "recordings"}"
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
[triggers]
vitals = false
[logging]
level = "warning"
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
        wait_for_frames(daemon)
        daemon.handle_request({"cmd": "start"})
        ids = [
            t.native_id for t in threading.enumerate() if t.name.startswith("serial-link-") and t.native_id
        ]
        cpu0, wall0 = thread_cpu_s(ids), time.monotonic()
        time.sleep(seconds)
        cpu, wall = thread_cpu_s(ids) - cpu0, time.monotonic() - wall0
        samples = daemon.status().vitals_samples
        daemon.handle_request({"cmd": "stop"})
    finally:
        stop.set()
        loop.join()
        daemon.shutdown()
        for sim in sims.values():
            sim.stop()
        for pty in ptys.values():
            pty.close()
    return {
        "monitors": list(families),
        "seconds": round(wall, 1),
        "serial_threads_cpu_s": round(cpu, 3),
        "share_of_one_core_pct": round(100 * cpu / wall, 2),
        "samples_total": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record-seconds", type=float, default=4.0)
    # GE sends every 5 s: a rate needs a few of its records.
    parser.add_argument("--rate-seconds", type=float, default=16.0, help="0 skips the monitor rates")
    parser.add_argument("--daemon-seconds", type=float, default=30.0, help="0 skips the daemon run")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args()
    result: dict[str, Any] = {"throughput": {}}
    rates = monitor_rates(args.families, args.rate_seconds) if args.rate_seconds > 0 else {}
    for protocol in args.families:
        stream = record_stream(protocol, args.record_seconds)
        result["throughput"][protocol] = throughput(protocol, stream, rates.get(protocol))
        print(protocol, json.dumps(result["throughput"][protocol]), flush=True)
    if args.daemon_seconds > 0:
        result["while_recording"] = vitals_cpu_while_recording(args.daemon_seconds)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
