"""The functions behind ``vitals read`` and ``simulate``: wiring checks for IT, and a fake monitor.

``read_command`` answers "is this monitor wired right?": it reads a port through the same
``SerialLink`` the recorder uses (so greetings, polls and keep-alives happen as in service), or
replays a raw byte capture through the parser, and prints one JSON line per sample on stdout::

    {"parameter": "SpO2", "value": 97.0, "unit": "%", "valid": true, "source": "pleth",
     "flags": [], "alarm": false, "monitor": "oximeter",
     "host_time": "2024-05-01T10:00:02.137+00:00", "monitor_time": "2024-05-01T10:00:02"}

then a one-line summary on stderr, and returns 0 if any valid sample arrived, 1 if none did, 2
if it could not run at all. The link logs through structlog: configure it to write to stderr
(``recorder.logs.configure_logging``) so stdout stays JSON only.

``simulate_command`` runs a family's simulator (``vitals.simulators``) on a serial device, or on
a new pty pair whose slave path it prints first, so ``read_command`` or the recorder can be
pointed at it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final, TextIO

import serial

from sync.clock import UtcAnchor
from vitals.families import PARSERS, make_parser
from vitals.line_format import LineFormat
from vitals.link import SerialLink
from vitals.parser import MonitorParser, Parity, ParserStats
from vitals.pty import open_pty_pair
from vitals.sample import VitalSample
from vitals.simulators import MonitorSimulator, make_simulator

EXIT_VALID: Final = 0
EXIT_NOTHING_VALID: Final = 1
EXIT_USAGE: Final = 2

_CHUNK: Final = 65536
_POLL_S: Final = 0.1


def sample_record(sample: VitalSample, anchor: UtcAnchor) -> dict[str, Any]:
    """One sample as the JSON object ``read_command`` prints (host time mapped to UTC)."""
    return {
        "parameter": sample.parameter.value,
        "value": sample.value,
        "unit": sample.unit,
        "valid": sample.valid,
        "source": sample.source,
        "flags": sorted(sample.flags),
        "alarm": sample.alarm,
        "monitor": sample.monitor,
        "host_time": anchor.utc_at(sample.host_ns).isoformat(timespec="milliseconds"),
        "monitor_time": None if sample.monitor_time is None else sample.monitor_time.isoformat(),
    }


class _Printer:
    """Prints samples as JSON lines and counts them; used from the caller's thread only."""

    def __init__(self, out: TextIO, anchor: UtcAnchor) -> None:
        self._out = out
        self._anchor = anchor
        self.samples = 0
        self.valid = 0
        self.closed = False

    def __call__(self, samples: list[VitalSample]) -> None:
        for s in samples:
            self.samples += 1
            self.valid += s.valid
            if not self.closed:
                self._write(json.dumps(sample_record(s, self._anchor), ensure_ascii=False) + "\n")
        if samples and not self.closed:
            self._write(None)

    def _write(self, text: str | None) -> None:
        try:
            if text is None:
                self._out.flush()
            else:
                self._out.write(text)
        except BrokenPipeError:
            # The reader went away (``vitals read ... | head``): stop printing, end quietly.
            self.closed = True


def _make_parser(
    protocol: str, monitor: str, line_format: LineFormat | None, err: TextIO
) -> MonitorParser | None:
    if protocol == "line_format":
        if line_format is None:
            print("protocol line_format needs a line format (the monitor's [line_format] table)", file=err)
            return None
        options: dict[str, Any] = {"spec": line_format}
    else:
        if line_format is not None:
            print(f"a line format applies to protocol line_format only, not {protocol!r}", file=err)
            return None
        options = {}
    try:
        return make_parser(protocol, monitor, **options)
    except ValueError as exc:
        print(str(exc), file=err)
        return None


def _summary(protocol: str, monitor: str, printer: _Printer, stats: ParserStats, extra: str = "") -> str:
    text = (
        f"{monitor} ({protocol}): {printer.samples} samples, {printer.valid} valid; "
        f"records ok {stats.records_ok}, bad {stats.records_bad}; "
        f"garbage {stats.garbage_bytes} of {stats.bytes_in} bytes{extra}"
    )
    if not printer.valid:
        text += (
            " — no valid sample: check the cable, the protocol, the baud rate and the monitor's"
            " serial output setting (and that a sensor is on the patient)"
        )
    return text


def read_command(
    protocol: str,
    *,
    port: str | None = None,
    file: Path | None = None,
    monitor: str = "monitor",
    baudrate: int | None = None,
    parity: Parity | None = None,
    stopbits: float | None = None,
    rtscts: bool | None = None,
    xonxoff: bool | None = None,
    seconds: float | None = None,
    out: TextIO | None = None,
    line_format: LineFormat | None = None,
    err: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Print the samples one monitor sends; see the module docstring.

    Exactly one of ``port`` (a pyserial URL, read until Ctrl-C, ``seconds`` or ``stop``) and
    ``file`` (a raw capture, replayed as fast as it parses) is given. ``baudrate``, ``parity``,
    ``stopbits``, ``rtscts`` and ``xonxoff`` override the protocol's line settings on a port, as
    a monitor's configuration can. ``out`` and ``err`` default to the process's stdout and stderr
    at call time.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if (port is None) == (file is None):
        print("give exactly one of a port and a capture file", file=err)
        return EXIT_USAGE
    if seconds is not None and seconds < 0:
        print(f"seconds must not be negative, not {seconds}", file=err)
        return EXIT_USAGE
    parser = _make_parser(protocol, monitor, line_format, err)
    if parser is None:
        return EXIT_USAGE
    printer = _Printer(out, UtcAnchor.take())
    if file is not None:
        try:
            stats = _replay(parser, file, printer)
        except OSError as exc:
            print(f"cannot read the capture {file}: {exc.strerror or exc}", file=err)
            return EXIT_USAGE
        print(_summary(protocol, monitor, printer, stats), file=err)
    else:
        assert port is not None
        overrides = {
            "baudrate": baudrate,
            "parity": parity,
            "stopbits": stopbits,
            "rtscts": rtscts,
            "xonxoff": xonxoff,
        }
        settings = {name: value for name, value in overrides.items() if value is not None}
        print(_read_port(protocol, monitor, parser, port, settings, seconds, stop, printer), file=err)
    return EXIT_VALID if printer.valid else EXIT_NOTHING_VALID


def _replay(parser: MonitorParser, file: Path, printer: _Printer) -> ParserStats:
    # Each chunk is stamped with the moment it was fed: a capture holds bytes, not their times.
    with file.open("rb") as f:
        while not printer.closed and (chunk := f.read(_CHUNK)):
            printer(parser.feed(chunk, time.monotonic_ns()))
    return parser.stats.copy()


def _read_port(
    protocol: str,
    monitor: str,
    parser: MonitorParser,
    port: str,
    settings: dict[str, Any],
    seconds: float | None,
    stop: threading.Event | None,
    printer: _Printer,
) -> str:
    batches: queue.SimpleQueue[list[VitalSample]] = queue.SimpleQueue()
    # The link calls back on its reader thread; printing stays on this one.
    link = SerialLink(monitor, port, parser, batches.put, **settings)
    deadline = None if seconds is None else time.monotonic() + seconds
    link.start()
    health = link.health()
    try:
        while not (stop is not None and stop.is_set()) and not printer.closed:
            left = _POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(queue.Empty):
                printer(batches.get(timeout=min(left, _POLL_S)))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person ends the check
    finally:
        health = link.health()  # as it was while reading (stopping makes it "stopped")
        link.stop()
        while True:
            try:
                printer(batches.get_nowait())
            except queue.Empty:
                break
    extra = f"; link {health.state}, reconnects {health.reconnects}"
    if health.last_error:
        extra += f", last error: {health.last_error}"
    return _summary(protocol, monitor, printer, health.stats, extra)


def simulate_command(
    protocol: str,
    *,
    port: str | None = None,
    time_scale: float = 1.0,
    seconds: float | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run ``protocol``'s simulator until Ctrl-C, ``seconds`` or ``stop``; 0 when it ran.

    With ``port`` (a serial device path or pyserial URL) it opens it with the protocol's line
    settings and runs there. Without, it opens a pty pair and prints the slave path on ``out``
    first (one line, flushed), for ``read_command`` or the recorder to open.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if time_scale <= 0:
        print(f"time scale must be positive, not {time_scale}", file=err)
        return EXIT_USAGE
    if protocol not in PARSERS:
        known = ", ".join(sorted(PARSERS)) or "none"
        print(f"unknown monitor protocol {protocol!r} (known: {known})", file=err)
        return EXIT_USAGE
    if port is not None:
        settings = PARSERS[protocol].link_settings
        try:
            device = serial.serial_for_url(
                port,
                baudrate=settings.baudrate,
                bytesize=settings.bytesize,
                parity=settings.parity,
                stopbits=settings.stopbits,
                xonxoff=settings.xonxoff,
                rtscts=settings.rtscts,
                timeout=_POLL_S,
                write_timeout=1.0,
            )
        except (serial.SerialException, ValueError) as exc:
            print(f"cannot open {port}: {exc}", file=err)
            return EXIT_USAGE
        try:
            return _simulate(protocol, device, time_scale, seconds, stop, err)
        finally:
            device.close()
    pair = open_pty_pair()
    try:
        out.write(pair.slave_path + "\n")
        out.flush()
        return _simulate(protocol, pair.master_fd, time_scale, seconds, stop, err)
    finally:
        pair.close()


def _simulate(
    protocol: str,
    device: Any,
    time_scale: float,
    seconds: float | None,
    stop: threading.Event | None,
    err: TextIO,
) -> int:
    try:
        simulator: MonitorSimulator = make_simulator(protocol, device, time_scale=time_scale)
    except ValueError as exc:
        print(str(exc), file=err)
        return EXIT_USAGE
    simulator.start()
    try:
        _wait(seconds, stop)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person ends the simulation
    finally:
        simulator.stop()
    return 0


def _wait(seconds: float | None, stop: threading.Event | None) -> None:
    event = stop if stop is not None else threading.Event()
    deadline = None if seconds is None else time.monotonic() + seconds
    while not event.is_set():
        left = _POLL_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return
        # Short waits, so Ctrl-C (raised in the main thread between waits) is prompt.
        event.wait(min(left, _POLL_S))
