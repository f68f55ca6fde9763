"""The one supervised loop: open a device, serve it until it is lost, back off, open it again.

Cameras, the microphone, the monitors and the bedside button differ only in how one connection
is served (read frames; read bytes and talk to the monitor; poll a contact and drive a lamp).
That part is a ``Connection``; everything around it is here, once: the thread, the states
(``supervision.health``), the back-off, the health record, and the log lines, one per change of
state (``<kind>_live``, ``<kind>_lost`` with the reason, ``<kind>_recovered``), never one per
failed retry, so an unplugged device does not flood the journal.

A device counts as live when it *delivers*, not when it opens: the connection calls
``delivered`` for each item it hands over. A failing receiver (the callback a connection hands
items to) is counted and logged at most every ``callback_log_interval_s``; it never ends the loop.

Threads: the loop runs on the device's own thread and is the only caller of the connection's
``open``/``serve``/``close`` and of ``delivered``/``callback_failed``; ``health`` and
``lost_since`` may be called from any thread and read the published state under ``_lock``;
``start``/``stop`` belong to the owner.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog

from supervision.backoff import Backoff
from supervision.health import DeviceHealth, DeviceState


class Connection(Protocol):
    """One device's connection, as the supervisor drives it."""

    def describe(self) -> str: ...

    def open(self) -> None:
        """Open the device; raise if it cannot be opened."""

    def serve(self, device: Supervisor) -> str:
        """Read (and write) until the device is lost, calling ``device.delivered`` for each item;
        return why it was lost. Return promptly once ``device.stopping`` is set (the reason is
        then ignored). May raise: that too is a loss, with the exception as the reason."""
        ...

    def close(self) -> None: ...


class Supervisor:
    """Runs ``connection`` on a thread of its own; see the module docstring."""

    def __init__(
        self,
        kind: str,
        name: str,
        connection: Connection,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        backoff: Backoff | None = None,
        rate_window_s: float = 3.0,
        callback_log_interval_s: float = 10.0,
        log_context: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self._connection = connection
        self._clock_ns = clock_ns
        self._backoff = backoff or Backoff()
        self._window_ns = int(rate_window_s * 1e9)
        self._callback_log_interval_ns = int(callback_log_interval_s * 1e9)
        # Resolved at each call (lazy), so it follows logging configured after construction.
        self._log = structlog.get_logger(**{kind: name, **(log_context or {})})
        self._source = connection.describe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Published under _lock, written by the device thread only.
        self._state: DeviceState = "connecting"
        self._since_ns = clock_ns()
        self._lost_since_ns: int | None = None
        self._lost_since_utc: datetime | None = None
        self._reconnects = 0
        self._last_error: str | None = None
        self._delivered = 0
        self._callback_errors = 0
        self._stamps: deque[int] = deque()
        # Device thread only.
        self._ever_live = False
        self._last_callback_log_ns: int | None = None

    # --- the owner's side ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop. A supervisor runs once; make a new one to run again."""
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError(f"the {self.kind} {self.name} is started once")
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """End the loop and wait for it. False if a blocking open or read kept it past the
        timeout; the thread is a daemon, so it never keeps the process alive."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout_s)
            if thread.is_alive():
                self._log.warning(f"{self.kind}_stop_slow", source=self._source)
                return False
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> threading.Event:
        """Set when the loop is to end: a connection's ``serve`` returns promptly then."""
        return self._stop

    def health(self) -> DeviceHealth:
        now = self._clock_ns()
        with self._lock:
            while self._stamps and now - self._stamps[0] > self._window_ns:
                self._stamps.popleft()
            rate = 0.0
            if len(self._stamps) >= 2 and self._stamps[-1] > self._stamps[0]:
                rate = (len(self._stamps) - 1) * 1e9 / (self._stamps[-1] - self._stamps[0])
            return DeviceHealth(
                kind=self.kind,
                name=self.name,
                source=self._source,
                state=self._state,
                since_ns=self._since_ns,
                lost_since_ns=self._lost_since_ns,
                lost_since_utc=self._lost_since_utc,
                reconnects=self._reconnects,
                last_error=self._last_error,
                delivered=self._delivered,
                rate=rate,
                callback_errors=self._callback_errors,
            )

    def lost_since(self) -> datetime | None:
        """UTC time the device was lost, or None while it delivers (for "NO SIGNAL since ...")."""
        with self._lock:
            return self._lost_since_utc

    # --- the device thread -----------------------------------------------------------------------

    def delivered(self, t_ns: int) -> None:
        """The connection handed over one item at ``t_ns``: the device is live."""
        with self._lock:
            self._delivered += 1
            self._stamps.append(t_ns)
            if len(self._stamps) > 4096:  # bound memory if health() is never called
                self._stamps.popleft()
            previous = self._state
            if previous == "live":
                return
            lost_since_ns = self._lost_since_ns
            self._state = "live"
            self._since_ns = t_ns
            self._lost_since_ns = None
            self._lost_since_utc = None
            recovered = self._ever_live
            if recovered:
                self._reconnects += 1
            reconnects = self._reconnects
        self._ever_live = True
        if recovered:
            lost_for = None if lost_since_ns is None else round((t_ns - lost_since_ns) / 1e9, 3)
            self._log.info(
                f"{self.kind}_recovered", source=self._source, lost_for_s=lost_for, reconnects=reconnects
            )
        else:
            self._log.info(f"{self.kind}_live", source=self._source)

    def callback_failed(self, t_ns: int, what: str = "callback") -> None:
        """The receiving side raised on an item: counted, logged at most every so often."""
        with self._lock:
            self._callback_errors += 1
            count = self._callback_errors
        last = self._last_callback_log_ns
        if last is None or t_ns - last >= self._callback_log_interval_ns:
            self._last_callback_log_ns = t_ns
            self._log.exception(f"{self.kind}_callback_failed", callback=what, total=count)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                before = self._delivered
                reason = self._connect()
                if self._stop.is_set():
                    break
                self._mark_lost(reason)
                if self._delivered > before:
                    self._backoff.reset()
                # Event.wait, not sleep: stop() must not wait out a 10 s back-off.
                if self._stop.wait(self._backoff.next()):
                    break
        finally:
            with self._lock:
                self._state = "stopped"
                self._since_ns = self._clock_ns()

    def _connect(self) -> str:
        """One connection's life: open, serve, close. Why it ended."""
        try:
            self._connection.open()
        except Exception as exc:  # broad: a driver fails in its own words (OSError, cv2, av, ...)
            self._close()
            return f"open failed: {describe_error(exc)}"
        try:
            return self._connection.serve(self)
        except Exception as exc:  # broad: whatever a device raises ends this connection, not the loop
            return describe_error(exc)
        finally:
            self._close()

    def _mark_lost(self, reason: str) -> None:
        now_ns = self._clock_ns()
        with self._lock:
            self._last_error = reason
            if self._state == "lost":
                return  # a failed retry is not news
            self._state = "lost"
            self._since_ns = now_ns
            self._lost_since_ns = now_ns
            self._lost_since_utc = datetime.now(UTC)
        self._log.warning(f"{self.kind}_lost", source=self._source, error=reason)

    def _close(self) -> None:
        try:
            self._connection.close()
        except Exception as exc:  # broad: a vanished device fails to close in any way it likes
            self._log.warning(f"{self.kind}_close_failed", error=describe_error(exc))


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
