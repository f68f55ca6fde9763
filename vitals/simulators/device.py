"""A simulated device on a serial line: what every monitor simulator does besides its wire format.

``SimulatorPort`` is the device's end of the line, a pty master fd or a pyserial-like port: it
writes without blocking the device for long and reads the host's bytes without failing while
nobody is on the other side. ``SimulatedDevice`` is the device's thread: ``start``/``stop``, use
as a context manager, the stop event, the script clock. ``PacedDevice`` is a device that talks by
itself, one message per interval (oximeters printing lines), and ``PacedOximeter`` one with a
probe that comes off and goes back on; devices that answer a host (Medibus, DRI, Data Export)
write their own loop on ``SimulatedDevice``.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Self

# How long a write may wait for a full pty to take bytes before the message is dropped.
WRITE_TIMEOUT_S: Final = 1.0
_READ_SIZE: Final = 4096


class SimulatorPort:
    """The device's end of the line: ``port`` is a file descriptor (a pty master, used with
    ``select`` and ``os.read``/``os.write``) or an object with ``write`` and, when the device
    listens, ``read`` and usually ``in_waiting`` (a pyserial port).

    Waits end early once ``stop`` is set. ``write_errors`` counts messages that did not go out;
    only the device's thread writes, so it needs no lock.
    """

    def __init__(self, port: int | Any, stop: threading.Event) -> None:
        self.port = port
        self._stop = stop
        self.write_errors = 0

    def write(self, data: bytes) -> bool:
        """Send ``data``; False, and counted, when it did not all go out.

        A pty nobody reads fills up: after ``WRITE_TIMEOUT_S`` the rest is dropped, as a
        monitor's UART keeps its cadence whether or not anyone listens.
        """
        port = self.port
        try:
            if isinstance(port, int):
                view = memoryview(data)
                while view:
                    _, ready, _ = select.select([], [port], [], WRITE_TIMEOUT_S)
                    if self._stop.is_set():
                        return False  # stopping: a message cut short is not a line fault
                    if not ready:
                        self.write_errors += 1
                        return False
                    view = view[os.write(port, view) :]
            else:
                port.write(data)
        except Exception:
            # A closed fd, a vanished port (pyserial's SerialException): the message is lost, the
            # device carries on, and the owner decides when to stop it.
            self.write_errors += 1
            return False
        return True

    def read(self, timeout_s: float) -> bytes:
        """What the host sent, waiting up to ``timeout_s`` for it; b"" when nothing came."""
        port = self.port
        try:
            if isinstance(port, int):
                ready, _, _ = select.select([port], [], [], timeout_s)
                return os.read(port, _READ_SIZE) if ready else b""
            waiting = getattr(port, "in_waiting", None)
            if waiting is None:
                # A port that cannot say what it holds: its own read timeout paces the device.
                data: bytes = port.read(1)
                return data
            if waiting:
                data = port.read(waiting)
                return data
            self._stop.wait(timeout_s)
        except Exception:
            # EIO while nobody holds the pty slave open (the host is between connections), or a
            # vanished port: wait out the timeout as if nothing came and let the caller try again,
            # as a device's UART keeps listening. Waiting no longer keeps the caller's deadlines.
            self._stop.wait(timeout_s)
        return b""


class SimulatedDevice:
    """A simulator's thread on a serial line; subclasses give ``_run``, the thread's body.

    ``start``/``stop`` are called from the owner's thread; ``_run`` must return soon after
    ``_stop`` is set. ``_lock`` guards what the owner's controls (sensor off, go silent ...)
    share with the thread. ``script_time()`` is the device's course clock: real seconds since
    ``start()`` (or construction) times ``time_scale``.
    """

    def __init__(
        self,
        port: int | Any,
        *,
        name: str,
        time_scale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.time_scale = time_scale
        self._name = name
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._line = SimulatorPort(port, self._stop)

    @property
    def write_errors(self) -> int:
        """Messages that did not go out (nobody reading a full pty, a closed fd, a vanished port)."""
        return self._line.write_errors

    def script_time(self) -> float:
        return (self._clock() - self._t0) * self.time_scale

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._starting()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _starting(self) -> None:
        """Called by ``start()`` before the thread runs: the course starts again from zero."""
        self._t0 = self._clock()

    def _run(self) -> None:
        """The device thread: the family's conversation, until ``_stop`` is set."""
        raise NotImplementedError

    def _write(self, data: bytes) -> bool:
        """Send ``data`` to the host; False (counted in ``write_errors``) when it was lost."""
        return self._line.write(data)


class PacedDevice(SimulatedDevice):
    """A device that talks by itself: ``_emit()`` once every ``interval_s`` real seconds."""

    def __init__(
        self,
        port: int | Any,
        *,
        name: str,
        interval_s: float,
        time_scale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(port, name=name, time_scale=time_scale, clock=clock)
        self.interval_s = interval_s

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self._emit()
            tick += 1
            # Deadlines from the start, not from the last write, so the cadence does not drift.
            self._idle(self._t0 + tick * self.interval_s - self._clock())

    def _emit(self) -> None:
        """Send the message that is due now (or skip it, as a paused port does)."""
        raise NotImplementedError

    def _idle(self, wait_s: float) -> None:
        """Spend ``wait_s`` (may be negative: late) until the next message; ends early on stop."""
        if wait_s > 0:
            self._stop.wait(wait_s)


class PacedOximeter(PacedDevice):
    """A paced device with a pulse-oximeter probe that can come off the baby and go back on.

    ``_sensor_attached`` and ``_attached_at_s`` (script time the probe was last put back on, so
    a subclass can replay the pulse search) are read by the thread under ``_lock``.
    """

    def __init__(
        self,
        port: int | Any,
        *,
        name: str,
        interval_s: float,
        time_scale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(port, name=name, interval_s=interval_s, time_scale=time_scale, clock=clock)
        self._sensor_attached = True
        self._attached_at_s = 0.0

    def sensor_off(self) -> None:
        """Take the probe off: no values until it is back on and the pulse is found again."""
        with self._lock:
            self._sensor_attached = False

    def sensor_on(self) -> None:
        """Put the probe back; values return after the pulse search."""
        now = self.script_time()
        with self._lock:
            if not self._sensor_attached:
                self._sensor_attached = True
                self._attached_at_s = now
