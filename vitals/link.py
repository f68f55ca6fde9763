"""A supervised serial link: one monitor's port, read by one thread, reconnected when it fails.

``SerialLink`` opens any pyserial URL (``/dev/ttyUSB0``, ``socket://host:port``,
``rfc2217://``, ``loop://``), stamps each chunk of bytes with the host clock the moment it
arrives, and feeds it to the monitor's parser; parsed samples go to ``on_samples``. It knows
nothing of any monitor family: line settings come from the parser's ``link_settings`` (each
overridable), and bytes a talk-first protocol must send come from the parser's ``greeting()``
and ``poll()``.

A monitor unplugged, a converter rebooting, or a port that stays silent longer than
``silence_timeout_s`` all end the connection; the link retries with exponential backoff and
never gives up while running. Each state change is logged once (connected, lost with the reason,
reconnected), not each failed retry, so an unplugged monitor does not flood the journal. A port
that opens counts as connected only once bytes arrive on it: a USB adapter whose monitor is
switched off opens every time and stays silent, and logging each such open as a reconnection
would write a pair of lines per silence timeout, forever.

Threads: the reader thread owns the port and the parser and is the only one to call
``parser.feed``/``greeting``/``poll``/``reset`` and ``on_samples``; ``on_samples`` therefore
runs on the reader thread and should hand samples over quickly (the vitals board takes its own
lock). Any thread may call ``health()``; the reader publishes state, the last sample time and a
copy of the parser stats under ``_lock``, and ``health()`` reads them under the same lock.
``start()``/``stop()`` belong to the owner's thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import serial
import structlog

from vitals.parser import MonitorParser, ParserStats
from vitals.sample import VitalSample

LinkState = Literal["connecting", "connected", "lost"]

# Short enough that stop() and poll() are served promptly, long enough not to spin.
_READ_TIMEOUT_S = 0.1
_WRITE_TIMEOUT_S = 1.0
# A misbehaving on_samples is logged at most this often; the rest are only counted.
_CALLBACK_ERROR_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """A snapshot of one link, for the overlay's "NO SIGNAL since ..." and for ``doctor``.

    ``since_ns`` and ``last_sample_ns`` are on the link's ``clock_ns``; ``reconnects`` counts
    connections after the first that brought bytes; ``last_error`` is why the link was last lost.
    ``port_open`` says the port is open now, whether or not the monitor talks on it.
    """

    monitor: str
    state: LinkState
    since_ns: int
    last_sample_ns: int | None
    reconnects: int
    stats: ParserStats
    last_error: str | None = None
    callback_errors: int = 0
    port_open: bool = False


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
        self._log = structlog.get_logger().bind(monitor=monitor, url=url)

        self._lock = threading.Lock()
        # Published state, guarded by _lock (written by the reader thread only).
        self._state: LinkState = "connecting"
        self._since_ns = clock_ns()
        self._last_sample_ns: int | None = None
        self._reconnects = 0
        self._stats = parser.stats.copy()
        self._last_error: str | None = None
        self._callback_errors = 0
        self._port_open = False

        # Reader-thread only.
        self._ever_connected = False
        self._received = False  # the current connection has delivered bytes
        self._last_callback_log = -_CALLBACK_ERROR_LOG_INTERVAL_S

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- owner's side ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread. A link runs once; make a new one to read again."""
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError("a link is started once")
        self._thread = threading.Thread(target=self._run, name=f"serial-link-{self.monitor}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop reading and close the port; returns within ``timeout_s``.

        The reader notices within one read timeout (0.1 s); closing a ``socket://`` port adds
        pyserial's fixed 0.3 s pause. Only an open in progress can take longer (pyserial's socket
        connect waits up to 5 s); the daemon thread then closes its port and exits on its own.
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def health(self) -> LinkHealth:
        with self._lock:
            return LinkHealth(
                monitor=self.monitor,
                state=self._state,
                since_ns=self._since_ns,
                last_sample_ns=self._last_sample_ns,
                reconnects=self._reconnects,
                stats=self._stats.copy(),
                last_error=self._last_error,
                callback_errors=self._callback_errors,
                port_open=self._port_open,
            )

    # -- reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                received = self._connect_and_read()
            except Exception as exc:  # a bug here must not end supervision
                self._log.exception("serial link supervisor error")
                self._set_lost(f"internal error: {exc!r}")
                received = False
            if self._stop.is_set():
                break
            # Backoff restarts only after a connection that carried data, so a port that opens
            # and dies at once is not hammered.
            if received:
                backoff = self.backoff_initial_s
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _connect_and_read(self) -> bool:
        """One connection's life; True when it received any bytes."""
        try:
            port = self._open(self._port_settings)
        except Exception as exc:
            if not (self._port_settings["parity"] != "N" and _refused(exc) and is_pty(self.url)):
                self._set_lost(f"open failed: {exc}")
                return False
            # A pty carries no parity bit, and Linux refuses (EINVAL) to open one again with
            # PARENB once it was set: without this a simulator's pty would be read only until the
            # first reconnect. Nothing is lost by opening it without.
            try:
                port = self._open({**self._port_settings, "parity": "N"})
            except Exception as exc_again:
                self._set_lost(f"open failed: {exc_again}")
                return False
        self._received = False
        with self._lock:
            self._port_open = True
        reason: str | None
        try:
            reason = self._read_loop(port)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):  # a vanished device has nothing to release
                port.close()
            with self._lock:
                self._port_open = False
        if reason is not None and not self._stop.is_set():
            self._set_lost(reason)
        return self._received

    def _open(self, settings: dict[str, Any]) -> serial.Serial:
        return serial.serial_for_url(
            self.url,
            timeout=_READ_TIMEOUT_S,
            write_timeout=_WRITE_TIMEOUT_S,
            exclusive=True,  # two readers on one tty would each get half the bytes
            **settings,
        )

    def _read_loop(self, port: serial.Serial) -> str | None:
        """Read until stopped (None) or silent (the reason); port errors propagate."""
        parser = self.parser
        parser.reset()
        greeting = parser.greeting()
        if greeting:
            port.write(greeting)
        last_rx = time.monotonic()
        while not self._stop.is_set():
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
            if not self._received:
                self._received = True
                self._set_connected()
            last_rx = time.monotonic()
            self._deliver(data, arrived_ns)
        return None

    def _deliver(self, data: bytes, arrived_ns: int) -> None:
        try:
            samples = self.parser.feed(data, arrived_ns)
        except Exception:
            # Parsers promise not to raise; if one does, drop its state and keep reading.
            self._log.exception("parser raised; input dropped", parser=self.parser.protocol)
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
        except Exception:
            with self._lock:
                self._callback_errors += 1
                count = self._callback_errors
            now = time.monotonic()
            if now - self._last_callback_log >= _CALLBACK_ERROR_LOG_INTERVAL_S:
                self._last_callback_log = now
                self._log.exception("on_samples callback failed", errors_so_far=count)

    def _set_connected(self) -> None:
        """The current connection brought its first bytes."""
        now = self._clock_ns()
        with self._lock:
            reconnect = self._ever_connected
            if reconnect:
                self._reconnects += 1
            self._state = "connected"
            self._since_ns = now
            reconnects = self._reconnects
        self._ever_connected = True
        if reconnect:
            self._log.info("serial link reconnected", reconnects=reconnects)
        else:
            self._log.info("serial link connected")

    def _set_lost(self, reason: str) -> None:
        now = self._clock_ns()
        with self._lock:
            self._last_error = reason
            if self._state == "lost":
                return  # a failed retry: already reported
            self._state = "lost"
            self._since_ns = now
        self._log.warning("serial link lost", reason=reason)
