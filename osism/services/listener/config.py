"""Where the listener binds: services, exchanges, routing keys, queues.

``ListenerConfig.of()`` builds it from the settings model (``osism.config``),
``ListenerConfig.from_env()`` from the environment as it is now;
``describe()`` is the help text of ``osism listener``.

Defaults, every one configurable from the environment:

``RABBITMQ_URL``
    ``amqp://guest:guest@localhost:5672//``
``LISTENER_SERVICES``
    ``ironic,nova,neutron,cinder,glance,keystone``
``LISTENER_<SERVICE>_EXCHANGE``
    the service's name: oslo.messaging's default ``control_exchange``.
``LISTENER_<SERVICE>_ROUTING_KEYS``
    comma-separated; ``<topic>.*``, every priority (info, error, warn, ...)
    of each of the service's default notification topics:

    - ironic: ``ironic_versioned_notifications`` (Ironic's default
      ``versioned_notifications_topics``)
    - nova: ``versioned_notifications`` (Nova's default
      ``[notifications] versioned_notifications_topics``) and
      ``notifications``: Nova's default ``notification_format`` is
      ``unversioned``, which sends the legacy ``compute.instance.*``
      notifications on oslo.messaging's default topic ``notifications``
      (``both`` sends on both topics)
    - neutron, cinder, glance, keystone: ``notifications`` (oslo.messaging's
      default ``[oslo_messaging_notifications] topics``; these services send
      unversioned notifications there)
``LISTENER_QUEUE_PREFIX``
    ``osism-events``: the queues are ``<prefix>-<service>``.
``LISTENER_EXCHANGE_DURABLE``
    ``0``; set it to ``1`` when OpenStack runs with ``amqp_durable_queues``.
``LISTENER_PREFETCH`` (100), ``LISTENER_HEARTBEAT`` (30 s),
``LISTENER_RECONNECT_MAX_DELAY`` (30 s).
"""

import logging
import textwrap
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from kombu import Connection

from osism import config

logger = logging.getLogger("osism.listener")

DEFAULT_URL = config.DEFAULT_RABBITMQ_URL
DEFAULT_QUEUE_PREFIX: str = config.ListenerSettings().queue_prefix
SERVICES: Tuple[str, ...] = config.LISTENER_SERVICES
# The notification topics each service publishes on by default.
DEFAULT_TOPICS: Dict[str, Tuple[str, ...]] = {
    "ironic": ("ironic_versioned_notifications",),
    "nova": ("versioned_notifications", "notifications"),
    "neutron": ("notifications",),
    "cinder": ("notifications",),
    "glance": ("notifications",),
    "keystone": ("notifications",),
}
FALLBACK_TOPIC = "notifications"


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
        """From ``environ`` (the environment by default); a value that cannot
        be used is logged and gets its default (``osism listener`` refuses it
        before it starts)."""
        settings, errors = config.load_lenient(environ)
        for error in errors:
            if error.name.startswith("LISTENER_"):
                logger.error("%s; using the default", error)
        return cls.of(settings.listener)

    @classmethod
    def of(cls, group: config.ListenerSettings) -> "ListenerConfig":
        """The listener's configuration from the model's listener group."""
        bindings = []
        # A list of blanks names no service: the default ones are bound.
        services = group.services or SERVICES
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
            topics = DEFAULT_TOPICS.get(service, (FALLBACK_TOPIC,))
            bindings.append(
                Binding(
                    service=service,
                    exchange=group.exchanges.get(key, service),
                    routing_keys=group.routing_keys.get(key)
                    or tuple(f"{topic}.*" for topic in topics),
                    queue=f"{group.queue_prefix}-{service}",
                )
            )
        return cls(
            url=group.rabbitmq_url,
            bindings=tuple(bindings),
            exchange_durable=group.exchange_durable,
            prefetch_count=group.prefetch,
            heartbeat=group.heartbeat,
            reconnect_max_delay=group.reconnect_max_delay,
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


# The static part of ``osism listener --help``.
HELP_INTRO = textwrap.fill(
    "Consume OpenStack notifications from RabbitMQ and hand each to the "
    "event bridge, which publishes it on Redis (REDIS_HOST, REDIS_PORT, "
    "REDIS_DB) for every API process. A message is acknowledged once the "
    "event is in the event log in Redis; while Redis is down, messages "
    "wait in RabbitMQ and the listener retries with back-off. A payload "
    "that is not a JSON object is delivered as "
    '{"payload": <value>}; the service, priority, message_id, publisher_id '
    "and emission time travel with every event (data._osism). SIGTERM or "
    "SIGINT stops it.",
    width=79,
)
HELP_ENVIRONMENT = (
    "Environment (defaults in brackets):\n"
    f"  RABBITMQ_URL                    [{Connection(DEFAULT_URL).as_uri()}]\n"
    f"  LISTENER_SERVICES               [{','.join(SERVICES)}]\n"
    "  LISTENER_<SERVICE>_EXCHANGE     [the service name]\n"
    "  LISTENER_<SERVICE>_ROUTING_KEYS [<topic>.*, comma-separated; topic\n"
    "                                   ironic_versioned_notifications for\n"
    "                                   ironic, versioned_notifications and\n"
    "                                   notifications (legacy) for nova,\n"
    "                                   notifications for the others]\n"
    f"  LISTENER_QUEUE_PREFIX           [{DEFAULT_QUEUE_PREFIX}; durable "
    "queues <prefix>-<service>]\n"
    "  LISTENER_EXCHANGE_DURABLE       [0; 1 when OpenStack runs with\n"
    "                                   amqp_durable_queues]\n"
    "  LISTENER_PREFETCH [100], LISTENER_HEARTBEAT [30 s],\n"
    "  LISTENER_RECONNECT_MAX_DELAY [30 s],\n"
    "  LISTENER_METRICS_PORT [0: off; /metrics and /ready on this port],\n"
    "  LISTENER_METRICS_HOST [0.0.0.0]\n"
    "Redis (one of three forms; see docs/howto/production-redis.md):\n"
    "  REDIS_HOST [redis], REDIS_PORT [6379], REDIS_DB [0], REDIS_USERNAME,\n"
    "  REDIS_PASSWORD, REDIS_TLS [0]\n"
    "  REDIS_URL                       [redis://user:password@host:port/db,\n"
    "                                   rediss:// for TLS]\n"
    "  REDIS_SENTINELS                 [host:port,host:port]\n"
    "  REDIS_SENTINEL_MASTER [mymaster], REDIS_SENTINEL_USERNAME,\n"
    "  REDIS_SENTINEL_PASSWORD\n"
    "  REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE,\n"
    "  REDIS_SOCKET_TIMEOUT [5 s]"
)


def describe(environ: Optional[Mapping[str, str]] = None) -> str:
    """For ``osism listener --help``: what the listener binds to and how."""
    bindings = ListenerConfig.from_env(environ).describe()
    return (
        f"{HELP_INTRO}\n\nBindings with the current environment:\n{bindings}"
        f"\n\n{HELP_ENVIRONMENT}"
    )
