"""The bridge's Redis subscriber: subscribe, catch up from the log, hand on
live events, check the connection's health, retry and restart.

A mixin of ``EventBridge`` (event_bridge.py), which owns the attributes; it
runs in the ``osism-redis-subscriber`` thread.
"""

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

from osism import settings
from osism.services.bridge import link as bridge_link
from osism.core.backoff import Backoff, Jitter
from osism.core.event_log import Envelope
from osism.services.bridge.redis_log import RedisEventLog
from osism.services.bridge.subscription import Subscription, decode

logger = logging.getLogger("osism.event_bridge")

# Seconds between quiet probes for Redis while a restart waits.
PROBE_INTERVAL = 1.0


class RedisSubscriber:
    """``_redis_subscriber_loop`` and what it needs, for EventBridge."""

    SUBSCRIBE_MAX_RETRIES = 5
    SUBSCRIBE_RETRY_DELAY = settings.env_float("SUBSCRIBER_RETRY_DELAY", 5.0)
    RESTART_MIN_DELAY = 1.0

    channel: str
    _redis_subscriber: Optional[Any]
    _redis_log: Optional[RedisEventLog]
    _shutdown_event: threading.Event
    _feed: Subscription
    _subscribed: bool
    subscriber_restarts: int
    # EventBridge's (_close_pubsub: RedisLink's)
    _init_redis: Callable[[], None]
    _close_pubsub: Callable[[Optional[Any]], Optional[Exception]]
    _deliver: Callable[[Envelope], None]

    def _supervise_subscriber(self) -> None:
        """Run the subscriber loop; after it gives up, start it again, backing off."""
        backoff = Backoff(self.RESTART_MIN_DELAY, settings.SUBSCRIBER_RESTART_MAX_DELAY)
        while not self._shutdown_event.is_set():
            started = time.monotonic()
            self._redis_subscriber_loop()
            if self._shutdown_event.is_set():
                break
            if time.monotonic() - started > 2 * backoff.maximum:
                backoff.reset()
            delay = backoff.next()
            self.subscriber_restarts += 1
            logger.warning(
                "Redis subscriber stopped; starting it again in %.1f s (restart %d)",
                delay,
                self.subscriber_restarts,
            )
            if self._back_off(delay):
                break
            self._init_redis()
        logger.info("Redis subscriber stopped for shutdown")

    def _back_off(self, delay: float) -> bool:
        """Wait ``delay`` s before a restart, less once Redis answers a quiet
        probe (one every PROBE_INTERVAL s); True when shutdown came meanwhile.

        So a subscriber that gave up during a long outage is back within about
        a second of Redis, not after the rest of a back-off of up to
        SUBSCRIBER_RESTART_MAX_DELAY.
        """
        remaining = delay
        while remaining > 0:
            step = min(remaining, PROBE_INTERVAL)
            if self._shutdown_event.wait(step):
                return True
            remaining -= step
            if remaining > 0 and bridge_link._redis_answers():
                logger.info("Redis answers again; restarting the subscriber now")
                return False
        return False

    def _redis_subscriber_loop(self) -> None:
        if self._redis_subscriber is None:
            logger.error("Redis subscriber not available; not subscribing")
            return
        failures = 0
        # Equal jitter: the API processes that lost Redis together (a Sentinel
        # failover) retry spread over the second half of the delay; a floor of
        # half keeps the five retries covering an outage about as long as the
        # setting says, where full jitter could spend them all in an instant.
        retry = Backoff(
            self.SUBSCRIBE_RETRY_DELAY, self.SUBSCRIBE_RETRY_DELAY, Jitter.EQUAL
        )
        try:
            while not self._shutdown_event.is_set():
                try:
                    subscriber, log = self._redis_subscriber, self._redis_log
                    if subscriber is None or log is None:
                        raise ConnectionError("no connection to Redis")
                    # The first time: start from the log's tail, read before
                    # subscribing so that nothing falls between the two.
                    self._feed.begin(log)
                    self._feed.reset_health()
                    subscriber.subscribe(self.channel)
                    while not self._shutdown_event.is_set():
                        message = subscriber.get_message(timeout=1.0)
                        self._feed.check_health(subscriber)
                        if message is not None and self._on_message(message, log):
                            failures = 0
                except Exception as exc:
                    self._subscribed = False
                    if self._shutdown_event.is_set():
                        return
                    failures += 1
                    delay = retry.next()
                    logger.error(
                        "Redis subscriber error (attempt %d/%d): %s; "
                        "retrying in %.1f s",
                        failures,
                        self.SUBSCRIBE_MAX_RETRIES,
                        exc,
                        delay,
                    )
                    if failures >= self.SUBSCRIBE_MAX_RETRIES:
                        logger.error(
                            "Max Redis reconnection attempts reached, giving up"
                        )
                        return
                    if self._shutdown_event.wait(delay):
                        return
                    self._init_redis()
        finally:
            self._subscribed = False
            error = self._close_pubsub(self._redis_subscriber)
            if error is not None:
                logger.debug("Closing Redis subscriber failed: %s", error)

    def _on_message(self, message: Dict[str, Any], log: RedisEventLog) -> bool:
        """Handle one pub/sub message; True when it confirmed a (re)subscribe.

        redis-py resubscribes by itself after a reconnect; every confirmation
        is followed by a catch-up from the log, so no reconnect leaves a gap.
        """
        kind = message.get("type")
        if kind == "message":
            self._handle_message(message["data"])
        elif self._feed.pong(message):
            pass
        elif kind == "subscribe":
            self._feed.catch_up(log, self._deliver)
            self._subscribed = True
            logger.info(
                "Subscribed to Redis events channel %s; live from %s",
                self.channel,
                self._feed.position,
            )
            return True
        return False

    def _handle_message(self, data: str) -> None:
        try:
            event_data = decode(data)
            if self._feed.accept(event_data):
                logger.debug(
                    "Received event from Redis: %s at %s",
                    event_data.get("event_type"),
                    event_data.get("stream_id"),
                )
                self._deliver(event_data)
        except ValueError as exc:
            logger.error(
                "Failed to decode Redis event message: %s (channel %s); skipped",
                exc,
                self.channel,
            )
        except Exception as exc:
            logger.error("Error processing Redis event: %s; message skipped", exc)
