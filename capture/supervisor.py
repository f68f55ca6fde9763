"""Keeps one source delivering: open, read, stamp, hand over; on loss, retry with backoff.

Camera and audio readers are both this loop with a different source and callback. The loop owns
the source from its own thread (sources are not thread-safe), stamps each item with the clock
right after ``read`` returns, and never lets a lost device or a failing callback stop it, so the
other streams carry on. A loss and a recovery are each logged once, not once per retry.

Threads: the loop runs on the reader's own thread and calls ``deliver`` there. ``health`` and
``lost_since`` may be called from any thread; they read state under ``_lock``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Literal, Protocol, TypeVar

import structlog

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

ReaderState = Literal["connecting", "live", "lost", "stopped"]


class Source(Protocol[T_co]):
    """What the loop needs of a source; ``FrameSource`` and ``AudioSource`` both fit."""

    def open(self) -> None: ...
    def read(self) -> T_co | None: ...
    def close(self) -> None: ...
    def describe(self) -> str: ...


@dataclass(frozen=True)
class ReaderHealth:
    state: ReaderState
    lost_since_ns: int | None  # monotonic; set while state is "lost"
    lost_since_utc: datetime | None
    frames: int  # items delivered since start (video frames, or audio chunks)
    reconnects: int  # recoveries after a loss
    fps: float  # items per second over the last few seconds; 0.0 when nothing arrived
    last_error: str | None
    callback_errors: int


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
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.name = name
        self.kind = kind
        self._source = source
        self._deliver = deliver
        self._clock_ns = clock_ns
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._window_ns = int(rate_window_s * 1e9)
        self._callback_log_interval_ns = int(callback_log_interval_s * 1e9)
        # A lazy logger: resolved at each call, so it follows logging set up after construction.
        self._log = structlog.get_logger(**{kind: name})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind}-{name}", daemon=True)
        self._lock = threading.Lock()
        self._state: ReaderState = "connecting"
        self._lost_since_ns: int | None = None
        self._lost_since_utc: datetime | None = None
        self._frames = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._callback_errors = 0
        self._last_callback_log_ns: int | None = None
        self._stamps: deque[int] = deque()

    # --- called from other threads --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Ask the loop to end and wait for it. False if a blocking read kept it past the timeout;
        the thread is a daemon, so it never keeps the process alive."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._log.warning(f"{self.kind}_stop_slow", source=self._source.describe())
            return False
        return True

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def health(self) -> ReaderHealth:
        now = self._clock_ns()
        with self._lock:
            while self._stamps and now - self._stamps[0] > self._window_ns:
                self._stamps.popleft()
            fps = 0.0
            if len(self._stamps) >= 2 and self._stamps[-1] > self._stamps[0]:
                fps = (len(self._stamps) - 1) * 1e9 / (self._stamps[-1] - self._stamps[0])
            return ReaderHealth(
                state=self._state,
                lost_since_ns=self._lost_since_ns,
                lost_since_utc=self._lost_since_utc,
                frames=self._frames,
                reconnects=self._reconnects,
                fps=fps,
                last_error=self._last_error,
                callback_errors=self._callback_errors,
            )

    def lost_since(self) -> datetime | None:
        """UTC time the source was lost, or None while it delivers (for "NO SIGNAL since ...")."""
        with self._lock:
            return self._lost_since_utc

    # --- the reader thread ------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        try:
            while not self._stop.is_set():
                delivered = self._session()
                if self._stop.is_set():
                    break
                if delivered:
                    backoff = self._backoff_initial
                # Event.wait, not sleep: stop() must not wait out a 10 s backoff.
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self._backoff_max)
        finally:
            self._close_source()
            with self._lock:
                self._state = "stopped"

    def _session(self) -> bool:
        """Open the source and read until it fails or we are stopped. True if anything arrived."""
        try:
            self._source.open()
        except Exception as exc:
            self._close_source()
            self._mark_lost(_describe_error(exc))
            return False
        delivered = False
        error = "source ended"
        while not self._stop.is_set():
            try:
                item = self._source.read()
            except Exception as exc:
                item = None
                error = _describe_error(exc)
            t_ns = self._clock_ns()
            if item is None:
                break
            delivered = True
            self._mark_live(t_ns)
            try:
                self._deliver(item, t_ns)
            except Exception:
                self._callback_failed(t_ns)
        self._close_source()
        if not self._stop.is_set():
            self._mark_lost(error)
        return delivered

    def _mark_live(self, t_ns: int) -> None:
        with self._lock:
            self._frames += 1
            self._stamps.append(t_ns)
            if len(self._stamps) > 4096:  # bound memory if health() is never called
                self._stamps.popleft()
            previous = self._state
            if previous == "live":
                return
            lost_since_ns = self._lost_since_ns
            self._state = "live"
            self._lost_since_ns = None
            self._lost_since_utc = None
            if previous == "lost":
                self._reconnects += 1
        if previous == "lost":
            lost_for = (t_ns - lost_since_ns) / 1e9 if lost_since_ns is not None else None
            self._log.info(
                f"{self.kind}_recovered", source=self._source.describe(), lost_for_s=lost_for
            )
        else:
            self._log.info(f"{self.kind}_live", source=self._source.describe())

    def _mark_lost(self, error: str) -> None:
        now_ns = self._clock_ns()
        with self._lock:
            self._last_error = error
            if self._state == "lost":
                return  # still lost: the retry is not news
            self._state = "lost"
            self._lost_since_ns = now_ns
            self._lost_since_utc = datetime.now(UTC)
        self._log.warning(f"{self.kind}_lost", source=self._source.describe(), error=error)

    def _callback_failed(self, t_ns: int) -> None:
        with self._lock:
            self._callback_errors += 1
            count = self._callback_errors
        last = self._last_callback_log_ns
        if last is None or t_ns - last >= self._callback_log_interval_ns:
            self._last_callback_log_ns = t_ns
            self._log.exception(f"{self.kind}_callback_failed", total=count)

    def _close_source(self) -> None:
        try:
            self._source.close()
        except Exception as exc:
            self._log.warning(f"{self.kind}_close_failed", error=_describe_error(exc))


def _describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
