"""The ``neoflix-capture`` command: the daemon, its control commands, keys, export and demo."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.loading import EX_CONFIG, ConfigError, load_config
from control.socket import ControlError, request
from session.layout import audit_log_path

DEFAULT_CONFIG = Path("/etc/neoflix-capture/config.toml")
DEFAULT_SOCKET = Path("/run/neoflix-capture/control.sock")
EX_UNAVAILABLE = 69  # sysexits.h: the recorder could not be reached
EX_TEMPFAIL = 75  # sysexits.h: another recorder holds the storage; try again once it has stopped


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result: int = handler(args)
        return result
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except ControlError as exc:
        print(str(exc), file=sys.stderr)
        return EX_UNAVAILABLE


def _version() -> str:
    try:
        return importlib.metadata.version("neoflix-capture")
    except importlib.metadata.PackageNotFoundError:  # a checkout that is not installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="neoflix-capture",
        description="Edge recorder for resuscitation tables: video, audio and vitals, encrypted.",
    )
    p.add_argument("--version", action="version", version=f"neoflix-capture {_version()}")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run the recorder (what the service runs)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.set_defaults(handler=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and its recipients")
    check.add_argument("path", type=Path, nargs="?", default=DEFAULT_CONFIG)
    check.set_defaults(handler=_cmd_check_config)

    render = sub.add_parser(
        "config-render",
        help="a table's config from the unit's template and per-table overrides, checked, on stdout",
    )
    render.add_argument("template", type=Path, help="the config template shared by the tables")
    render.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='e.g. --set station.table="Resus 3" --set collection.table=resus-3 (repeatable)',
    )
    render.set_defaults(handler=_cmd_config_render)

    keygen = sub.add_parser(
        "keygen", help="create a review-side identity (secret key) and print its recipient"
    )
    keygen.add_argument("--out", type=Path, required=True, help="identity file to create")
    keygen.set_defaults(handler=_cmd_keygen)

    for name, text in (
        ("start", "start recording now"),
        ("stop", "stop recording (keeps what was recorded)"),
        ("status", "show what the recorder is doing"),
        ("mark", "add a marker now (e.g. birth, intubation); 'birth' sets time since birth"),
        ("discard", "consent refused: destroy the current recording, pre-roll included"),
        ("do-not-record", "suppress automatic recording for this patient (until lifted or the end)"),
        ("allow-recording", "lift do-not-record"),
    ):
        c = sub.add_parser(name, help=text)
        if name == "mark":
            c.add_argument("label", help="what happened, e.g. birth, intubation, adrenaline")
        c.add_argument("--socket", type=Path, help="control socket (default: from the config)")
        c.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
        if name == "status":
            c.add_argument("--json", action="store_true", help="machine-readable output")
        c.set_defaults(handler=_cmd_control, command=name)

    doctor = sub.add_parser(
        "doctor", help="check config, keys, storage, devices, clock and service, in plain words"
    )
    doctor.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    doctor.add_argument(
        "--timeout", type=float, default=8.0, help="seconds each device may take to answer"
    )
    doctor.set_defaults(handler=_cmd_doctor)

    devices = sub.add_parser(
        "devices",
        help="list cameras (with formats), audio inputs, serial ports and buttons for the config",
    )
    devices.set_defaults(handler=_cmd_devices)

    vitals = sub.add_parser("vitals", help="wiring check: read a monitor and print its samples")
    vitals_sub = vitals.add_subparsers(metavar="ACTION")
    read = vitals_sub.add_parser("read", help="print normalised samples as JSON lines")
    read.add_argument("--protocol", required=True, help="masimo, intellivue, ge_s5, medibus, ...")
    where = read.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="pyserial URL: /dev/ttyUSB0, socket://host:port, ...")
    where.add_argument("--file", type=Path, help="a raw byte capture to replay")
    read.add_argument("--monitor", default="monitor", help="name shown in each sample")
    read.add_argument("--baudrate", type=int)
    # Unset, each keeps the protocol's own setting, as a monitor's config does.
    read.add_argument("--parity", choices=["N", "E", "O"], help="override the protocol's parity")
    read.add_argument("--stopbits", type=int, choices=[1, 2], help="override the stop bits")
    read.add_argument(
        "--rtscts", action=argparse.BooleanOptionalAction, help="RTS/CTS flow control on or off"
    )
    read.add_argument(
        "--xonxoff", action=argparse.BooleanOptionalAction, help="XON/XOFF flow control on or off"
    )
    read.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    read.add_argument(
        "--line-format", type=Path, help="protocol line_format: a TOML file with the table"
    )
    read.set_defaults(handler=_cmd_vitals_read)

    simulate = sub.add_parser(
        "simulate", help="run a monitor simulator on a serial port, or on a new pty it prints"
    )
    simulate.add_argument("--protocol", required=True)
    simulate.add_argument("--port", help="serial device to write to (default: create a pty)")
    simulate.add_argument("--time-scale", type=float, default=1.0, help="speed up the script")
    simulate.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    simulate.set_defaults(handler=_cmd_simulate)

    audit = sub.add_parser("audit", help="the audit log: verify its hash chain")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("file", type=Path, nargs="?", help="default: from the config")
    audit.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    audit.add_argument(
        "--sessions",
        type=Path,
        help="also check the log against the heads recorded in these sessions' manifests (a storage "
        "folder or one session; needs --identity): lines cut from the log's end show only so",
    )
    audit.add_argument("--identity", type=Path, help="the review key, to read the manifests")
    audit.set_defaults(handler=_cmd_audit)

    check = sub.add_parser(
        "verify",
        help="check a session against its manifest and the files' own authentication (no plaintext); "
        "exit 0 whole, 1 not whole, 2 cannot check (identity, folder)",
    )
    check.add_argument("session_dir", type=Path)
    check.add_argument("--identity", type=Path, required=True, help="the review key (age identity file)")
    check.add_argument("--json", action="store_true", help="machine-readable report")
    check.set_defaults(handler=_cmd_verify)

    export = sub.add_parser(
        "export",
        help="verify a session, then decrypt what verified into playable MP4s, vitals.csv and the "
        "report; exit 0 whole, 1 exported but not whole (see report.txt), 2 nothing exported",
    )
    export.add_argument("session_dir", type=Path)
    export.add_argument("--identity", type=Path, required=True, help="age identity file")
    export.add_argument("--out", type=Path, required=True, help="a folder for this session's export only")
    export.add_argument(
        "--audit-log",
        type=Path,
        help="record the export in this audit log (default: the recorder's own, when the session "
        "is exported where it was recorded)",
    )
    export.add_argument(
        "--composite",
        action="store_true",
        help="also write composite.mp4: the cameras side by side over a vitals strip, re-encoded "
        "(takes about as long as the recording, or longer, on a small PC)",
    )
    export.add_argument(
        "--spo2-targets",
        type=_spo2_targets,
        default=None,
        metavar="MIN:LOW-HIGH,...",
        help="the SpO2 target band on the plots, minutes after birth (after the recording's start "
        "when no birth was marked); default: the resuscitation guidelines' "
        "1:60-65,2:65-70,3:70-75,4:75-80,5:80-85,10:85-95",
    )
    export.set_defaults(handler=_cmd_export)

    # These four also work with the recorder down: on the storage directly, under its lock.
    sessions = sub.add_parser(
        "sessions", help="list the sessions stored here, when each is deleted, and what keeps it"
    )
    sessions.add_argument("--json", action="store_true", help="machine-readable output")
    delete = sub.add_parser(
        "delete", help="consent withdrawn after the recording: destroy a stored session (audited)"
    )
    delete.add_argument("session", help="the session's id, as `neoflix-capture sessions` lists it")
    hold = sub.add_parser("hold", help="legal hold: nothing deletes this session until it is released")
    release = sub.add_parser("release", help="lift a session's legal hold (audited)")
    for c in (hold, release):
        c.add_argument("session", help="the session's id, as `neoflix-capture sessions` lists it")
    for c in (sessions, delete, hold, release):
        c.add_argument("--socket", type=Path, help="control socket (default: from the config)")
        c.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    sessions.set_defaults(handler=_cmd_sessions)
    delete.set_defaults(handler=_cmd_delete)
    hold.set_defaults(handler=_cmd_hold)
    release.set_defaults(handler=_cmd_release)

    from cli.archive import add_connection_flags
    from cli.archive import add_parser as add_archive_parser

    add_archive_parser(sub)
    add_connection_flags(export)  # for an export straight from the archive: s3://BUCKET/SITE/TABLE/SESSION

    demo = sub.add_parser(
        "demo", help="record from synthetic sources with the real daemon, then export it"
    )
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--seconds", type=float, default=30.0)
    demo.add_argument("--verbose", action="store_true", help="show the daemon's log")
    demo.set_defaults(handler=_cmd_demo)
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from recorder.daemon import AlreadyRunning, Daemon, RecorderError
    from recorder.logs import configure_logging
    from recorder.preflight import path_problems
    from recorder.recipients import resolve_recipients

    config = load_config(args.config)
    configure_logging(config.logging.format, config.logging.level)
    recipients = resolve_recipients(config.storage, str(args.config))
    problems = path_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{args.config}: {p}" for p in problems))
    try:
        daemon = Daemon(config, recipients)
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        return EX_TEMPFAIL
    except RecorderError as exc:
        print(str(exc), file=sys.stderr)
        return EX_CONFIG
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    try:
        daemon.run(stop)
    finally:
        daemon.shutdown()
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from recorder.preflight import path_problems
    from recorder.recipients import resolve_recipients

    config = load_config(args.path)
    recipients = resolve_recipients(config.storage, str(args.path))
    problems = path_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{args.path}: {p}" for p in problems))
    print(
        f"{args.path}: OK: {len(config.cameras)} camera(s), {len(config.monitors)} monitor(s), "
        f"audio {'on' if config.audio else 'off'}, {len(recipients)} recipient(s)"
    )
    return 0


def _cmd_config_render(args: argparse.Namespace) -> int:
    from config.loading import parse_config
    from config.overrides import OverrideError, render

    try:
        template = args.template.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{args.template}: cannot read the template: {exc.strerror or exc}") from exc
    header = f"Rendered by neoflix-capture config-render from {args.template.name}"
    if args.overrides:
        header += " with:\n" + "\n".join(f"  --set {o}" for o in args.overrides)
    header += "\nEdit the template and render again rather than this file."
    try:
        text = render(template, args.overrides, header=header)
    except OverrideError as exc:
        raise ConfigError(f"{args.template}: {exc}") from exc
    # The schema, as check-config reads it; paths and keys are checked on the table itself.
    parse_config(text, source=f"{args.template} with the overrides")
    sys.stdout.write(text)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from store.keys import Identity, identity_file_text

    out: Path = args.out
    identity = Identity.generate()
    text = identity_file_text(identity, datetime.now(UTC))
    try:
        with open(out, "x", encoding="utf-8", opener=_private_opener) as f:
            f.write(text)
    except FileExistsError:
        print(f"{out}: already exists; not overwriting a key", file=sys.stderr)
        return 1
    print(f"Public key: {identity.recipient}", file=sys.stderr)
    print(str(identity.recipient))
    return 0


def _private_opener(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if args.config.exists():
        try:
            return load_config(args.config).station.control_socket
        except ConfigError as exc:
            # Asking a running recorder needs only its socket, not a config this user can read
            # (it is root:neoflix 0640) or one being edited: try where the recorder usually is.
            first = str(exc).splitlines()[0] if str(exc) else "unreadable"
            print(f"{first}\ntrying the default socket {DEFAULT_SOCKET}", file=sys.stderr)
    return DEFAULT_SOCKET


def _cmd_control(args: argparse.Namespace) -> int:
    extra = {"label": args.label} if args.command == "mark" else {}
    try:
        reply = request(_socket_path(args), args.command, by="command line", **extra)
    except ControlError as exc:
        if args.command != "status" or not args.json:
            raise
        # A fleet poller reads stdout: a recorder that is down is an answer too.
        print(json.dumps({"ok": False, "state": "unreachable", "error": str(exc)}, indent=1))
        return EX_UNAVAILABLE
    if args.command == "status" and args.json:
        print(json.dumps(reply, indent=1, default=str))
    else:
        print(_human_status(reply))
    return 0 if reply.get("ok") else 1


def _cmd_sessions(args: argparse.Namespace) -> int:
    from session.retention import describe

    reply = _keeper_request(args, "sessions")
    if args.json:
        print(json.dumps(reply, indent=1))
    elif reply.get("ok"):
        print(describe(reply["sessions"]))
    else:
        print(f"error: {reply.get('error')}", file=sys.stderr)
    return 0 if reply.get("ok") else 1


def _cmd_delete(args: argparse.Namespace) -> int:
    return _keeper_order(args, "delete")


def _cmd_hold(args: argparse.Namespace) -> int:
    return _keeper_order(args, "hold")


def _cmd_release(args: argparse.Namespace) -> int:
    return _keeper_order(args, "release")


def _keeper_order(args: argparse.Namespace, cmd: str) -> int:
    reply = _keeper_request(args, cmd, session=args.session)
    if reply.get("ok"):
        print(reply["note"])
        return 0
    print(f"error: {reply.get('error')}", file=sys.stderr)
    return 1


def _keeper_request(args: argparse.Namespace, cmd: str, **fields: Any) -> dict[str, Any]:
    """Ask the running recorder; when none answers, do it on the storage directly."""
    try:
        return request(_socket_path(args), cmd, by="command line", **fields)
    except ControlError as unreachable:
        try:
            config = load_config(args.config)
            storage = config.storage
        except ConfigError as exc:
            detail = f"working on the storage directly needs the config: {exc}"
            raise ControlError(f"{unreachable}\n{detail}") from None
        print(f"the recorder does not answer: working on {storage.directory} directly", file=sys.stderr)
        try:
            return _keeper_direct(
                cmd,
                fields,
                storage=storage.directory,
                retention_days=storage.retention_days,
                delete_uncollected=storage.delete_uncollected and not config.collection.enabled,
                audit_path=audit_log_path(storage.directory, storage.audit_log),
                deletion_requests=config.collection.enabled,
            )
        except ControlError as exc:
            raise ControlError(f"{unreachable}\n{exc}") from None
        except OSError as exc:
            raise ControlError(
                f"{unreachable}\nand the storage cannot be used directly: {exc} (run this as the "
                "recorder's user, e.g. sudo -u neoflix)"
            ) from None


def _keeper_direct(
    cmd: str,
    fields: dict[str, Any],
    *,
    storage: Path,
    retention_days: int,
    delete_uncollected: bool,
    audit_path: Path,
    deletion_requests: bool = False,
) -> dict[str, Any]:
    """``cmd`` on the stored sessions, with no recorder running. A change is made under the
    storage's lock, which a running recorder holds: so nothing is being recorded (the keeper is
    told so), and a recorder starting meanwhile waits its turn. A listing only reads."""
    from session.audit import AuditLog
    from session.lock import StorageBusy, StorageLock
    from session.retention import SessionKeeper

    def keeper(audit: AuditLog | None) -> SessionKeeper:
        return SessionKeeper(
            storage,
            retention_days,
            lambda: None,
            audit=audit,
            delete_uncollected=delete_uncollected,
            deletion_requests=deletion_requests,
        )

    if cmd == "sessions":
        listed = keeper(None)
        return {"ok": True, "retention_days": listed.retention_days, "sessions": listed.sessions()}
    try:
        lock = StorageLock.acquire(storage, holder=f"neoflix-capture {cmd}")
    except StorageBusy as exc:
        raise ControlError(f"the storage is in use: {exc}") from exc
    try:
        with AuditLog(audit_path) as audit:
            session = str(fields["session"])
            if cmd == "delete":
                return keeper(audit).delete(session, by="command line")
            return keeper(audit).hold(session, by="command line", on=cmd == "hold")
    finally:
        lock.release()


def _human_status(reply: dict[str, Any]) -> str:
    from recorder.status import RecorderStatus

    if not reply.get("ok"):
        return f"error: {reply.get('error')}"
    status = RecorderStatus.from_json(reply)
    session = status.session
    lines = []
    if reply.get("note"):
        lines.append(str(reply["note"]))
    if session.state == "recording":
        line = f"RECORDING {session.elapsed_s or 0:.0f} s  session {session.session}"
        if session.auto_stop_in_s is not None:
            line += f"  (stops by itself in {session.auto_stop_in_s:.0f} s without vitals)"
        lines.append(line)
        if session.reason:
            lines.append(f"  started: {session.reason}")
    else:
        lines.append(session.state.upper() + ("  DO NOT RECORD" if session.do_not_record else ""))
        if session.auto_start_held:
            lines.append("  automatic start held: stopped by hand; re-armed when the stabilisation ends")
    if session.storage_problem:
        lines.append(f"  CANNOT RECORD: {session.storage_problem}")
    if session.writing_failed:
        lines.append(f"  NOT SAVING: the recording's files cannot be written ({session.writing_failed})")
    if session.armed_discard:
        lines.append("  BUTTON HELD: letting go now discards")
    if session.since_birth_s is not None:
        lines.append(f"  since birth: {session.since_birth_s:.0f} s")
    for name, cam in status.cameras.items():
        lines.append(
            f"  camera {name}: {cam.health.state}, {cam.frames_encoded} frames, "
            f"{cam.frames_dropped} dropped, pre-roll {cam.preroll_s} s"
        )
    if status.audio is not None:
        lines.append(f"  audio: {status.audio.state}")
    for name, mon in status.monitors.items():
        lines.append(f"  monitor {name}: {mon.health.state}")
    button = status.button
    if button is not None:
        line = f"  button: {button.state}, {button.source}"
        if button.state == "lost" and button.last_error:
            line += f" ({button.last_error})"
        lines.append(line)
    if status.collection is not None:
        from recorder.service import collection_note

        lines.append(f"  {collection_note(status)}")
    return "\n".join(lines)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from cli.doctor import run_doctor
    from recorder.logs import configure_logging

    configure_logging("console", "error")  # the findings are the output, not the libraries' chatter
    return run_doctor(args.config, sys.stdout, timeout_s=args.timeout)


def _cmd_devices(args: argparse.Namespace) -> int:
    from cli.devices import list_devices

    return list_devices(sys.stdout)


def _cmd_vitals_read(args: argparse.Namespace) -> int:
    import tomllib

    from cli.vitals_tools import read_command
    from recorder.logs import configure_logging
    from vitals.line_format import LineFormatError, line_format_from_mapping

    configure_logging("console", "warning")  # logs to stderr; stdout carries the samples
    spec = None
    if args.line_format is not None:
        try:
            spec = line_format_from_mapping(tomllib.loads(args.line_format.read_text()))
        except (OSError, tomllib.TOMLDecodeError, LineFormatError) as exc:
            raise ConfigError(f"{args.line_format}: {exc}") from exc
    try:
        return read_command(
            args.protocol,
            port=args.port,
            file=args.file,
            monitor=args.monitor,
            baudrate=args.baudrate,
            parity=args.parity,
            stopbits=args.stopbits,
            rtscts=args.rtscts,
            xonxoff=args.xonxoff,
            seconds=args.seconds,
            line_format=spec,
        )
    except KeyboardInterrupt:
        return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from cli.vitals_tools import simulate_command
    from recorder.logs import configure_logging

    configure_logging("console", "warning")
    try:
        return simulate_command(
            args.protocol, port=args.port, time_scale=args.time_scale, seconds=args.seconds
        )
    except KeyboardInterrupt:
        return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from session.audit import verify

    path = args.file
    if path is None:
        storage = load_config(args.config).storage
        path = audit_log_path(storage.directory, storage.audit_log)
    if not Path(path).exists():
        print(f"{path}: no audit log here", file=sys.stderr)
        return 1
    anchors: list[tuple[str, int, str]] = []
    if args.sessions is not None:
        if args.identity is None:
            print("--sessions needs --identity (the manifests are encrypted)", file=sys.stderr)
            return 2
        try:
            anchors = _audit_anchors(args.sessions, args.identity)
        except (OSError, ValueError) as exc:
            print(f"{args.sessions}: cannot read the manifests: {exc}", file=sys.stderr)
            return 2
    problems = verify(path, anchors)
    for problem in problems:
        print(problem)
    if not problems:
        checked = f", and holds the {len(anchors)} head(s) the sessions recorded" if anchors else ""
        print(f"{path}: chain intact{checked}")
    return 1 if problems else 0


def _audit_anchors(where: Path, identity: Path) -> list[tuple[str, int, str]]:
    """(session, seq, hash) of every audit head the manifests under ``where`` recorded."""
    from review.export import decrypt
    from session.layout import MANIFEST
    from store.keys import load_identities

    identities = load_identities(identity)
    folders = [where] if (where / MANIFEST).exists() else sorted(p for p in where.iterdir() if p.is_dir())
    anchors = []
    for folder in folders:
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            continue
        manifest = json.loads(decrypt(manifest_path, identities)[0])
        for head in manifest.get("audit", []):
            anchors.append((f"session {folder.name}", int(head["seq"]), str(head["hash"])))
    return anchors


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the session is whole, 1 when it is not, 2 when it cannot be checked."""
    from review.verify import verify_session
    from store.errors import NoIdentityError

    identities = _review_identities(args.identity)
    if identities is None:
        return 2
    if not args.session_dir.is_dir():
        print(f"{args.session_dir}: not a session directory", file=sys.stderr)
        return 2
    try:
        report = verify_session(args.session_dir, identities)
    except NoIdentityError as exc:  # the wrong key: nothing in the session opens with it
        print(f"{args.identity}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.session_dir}: cannot be read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=1) if args.json else report.plain())
    return 0 if report.whole else 1


def _review_identities(path: Path) -> list[Any] | None:
    """The review key for verify and export, or None after saying in one line why it cannot be used."""
    from store.errors import KeyFormatError
    from store.keys import load_identities

    try:
        return list(load_identities(path))
    except (OSError, KeyFormatError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"{path}: cannot use this identity: {str(why).removeprefix(f'{path}: ')}", file=sys.stderr)
        return None


def _spo2_targets(text: str) -> Any:
    from review.targets import TargetSpecError, parse_targets

    try:
        return parse_targets(text)
    except TargetSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _progress_bar(label: str) -> Callable[[float], None] | None:
    """A one-line progress bar on stderr, only where a person watches it (a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(fraction: float) -> None:
        filled = round(30 * fraction)
        end = "\n" if fraction >= 1.0 else ""
        bar = "#" * filled + "." * (30 - filled)
        print(f"\r{label} [{bar}] {fraction:4.0%}", end=end, file=sys.stderr, flush=True)

    return show


def _cmd_export(args: argparse.Namespace) -> int:
    """Exit 0 when the session is whole, 1 when what verified was exported but it is not whole,
    2 when nothing was exported (identity, folder)."""
    from review.export import ExportError, export_session
    from session.audit import AuditLog
    from store.errors import NoIdentityError

    identities = _review_identities(args.identity)
    if identities is None:
        return 2
    if str(args.session_dir).startswith("s3:"):
        return _export_from_archive(args)
    audit = None
    audit_path = audit_log_path(args.session_dir.parent, args.audit_log)
    if args.audit_log is not None or audit_path.exists():
        # Where the recorder's audit log is at hand, an export is recorded in it, or not made.
        try:
            audit = AuditLog(audit_path)
        except OSError as exc:
            print(f"{audit_path}: cannot record the export in the audit log: {exc}", file=sys.stderr)
            return 2
    try:
        options: dict[str, Any] = {"composite": args.composite}
        if args.spo2_targets is not None:
            options["spo2_targets"] = args.spo2_targets
        if args.composite:
            options["progress"] = _progress_bar("composite.mp4")
        result = export_session(args.session_dir, identities, args.out, **options)
        if audit is not None:
            audit.append(
                "session_exported",
                session=result.session,
                by="command line",
                cameras=sorted(result.videos),
                files=sum(1 for _ in args.out.iterdir()),
            )
    except NoIdentityError as exc:
        print(f"{args.identity}: {exc}", file=sys.stderr)
        return 2
    except (ExportError, OSError) as exc:  # nothing was left behind (review.export_folder)
        print(str(exc) if isinstance(exc, ExportError) else f"export failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if audit is not None:
            audit.close()
    for camera, path in result.videos.items():
        print(f"{camera}: {path} ({result.video_seconds[camera]:.1f} s)")
    if result.vitals_csv:
        print(f"vitals: {result.vitals_csv} ({result.vitals_rows} samples)")
    if result.viewer:
        print(f"viewer: {result.viewer} (open it in a browser; the MP4s stay beside it)")
    if result.composite:
        print(f"composite: {result.composite}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    report = result.report
    if report is not None:
        print(report.plain())  # also in report.txt and report.json beside the media
    return 0 if report is not None and report.whole else 1


def _export_from_archive(args: argparse.Namespace) -> int:
    """Fetch the session (each file checked against the archive's SHA-256) into a temporary
    folder, export it from there (verified, as any export), and remove the fetched copy."""
    import tempfile

    from cli.archive import ArchiveError, connect, fetch, parse_location

    bucket, where = parse_location(str(args.session_dir), args.bucket)
    with tempfile.TemporaryDirectory(prefix="neoflix-fetch-") as folder:
        try:
            fetched = fetch(connect(args, bucket), where, Path(folder))
        except ArchiveError as exc:
            print(f"archive: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # botocore's errors: the endpoint, the keys, the bucket
            print(f"archive: {exc}", file=sys.stderr)
            return 2
        args.session_dir = fetched
        return _cmd_export(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(args.out, seconds=args.seconds, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
