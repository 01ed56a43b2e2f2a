"""Capped exponential back-off, shared by every loop that retries."""


class Backoff:
    """Delays ``minimum``, twice that, ... up to ``maximum``; ``reset`` starts over."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self._next = minimum

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long (capped)."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.minimum
