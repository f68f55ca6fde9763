"""Benchmarks that fill the table, and the table: BENCHMARKS.md and benchmarks.json.

Cases of their own here (each runnable alone through ``scripts/bench <case>``):

- ``overlay``: the overlay's cost per 720p frame (``OverlayRenderer.draw``), the values changing
  once a second as a monitor's do, and the cost of a frame whose values all changed;
- ``memory``: resident memory (VmRSS) of the daemon process, sampled every 5 s over a 720p30
  recording of ``--seconds``; growth from the first sample after a minute of warm-up (or after
  the first fifth of a shorter run) to the last;
- ``startup``: seconds from starting the daemon process to its READY=1 on the notify socket
  (systemd's ``Type=notify``), which it sends once storage is usable and a source delivers;
- ``jitter``: the intervals between frames in a recording of a video file (an MJPEG clip, as a
  USB camera delivers) and of the test pattern, probe off: what the pipeline adds to the
  sources' own frame times.

``table`` (``scripts/bench all``) runs every case (record at 720p30 and 1080p30 against the
ffmpeg CLI, sync, overlay, memory, startup), writes ``benchmarks.json`` and ``BENCHMARKS.md``
with the machine described and the command of each line, and compares each figure with its goal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture.overlay import OverlayRenderer, OverlayState, ShownValue  # noqa: E402
from review.sync_probe import frame_times  # noqa: E402
from store.keys import Identity  # noqa: E402
from vitals.pty import open_pty_pair  # noqa: E402
from vitals.simulators.masimo import MasimoSimulator  # noqa: E402

CLI = [sys.executable, "-m", "cli.main"]


# --- overlay ------------------------------------------------------------------------------------------


def bench_overlay(frames: int = 600) -> dict[str, Any]:
    renderer = OverlayRenderer(1280, 720)
    base = np.full((720, 1280, 3), 120, np.uint8)

    def state(i: int) -> OverlayState:
        return OverlayState(
            table="Bench",
            camera="closeup",
            utc=datetime(2026, 1, 1, 12, 0, i // 30 % 60, tzinfo=UTC),
            recording=True,
            elapsed_s=i / 30,
            since_birth_s=60 + i / 30,
            values=(
                ShownValue("HR", str(140 + i // 30 % 5), "/min", source="pleth"),
                ShownValue("SpO2", str(90 + i // 30 % 3), "%"),
                ShownValue("FiO2", "0.30", ""),
                ShownValue("PIP", "22", "cmH2O"),
                ShownValue("PEEP", "5", "cmH2O"),
            ),
        )

    states = [state(i) for i in range(frames)]
    frame = base.copy()
    renderer.draw(frame, states[0])  # the first render builds the panel
    t0 = time.perf_counter()
    for s in states:
        frame[...] = base
        renderer.draw(frame, s)
    per_frame = (time.perf_counter() - t0) / frames
    t0 = time.perf_counter()
    copy_cost = 0.0
    for _ in range(frames):
        frame[...] = base
    copy_cost = (time.perf_counter() - t0) / frames
    changed = [state(i * 30) for i in range(60)]
    t0 = time.perf_counter()
    for s in changed:
        frame[...] = base
        renderer.draw(frame, s)
    per_change = (time.perf_counter() - t0) / len(changed) - copy_cost
    return {
        "size": "1280x720",
        "frames": frames,
        "ms_per_frame": round((per_frame - copy_cost) * 1000, 3),
        "ms_per_frame_with_new_values": round(per_change * 1000, 3),
        "share_of_30fps_frame_pct": round((per_frame - copy_cost) * 30 * 100, 2),
    }


# --- a recording daemon ---------------------------------------------------------------------------------


def _config(
    work: Path, identity: Identity, port: str, width: int, height: int, extra_camera: str = ""
) -> Path:
    path = work / "bench.toml"
    path.write_text(
        f"""
[station]
table = "Bench"
control_socket = "{work / 'control.sock'}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = {width}
height = {height}
fps = 30
overlay = true
audio = true
{extra_camera}
[audio]
source = {{ kind = "tone" }}
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{port}"
[storage]
directory = "{work / 'recordings'}"
segment_seconds = 10
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
[logging]
format = "json"
level = "warning"
"""
    )
    return path


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_memory(seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="neoflix-mem-"))
    identity = Identity.generate()
    pty = open_pty_pair()
    simulator = MasimoSimulator(pty.master_fd, time_scale=4.0)
    config = _config(work, identity, pty.slave_path, 1280, 720)
    sock = work / "control.sock"
    simulator.start()
    daemon = subprocess.Popen([*CLI, "run", "--config", str(config)])
    samples: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not start")
            time.sleep(0.1)
        subprocess.run([*CLI, "start", "--socket", str(sock)], check=True, capture_output=True)
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            samples.append((elapsed, _rss_kib(daemon.pid)))
            time.sleep(min(5.0, max(0.0, seconds - elapsed)))
        samples.append((time.monotonic() - t0, _rss_kib(daemon.pid)))
        subprocess.run([*CLI, "stop", "--socket", str(sock)], check=True, capture_output=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        simulator.stop()
        pty.close()
        shutil.rmtree(work, ignore_errors=True)
    warm = min(60.0, seconds / 5)
    after = [kib for t, kib in samples if t >= warm]
    first, last = after[0], after[-1]
    return {
        "seconds": round(seconds),
        "size": "1280x720",
        "fps": 30,
        "warm_up_s": round(warm),
        "rss_mib_first": round(first / 1024, 1),
        "rss_mib_last": round(last / 1024, 1),
        "rss_mib_max": round(max(after) / 1024, 1),
        "growth_pct": round((last - first) / first * 100, 2),
        # The curve, to tell a leak (growing to the end) from the allocator settling (a plateau).
        "rss_mib_every_minute": [
            round(kib / 1024, 1) for t, kib in samples if round(t) % 60 < 5 or t == samples[-1][0]
        ],
        # glibc's malloc settings the daemon inherited (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_).
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }


def bench_startup(runs: int = 3) -> dict[str, Any]:
    times: list[float] = []
    for _ in range(runs):
        work = Path(tempfile.mkdtemp(prefix="neoflix-start-"))
        identity = Identity.generate()
        pty = open_pty_pair()
        simulator = MasimoSimulator(pty.master_fd, time_scale=4.0)
        config = _config(work, identity, pty.slave_path, 1280, 720)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(work / "notify.sock"))
        notify.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(work / "notify.sock")}
        simulator.start()
        t0 = time.monotonic()
        daemon = subprocess.Popen([*CLI, "run", "--config", str(config)], env=env)
        try:
            while True:
                message = notify.recv(4096).decode()
                if "READY=1" in message.split("\n"):
                    times.append(time.monotonic() - t0)
                    break
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            notify.close()
            simulator.stop()
            pty.close()
            shutil.rmtree(work, ignore_errors=True)
    return {
        "runs": runs,
        "seconds_to_ready_median": round(float(np.median(times)), 2),
        "seconds_to_ready_max": round(max(times), 2),
    }


def _intervals(times: list[float], fps: float = 30.0) -> dict[str, float]:
    """Frame intervals: their spread, and how far each is from a whole number of frame slots
    (0 when times come from the schedule; more than one slot where a frame was skipped)."""
    d = np.diff(np.asarray(times)) * 1000
    slot = 1000 / fps
    slots = np.round(d / slot)
    return {
        "frames": len(times),
        "mean_interval_ms": round(float(d.mean()), 3),
        "sd_ms": round(float(d.std()), 3),
        "min_ms": round(float(d.min()), 3),
        "max_ms": round(float(d.max()), 3),
        "max_off_slot_grid_ms": round(float(np.abs(d - slots * slot).max()), 3),
        "slots_skipped": int((slots - 1).clip(min=0).sum()),
    }


def bench_jitter(seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="neoflix-jitter-"))
    clip = work / "clip.avi"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-t", "10", "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", str(clip)],
        check=True,
    )
    identity = Identity.generate()
    pty = open_pty_pair()
    simulator = MasimoSimulator(pty.master_fd, time_scale=4.0)
    file_camera = f"""[[cameras]]
name = "file"
source = {{ kind = "file", path = "{clip}", loop = true }}
width = 1280
height = 720
fps = 30
overlay = true"""
    config = _config(work, identity, pty.slave_path, 1280, 720, file_camera)
    sock = work / "control.sock"
    simulator.start()
    daemon = subprocess.Popen([*CLI, "run", "--config", str(config)])
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not start")
            time.sleep(0.1)
        subprocess.run([*CLI, "start", "--socket", str(sock)], check=True, capture_output=True)
        time.sleep(seconds)
        subprocess.run([*CLI, "stop", "--socket", str(sock)], check=True, capture_output=True)
        status = json.loads(
            subprocess.run([*CLI, "status", "--json", "--socket", str(sock)],
                           check=True, capture_output=True, text=True).stdout
        )
        session = Path(status["last_session"]["path"])
        times = frame_times(session, [identity])
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        simulator.stop()
        pty.close()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "seconds": round(seconds),
        "note": "two 720p30 cameras recorded together: a file camera and the test pattern",
        "file": _intervals(times["file"]),
        "test_pattern": _intervals(times["closeup"]),
    }


# --- the table ----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    os_name = platform.platform()
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"') + f" (kernel {platform.release()})"
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    x264 = ""
    try:
        x264 = av.codec.Codec("libx264", "w").long_name
    except Exception:
        x264 = "libx264 (not found in PyAV)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "os": os_name,
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "pyav": av.__version__,
        "pyav_ffmpeg": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
        "x264": x264,
        "ffmpeg_cli": ffmpeg.splitlines()[0] if ffmpeg else "not installed",
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _run_json(args: list[str], out: Path) -> dict[str, Any]:
    subprocess.run([sys.executable, *args, "--json", str(out)], check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value}{unit}"


def _goal(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def write_markdown(data: dict[str, Any], path: Path) -> None:
    m = data["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `scripts/bench all` on {data['written_utc']} (figures of cases run again on",
        "their own are merged into benchmarks.json and the page rewritten with",
        "`scripts/bench_table.py markdown`; the notes say which). The command of each line runs it",
        "alone. The figures are not edited by hand.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram_gib']} GiB",
        f"- OS: {m['os']}",
        f"- Python {m['python']}, OpenCV {m['opencv']}, PyAV {m['pyav']} "
        f"(libavcodec {m['pyav_ffmpeg']}), x264: {m['x264']}",
        f"- ffmpeg CLI: {m['ffmpeg_cli']}",
        f"- Load average when the run started: {m['load_avg_at_start']}"
        + (" (a shared machine: other work ran beside the benchmark)" if data.get("shared") else ""),
        "",
        "## Figures and goals",
        "",
        "| What | Measured | Goal | | Command |",
        "|---|---|---|---|---|",
    ]
    rows: list[tuple[str, str, str, bool | None, str]] = []
    for rec in data.get("record", []):
        size = rec["size"]
        for r in rec["results"]:
            name = f"{size} pair {r['pair']}"
            record_cmd = (
                f"scripts/bench record --size {size} --pairs {r['pair']} "
                f"--seconds {rec['seconds_per_run']:g}"
            )
            rows.append((
                f"CPU per recorded minute, {name}: ours / ffmpeg CLI",
                f"{r['cpu_s_per_min_ours']} s / {r['cpu_s_per_min_ffmpeg']} s = "
                f"{r['ratio_ours_to_ffmpeg']}×",
                "≤ 1.1×",
                r["ratio_ours_to_ffmpeg"] <= 1.1,
                record_cmd,
            ))
            dropped = r["frames_dropped"]  # already both kinds: at the source and the queue's
            rows.append((
                f"Frames dropped / missing, {name}",
                f"{dropped} / {r['frames_missing']} (of {r['frames_expected_fps_x_s']})",
                "0 / 0 at 720p30" if size.endswith("720") else "(no goal)",
                (dropped == 0 and r["frames_missing"] <= 0) if size.endswith("720") else None,
                record_cmd,
            ))
    sync = data.get("sync")
    if sync:
        cmd = f"scripts/bench sync --seconds {sync['seconds']:g} --every {sync['probe_every_s']:g}"
        av_ = sync["audio_vs_video"]
        rows.append((
            f"Audio vs video ({av_['marks']} marks): mean / max abs. offset",
            f"{_fmt(av_['mean_ms'], ' ms')} / {_fmt(av_['max_abs_ms'], ' ms')}",
            "≤ 20 ms",
            av_["max_abs_ms"] is not None and av_["max_abs_ms"] <= 20,
            cmd,
        ))
        rows.append((
            "Audio vs video drift",
            _fmt(av_["drift_ms_per_hour"], " ms/h"),
            "≤ 10 ms/h",
            av_["drift_ms_per_hour"] is not None and abs(av_["drift_ms_per_hour"]) <= 10,
            cmd,
        ))
        for cam, o in sync["camera_vs_camera"].items():
            interval = 1000 / sync["fps"][sync["reference_camera"]]
            rows.append((
                f"Camera {cam} vs {sync['reference_camera']}: mean / max abs. offset, drift",
                f"{_fmt(o['mean_ms'], ' ms')} / {_fmt(o['max_abs_ms'], ' ms')}, "
                f"{_fmt(o['drift_ms_per_hour'], ' ms/h')}",
                f"≤ one frame ({interval:.1f} ms)",
                o["max_abs_ms"] is not None and o["max_abs_ms"] <= interval,
                cmd,
            ))
        logged = sync["vitals_logged_vs_video"]
        rows.append((
            "Vitals sample logged vs the mark (serial line + parse): mean / max",
            f"{_fmt(logged['mean_ms'], ' ms')} / {_fmt(logged['max_abs_ms'], ' ms')}",
            "(no goal)",
            None,
            cmd,
        ))
        shown = sync["vitals_shown_after_arrival"]
        interval = 1000 / sync["fps"][sync["reference_camera"]]
        rows.append((
            "Vitals-to-overlay latency: first frame showing a sample, after its arrival: mean / max",
            f"{_fmt(shown['mean_ms'], ' ms')} / {_fmt(shown['max_abs_ms'], ' ms')}",
            f"≤ one frame + 5 ms ({interval + 5:.1f} ms)",
            shown["max_abs_ms"] is not None and shown["max_abs_ms"] <= interval + 5,
            cmd,
        ))
        for cam, j in sync.get("frame_intervals", {}).items():
            rows.append((
                f"Frame interval jitter, test pattern {cam} (sd / min / max)",
                f"{j['sd_ms']} / {j['min_ms']} / {j['max_ms']} ms",
                "(no goal)",
                None,
                cmd,
            ))
    ov = data.get("overlay")
    if ov:
        rows.append((
            "Overlay cost per 720p frame (values changing once a second) / a frame with new values",
            f"{ov['ms_per_frame']} ms / {ov['ms_per_frame_with_new_values']} ms",
            "(no goal)",
            None,
            "scripts/bench overlay",
        ))
    mem = data.get("memory")
    if mem:
        rows.append((
            f"Resident memory over a {mem['seconds']} s 720p30 recording (after {mem['warm_up_s']} s)",
            f"{mem['rss_mib_first']} → {mem['rss_mib_last']} MiB ({mem['growth_pct']:+} %)",
            "growth < 5 % over 30 min",
            mem["growth_pct"] < 5 if mem["seconds"] >= 1800 else None,
            f"scripts/bench memory --seconds {mem['seconds']}",
        ))
    for curve in data.get("memory_curves", []):
        env = " ".join(f"{k}={v}" for k, v in curve.get("malloc_env", {}).items())
        if not env and curve.get("malloc_arena_max"):
            env = f"MALLOC_ARENA_MAX={curve['malloc_arena_max']}"
        rows.append((
            f"Resident memory, {curve['seconds']} s 720p30 recording"
            + (f" with {env}" if env else "")
            + ": MiB each minute",
            " → ".join(str(v) for v in curve.get("rss_mib_every_minute", []))
            + f" ({curve['growth_pct']:+} % after {curve['warm_up_s']} s)",
            "(curve)",
            None,
            (f"{env} " if env else "") + f"scripts/bench memory --seconds {curve['seconds']}",
        ))
    st = data.get("startup")
    if st:
        rows.append((
            "Start-up to READY=1 (median / max of runs)",
            f"{st['seconds_to_ready_median']} s / {st['seconds_to_ready_max']} s",
            "(no goal)",
            None,
            "scripts/bench startup",
        ))
    jit = data.get("jitter")
    if jit:
        for label, key in (("video file (MJPEG clip)", "file"), ("test pattern", "test_pattern")):
            j = jit[key]
            rows.append((
                f"Frame intervals in a {jit['seconds']} s recording, {label}: sd / min / max; "
                "largest distance from a whole number of frame slots; slots skipped",
                f"{j['sd_ms']} / {j['min_ms']} / {j['max_ms']} ms; "
                f"{j.get('max_off_slot_grid_ms', 'n/a')} ms; {j.get('slots_skipped', 'n/a')} "
                f"({j['frames']} frames)",
                "(no goal)",
                None,
                f"scripts/bench jitter --seconds {jit['seconds']}",
            ))
    for what, measured, goal, ok, cmd in rows:
        lines.append(f"| {what} | {measured} | {goal} | {_goal(ok)} | `{cmd}` |")
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in data.get("notes", [])]
    path.write_text("\n".join(lines) + "\n")


def table(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="neoflix-table-"))
    data: dict[str, Any] = {
        "written_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "shared": args.shared,
        "notes": list(args.note or []),
    }
    try:
        data["record"] = []
        for size in args.sizes.split(","):
            out = tmp / f"record-{size}.json"
            data["record"].append(_run_json(
                ["scripts/bench_record.py", "--size", size, "--pairs", args.pairs,
                 "--seconds", str(args.seconds)], out,
            ))
        data["sync"] = _run_json(
            ["scripts/bench_sync.py", "--seconds", str(args.sync_seconds), "--every", "2"],
            tmp / "sync.json",
        )
        data["overlay"] = bench_overlay()
        data["memory"] = bench_memory(args.memory_seconds)
        data["startup"] = bench_startup()
        data["jitter"] = bench_jitter(60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (ROOT / "benchmarks.json").write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(data, ROOT / "BENCHMARKS.md")
    print(json.dumps(data, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "case", choices=["overlay", "memory", "startup", "jitter", "table", "markdown"]
    )
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="record: per run; memory: the recording's length (30 min: 1800)")
    parser.add_argument("--sync-seconds", type=float, default=120.0)
    parser.add_argument("--memory-seconds", type=float, default=1800.0)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--pairs", default="A,B", help="record pairs: A (same MJPEG clip, the fair one), B")
    parser.add_argument("--shared", action="store_true", help="say that other work ran beside it")
    parser.add_argument("--note", action="append", help="a line for the notes (repeatable)")
    args = parser.parse_args()
    if args.case == "overlay":
        print(json.dumps(bench_overlay(), indent=1))
    elif args.case == "memory":
        print(json.dumps(bench_memory(args.seconds), indent=1))
    elif args.case == "startup":
        print(json.dumps(bench_startup(), indent=1))
    elif args.case == "jitter":
        print(json.dumps(bench_jitter(min(args.seconds, 600)), indent=1))
    elif args.case == "markdown":  # rewrite BENCHMARKS.md from benchmarks.json
        write_markdown(json.loads((ROOT / "benchmarks.json").read_text()), ROOT / "BENCHMARKS.md")
    else:
        return table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
