"""One run of the bridge's Redis subscription: subscribe, catch up from the
log, hand on live events, check the connection's health, retry.

``SubscriberLoop.run`` works through callables its owner (EventBridge) gives
it: the current PubSub and log (read at every attempt, since a reconnect
replaces them), reconnect, deliver an envelope, close a PubSub. It keeps
whether it is subscribed and returns why it ended; restarting it after it
gave up is the supervisor's job (supervisor.py). It runs in the
``osism-redis-subscriber`` thread.
"""

import logging
import threading
from enum import Enum, auto
from typing import Any, Callable, Dict, Optional

from osism.core.backoff import Backoff, Jitter
from osism.core.event_log import Envelope
from osism.services.bridge.redis_log import RedisEventLog
from osism.services.bridge.subscription import Subscription, decode

logger = logging.getLogger("osism.event_bridge")


class LoopEnd(Enum):
    """Why ``SubscriberLoop.run`` returned."""

    NO_SUBSCRIBER = auto()  # there was no PubSub to start with
    SHUTDOWN = auto()  # the shutdown Event was set
    GAVE_UP = auto()  # max_retries failures in a row


class SubscriberLoop:
    """Subscribes to the channel and hands on what arrives, retrying."""

    def __init__(
        self,
        channel: str,
        feed: Subscription,
        pubsub: Callable[[], Optional[Any]],
        log: Callable[[], Optional[RedisEventLog]],
        reconnect: Callable[[], None],
        deliver: Callable[[Envelope], None],
        close: Callable[[Optional[Any]], Optional[Exception]],
    ) -> None:
        self.channel = channel
        self.feed = feed
        self._pubsub = pubsub
        self._log = log
        self._reconnect = reconnect
        self._deliver = deliver
        self._close = close
        self.subscribed = False

    def run(
        self, shutdown: threading.Event, max_retries: int, retry_delay: float
    ) -> LoopEnd:
        """Subscribe and hand on events until ``shutdown`` or ``max_retries``
        failures in a row, waiting about ``retry_delay`` s after each; closes
        the PubSub on the way out."""
        if self._pubsub() is None:
            logger.error("Redis subscriber not available; not subscribing")
            return LoopEnd.NO_SUBSCRIBER
        failures = 0
        # Equal jitter: the API processes that lost Redis together (a Sentinel
        # failover) retry spread over the second half of the delay; a floor of
        # half keeps the retries covering an outage about as long as the
        # setting says, where full jitter could spend them all in an instant.
        retry = Backoff(retry_delay, retry_delay, Jitter.EQUAL)
        try:
            while not shutdown.is_set():
                try:
                    subscriber, log = self._pubsub(), self._log()
                    if subscriber is None or log is None:
                        raise ConnectionError("no connection to Redis")
                    # The first time: start from the log's tail, read before
                    # subscribing so that nothing falls between the two.
                    self.feed.begin(log)
                    self.feed.reset_health()
                    subscriber.subscribe(self.channel)
                    while not shutdown.is_set():
                        message = subscriber.get_message(timeout=1.0)
                        self.feed.check_health(subscriber)
                        if message is not None and self._on_message(message, log):
                            failures = 0
                except Exception as exc:
                    self.subscribed = False
                    if shutdown.is_set():
                        return LoopEnd.SHUTDOWN
                    failures += 1
                    delay = retry.next()
                    logger.error(
                        "Redis subscriber error (attempt %d/%d): %s; "
                        "retrying in %.1f s",
                        failures,
                        max_retries,
                        exc,
                        delay,
                    )
                    if failures >= max_retries:
                        logger.error(
                            "Max Redis reconnection attempts reached, giving up"
                        )
                        return LoopEnd.GAVE_UP
                    if shutdown.wait(delay):
                        return LoopEnd.SHUTDOWN
                    self._reconnect()
            return LoopEnd.SHUTDOWN
        finally:
            self.subscribed = False
            error = self._close(self._pubsub())
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
        elif self.feed.pong(message):
            pass
        elif kind == "subscribe":
            self.feed.catch_up(log, self._deliver)
            self.subscribed = True
            logger.info(
                "Subscribed to Redis events channel %s; live from %s",
                self.channel,
                self.feed.position,
            )
            return True
        return False

    def _handle_message(self, data: str) -> None:
        try:
            event_data = decode(data)
            if self.feed.accept(event_data):
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
