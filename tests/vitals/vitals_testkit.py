"""Helpers shared by the vitals tests: a TCP monitor server, a sample collector, waiting."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime

from vitals.sample import Parameter, VitalSample
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

# A steady baby: values from the first line, no noise, so a test can assert exact numbers.
STEADY = StabilisationScript(
    no_sensor_s=0,
    acquire_s=0,
    spo2_start=95,
    spo2_end=95,
    bpm_start=140,
    bpm_end=140,
    pi_start=2.5,
    pi_end=2.5,
    spo2_noise=0,
    bpm_noise=0,
    pi_noise=0,
)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Collector:
    """An ``on_samples`` callback that keeps what it is given (called on the link's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: list[VitalSample] = []
        self.calls = 0

    def __call__(self, samples: list[VitalSample]) -> None:
        with self._lock:
            self.calls += 1
            self.samples.extend(samples)

    def values(self, parameter: Parameter, *, valid: bool = True) -> list[float | None]:
        with self._lock:
            return [s.value for s in self.samples if s.parameter is parameter and s.valid is valid]

    def count(self) -> int:
        with self._lock:
            return len(self.samples)


class _SocketOut:
    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn

    def write(self, data: bytes) -> int:
        self._conn.sendall(data)
        return len(data)


class MonitorServer:
    """A serial-to-Ethernet converter stand-in: a simulator behind a TCP port.

    ``stop()`` takes it away (connections and listener closed); ``start()`` brings it back on the
    same port, as a converter that rebooted would. ``silent=True`` accepts and sends nothing.
    """

    def __init__(self, *, interval_s: float = 0.05, silent: bool = False) -> None:
        self.interval_s = interval_s
        self.silent = silent
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._conns: list[tuple[socket.socket, MasimoSimulator | None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(4)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            conn.settimeout(1.0)
            sim = None
            if not self.silent:
                sim = MasimoSimulator(
                    _SocketOut(conn),
                    interval_s=self.interval_s,
                    script=STEADY,
                    start_time=datetime(2024, 5, 1, 10, 0, 0),
                )
                sim.start()
            with self._lock:
                self.accepted += 1
                self._conns.append((conn, sim))

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn, sim in conns:
            if sim is not None:
                sim.stop()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
