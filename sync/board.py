"""The vitals board: the latest samples per parameter, and what was known at a frame's time.

Serial threads add samples as they arrive; camera threads ask ``as_of(t)`` for each frame they
draw. A frame captured at ``t`` shows only samples that had arrived by ``t``, so the overlay never
shows a value from the future of the picture it is burned into.

Several monitors may report the same parameter (HR from the patient monitor's ECG and from the
oximeter's pleth). ``as_of`` then takes the first monitor in ``priority`` that has a fresh value,
falls back to the next one when it goes quiet, and the value says which monitor it came from.

One patient's values never reach the next one: ``forget_before(t)`` (session control calls it when
a stabilisation has ended: post-roll, discard, "do not record") drops everything that arrived
before ``t`` from what ``as_of`` shows and ``history_since`` returns, and ``as_of`` shows
nothing older than ``max_age_s`` (the pre-roll) as a value, greyed or not.

Threads: ``add`` (serial threads) and ``as_of``/``history_since``/``forget_before`` (camera
threads, session control) meet under one lock; each does O(parameters) work, never O(history)
(``forget_before`` also trims the history, once).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vitals.sample import Parameter, VitalSample


@dataclass(frozen=True, slots=True)
class BoardValue:
    """What the board knows of one parameter at a moment.

    ``latest`` is the newest sample (valid or not); ``last_valid`` the newest valid one.
    ``stale`` is True when the newest sample is older than the staleness limit: the monitor went
    quiet (unplugged, switched off), so what we last heard may no longer be true.
    """

    parameter: Parameter
    latest: VitalSample
    last_valid: VitalSample | None
    age_s: float
    stale: bool


class VitalsBoard:
    def __init__(
        self, *, history_s: float = 120.0, per_parameter: int = 64, priority: Sequence[str] = ()
    ) -> None:
        self._rank = {monitor: i for i, monitor in enumerate(priority)}
        self._lock = threading.Lock()
        # Recent samples per parameter, oldest first. Short: as_of only looks back a few seconds.
        self._recent: dict[tuple[Parameter, str], deque[VitalSample]] = {}
        self._per_parameter = per_parameter
        # Every sample of the last history_s seconds, so a recording that starts with pre-roll
        # also gets the vitals of its pre-roll.
        self._history: deque[VitalSample] = deque()
        self._history_ns = int(history_s * 1e9)
        self._floor_ns = 0  # nothing that arrived before this is shown or handed out
        self.samples_total = 0

    def add(self, samples: Iterable[VitalSample]) -> None:
        with self._lock:
            for sample in samples:
                key = (sample.parameter, sample.monitor)
                recent = self._recent.get(key)
                if recent is None:
                    recent = self._recent[key] = deque(maxlen=self._per_parameter)
                recent.append(sample)
                self._history.append(sample)
                self.samples_total += 1
            if self._history:
                horizon = self._history[-1].host_ns - self._history_ns
                while self._history and self._history[0].host_ns < horizon:
                    self._history.popleft()

    def forget_before(self, t_ns: int) -> None:
        """Show and hand out nothing that arrived before ``t_ns`` (a stabilisation has ended)."""
        with self._lock:
            self._floor_ns = max(self._floor_ns, t_ns)
            for key, recent in list(self._recent.items()):
                kept = [s for s in recent if s.host_ns >= self._floor_ns]
                if kept:
                    self._recent[key] = deque(kept, maxlen=self._per_parameter)
                else:
                    del self._recent[key]
            while self._history and self._history[0].host_ns < self._floor_ns:
                self._history.popleft()

    def as_of(
        self,
        t_ns: int,
        stale_after_s: dict[str, float] | float,
        *,
        max_age_s: float | None = None,
    ) -> dict[Parameter, BoardValue]:
        """Per parameter, what had arrived by ``t_ns``.

        ``stale_after_s`` is either one limit or a limit per monitor name (monitors differ: an
        oximeter speaks every second, a blood pressure cuff every few minutes). A sample older
        than ``max_age_s`` is not shown at all: after that long it may be another patient's.
        """
        candidates: dict[Parameter, list[BoardValue]] = {}
        oldest = self._floor_ns if max_age_s is None else max(self._floor_ns, t_ns - int(max_age_s * 1e9))
        with self._lock:
            for (parameter, _monitor), recent in self._recent.items():
                value = self._value_at(parameter, recent, t_ns, stale_after_s, oldest)
                if value is not None:
                    candidates.setdefault(parameter, []).append(value)
        out: dict[Parameter, BoardValue] = {}
        for parameter, values in candidates.items():
            # Fresh and valid first, then fresh "no value", then stale; within each, the
            # configured priority; then the newest.
            values.sort(
                key=lambda v: (
                    v.stale,
                    not v.latest.valid,
                    self._rank.get(v.latest.monitor, len(self._rank)),
                    -v.latest.host_ns,
                )
            )
            out[parameter] = values[0]
        return out

    @staticmethod
    def _value_at(
        parameter: Parameter,
        recent: deque[VitalSample],
        t_ns: int,
        stale_after_s: dict[str, float] | float,
        oldest_ns: int = 0,
    ) -> BoardValue | None:
        latest: VitalSample | None = None
        last_valid: VitalSample | None = None
        for sample in reversed(recent):
            if sample.host_ns > t_ns:
                continue
            if sample.host_ns < oldest_ns:
                break
            if latest is None:
                latest = sample
            if sample.valid:
                last_valid = sample
                break
        if latest is None:
            return None
        limit = (
            stale_after_s.get(latest.monitor, 3.0)
            if isinstance(stale_after_s, dict)
            else stale_after_s
        )
        age = (t_ns - latest.host_ns) / 1e9
        return BoardValue(parameter, latest, last_valid, age, age > limit)

    def history_since(self, t_ns: int) -> list[VitalSample]:
        with self._lock:
            since = max(t_ns, self._floor_ns)
            return [s for s in self._history if s.host_ns >= since]
