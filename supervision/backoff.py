"""How long a supervised device waits before it is opened again."""

from __future__ import annotations


class Backoff:
    """Waits between tries: ``initial`` doubling up to ``maximum``; back to ``initial`` after a
    connection that delivered, so a device that opens and dies at once is not hammered while
    one that worked for a while is retried promptly.

    The defaults (0.5 s doubling to 10 s) are what every device has used: a camera or monitor
    replugged is read again within a second, and one left unplugged costs an open every 10 s."""

    def __init__(self, initial_s: float = 0.5, maximum_s: float = 10.0) -> None:
        if initial_s <= 0 or maximum_s < initial_s:
            raise ValueError("need 0 < initial_s <= maximum_s")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._next = initial_s

    def next(self) -> float:
        """The wait before the next try; the one after it is twice as long (capped)."""
        wait = self._next
        self._next = min(self._next * 2, self.maximum_s)
        return wait

    def reset(self) -> None:
        self._next = self.initial_s
