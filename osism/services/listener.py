"""The listener: OpenStack notifications from RabbitMQ into the event bridge.

OpenStack services publish notifications through oslo.messaging on a topic
exchange named after the service (its ``control_exchange``), with the routing
key ``<topic>.<priority>``. The listener binds one queue per service to that
exchange and hands every notification to the bridge, which publishes it on
Redis for the API processes.

Defaults, every one configurable from the environment:

``RABBITMQ_URL``
    ``amqp://guest:guest@localhost:5672//``
``LISTENER_SERVICES``
    ``ironic,nova,neutron,cinder,glance,keystone``
``LISTENER_<SERVICE>_EXCHANGE``
    the service's name: oslo.messaging's default ``control_exchange``.
``LISTENER_<SERVICE>_ROUTING_KEYS``
    comma-separated; ``<topic>.*``, every priority (info, error, warn, ...)
    of the service's default notification topic:

    - ironic: ``ironic_versioned_notifications`` (Ironic's default
      ``versioned_notifications_topics``)
    - nova: ``versioned_notifications`` (Nova's default
      ``[notifications] versioned_notifications_topics``)
    - neutron, cinder, glance, keystone: ``notifications`` (oslo.messaging's
      default ``[oslo_messaging_notifications] topics``; these services send
      unversioned notifications there)
``LISTENER_QUEUE_PREFIX``
    ``osism-events``: the queues are ``<prefix>-<service>``.
``LISTENER_EXCHANGE_DURABLE``
    ``0``; set it to ``1`` when OpenStack runs with ``amqp_durable_queues``.
``LISTENER_PREFETCH`` (100), ``LISTENER_HEARTBEAT`` (30 s),
``LISTENER_RECONNECT_MAX_DELAY`` (30 s).

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
connection is re-established with a capped back-off.
"""

import json
import logging
import os
import signal
import textwrap
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Protocol,
    Tuple,
    Union,
)

from kombu import Connection, Exchange, Queue, binding
from kombu.mixins import ConsumerMixin

from osism.services.backoff import Backoff
from osism.services.listener_metrics import ListenerMetrics, exchanges_of
from osism.services.listener_metrics import start_from_env as start_metrics_server
from osism.services.ratelimit import RateLimitedLog
from osism.settings import env_float, env_list

logger = logging.getLogger("osism.listener")

DEFAULT_URL = "amqp://guest:guest@localhost:5672//"
DEFAULT_QUEUE_PREFIX = "osism-events"
SERVICES: Tuple[str, ...] = (
    "ironic",
    "nova",
    "neutron",
    "cinder",
    "glance",
    "keystone",
)
# The notification topic each service publishes on by default.
DEFAULT_TOPICS: Dict[str, str] = {
    "ironic": "ironic_versioned_notifications",
    "nova": "versioned_notifications",
    "neutron": "notifications",
    "cinder": "notifications",
    "glance": "notifications",
    "keystone": "notifications",
}
FALLBACK_TOPIC = "notifications"

JOIN_TIMEOUT = 10.0
POLL_INTERVAL = 0.5
REQUEUE_MIN_DELAY = 0.1
REQUEUE_MAX_DELAY = 5.0
# Longest wait between two heartbeat checks while a message waits for Redis.
HEARTBEAT_SLICE = 1.0
RESTART_MIN_DELAY = 1.0

Body = Union[bytes, str, Mapping[str, Any]]


class MalformedNotification(ValueError):
    """A message that is not an OpenStack notification."""


class Notification(NamedTuple):
    event_type: str
    payload: Dict[str, Any]
    publisher_id: Optional[str] = None
    message_id: Optional[str] = None


class ReceivedMessage(Protocol):
    """What the listener uses of a kombu message."""

    body: Any
    delivery_info: Optional[Dict[str, Any]]

    def ack(self) -> None: ...

    def reject(self, requeue: bool = False) -> None: ...

    def requeue(self) -> None: ...


class EventSink(Protocol):
    """What the listener needs of the event bridge."""

    def use_redis(self) -> bool: ...

    def add_event(
        self, event_type: str, payload: Any, meta: Optional[Dict[str, Any]] = None
    ) -> bool: ...

    def shutdown(self) -> None: ...


def parse_notification(body: Body) -> Notification:
    """The notification in a message body, oslo envelope or plain.

    Raises MalformedNotification when the body is not JSON, not an object, has
    an ``oslo.message`` that is not a JSON object in a string, has no
    ``event_type`` string, or a payload that is not an object.
    """
    message = _json_object(body, "message body")
    if "oslo.message" in message:
        inner = message["oslo.message"]
        if not isinstance(inner, str):
            raise MalformedNotification("oslo.message is not a string")
        message = _json_object(inner, "oslo.message")
    event_type = message.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedNotification("no event_type")
    payload = message.get("payload")
    if not isinstance(payload, dict):
        raise MalformedNotification(f"payload of {event_type} is not an object")
    return Notification(
        event_type,
        payload,
        _optional_str(message.get("publisher_id")),
        _optional_str(message.get("message_id")),
    )


def _json_object(body: Body, what: str) -> Dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedNotification(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what} is not a JSON object")
    return value


def _optional_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Binding:
    """One service: its exchange, the routing keys bound, our queue."""

    service: str
    exchange: str
    routing_keys: Tuple[str, ...]
    queue: str


@dataclass(frozen=True)
class ListenerConfig:
    url: str = DEFAULT_URL
    bindings: Tuple[Binding, ...] = ()
    exchange_durable: bool = False
    prefetch_count: int = 100
    heartbeat: float = 30.0
    reconnect_max_delay: float = 30.0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "ListenerConfig":
        env = os.environ if environ is None else environ
        prefix = _text(env, "LISTENER_QUEUE_PREFIX", DEFAULT_QUEUE_PREFIX)
        services = env_list("LISTENER_SERVICES", env=env) or SERVICES
        bindings = []
        for service in dict.fromkeys(name.lower() for name in services):
            if service not in DEFAULT_TOPICS:
                logger.warning(
                    "LISTENER_SERVICES names %r, not one of %s; binding it "
                    "with the defaults %s.* on exchange %s",
                    service,
                    ", ".join(SERVICES),
                    FALLBACK_TOPIC,
                    service,
                )
            key = service.upper().replace("-", "_")
            topic = DEFAULT_TOPICS.get(service, FALLBACK_TOPIC)
            bindings.append(
                Binding(
                    service=service,
                    exchange=_text(env, f"LISTENER_{key}_EXCHANGE", service),
                    routing_keys=env_list(f"LISTENER_{key}_ROUTING_KEYS", env=env)
                    or (f"{topic}.*",),
                    queue=f"{prefix}-{service}",
                )
            )
        return cls(
            url=_text(env, "RABBITMQ_URL", DEFAULT_URL),
            bindings=tuple(bindings),
            exchange_durable=_flag(env, "LISTENER_EXCHANGE_DURABLE", False),
            prefetch_count=int(env_float("LISTENER_PREFETCH", 100, 1, env)),
            heartbeat=env_float("LISTENER_HEARTBEAT", 30.0, 0, env),
            reconnect_max_delay=env_float("LISTENER_RECONNECT_MAX_DELAY", 30.0, 1, env),
        )

    def describe(self) -> str:
        """The broker, exchanges, routing keys and queues, password masked."""
        durability = "durable" if self.exchange_durable else "transient"
        lines = [
            f"broker: {Connection(self.url).as_uri()}",
            f"missing exchanges are declared topic, {durability}",
        ]
        for item in self.bindings:
            lines.append(
                f"  {item.service}: exchange {item.exchange}, routing keys "
                f"{', '.join(item.routing_keys)}\n    -> queue {item.queue}"
            )
        return "\n".join(lines)


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    if raw:
        logger.error("%s=%r is not a boolean; using %s", name, raw, default)
    return default


class _StopRequested(Exception):
    """Raised inside kombu's connection retries once a stop was requested."""


class NotificationListener(ConsumerMixin):
    """Consumes the notification queues and hands every event to the bridge."""

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
        self.should_stop = False
        self._stopped = threading.Event()
        self._wait = self._stopped.wait if wait is None else wait
        self._consumer_connection: Optional[Any] = None
        self._exchange = "?"  # of the message being handed over, for metrics
        self.acknowledged = 0
        self.retried = 0
        self.rejected = 0
        self.metrics = ListenerMetrics(exchanges_of(config.bindings))
        self._malformed_log = RateLimitedLog(logger, interval=10.0)
        self._requeue_log = RateLimitedLog(logger, interval=10.0)
        self.exchanges = {
            item.exchange: Exchange(
                item.exchange,
                type="topic",
                durable=config.exchange_durable,
                auto_delete=False,
                no_declare=True,
            )
            for item in config.bindings
        }
        self.queues = [
            Queue(
                item.queue,
                bindings=[
                    binding(self.exchanges[item.exchange], routing_key=key)
                    for key in item.routing_keys
                ],
                durable=True,
                auto_delete=False,
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
        delay = RESTART_MIN_DELAY
        while not self.should_stop:
            try:
                self.run()
            except _StopRequested:
                break
            except Exception:
                self.metrics.set_ready(False)
                logger.exception("Listener failed; restarting in %.1f s", delay)
                if self._wait(delay):
                    break
                delay = min(delay * 2, self.config.reconnect_max_delay)
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
            conn.ensure_connection(
                self.on_connection_error,
                self.connect_max_retries,
                interval_start=RESTART_MIN_DELAY,
                interval_step=2,
                interval_max=self.config.reconnect_max_delay,
                callback=self._raise_if_stopping,
            )
            self.declare_exchanges(conn)
            yield conn

    def create_connection(self) -> Connection:
        return self.connection.clone(heartbeat=self.config.heartbeat or None)

    def declare_exchanges(self, conn: Connection) -> None:
        """Use each exchange as it exists; declare the missing ones like oslo."""
        for exchange in self.exchanges.values():
            channel = conn.channel()
            try:
                channel.exchange_declare(
                    exchange=exchange.name, type=exchange.type, passive=True
                )
                continue
            except conn.channel_errors as exc:
                if str(getattr(exc, "reply_code", "")) != "404":
                    raise
            finally:
                _close(channel)
            channel = conn.channel()
            try:
                Exchange(
                    exchange.name,
                    type=exchange.type,
                    durable=exchange.durable,
                    auto_delete=False,
                ).declare(channel=channel)
                logger.info(
                    "Declared missing exchange %s (topic, %s)",
                    exchange.name,
                    "durable" if exchange.durable else "transient",
                )
            finally:
                _close(channel)

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
            notification = parse_notification(message.body)
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
            message.reject(requeue=False)
            self.metrics.count(exchange, "rejected")
            return
        self._exchange = exchange
        if not self._hand_over(notification, routing_key):
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

    def _hand_over(self, notification: Notification, routing_key: str) -> bool:
        """Give one event to the bridge until the log has it; False on stop.

        While the bridge does not take it (Redis down), the message is kept,
        unacknowledged, and offered again with a capped back-off: RabbitMQ
        keeps the rest of the queue, in order, and nothing waits in memory.
        """
        backoff = Backoff(REQUEUE_MIN_DELAY, REQUEUE_MAX_DELAY)
        since: Optional[float] = None
        while True:
            try:
                taken = self.bridge.add_event(
                    notification.event_type,
                    notification.payload,
                    meta=_meta(notification),
                )
            except Exception as exc:
                logger.error("Bridge failed on %s: %s", notification.event_type, exc)
                taken = False
            if taken:
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
            self.metrics.count(self._exchange, "requeued")
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

    def _raise_if_stopping(self) -> None:
        if self.should_stop:
            raise _StopRequested()


def _meta(notification: Notification) -> Dict[str, Any]:
    """The notification's own ids: the log dedupes redeliveries by message_id."""
    meta = {
        "message_id": notification.message_id,
        "publisher_id": notification.publisher_id,
    }
    return {key: value for key, value in meta.items() if value is not None}


def _close(channel: Any) -> None:
    try:
        channel.close()
    except Exception as exc:
        logger.debug("Closing a channel failed: %s", exc)


def install_signal_handlers(listener: NotificationListener) -> Dict[int, Any]:
    """Stop ``listener`` on SIGTERM and SIGINT; returns the previous handlers."""

    def handle(signum: int, frame: Optional[FrameType]) -> None:
        logger.info("Received %s, stopping", signal.Signals(signum).name)
        listener.stop()

    previous: Dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handle)
    return previous


def run(
    config: Optional[ListenerConfig] = None, bridge: Optional[EventSink] = None
) -> int:
    """Run the listener until SIGTERM or SIGINT; 0 after a requested stop."""
    config = ListenerConfig.from_env() if config is None else config
    if bridge is None:
        from osism.services.event_bridge import event_bridge

        bridge = event_bridge
    amqp_logger = logging.getLogger("amqp")
    if amqp_logger.level == logging.NOTSET:
        # py-amqp logs every heartbeat tick at DEBUG, once a second; keep
        # --log-level debug about our messages unless amqp's level was set.
        amqp_logger.setLevel(logging.INFO)
    logger.info("Listener starting\n%s", config.describe())
    listener = NotificationListener(Connection(config.url), bridge, config)
    # Installed first, so a stop during the (retrying) Redis connect is clean.
    previous = install_signal_handlers(listener)
    thread = threading.Thread(target=listener.serve, name="osism-listener", daemon=True)
    metrics_server = start_metrics_server(listener.metrics)
    try:
        if not bridge.use_redis():
            logger.warning(
                "Redis does not answer yet; notifications wait in RabbitMQ "
                "until it does"
            )
        thread.start()
        while thread.is_alive() and not listener.wait_stopped(POLL_INTERVAL):
            pass
        requested = listener.should_stop
        listener.stop()
        thread.join(JOIN_TIMEOUT)
        stopped = not thread.is_alive()
        if not stopped:
            logger.error("Listener did not stop within %.0f s", JOIN_TIMEOUT)
        elif not requested:
            logger.error("Listener ended without being asked to")
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        bridge.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    logger.info("Listener exiting")
    return 0 if requested and stopped else 1


def describe(environ: Optional[Mapping[str, str]] = None) -> str:
    """For ``osism listener --help``: what the listener binds to and how."""
    config = ListenerConfig.from_env(environ)
    intro = textwrap.fill(
        "Consume OpenStack notifications from RabbitMQ and hand each to the "
        "event bridge, which publishes it on Redis (REDIS_HOST, REDIS_PORT, "
        "REDIS_DB) for every API process. A message is acknowledged once the "
        "event is in the event log in Redis; while Redis is down, messages "
        "wait in RabbitMQ and the listener retries with back-off. SIGTERM or "
        "SIGINT stops it.",
        width=79,
    )
    default_url = Connection(DEFAULT_URL).as_uri()
    return (
        f"{intro}\n\n"
        "Bindings with the current environment:\n"
        f"{config.describe()}\n\n"
        "Environment (defaults in brackets):\n"
        f"  RABBITMQ_URL                    [{default_url}]\n"
        f"  LISTENER_SERVICES               [{','.join(SERVICES)}]\n"
        "  LISTENER_<SERVICE>_EXCHANGE     [the service name]\n"
        "  LISTENER_<SERVICE>_ROUTING_KEYS [<topic>.*, comma-separated; topic\n"
        "                                   ironic_versioned_notifications for\n"
        "                                   ironic, versioned_notifications for\n"
        "                                   nova, notifications for the others]\n"
        f"  LISTENER_QUEUE_PREFIX           [{DEFAULT_QUEUE_PREFIX}; durable "
        "queues <prefix>-<service>]\n"
        "  LISTENER_EXCHANGE_DURABLE       [0; 1 when OpenStack runs with\n"
        "                                   amqp_durable_queues]\n"
        "  LISTENER_PREFETCH [100], LISTENER_HEARTBEAT [30 s],\n"
        "  LISTENER_RECONNECT_MAX_DELAY [30 s],\n"
        "  LISTENER_METRICS_PORT [0: off; /metrics and /ready on this port],\n"
        "  LISTENER_METRICS_HOST [0.0.0.0]"
    )
