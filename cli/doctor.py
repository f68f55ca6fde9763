"""``neoflix-capture doctor``: checks a station end to end and says what is wrong in plain words.

Each check prints one line, ``OK``, ``WARN`` or ``FAIL``, with what was found and, where something
needs doing, what to do. FAIL means recording is blocked (or would record nothing useful): the
exit status is then 1. WARN is worth fixing but recording works.

Devices are opened through the recorder's own source classes, so doctor sees what the recorder
would see. While the recorder runs it holds those devices (a V4L2 camera streams to one reader,
a serial port is locked): doctor then asks the running recorder over its control socket instead
of opening them, and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import math
import os
import pwd
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar

from capture.encoder import estimated_bits_per_second
from config.loading import ConfigError, load_config
from config.models import AudioConfig, CameraConfig, Config, FileSource, MonitorConfig, TestPatternSource
from recorder.service import storage_problem
from recorder.status import RecorderStatus
from session.retention import due_for_deletion, stored_sessions
from vitals.cadence import SAMPLE_INTERVAL_S

SERVICE_USER = "neoflix"
STATE_DIRECTORY = Path("/var/lib/neoflix-capture")
#: What the unit's ProtectHome=yes hides from the service: a key file there is not found.
HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))
#: Below this much recording time left on the disk, recording is as good as blocked.
MIN_FREE_MINUTES = 10.0

Level = Literal["OK", "WARN", "FAIL"]
T = TypeVar("T")


@dataclass
class Report:
    out: TextIO
    failures: int = 0
    warnings: int = 0

    def line(self, level: Level, what: str, detail: str, advice: str = "") -> None:
        if level == "FAIL":
            self.failures += 1
        elif level == "WARN":
            self.warnings += 1
        self.out.write(f"{level:<4} {what}: {detail}\n")
        for advice_line in advice.splitlines():
            self.out.write(f"       {advice_line}\n")
        self.out.flush()


@dataclass
class Recorder:
    """What doctor knows about the recorder service."""

    unit_state: str | None = None  # systemd's ActiveState, None when systemd cannot be asked
    status: RecorderStatus | None = None  # the running recorder's own status, when reachable
    socket_error: str = ""

    @property
    def running(self) -> bool:
        return self.status is not None or self.unit_state in ("active", "activating", "reloading")


def run_doctor(
    config_path: Path,
    out: TextIO,
    *,
    service_name: str = "neoflix-capture",
    timeout_s: float = 8.0,
) -> int:
    """Run every check, print the findings; 0 if nothing blocks recording, else 1."""
    report = Report(out)
    out.write(f"neoflix-capture doctor: {config_path}\n")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        report.line(
            "FAIL", "config", f"{config_path} cannot be used:",
            str(exc) + "\nFix the named fields (config/example.toml documents each one).",
        )  # fmt: skip
        _check_clock(report)
        _check_service(report, service_name, None)
        return _summary(report)
    report.line(
        "OK", "config",
        f"valid: {len(config.cameras)} camera(s), {len(config.monitors)} monitor(s), "
        f"audio {'on' if config.audio else 'off'}",
    )  # fmt: skip
    _check_recipients(report, config, config_path)
    recorder = _check_service(report, service_name, config)
    _check_storage(report, config)
    _check_retention(report, config, service_running=recorder.running)
    _check_collection(report, config, recorder.status)
    if recorder.status is not None:
        _devices_from_recorder(report, config, recorder.status)
    else:
        held = recorder.running
        for cam in config.cameras:
            _check_camera(report, cam, timeout_s, held)
        if config.audio is not None:
            _check_audio(report, config, config.audio, timeout_s, held)
        for mon in config.monitors:
            _check_monitor(report, mon, timeout_s, held)
    _check_button(report, config)
    _check_clock(report)
    return _summary(report)


def _summary(report: Report) -> int:
    if report.failures:
        report.out.write(
            f"\n{report.failures} problem(s) block recording"
            f"{f', {report.warnings} warning(s)' if report.warnings else ''}.\n"
        )
        return 1
    extra = f" ({report.warnings} warning(s) worth a look)" if report.warnings else ""
    report.out.write(f"\nNothing blocks recording{extra}.\n")
    return 0


# --- keys and storage -------------------------------------------------------------------------------


def _check_recipients(report: Report, config: Config, config_path: Path) -> None:
    from recorder.recipients import resolve_recipients

    try:
        recipients = resolve_recipients(config.storage, str(config_path))
    except ConfigError as exc:
        report.line(
            "FAIL", "recipients", "no usable review key, so the recorder refuses to record:",
            str(exc),
        )  # fmt: skip
        return
    problem = _recipients_file_problem(config.storage.recipients_file)
    if problem is not None:
        report.line(
            "FAIL", "recipients", f"{problem}, so the service refuses to record",
            "Keep it beside the config, readable by the service:\n"
            f"install -m 0640 -o root -g {SERVICE_USER} FILE /etc/neoflix-capture/recipients.txt\n"
            "and set storage.recipients_file to that path.",
        )  # fmt: skip
        return
    shown = ", ".join(f"{str(r)[:12]}...{str(r)[-6:]}" for r in recipients)
    report.line(
        "OK", "recipients",
        f"{len(recipients)} review key(s) ({shown}); recordings can be read only on the review side",
    )  # fmt: skip


def _recipients_file_problem(path: Path | None) -> str | None:
    """Why the service could not read ``path`` although doctor (often root) can, or None."""
    if path is None:
        return None
    hidden = next((h for h in HIDDEN_BY_PROTECT_HOME if _inside(path, h)), None)
    if hidden is not None:
        return (
            f"storage.recipients_file {path} is under {hidden}, which the service's sandbox "
            "hides (ProtectHome=yes)"
        )
    if _readable_by(path, SERVICE_USER) is False:
        return f"storage.recipients_file {path} cannot be read by the service user {SERVICE_USER}"
    return None


def _check_storage(report: Report, config: Config) -> None:
    directory = config.storage.directory
    problem = storage_problem(directory)
    if problem is not None:
        report.line(
            "FAIL", "storage", problem,
            f"Create it and give it to the service user: install -d -o {SERVICE_USER} -m 0700 {directory}",
        )  # fmt: skip
        return
    probe = _existing(directory)
    service_access = _writable_by(probe, SERVICE_USER)
    if service_access is False:
        report.line(
            "FAIL", "storage", f"{probe} is not writable by the service user {SERVICE_USER}",
            f"chown -R {SERVICE_USER}: {directory}",
        )  # fmt: skip
        return
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        report.line("FAIL", "storage", f"cannot read the free space of {probe}: {exc.strerror}")
        return
    per_minute = estimated_bits_per_second(config) / 8 * 60
    minutes = free / per_minute
    longest = config.session.max_duration_s / 60
    where = (
        f"{directory} writable"
        if directory.is_dir()
        else f"{directory} does not exist yet: made at the first recording, in {probe}, writable"
    )
    detail = f"{where}, {free / 1024**3:.1f} GB free: about {_minutes(minutes)} of recording"
    reserve = config.storage.reserve_minutes
    if minutes < reserve:
        report.line(
            "FAIL", "storage", f"{detail}: below the {_minutes(reserve)} reserve, recordings are refused",
            "Free space (move old sessions to the review side).",
        )  # fmt: skip
    elif minutes < MIN_FREE_MINUTES:
        report.line("FAIL", "storage", detail, "Free space (move old sessions to the review side).")
    elif minutes < longest:
        report.line(
            "WARN", "storage", detail,
            f"Less than one recording of the maximum length ({_minutes(longest)}) fits.",
        )  # fmt: skip
    else:
        report.line("OK", "storage", detail)
    if not _inside(directory, STATE_DIRECTORY) and not _writable_under_unit(directory):
        report.line(
            "WARN", "storage",
            f"{directory} is outside {STATE_DIRECTORY}: the service's sandbox keeps it read-only",
            "Add a drop-in: systemctl edit neoflix-capture, then\n"
            f"[Service]\nReadWritePaths={directory}",
        )  # fmt: skip


def _check_retention(report: Report, config: Config, *, service_running: bool) -> None:
    days = config.storage.retention_days
    try:
        stored = stored_sessions(config.storage.directory)
    except OSError as exc:
        report.line("WARN", "retention", f"cannot list the stored sessions: {exc.strerror or exc}")
        return
    held = f"{len(stored)} session(s) stored ({sum(s.bytes for s in stored) / 1024**3:.1f} GB)"
    if stored:
        held += f", the oldest started {stored[0].started:%Y-%m-%d %H:%M} UTC"
    if days == 0:
        report.line(
            "WARN", "retention", f"off: sessions stay until deleted by hand; {held}",
            "Agree a retention period with the privacy officer and set storage.retention_days.",
        )  # fmt: skip
        return
    # A pass runs at start and every few minutes: a day past due means no recorder has run.
    overdue = due_for_deletion(stored, datetime.now(UTC) - timedelta(days=1), days, recording=None)
    detail = f"sessions are deleted {days} days after they start; {held}"
    if overdue:
        advice = (
            "The recorder deletes them every few minutes; its log says why it could not:\n"
            "journalctl -u neoflix-capture | grep retention"
            if service_running
            else "The recorder deletes them when it runs: systemctl start neoflix-capture"
        )
        report.line("WARN", "retention", f"{detail}; {len(overdue)} a day past it, not deleted", advice)
    else:
        report.line("OK", "retention", detail)


def _check_collection(report: Report, config: Config, status: RecorderStatus | None) -> None:
    """The archive takes a write with these keys (a small probe object), and the running
    recorder's backlog. The probe stays: the table's keys may write, never delete (the archive's
    operator may remove ``<site>/<table>/.doctor/`` objects)."""
    c = config.collection
    if not c.enabled:
        report.line("OK", "collection", "off: sessions stay on this PC (retention keeps uncollected ones)")
        return
    import base64
    import hashlib

    from collect.archive import ArchiveUnavailable, error_code, make_client, read_keys

    assert c.endpoint and c.bucket and c.site and c.table
    key = f"{c.site}/{c.table}/.doctor/{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    body = f"neoflix-capture doctor probe {datetime.now(UTC).isoformat(timespec='seconds')}\n".encode()
    try:
        client = make_client(c.endpoint, c.region, read_keys(c.credentials_file), timeout_s=8, attempts=1)
        client.put_object(
            Bucket=c.bucket,
            Key=key,
            Body=body,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            IfNoneMatch="*",
        )
    except ArchiveUnavailable as exc:
        report.line("WARN", "collection", str(exc), "Sessions stay on this PC until this is fixed.")
        return
    except Exception as exc:  # botocore: the endpoint, the keys, the bucket, the policy
        code = error_code(exc)
        advice = {
            "AccessDenied": f"The keys may not write {c.bucket}/{c.site}/{c.table}/*: check the bucket "
            "policy (README, 'Collection into an archive').",
            "InvalidAccessKeyId": f"The archive does not know these keys: {c.credentials_file}.",
            "SignatureDoesNotMatch": f"The secret key in {c.credentials_file} is wrong.",
            "NoSuchBucket": f"There is no bucket {c.bucket!r} at {c.endpoint}.",
        }.get(code, f"Is {c.endpoint} reachable from this PC?")
        report.line("WARN", "collection", f"a test write to {c.bucket}/{key} failed: {code}: {exc}", advice)
        return
    detail = f"{c.endpoint} bucket {c.bucket} took a test write ({key}; these keys cannot delete it)"
    backlog = status.collection if status is not None else None
    if backlog is not None:
        from recorder.service import COLLECTION_STALLED_AFTER_S, collection_note

        detail += f"; {collection_note(status) if status is not None else ''}"
        if (backlog.oldest_age_s or 0) > COLLECTION_STALLED_AFTER_S:
            report.line("WARN", "collection", detail, "journalctl -u neoflix-capture | grep collect_")
            return
    report.line("OK", "collection", detail)


def _minutes(minutes: float) -> str:
    if minutes >= 120:
        return f"{minutes / 60:.0f} hours"
    return f"{minutes:.0f} minutes"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _writable_by(path: Path, user: str) -> bool | None:
    """Whether ``user`` may create files in ``path`` by its mode bits; None if no such user."""
    return _allowed(path, user, write=True)


def _readable_by(path: Path, user: str) -> bool | None:
    """Whether ``user`` may read ``path``, its folders included, by their mode bits; None if
    there is no such user or doctor cannot see the file itself."""
    target = Path(os.path.abspath(path))
    try:
        target = target.resolve(strict=True)
    except OSError:
        return None
    for folder in reversed(target.parents):
        if _allowed(folder, user, search=True) is False:
            return False
    return _allowed(target, user, read=True)


def _allowed(
    path: Path, user: str, *, read: bool = False, write: bool = False, search: bool = False
) -> bool | None:
    """Whether the mode bits of ``path`` give ``user`` what is asked (write to a folder implies
    search in it); None if no such user, or ``path`` cannot be looked at."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    if pw.pw_uid == 0:
        return True
    if write:
        search = True
    if os.geteuid() != 0 and os.geteuid() == pw.pw_uid:
        mode = (os.R_OK if read else 0) | (os.W_OK if write else 0) | (os.X_OK if search else 0)
        return os.access(path, mode)
    try:
        st = path.stat()
    except OSError:
        return None
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if st.st_uid == pw.pw_uid:
        bits = (stat.S_IRUSR, stat.S_IWUSR, stat.S_IXUSR)
    elif st.st_gid in groups:
        bits = (stat.S_IRGRP, stat.S_IWGRP, stat.S_IXGRP)
    else:
        bits = (stat.S_IROTH, stat.S_IWOTH, stat.S_IXOTH)
    need = sum(bit for bit, asked in zip(bits, (read, write, search), strict=True) if asked)
    return st.st_mode & need == need


def _writable_under_unit(directory: Path) -> bool:
    out = _run(["systemctl", "show", "-p", "ReadWritePaths", "--value", "neoflix-capture"])
    if out is None:
        return False
    return any(_inside(directory, Path(p.lstrip("-+"))) for p in out.split() if p)


# --- the service -------------------------------------------------------------------------------------


def _check_service(report: Report, service_name: str, config: Config | None) -> Recorder:
    recorder = Recorder()
    out = _run(["systemctl", "show", "-p", "ActiveState,UnitFileState,LoadState", service_name])
    if out is None:
        report.line(
            "WARN", "service", "cannot ask systemd about it (not running under systemd here?)"
        )
    else:
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        recorder.unit_state = props.get("ActiveState")
        enabled = props.get("UnitFileState", "")
        if props.get("LoadState") == "not-found":
            report.line(
                "WARN", "service", f"{service_name}.service is not installed",
                "Install it with scripts/install (as root).",
            )  # fmt: skip
        elif recorder.unit_state == "failed":
            report.line(
                "FAIL", "service", f"{service_name} has failed and is not running",
                f"See why: journalctl -u {service_name} -n 50; then systemctl restart {service_name}",
            )  # fmt: skip
        elif recorder.unit_state != "active":
            report.line(
                "WARN", "service", f"{service_name} is {recorder.unit_state} ({enabled})",
                f"Start it once this report is clean: systemctl enable --now {service_name}",
            )  # fmt: skip
        else:
            note = "" if enabled == "enabled" else f", but {enabled}: it will not start at boot"
            report.line("OK" if not note else "WARN", "service", f"{service_name} is running{note}")
    if config is not None:
        from control.socket import ControlError, request

        try:
            reply = request(config.station.control_socket, "status", timeout=5.0, by="doctor")
        except ControlError as exc:
            recorder.socket_error = str(exc)
        else:
            if reply.get("ok"):
                recorder.status = RecorderStatus.from_json(reply)
                report.line(
                    "OK", "recorder",
                    f"answers on {config.station.control_socket}: {recorder.status.state}",
                )  # fmt: skip
        if recorder.status is None and recorder.running:
            report.line(
                "WARN", "recorder",
                f"the service runs but its control socket does not answer: {recorder.socket_error}",
                "Run doctor as root or as a member of the group neoflix to see the devices as the "
                "recorder sees them.",
            )  # fmt: skip
    return recorder


def _run(argv: list[str], timeout_s: float = 5.0) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 and not done.stdout.strip():
        return None
    return done.stdout


def _devices_from_recorder(report: Report, config: Config, status: RecorderStatus) -> None:
    """The devices as the running recorder reports them (it holds them; doctor cannot open them)."""
    note = "(checked through the running recorder, which holds the device)"
    for cam in config.cameras:
        info = status.cameras.get(cam.name)
        health = info.health if info is not None else None
        state: str = health.state if health is not None else "unknown"
        if info is not None and health is not None and state == "live":
            level: Level = "OK" if health.rate >= 0.8 * cam.fps else "WARN"
            report.line(
                level, f"camera {cam.name}",
                f"live at {health.rate:.1f} fps (config {cam.fps}), "
                f"{info.frames_dropped} frames dropped {note}",
            )  # fmt: skip
        else:
            error = health.last_error if health is not None else None
            report.line(
                "FAIL", f"camera {cam.name}",
                f"{state}: {error or 'no frames'} {note}",
                "The recording shows NO SIGNAL for this camera. Check its cable or network.",
            )  # fmt: skip
    if config.audio is not None:
        audio = status.audio
        state = audio.state if audio is not None else "not used"
        level = "OK" if state == "live" or not any(c.audio for c in config.cameras) else "FAIL"
        advice = "" if level == "OK" or audio is None else str(audio.last_error or "")
        report.line(level, "audio", f"{state} {note}", advice)
    for mon in config.monitors:
        monitor = status.monitors.get(mon.name)
        state = monitor.health.state if monitor is not None else "unknown"
        if state == "live":
            report.line("OK", f"monitor {mon.name}", f"live {note}")
        else:
            error = monitor.health.last_error if monitor is not None else None
            report.line(
                "FAIL", f"monitor {mon.name}",
                f"{state}: {error or 'no data'} {note}",
                "The overlay shows NO SIGNAL for its values. Check the cable and the monitor's "
                "serial output setting.",
            )  # fmt: skip


# --- devices -----------------------------------------------------------------------------------------


def _within(fn: Callable[[], T], timeout_s: float) -> tuple[T | None, BaseException | None, bool]:
    """Run ``fn`` on a thread: (result, error, finished in time). A device read can block for
    good; the thread is a daemon and is left behind rather than waited for."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="doctor-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return None, None, False
    return box.get("result"), box.get("error"), True


@dataclass
class _FrameProbe:
    size: tuple[int, int] | None = None  # what the source delivers, before any resizing
    frames: int = 0
    fps: float = 0.0
    accepted: dict[str, object] = field(default_factory=dict)


def _probe_frames(source: Any, seconds: float, max_frames: int) -> _FrameProbe:
    probe = _FrameProbe()
    source.open()
    try:
        probe.accepted = dict(getattr(source, "accepted", {}) or {})
        stamps: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and probe.frames < max_frames:
            frame = source.read()
            if frame is None:
                break
            stamps.append(time.monotonic())
            probe.frames += 1
            if probe.size is None:
                probe.size = (int(frame.shape[1]), int(frame.shape[0]))
        # The first frame of a camera comes late (exposure settling); rate from the rest.
        if len(stamps) >= 3 and stamps[-1] > stamps[1]:
            probe.fps = (len(stamps) - 2) / (stamps[-1] - stamps[1])
    finally:
        source.close()
    return probe


def _held_hint(held: bool) -> str:
    if held:
        return (
            "The recorder service is running and holds its devices, so doctor cannot open them: "
            "run doctor as root (it then asks the recorder), or stop the service to test the device."
        )
    return ""


def _check_camera(report: Report, cam: CameraConfig, timeout_s: float, held: bool) -> None:
    from recorder.source_factory import make_frame_source

    _quiet_opencv()
    what = f"camera {cam.name}"
    source = make_frame_source(cam)
    # Two seconds of frames measure the rate; timeout_s is what opening may take on top.
    probe, error, finished = _within(
        lambda: _probe_frames(source, seconds=2.0, max_frames=cam.fps * 2 + 2), timeout_s + 2.0
    )
    desc = source.describe()
    if not finished:
        report.line(
            "FAIL", what, f"{desc} gave no frame within {timeout_s:g} s (its read hangs)",
            _held_hint(held) or "Replug the camera or restart the encoder box; check the URL.",
        )  # fmt: skip
        return
    if error is not None or probe is None:
        report.line("FAIL", what, f"{error}", _held_hint(held))
        return
    if probe.frames == 0 or probe.size is None:
        report.line(
            "FAIL", what, f"{desc} opens but delivers no frames",
            _held_hint(held) or "Another program may be streaming from it (only one can).",
        )  # fmt: skip
        return
    w, h = probe.size
    fourcc = probe.accepted.get("fourcc")
    detail = f"{desc} delivers {w}x{h}" + (f" {fourcc}" if fourcc else "") + f" at {probe.fps:.1f} fps"
    problems: list[str] = []
    if (w, h) != (cam.width, cam.height):
        scale = "up (blurry)" if w * h < cam.width * cam.height else "down (costs CPU)"
        problems.append(
            f"the config asks {cam.width}x{cam.height}, so every frame is scaled {scale}; "
            "pick a size the camera offers (neoflix-capture devices lists them)"
        )
    paced_by_source = isinstance(cam.source, (FileSource, TestPatternSource))
    if not paced_by_source and probe.fps < 0.8 * cam.fps:
        problems.append(
            f"the config asks {cam.fps} fps; many USB cameras halve their rate in low light with "
            "automatic exposure (set a fixed exposure), or need MJPG for 720p30 over USB 2"
        )
    if problems:
        report.line("WARN", what, detail, "\n".join(problems))
    else:
        report.line("OK", what, detail)


def _quiet_opencv() -> None:
    # OpenCV prints its own warnings for a device it cannot open ("can't be used to capture by
    # name"); the finding below says it in plain words, so theirs would only confuse.
    import cv2

    with contextlib.suppress(AttributeError, cv2.error):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _check_audio(report: Report, config: Config, audio: AudioConfig, timeout_s: float, held: bool) -> None:
    from recorder.source_factory import make_audio_source

    if not any(c.audio for c in config.cameras):
        report.line(
            "WARN", "audio", "an [audio] section is configured but no camera has audio = true: unused"
        )
        return
    source = make_audio_source(audio)

    def listen() -> float | None:
        source.open()
        try:
            peak = 0.0
            heard = 0.0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and heard < 1.0:
                chunk = source.read()
                if chunk is None:
                    break
                heard += chunk.duration_s
                if chunk.samples:
                    peak = max(peak, float(abs(chunk.pcm).max()))
            return peak if heard > 0 else None
        finally:
            source.close()

    peak, error, finished = _within(listen, timeout_s + 1.5)
    desc = source.describe()
    if not finished:
        report.line("FAIL", "audio", f"{desc} gave no sound within {timeout_s:g} s", _held_hint(held))
    elif error is not None:
        report.line("FAIL", "audio", str(error), _held_hint(held))
    elif peak is None:
        report.line("FAIL", "audio", f"{desc} opens but delivers no sound", _held_hint(held))
    elif peak == 0.0:
        report.line(
            "WARN", "audio", f"{desc} delivers only digital silence",
            "Is the microphone muted, or the capture level at 0 (alsamixer, F4)?",
        )  # fmt: skip
    else:
        report.line("OK", "audio", f"{desc} delivers sound (peak {20 * math.log10(peak):.0f} dBFS)")


def _check_monitor(report: Report, mon: MonitorConfig, timeout_s: float, held: bool) -> None:
    from recorder.monitor_link import link_for, port_words
    from vitals.sample import VitalSample

    what = f"monitor {mon.name}"
    interval = SAMPLE_INTERVAL_S.get(mon.protocol, 2.0)
    wait_s = max(timeout_s, 3 * interval + 1)
    samples: list[VitalSample] = []
    got_valid = threading.Event()
    lock = threading.Lock()

    def on_samples(batch: list[VitalSample]) -> None:
        with lock:
            samples.extend(batch)
        if any(s.valid for s in batch):
            got_valid.set()

    # The link the recorder itself would read this monitor through: same parser, same settings.
    link = link_for(mon, on_samples)
    started = time.monotonic()
    link.start()
    try:
        deadline = started + wait_s
        while not got_valid.wait(0.1) and time.monotonic() < deadline:
            health = link.health()
            if health.state == "lost" and (health.last_error or "").startswith("open failed"):
                break  # the port is not there or not ours: waiting longer changes nothing
        took = time.monotonic() - started
        health = link.health()
    finally:
        link.stop()
    where = f"{mon.protocol} on {mon.port} at {port_words(mon, link.parser)}"
    with lock:
        valid = [s for s in samples if s.valid]
        seen = len(samples)
    if valid:
        latest: dict[str, str] = {}
        for s in valid:
            latest[str(s.parameter)] = f"{s.parameter} {s.value:g} {s.unit}".strip()
        report.line(
            "OK", what,
            f"{where}: valid values after {took:.1f} s ({', '.join(list(latest.values())[:4])})",
        )  # fmt: skip
        return
    if seen:
        report.line(
            "WARN", what, f"{where}: talks, but sends no valid values yet",
            "Normal with no sensor on a patient; values appear once one is.",
        )  # fmt: skip
        return
    error = health.last_error or ""
    # A port that opened but stayed silent is "lost" too (silence timeout); only a failed open
    # is a port problem, silence is the monitor's (reported below).
    if health.state != "live" and error.startswith("open failed"):
        report.line("FAIL", what, f"cannot open {mon.port}: {error}", _port_advice(error, held))
        return
    stats = health.stats
    if stats.bytes_in:
        report.line(
            "FAIL", what,
            f"{where}: {stats.bytes_in} bytes arrived in {wait_s:.0f} s but none made a sample "
            f"({stats.records_bad} bad records, {stats.garbage_bytes} garbage bytes)",
            "Wrong protocol or baud rate? Check the monitor's serial output setting.",
        )  # fmt: skip
        return
    report.line(
        "FAIL", what,
        f"{where}: nothing arrived within {wait_s:.0f} s (a {mon.protocol} monitor sends about "
        f"every {interval:g} s)",
        "Is the monitor's serial output switched on (Masimo: ASCII 1), the baud rate right, and "
        "the cable a null-modem cable where the monitor needs one?",
    )  # fmt: skip


def _port_advice(error: str, held: bool) -> str:
    low = error.lower()
    if "no such file" in low or "errno 2]" in low:
        return "The device node is missing: is the adapter plugged in, is the udev rule loaded?"
    if "permission denied" in low:
        return "The service user needs the dialout group (the unit gives it; check the node's group)."
    if "lock" in low or "busy" in low or "temporarily unavailable" in low:
        return _held_hint(held) or "Another program holds the port."
    return _held_hint(held)


def _check_button(report: Report, config: Config) -> None:
    button = config.button
    if button.kind == "hid":
        _check_hid_library(report)
    if button.kind == "hid" and button.device:
        device = Path(button.device)
        if not device.exists():
            report.line(
                "WARN", "button", f"{device} does not exist: the bedside button will not work",
                "Plug it in; neoflix-capture devices and /dev/input/by-id show its name.",
            )  # fmt: skip
        else:
            report.line("OK", "button", f"{device} present")
    elif button.kind == "serial" and button.port and button.port.startswith("/"):
        level: Level = "OK" if Path(button.port).exists() else "WARN"
        report.line(level, "button", f"{button.port} {'present' if level == 'OK' else 'does not exist'}")


def _check_hid_library(report: Report) -> None:
    """A USB button is read through evdev, an optional extra: without it the button is dead."""
    import importlib
    import importlib.metadata
    import platform

    try:
        importlib.import_module("evdev")
    except (ImportError, OSError) as exc:
        # The same evdev, as a wheel (x86_64) or built from source (needs a compiler).
        package = "evdev-binary" if platform.machine() == "x86_64" else "evdev"
        build = ""
        if package == "evdev":
            build = " (it builds from source: gcc, python3-dev, linux-libc-dev)"
        report.line(
            "FAIL", "button library", f"evdev does not import ({exc}): the USB button cannot work",
            f"Install the package {package} into the program's virtualenv{build}:\n"
            f"/opt/neoflix-capture/venv/bin/python -m pip install {package}\n"
            "or run scripts/install --upgrade, which installs it when button.kind = \"hid\".",
        )  # fmt: skip
        return
    versions = []
    for dist in ("evdev-binary", "evdev"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    report.line("OK", "button library", f"evdev imports ({', '.join(versions) or 'version unknown'})")


# --- the clock ---------------------------------------------------------------------------------------


def _check_clock(report: Report) -> None:
    synced = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if synced is not None and synced.strip() in ("yes", "no"):
        if synced.strip() == "yes":
            report.line("OK", "clock", "synchronised (timedatectl)")
        else:
            report.line(
                "WARN", "clock", "not synchronised (timedatectl)",
                "Recordings carry wrong UTC times. Point systemd-timesyncd or chrony at the "
                "hospital's NTP server: timedatectl set-ntp true.",
            )  # fmt: skip
        return
    tracking = _run(["chronyc", "-n", "tracking"])
    if tracking is not None and "Leap status" in tracking:
        ok = "Not synchronised" not in tracking
        report.line(
            "OK" if ok else "WARN", "clock",
            "synchronised (chrony)" if ok else "not synchronised (chrony)",
            "" if ok else "Check chronyc sources: can this PC reach the hospital's NTP server?",
        )  # fmt: skip
        return
    state = _kernel_clock_state()
    if state is None:
        report.line("WARN", "clock", "cannot tell whether the clock is synchronised")
    elif state:
        report.line("OK", "clock", "synchronised (the kernel's clock status)")
    else:
        report.line(
            "WARN", "clock", "the kernel says the clock is not synchronised",
            "Recordings carry wrong UTC times. Enable time sync: timedatectl set-ntp true.",
        )  # fmt: skip


def _kernel_clock_state() -> bool | None:
    """adjtimex(2) with no changes: TIME_ERROR (5) means no time daemon keeps the clock set."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # larger than struct timex; modes = 0: read only
        result = int(libc.adjtimex(buf))
        if result >= 0:
            return result != 5
    return None
