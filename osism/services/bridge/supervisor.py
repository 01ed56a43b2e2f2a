"""Restarting the bridge's Redis subscriber after it gave up, backing off.

``Supervisor.run`` calls the subscriber loop it was given until shutdown;
after each run that ended without shutdown it waits a capped exponential
back-off (ended early once Redis answers a quiet probe), reconnects and
runs it again. It counts the restarts.
"""

import logging
import threading
import time
from typing import Any, Callable

from osism.core.backoff import Backoff

logger = logging.getLogger("osism.event_bridge")

# Seconds between quiet probes for Redis while a restart waits.
PROBE_INTERVAL = 1.0


class Supervisor:
    """Runs the subscriber loop again after it gave up."""

    def __init__(
        self,
        run_loop: Callable[[], Any],
        reconnect: Callable[[], None],
        probe: Callable[[], bool],
    ) -> None:
        """``run_loop``: one run of the subscriber loop; ``reconnect``: a new
        connection and subscription; ``probe``: does Redis answer now?"""
        self._run_loop = run_loop
        self._reconnect = reconnect
        self._probe = probe
        self.restarts = 0

    def run(
        self, shutdown: threading.Event, min_delay: float, max_delay: float
    ) -> None:
        """Run the loop, and again after each time it gave up, until shutdown;
        the back-off starts at ``min_delay`` and doubles up to ``max_delay``."""
        backoff = Backoff(min_delay, max_delay)
        while not shutdown.is_set():
            started = time.monotonic()
            self._run_loop()
            if shutdown.is_set():
                break
            if time.monotonic() - started > 2 * backoff.maximum:
                backoff.reset()
            delay = backoff.next()
            self.restarts += 1
            logger.warning(
                "Redis subscriber stopped; starting it again in %.1f s (restart %d)",
                delay,
                self.restarts,
            )
            if self.back_off(shutdown, delay):
                break
            self._reconnect()
        logger.info("Redis subscriber stopped for shutdown")

    def back_off(self, shutdown: threading.Event, delay: float) -> bool:
        """Wait ``delay`` s before a restart, less once Redis answers a quiet
        probe (one every PROBE_INTERVAL s); True when shutdown came meanwhile.

        So a subscriber that gave up during a long outage is back within about
        a second of Redis, not after the rest of a back-off of up to
        SUBSCRIBER_RESTART_MAX_DELAY.
        """
        remaining = delay
        while remaining > 0:
            step = min(remaining, PROBE_INTERVAL)
            if shutdown.wait(step):
                return True
            remaining -= step
            if remaining > 0 and self._probe():
                logger.info("Redis answers again; restarting the subscriber now")
                return False
        return False
