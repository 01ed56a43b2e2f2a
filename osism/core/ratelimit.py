"""A log line that is written at most once per interval."""

import logging
import math
import time
from typing import Any, Callable


class RateLimitedLog:
    """Write a warning at most every ``interval`` seconds, counting the rest."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.suppressed = 0
        self._clock = clock
        self._last = -math.inf

    def warning(self, message: str, *args: Any) -> bool:
        """Log unless one was logged within the interval; True when logged."""
        return self.log(logging.WARNING, message, *args)

    def error(self, message: str, *args: Any) -> bool:
        """Like :meth:`warning`, at ERROR."""
        return self.log(logging.ERROR, message, *args)

    def log(self, level: int, message: str, *args: Any) -> bool:
        now = self._clock()
        if now - self._last < self.interval:
            self.suppressed += 1
            return False
        if self.suppressed:
            message += " (%d similar messages suppressed)"
            args = args + (self.suppressed,)
        self.logger.log(level, message, *args)
        self._last = now
        self.suppressed = 0
        return True
