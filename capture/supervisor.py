"""A frame or sound source kept delivering: ``supervision.Supervisor`` around a source.

The connection here opens the source, reads items, stamps each with the clock right after
``read`` returns, and hands it to ``deliver``; a read that raises or returns None ends the
connection (lost; a raising read's words are the reason), and the supervisor backs off and
opens the source again. Camera and audio readers are this with a different source and callback.

Threads: everything runs on the reader's own thread (sources are not thread-safe) except
``health``/``lost_since``, which read the supervisor's published state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from supervision.backoff import Backoff
from supervision.health import DeviceHealth
from supervision.supervisor import Supervisor

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Source(Protocol[T_co]):
    """What the loop needs of a source; ``FrameSource`` and ``AudioSource`` both fit."""

    def open(self) -> None: ...
    def read(self) -> T_co | None: ...
    def close(self) -> None: ...
    def describe(self) -> str: ...


class _SourceConnection(Generic[T]):
    def __init__(self, source: Source[T], deliver: Callable[[T, int], None], clock_ns: Callable[[], int]):
        self._source = source
        self._deliver = deliver
        self._clock_ns = clock_ns

    def describe(self) -> str:
        return self._source.describe()

    def open(self) -> None:
        self._source.open()

    def serve(self, device: Supervisor) -> str:
        while not device.stopping.is_set():
            item = self._source.read()  # a read that raises is the supervisor's: a loss, its reason
            t_ns = self._clock_ns()  # the capture time: right after the read returned
            if item is None:
                return "source ended"
            device.delivered(t_ns)
            try:
                self._deliver(item, t_ns)
            except Exception:  # broad: a failing receiver must never cost the stream
                device.callback_failed(t_ns)
        return "stopped"

    def close(self) -> None:
        self._source.close()


class SupervisedReader(Generic[T]):
    """Runs ``source`` on a thread of its own and calls ``deliver(item, t_ns)`` for each item."""

    def __init__(
        self,
        name: str,
        kind: str,
        source: Source[T],
        deliver: Callable[[T, int], None],
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        rate_window_s: float = 3.0,
        callback_log_interval_s: float = 10.0,
    ) -> None:
        self.name = name
        self.kind = kind
        self._supervisor = Supervisor(
            kind,
            name,
            _SourceConnection(source, deliver, clock_ns),
            clock_ns=clock_ns,
            backoff=Backoff(backoff_initial_s, backoff_max_s),
            rate_window_s=rate_window_s,
            callback_log_interval_s=callback_log_interval_s,
        )

    def start(self) -> None:
        self._supervisor.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        return self._supervisor.stop(timeout_s)

    @property
    def running(self) -> bool:
        return self._supervisor.running

    def health(self) -> DeviceHealth:
        return self._supervisor.health()

    def lost_since(self) -> datetime | None:
        """UTC time the source was lost, or None while it delivers (for "NO SIGNAL since ...")."""
        return self._supervisor.lost_since()
