"""A counter that several threads may add to at once.

``n += 1`` on an attribute is a read, an add and a write: two threads can
read the same value and one increment is lost. The bridge's counters are
touched from the caller's threads (the API's thread pool, the listener), the
subscriber and the processor, so each is one of these.
"""

import threading


class Counter:
    """An integer that only grows, safely from any thread."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self, amount: int = 1) -> int:
        """Add ``amount``; the new value."""
        with self._lock:
            self._value += amount
            return self._value

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    def __repr__(self) -> str:
        return f"Counter({self._value})"
