"""What the bedside button said: raw press/release readings in, gestures out, as a pure object.

No threads and no I/O: the caller passes each reading with its time and calls ``tick`` between
readings, so every sequence (contact bounce, a double press, a hold, a stuck button) is a row in
a table test. Gestures and what they are for:

- ``SHORT``: a press released before ``long_press_s``, with no second press within
  ``double_press_ms`` of the release. Reported only once that window has passed.
- ``DOUBLE``: a second short press that began within the window. ``double_press_ms=0`` turns
  doubles off, and ``SHORT`` comes on release (once debounced).
- ``LONG_ARMED``: held for ``long_press_s``; the lamp blinks fast to say "release now to discard".
- ``LONG``: released while armed: the discard is confirmed.
- ``LONG_CANCELLED``: held beyond ``long_press_max_s`` (a stuck button, someone leaning on it), or
  the button was lost while armed. Nothing is discarded; the press is ignored until released.

A second press that becomes a hold is not a double: the first tap is reported as ``SHORT`` when
the hold arms (the tap did happen), and the hold goes on as a long press.

Debounce is trailing: a change counts once the reading has held for ``debounce_ms``, and it is
dated to when it happened, so bounce and single-reading glitches never make a gesture and timings
are not stretched. A gesture is therefore reported at most ``debounce_ms`` (plus one tick) late.
"""

from __future__ import annotations

import enum


class Gesture(enum.StrEnum):
    SHORT = "short"
    DOUBLE = "double"
    LONG_ARMED = "long_armed"
    LONG = "long"
    LONG_CANCELLED = "long_cancelled"


class _Phase(enum.Enum):
    IDLE = enum.auto()
    DOWN = enum.auto()  # first press held; _mark = when it went down
    RELEASED = enum.auto()  # a tap ended; waiting for a second press; _mark = release time
    DOWN_AGAIN = enum.auto()  # second press within the window; _mark = when it went down
    ARMED = enum.auto()  # held past long_press_s; _mark = when it went down
    IGNORED = enum.auto()  # stuck, cancelled, or already held when first seen: wait for release


class GestureRecognizer:
    """Turns (pressed, time) readings into gestures; see the module docstring.

    Times are monotonic nanoseconds; a time earlier than one already seen is taken as that one.
    """

    def __init__(
        self,
        debounce_ms: float = 30,
        double_press_ms: float = 400,
        long_press_s: float = 3.0,
        long_press_max_s: float = 10.0,
    ) -> None:
        if debounce_ms < 0 or double_press_ms < 0 or long_press_s <= 0:
            raise ValueError("debounce_ms and double_press_ms must be >= 0, long_press_s > 0")
        if long_press_max_s <= long_press_s:
            raise ValueError("long_press_max_s must be longer than long_press_s")
        self._debounce = int(debounce_ms * 1e6)
        self._double = int(double_press_ms * 1e6)
        self._long = int(long_press_s * 1e9)
        self._long_max = int(long_press_max_s * 1e9)
        self._stable = False  # the debounced state
        self._raw = False  # the latest reading
        self._raw_since: int | None = None  # when the reading left the stable state, if it has
        self._phase = _Phase.IDLE
        self._mark = 0
        self._now: int | None = None
        self._baseline = False  # the next reading is taken as it is, not as an edge

    @property
    def armed(self) -> bool:
        """True between ``LONG_ARMED`` and ``LONG``/``LONG_CANCELLED``."""
        return self._phase is _Phase.ARMED

    def edge(self, pressed: bool, t_ns: int) -> list[Gesture]:
        """A reading of the button at ``t_ns``. Repeating the same value is not an edge, so the
        caller may pass every reading, not only changes."""
        t = self._clamp(t_ns)
        out: list[Gesture] = []
        if self._baseline:
            self._baseline = False
            self._raw = self._stable = pressed
            self._raw_since = None
            # A press that began before we could see it is nobody's gesture.
            self._phase = _Phase.IGNORED if pressed else _Phase.IDLE
            return out
        if pressed != self._raw:
            self._advance(t, out)  # settle a pending change that has already held long enough
            self._raw = pressed
            self._raw_since = None if pressed == self._stable else t
        self._advance(t, out)
        return out

    def tick(self, t_ns: int) -> list[Gesture]:
        """Time passes without a new reading: reports gestures whose moment has come."""
        out: list[Gesture] = []
        self._advance(self._clamp(t_ns), out)
        return out

    def resync(self, t_ns: int) -> list[Gesture]:
        """The readings were interrupted (the button was lost, or is about to be read afresh).

        A finished tap is still reported as ``SHORT``; an armed hold ends as ``LONG_CANCELLED``
        (a vanished device is not a release); a press in progress is forgotten. The next
        reading is the new baseline: if the button is already down then, it is ignored until
        released.
        """
        out: list[Gesture] = []
        if not self._baseline:
            t = self._clamp(t_ns)
            if self._raw_since is not None:
                self._timers(self._raw_since, out)
            else:
                self._timers(t, out)
            if self._phase in (_Phase.RELEASED, _Phase.DOWN_AGAIN):
                out.append(Gesture.SHORT)
            elif self._phase is _Phase.ARMED:
                out.append(Gesture.LONG_CANCELLED)
        self._phase = _Phase.IDLE
        self._raw_since = None
        self._baseline = True
        return out

    # -- internals ------------------------------------------------------------------------------

    def _clamp(self, t_ns: int) -> int:
        if self._now is not None and t_ns < self._now:
            t_ns = self._now
        self._now = t_ns
        return t_ns

    def _advance(self, t: int, out: list[Gesture]) -> None:
        since = self._raw_since
        if since is not None and t - since >= self._debounce:
            self._timers(since, out)  # what fell due before the change happened
            self._raw_since = None
            self._stable = self._raw
            self._transition(self._stable, since, out)
        # While a change is pending, the state is known only up to when it began.
        self._timers(t if self._raw_since is None else self._raw_since, out)

    def _transition(self, pressed: bool, at: int, out: list[Gesture]) -> None:
        phase = self._phase
        if pressed:
            if phase is _Phase.IDLE:
                self._phase, self._mark = _Phase.DOWN, at
            elif phase is _Phase.RELEASED:  # within the window, or _timers would have ended it
                self._phase, self._mark = _Phase.DOWN_AGAIN, at
        elif phase is _Phase.DOWN:
            self._phase, self._mark = _Phase.RELEASED, at
        elif phase is _Phase.DOWN_AGAIN:
            out.append(Gesture.DOUBLE)
            self._phase = _Phase.IDLE
        elif phase is _Phase.ARMED:
            out.append(Gesture.LONG)
            self._phase = _Phase.IDLE
        elif phase is _Phase.IGNORED:
            self._phase = _Phase.IDLE

    def _timers(self, t: int, out: list[Gesture]) -> None:
        phase = self._phase
        if phase is _Phase.RELEASED and t - self._mark >= self._double:
            out.append(Gesture.SHORT)
            self._phase = _Phase.IDLE
        elif phase in (_Phase.DOWN, _Phase.DOWN_AGAIN) and t - self._mark >= self._long:
            if phase is _Phase.DOWN_AGAIN:
                out.append(Gesture.SHORT)  # the first tap was a tap, not half of a double
            out.append(Gesture.LONG_ARMED)
            self._phase = _Phase.ARMED
        if self._phase is _Phase.ARMED and t - self._mark >= self._long_max:
            out.append(Gesture.LONG_CANCELLED)
            self._phase = _Phase.IGNORED
