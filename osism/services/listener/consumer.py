"""The listener: OpenStack notifications from RabbitMQ into the event bridge.

OpenStack services publish notifications through oslo.messaging on a topic
exchange named after the service (its ``control_exchange``), with the routing
key ``<topic>.<priority>``. The listener binds one queue per service to that
exchange and hands every notification to the bridge, which publishes it on
Redis for the API processes.

Where it binds and the environment that says so: config.py; what it makes
of a message: parsing.py; the process around the consumer (signals, thread,
shutdown): process.py.

Queues are durable and never auto-deleted: notifications that arrive while
the listener restarts or is redeployed wait in them, and several listener
replicas sharing the names compete for messages instead of each publishing a
copy (an exclusive or auto-delete queue per process would lose the first and
duplicate the second). Transient shared queues are also deprecated since
RabbitMQ 4. Bound the queues, if wanted, with a RabbitMQ policy on the prefix.

Exchanges are asserted passively first, so an exchange that OpenStack already
declared is used as it is, whatever its durability. A missing one is declared
the way oslo.messaging declares it (topic, not auto-deleted, durable only with
``amqp_durable_queues``), so the queue is bound before the service sends its
first notification and the service's own declaration later matches ours.

A message is acknowledged only once the event is in the event log in Redis.
While Redis is down the listener keeps the message it holds, unacknowledged,
and offers it again with a capped back-off: the rest stays queued in
RabbitMQ, in order, nothing waits in the listener's memory, and a listener
killed at any moment loses nothing (RabbitMQ redelivers what was not
acknowledged; the log recognises a redelivered ``message_id`` and keeps it
once). A malformed message is logged and rejected without requeue. The
connection is re-established with a capped back-off; every back-off here draws
its delays with jitter (osism/core/backoff.py), so replicas do not retry in step.
"""

import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol

from kombu import Connection, Exchange, Queue, binding
from kombu.mixins import ConsumerMixin

from osism.core.backoff import Backoff
from osism.services.listener.config import (
    DEFAULT_QUEUE_PREFIX,
    DEFAULT_TOPICS,
    DEFAULT_URL,
    FALLBACK_TOPIC,
    SERVICES,
    Binding,
    ListenerConfig,
    describe,
)
from osism.services.listener.parsing import (
    Body,
    MalformedNotification,
    Notification,
    parse_notification,
)
from osism.services.listener.bindings import declare_exchanges
from osism.services.listener.handover import (
    HEARTBEAT_SLICE,
    REQUEUE_MAX_DELAY,
    REQUEUE_MIN_DELAY,
    EventSink,
    HandOver,
)
from osism.services.listener.metrics import ListenerMetrics, exchanges_of
from osism.core.ratelimit import RateLimitedLog

__all__ = [
    "DEFAULT_QUEUE_PREFIX",
    "DEFAULT_TOPICS",
    "DEFAULT_URL",
    "FALLBACK_TOPIC",
    "HEARTBEAT_SLICE",
    "REQUEUE_MAX_DELAY",
    "REQUEUE_MIN_DELAY",
    "SERVICES",
    "Binding",
    "Body",
    "EventSink",
    "ListenerConfig",
    "MalformedNotification",
    "Notification",
    "NotificationListener",
    "ReceivedMessage",
    "describe",
    "parse_notification",
]

logger = logging.getLogger("osism.listener")

RESTART_MIN_DELAY = 1.0
# Shortest time between two warnings of a kind (malformed messages, retries).
WARNING_INTERVAL = 10.0


class ReceivedMessage(Protocol):
    """What the listener uses of a kombu message."""

    body: Any
    delivery_info: Optional[Dict[str, Any]]

    def ack(self) -> None: ...

    def reject(self, requeue: bool = False) -> None: ...

    def requeue(self) -> None: ...


class _StopRequested(Exception):
    """Raised inside kombu's connection retries once a stop was requested."""


class NotificationListener(HandOver, ConsumerMixin):
    """Consumes the notification queues and hands every event to the bridge.

    How an event is handed over while Redis is down: listener_handover.py.
    """

    def __init__(
        self,
        connection: Connection,
        bridge: EventSink,
        config: ListenerConfig,
        wait: Optional[Callable[[float], bool]] = None,
    ) -> None:
        self.connection = connection
        self.bridge = bridge
        self.config = config
        # should_stop: ConsumerMixin's, False until stop()
        self._stopped = threading.Event()
        self._wait = self._stopped.wait if wait is None else wait
        self._consumer_connection: Optional[Any] = None
        self.acknowledged = 0
        self.retried = 0
        self.rejected = 0
        self.metrics = ListenerMetrics(exchanges_of(config.bindings))
        self._malformed_log = RateLimitedLog(logger, interval=WARNING_INTERVAL)
        self._requeue_log = RateLimitedLog(logger, interval=WARNING_INTERVAL)
        # exchange -> the service whose notifications arrive on it
        self._services = {item.exchange: item.service for item in config.bindings}
        # Never declared by kombu: declare_exchanges asserts or declares them.
        self.exchanges = {
            item.exchange: Exchange(
                item.exchange,
                type="topic",
                durable=config.exchange_durable,
                no_declare=True,
            )
            for item in config.bindings
        }
        # kombu's Queue is durable and not auto-deleted unless told otherwise.
        self.queues = [
            Queue(
                item.queue,
                bindings=[
                    binding(self.exchanges[item.exchange], routing_key=key)
                    for key in item.routing_keys
                ],
            )
            for item in config.bindings
        ]

    def stop(self) -> None:
        """Ask the consumer to stop; it does within about a second."""
        self.should_stop = True
        self._stopped.set()

    def wait_stopped(self, timeout: float) -> bool:
        """True once a stop was requested, waiting at most ``timeout`` s."""
        return self._stopped.wait(timeout)

    def serve(self) -> None:
        """Consume until stopped; unexpected errors restart it with back-off."""
        restart = Backoff(RESTART_MIN_DELAY, self.config.reconnect_max_delay)
        while not self.should_stop:
            try:
                self.run()
            except _StopRequested:
                break
            except Exception:
                self.metrics.set_ready(False)
                delay = restart.next()
                logger.exception("Listener failed; restarting in %.1f s", delay)
                if self._wait(delay):
                    break
        logger.info(
            "Listener stopped: %d acknowledged, %d rejected, %d retries while "
            "the bridge did not take events",
            self.acknowledged,
            self.rejected,
            self.retried,
        )

    def get_consumers(self, consumer: Callable[..., Any], channel: Any) -> List[Any]:
        return [
            consumer(
                queues=self.queues,
                on_message=self.on_message,
                prefetch_count=self.config.prefetch_count,
            )
        ]

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        with self.create_connection() as conn:
            # kombu retries and moves through failover URLs; its own waits are
            # off (capped at 0 s): the errback waits our back-off, with jitter,
            # on the stop event, so that a stop ends a wait at once.
            conn.ensure_connection(
                BrokerRetry(self, conn),
                self.connect_max_retries,
                interval_max=0,
                callback=self._raise_if_stopping,
            )
            self.declare_exchanges(conn)
            yield conn

    def create_connection(self) -> Connection:
        return self.connection.clone(heartbeat=self.config.heartbeat or None)

    def declare_exchanges(self, conn: Connection) -> None:
        """Use each exchange as it exists; declare the missing ones like oslo."""
        declare_exchanges(conn, self.exchanges.values())

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        self.metrics.set_ready(False)
        logger.warning(
            "Cannot reach RabbitMQ at %s: %s; retrying in %.1f s",
            self.connection.as_uri(),
            exc,
            interval,
        )

    def on_connection_revived(self) -> None:
        logger.info("Connected to RabbitMQ at %s", self.connection.as_uri())

    def on_consume_ready(
        self, connection: Any, channel: Any, consumers: Any, **kwargs: Any
    ) -> None:
        self._consumer_connection = connection
        self.metrics.set_ready(True)
        for item in self.config.bindings:
            logger.info(
                "Consuming %s from exchange %s (%s) on queue %s",
                item.service,
                item.exchange,
                ", ".join(item.routing_keys),
                item.queue,
            )

    def on_message(self, message: ReceivedMessage) -> None:
        """Hand one message to the bridge and ack it, or reject it if malformed."""
        info = message.delivery_info or {}
        exchange = info.get("exchange", "?")
        routing_key = info.get("routing_key", "?")
        self.metrics.count(exchange, "consumed")
        try:
            notification = parse_notification(
                message.body, self._services.get(exchange)
            )
        except MalformedNotification as exc:
            self.rejected += 1
            logger.debug("Malformed message from %s: %r", routing_key, message.body)
            self._malformed_log.warning(
                "Rejected a malformed message from exchange %s, routing key %s: "
                "%s (%d rejected so far)",
                exchange,
                routing_key,
                exc,
                self.rejected,
            )
            # kombu's default: not requeued, so it is dropped (or dead-lettered).
            message.reject()
            self.metrics.count(exchange, "rejected")
            return
        if not self._hand_over(notification, exchange, routing_key):
            # Stopping: the message stays unacknowledged, so RabbitMQ
            # redelivers it, in its place, once this connection closes.
            return
        message.ack()
        self.acknowledged += 1
        self.metrics.count(exchange, "acked")
        logger.debug(
            "Acknowledged %s from %s (message %s)",
            notification.event_type,
            routing_key,
            notification.message_id,
        )

    def _raise_if_stopping(self) -> None:
        if self.should_stop:
            raise _StopRequested()


class BrokerRetry:
    """kombu's errback for one connect of ``listener``: after each failure it
    logs and waits our back-off, until a stop ends the retries."""

    def __init__(self, listener: NotificationListener, conn: Connection) -> None:
        self.listener = listener
        self.conn = conn
        self.backoff = Backoff(RESTART_MIN_DELAY, listener.config.reconnect_max_delay)
        self.failures = 0

    def __call__(self, exc: BaseException, interval: float) -> None:
        """kombu's ``errback(exc, interval)``; its interval is always 0 here."""
        # With several broker URLs the next one is tried at once; the
        # back-off comes after a round through all of them, as in kombu.
        round_done = self.conn.completes_cycle(self.failures)
        self.failures += 1
        delay = self.backoff.next() if round_done else 0.0
        self.listener.on_connection_error(exc, delay)
        if self.listener._wait(delay):
            raise _StopRequested()
