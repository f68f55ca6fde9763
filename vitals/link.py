"""A supervised serial link: one monitor's port, read by one thread, reconnected when it fails.

``SerialLink`` opens any pyserial URL (``/dev/ttyUSB0``, ``socket://host:port``,
``rfc2217://``, ``loop://``), stamps each chunk of bytes with the host clock the moment it
arrives, and feeds it to the monitor's parser; parsed samples go to ``on_samples``. It knows
nothing of any monitor family: line settings come from the parser's ``link_settings`` (each
overridable), and bytes a talk-first protocol must send come from the parser's ``greeting()``
and ``poll()``.

Supervision is ``supervision.Supervisor``'s (kind ``monitor``): a monitor unplugged, a converter
rebooting, or a port silent longer than ``silence_timeout_s`` ends the connection, the link
retries with back-off and never gives up while running, and each change of state is logged once
(``monitor_live``, ``monitor_lost`` with the reason, ``monitor_recovered``). A port that opens
counts as live only once bytes arrive on it: a USB adapter whose monitor is switched off opens
every time and stays silent, and counting each such open as a reconnection would log a pair of
lines per silence timeout, forever.

Threads: the supervisor's thread owns the port and the parser and is the only one to call
``parser.feed``/``greeting``/``poll``/``reset`` and ``on_samples``; ``on_samples`` therefore
runs on that thread and should hand samples over quickly (the vitals board takes its own lock).
Any thread may call ``health()``; the reader publishes the last sample time and a copy of the
parser stats under ``_lock``. ``start()``/``stop()`` belong to the owner's thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import serial

from supervision.backoff import Backoff
from supervision.health import DeviceHealth
from supervision.supervisor import Supervisor
from vitals.parser import MonitorParser, ParserStats
from vitals.sample import VitalSample

# Short enough that stop() and poll() are served promptly, long enough not to spin.
_READ_TIMEOUT_S = 0.1
_WRITE_TIMEOUT_S = 1.0
# A misbehaving on_samples is logged at most this often; the rest are only counted.
_CALLBACK_ERROR_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class LinkHealth(DeviceHealth):
    """A monitor's ``DeviceHealth`` with what only a serial link knows: when the last sample
    arrived, the parser's counters, and whether the port is open now (whether or not the monitor
    talks on it)."""

    last_sample_ns: int | None = None
    stats: ParserStats = field(default_factory=ParserStats)
    port_open: bool = False

    @property
    def monitor(self) -> str:
        return self.name


def _refused(exc: BaseException) -> bool:
    """Whether the tty refused its settings (EINVAL, from termios directly or through pyserial)."""
    return exc.args[:1] == (errno.EINVAL,) or "Invalid argument" in str(exc)


def is_pty(url: str) -> bool:
    """Whether ``url`` names a pseudo-terminal's slave (directly or through a symlink), as a
    simulator's port is."""
    if "://" in url:
        return False
    return os.path.realpath(url).startswith("/dev/pts/")


class SerialLink:
    """Reads one monitor over a pyserial URL in a supervised thread; see the module docstring."""

    def __init__(
        self,
        monitor: str,
        url: str,
        parser: MonitorParser,
        on_samples: Callable[[list[VitalSample]], None],
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        baudrate: int | None = None,
        bytesize: int | None = None,
        parity: str | None = None,
        stopbits: float | None = None,
        xonxoff: bool | None = None,
        rtscts: bool | None = None,
        silence_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        defaults = parser.link_settings
        self.monitor = monitor
        self.url = url
        self.parser = parser
        self._on_samples = on_samples
        self._clock_ns = clock_ns
        self._port_settings: dict[str, Any] = {
            "baudrate": defaults.baudrate if baudrate is None else baudrate,
            "bytesize": defaults.bytesize if bytesize is None else bytesize,
            "parity": defaults.parity if parity is None else parity,
            "stopbits": defaults.stopbits if stopbits is None else stopbits,
            "xonxoff": defaults.xonxoff if xonxoff is None else xonxoff,
            "rtscts": defaults.rtscts if rtscts is None else rtscts,
        }
        self.silence_timeout_s = silence_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._lock = threading.Lock()
        # Published under _lock by the reader thread.
        self._last_sample_ns: int | None = None
        self._stats = parser.stats.copy()
        self._port_open = False
        # Reader-thread only.
        self._port: serial.Serial | None = None
        self._supervisor = Supervisor(
            "monitor",
            monitor,
            self,
            clock_ns=clock_ns,
            backoff=Backoff(backoff_initial_s, backoff_max_s),
            callback_log_interval_s=_CALLBACK_ERROR_LOG_INTERVAL_S,
            log_context={"url": url},
        )

    # -- owner's side ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread. A link runs once; make a new one to read again."""
        self._supervisor.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop reading and close the port; returns within ``timeout_s``.

        The reader notices within one read timeout (0.1 s); closing a ``socket://`` port adds
        pyserial's fixed 0.3 s pause. Only an open in progress can take longer (pyserial's socket
        connect waits up to 5 s); the daemon thread then closes its port and exits on its own.
        """
        self._supervisor.stop(timeout_s)

    @property
    def running(self) -> bool:
        return self._supervisor.running

    def health(self) -> LinkHealth:
        device = self._supervisor.health()
        with self._lock:
            return LinkHealth(
                **{f.name: getattr(device, f.name) for f in fields(DeviceHealth)},
                last_sample_ns=self._last_sample_ns,
                stats=self._stats.copy(),
                port_open=self._port_open,
            )

    # -- the connection the supervisor drives (reader thread) ------------------------------

    def describe(self) -> str:
        return self.url

    def open(self) -> None:
        try:
            port = self._open(self._port_settings)
        except Exception as exc:  # broad: termios.error is no OSError, pyserial wraps others
            if not (self._port_settings["parity"] != "N" and _refused(exc) and is_pty(self.url)):
                raise
            # A pty carries no parity bit, and Linux refuses (EINVAL) to open one again with
            # PARENB once it was set: without this a simulator's pty would be read only until the
            # first reconnect. Nothing is lost by opening it without.
            port = self._open({**self._port_settings, "parity": "N"})
        self._port = port
        with self._lock:
            self._port_open = True

    def close(self) -> None:
        port, self._port = self._port, None
        with self._lock:
            self._port_open = False
        if port is not None:
            with contextlib.suppress(Exception):  # a vanished device has nothing to release
                port.close()

    def serve(self, device: Supervisor) -> str:
        """Read until stopped or silent; port errors propagate (the supervisor's reason)."""
        port = self._port
        assert port is not None
        parser = self.parser
        parser.reset()
        greeting = parser.greeting()
        if greeting:
            port.write(greeting)
        last_rx = time.monotonic()
        while not device.stopping.is_set():
            request = parser.poll(self._clock_ns())
            if request:
                port.write(request)
            data = port.read(1)
            if not data:
                silent = time.monotonic() - last_rx
                if silent > self.silence_timeout_s:
                    return f"silent for {silent:.1f} s"
                continue
            # Stamp on the first byte; the rest of what is waiting belongs to the same burst.
            arrived_ns = self._clock_ns()
            waiting = port.in_waiting
            if waiting:
                data += port.read(waiting)
            last_rx = time.monotonic()
            device.delivered(arrived_ns)  # live once bytes arrive, not when the port opens
            self._deliver(device, data, arrived_ns)
        return "stopped"

    def _open(self, settings: dict[str, Any]) -> serial.Serial:
        return serial.serial_for_url(
            self.url,
            timeout=_READ_TIMEOUT_S,
            write_timeout=_WRITE_TIMEOUT_S,
            exclusive=True,  # two readers on one tty would each get half the bytes
            **settings,
        )

    def _deliver(self, device: Supervisor, data: bytes, arrived_ns: int) -> None:
        try:
            samples = self.parser.feed(data, arrived_ns)
        except Exception:  # broad: parsers promise not to raise; if one does, drop its state
            device.callback_failed(arrived_ns, f"parser {self.parser.protocol}")
            self.parser.reset()
            samples = []
        with self._lock:
            self._stats = self.parser.stats.copy()
            if samples:
                self._last_sample_ns = max(s.host_ns for s in samples)
        if not samples:
            return
        try:
            self._on_samples(samples)
        except Exception:  # broad: a failing receiver must never stop the monitor being read
            device.callback_failed(arrived_ns, "on_samples")
