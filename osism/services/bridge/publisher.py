"""Appending events to the Redis log, for a publishing process.

``Publisher.append`` puts one envelope in the log (redis_log) and says
whether the log took it; on a broken connection it asks for a new one once
and tries again. It reads the current log and reconnects through callables
its owner (EventBridge) gives it, and counts what it published.
"""

import logging
import time
from typing import Callable, Optional

import redis

from osism.core.event_log import Envelope
from osism.core.ratelimit import RateLimitedLog
from osism.services.bridge.counter import Counter
from osism.services.bridge.redis_log import RedisEventLog

logger = logging.getLogger("osism.event_bridge")

LogSource = Callable[[], Optional[RedisEventLog]]


class Publisher:
    """Appends envelopes to the Redis log; reconnects once when it broke."""

    # Seconds between two warnings that an event had no live subscriber.
    UNHEARD_WARNING_INTERVAL = 60.0

    def __init__(
        self,
        current_log: LogSource,
        reconnect: LogSource,
        down_log: RateLimitedLog,
        unheard_interval: float = UNHEARD_WARNING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``current_log``: the log while connected, else None; ``reconnect``:
        connect again, the new log or None; ``down_log``: where "Redis is
        down" warnings go (shared with the connecting code)."""
        self._current_log = current_log
        self._reconnect = reconnect
        self._down_log = down_log
        self._unheard_log = RateLimitedLog(logger, unheard_interval, clock)
        self.published = Counter()

    def append(self, envelope: Envelope) -> bool:
        """Put ``envelope`` in the log; True once the log has it."""
        log = self._current_log()
        if log is None:
            log = self._reconnect()
            if log is None:
                return False
        try:
            entry = log.append(envelope)
        except redis.ConnectionError as exc:
            logger.warning(
                "Failed to publish event to Redis: %s (%s); reconnecting",
                exc,
                envelope["event_type"],
            )
            log = self._reconnect()
            if log is None:
                return False
            try:
                entry = log.append(envelope)
            except redis.RedisError as again:
                logger.warning("Redis reconnection failed: %s; event not taken", again)
                return False
            logger.info(
                "Published event to Redis after reconnect: %s (%s)",
                envelope["event_type"],
                envelope["id"],
            )
        except redis.RedisError as exc:
            self._down_log.warning(
                "Failed to publish event to Redis: %s (%s); not taken",
                exc,
                envelope["event_type"],
            )
            return False
        if entry is None:
            return False
        self.published.add()
        if log.receivers == 0:
            # Nothing lost (the log has it), but nobody hears events live:
            # worth a warning, once a minute rather than per event.
            self._unheard_log.warning(
                "No Redis subscribers for event: %s; it is in the log for "
                "subscribers that catch up",
                envelope["event_type"],
            )
        logger.debug(
            "Published event to Redis: %s (subscribers: %d), logged as %s at %s",
            envelope["event_type"],
            log.receivers,
            entry.event.get("id"),
            entry.position,
        )
        return True
