"""Handing one notification to the event bridge until the log has it.

While the bridge does not take an event (Redis down), the listener keeps the
message it holds, unacknowledged, and offers it again with a capped
back-off: RabbitMQ keeps the rest of the queue, in order, and nothing waits
in the listener's memory. Meanwhile it keeps the broker connection alive
with its own heartbeats. NotificationListener (listener.py) inherits this.
"""

import logging
import time
from typing import Any, Callable, Dict, Optional, Protocol

from osism.core.backoff import Backoff
from osism.services.listener.metrics import ListenerMetrics
from osism.services.listener.parsing import Notification
from osism.core.ratelimit import RateLimitedLog

logger = logging.getLogger("osism.listener")

REQUEUE_MIN_DELAY = 0.1
REQUEUE_MAX_DELAY = 5.0
# Longest wait between two heartbeat checks while a message waits for Redis.
HEARTBEAT_SLICE = 1.0


class EventSink(Protocol):
    """What the listener needs of the event bridge."""

    def use_redis(self) -> bool: ...

    def add_event(
        self, event_type: str, payload: Any, meta: Optional[Dict[str, Any]] = None
    ) -> bool: ...

    def shutdown(self) -> None: ...


class HandOver:
    """The hand-over half of NotificationListener (a mixin; the listener
    sets the attributes below in its constructor)."""

    bridge: EventSink
    should_stop: bool
    retried: int
    metrics: ListenerMetrics
    _wait: Callable[[float], bool]
    _consumer_connection: Optional[Any]
    _requeue_log: RateLimitedLog

    def _hand_over(
        self, notification: Notification, exchange: str, routing_key: str
    ) -> bool:
        """Give one event to the bridge until the log has it; False on stop.

        While the bridge does not take it (Redis down), the message is kept,
        unacknowledged, and offered again with a capped back-off: RabbitMQ
        keeps the rest of the queue, in order, and nothing waits in memory.
        ``exchange`` and ``routing_key``: where it arrived, for the metrics
        and the warning.
        """
        backoff = Backoff(REQUEUE_MIN_DELAY, REQUEUE_MAX_DELAY)
        since: Optional[float] = None
        while True:
            if self._offer(notification):
                if since is not None:
                    logger.info(
                        "The bridge takes events again after %.1f s; consuming",
                        time.monotonic() - since,
                    )
                return True
            if self.should_stop:
                return False
            if since is None:
                since = time.monotonic()
            delay = backoff.next()
            self.retried += 1
            self.metrics.count(exchange, "requeued")
            self._requeue_log.warning(
                "The bridge did not take %s from %s (is Redis down?); keeping it "
                "unacknowledged, RabbitMQ holds the rest; trying again in %.1f s "
                "(%d retries so far)",
                notification.event_type,
                routing_key,
                delay,
                self.retried,
            )
            if self._pause(delay):
                return False

    def _offer(self, notification: Notification) -> bool:
        """True when the bridge took the event; a bridge that raises did not."""
        try:
            return self.bridge.add_event(
                notification.event_type,
                notification.payload,
                meta=notification.meta(),
            )
        except Exception as exc:
            logger.error("Bridge failed on %s: %s", notification.event_type, exc)
            return False

    def _pause(self, delay: float) -> bool:
        """Wait ``delay`` s, keeping the broker connection alive; True on stop."""
        remaining = delay
        while remaining > 0:
            step = min(remaining, HEARTBEAT_SLICE)
            if self._wait(step):
                return True
            self._heartbeat()
            remaining -= step
        return self.should_stop

    def _heartbeat(self) -> None:
        """Send our heartbeats while no frames are read (inside on_message).

        The broker's own heartbeats wait unread meanwhile, so py-amqp may
        report them missed; that only says we did not read, so it is ignored.
        """
        connection = self._consumer_connection
        if connection is None:
            return
        try:
            connection.heartbeat_check()
        except Exception as exc:
            logger.debug("Heartbeat check while waiting: %s", exc)
