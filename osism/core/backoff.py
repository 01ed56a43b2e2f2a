"""Capped exponential back-off with jitter, shared by every loop that retries.

Every delay is drawn at random below the step of a capped exponential
(``minimum``, twice that, ... up to ``maximum``). Without the draw, the
replicas that lost Redis or RabbitMQ in the same instant (a Sentinel
failover, a broker restart) would all try again in the same instant too, at
every step. The formulas are those of redis-py's ``FullJitterBackoff`` and
``EqualJitterBackoff``; ours keeps its step (``next``/``reset``) and takes the
random source as an argument, so that a test can say which delays it expects.
"""

import enum
import random
from typing import Callable, Optional

# A float in [0, 1), as random.random gives.
RandomSource = Callable[[], float]


class Jitter(enum.Enum):
    """How much of a step is drawn at random."""

    # Anywhere in [0, step]: spreads retries the most, and never waits longer
    # than the plain back-off would.
    FULL = enum.auto()
    # In [step / 2, step]: for a retry whose spacing has to stay near its
    # setting, as when a fixed number of retries covers an outage.
    EQUAL = enum.auto()


def system_random() -> float:
    """The default random source; tests replace it (``source``) or pass their own."""
    return random.random()


# Read at each draw, so a test can replace it for every loop at once.
source: RandomSource = system_random


class Backoff:
    """Steps ``minimum``, twice that, ... up to ``maximum``; each delay is drawn
    below its step (``jitter``); ``reset`` starts over."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        jitter: Jitter = Jitter.FULL,
        random_source: Optional[RandomSource] = None,
    ) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.jitter = jitter
        self._random = random_source
        self._step = minimum

    def next(self) -> float:
        """The delay to wait now; the next step is twice as long (capped)."""
        step = self._step
        self._step = min(step * 2, self.maximum)
        draw = (self._random or source)()
        if self.jitter is Jitter.EQUAL:
            return step / 2 + step / 2 * draw
        return step * draw

    def reset(self) -> None:
        self._step = self.minimum
