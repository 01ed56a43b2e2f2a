"""The RabbitMQ side of the tests: publishing as OpenStack does, and the listener.

``Broker`` is the test's view of a RabbitMQ (its own, or the one
OSISM_TEST_RABBITMQ_URL names): publish, look at queues, delete what the test
made. ``ListenerProcess`` is ``osism listener`` in a subprocess, bound to
queues with a name prefix of its test's own. Notifications are published with
kombu the way oslo.messaging sends them: the ``oslo.message`` envelope, JSON,
on the service's topic exchange with routing key ``<topic>.<priority>``.
"""

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from kombu import Connection, Exchange

from tests.integration.deadlines import deadline
from tests.integration.servers import ManagedProcess, ServerError

SERVICES = ("ironic", "nova", "neutron", "cinder", "glance", "keystone")
DEFAULT_KEYS = {
    "ironic": "ironic_versioned_notifications.info",
    "nova": "versioned_notifications.info",
    "neutron": "notifications.info",
    "cinder": "notifications.info",
    "glance": "notifications.info",
    "keystone": "notifications.info",
}


def oslo_envelope(event_type: str, payload: Mapping[str, Any]) -> Dict[str, str]:
    """A versioned notification as oslo.messaging (messagingv2) sends it."""
    message = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": "ironic-conductor.test-host",
        "event_type": event_type,
        "priority": "INFO",
        "payload": dict(payload),
        "timestamp": "2026-01-01 00:00:00.000000",
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message)}


class Broker:
    """The test's view of RabbitMQ: publish, inspect and clean up queues."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = Connection(url, connect_timeout=5)
        self.queues: List[str] = []
        self.exchanges: List[str] = []

    def publish(
        self, exchange: str, routing_key: str, *bodies: Any, raw: bool = False
    ) -> None:
        """Publish to a topic exchange (declared like oslo.messaging does)."""
        target = Exchange(exchange, type="topic", durable=False)
        producer = self.connection.Producer()
        for body in bodies:
            if raw:
                producer.publish(
                    body,
                    exchange=target,
                    routing_key=routing_key,
                    content_type="text/plain",
                    content_encoding="utf-8",
                )
            else:
                producer.publish(
                    body,
                    exchange=target,
                    routing_key=routing_key,
                    serializer="json",
                    declare=[target],
                )

    def queue_state(self, name: str) -> Optional[Tuple[int, int]]:
        """(ready messages, consumers) of a queue; None if it does not exist."""
        channel = self.connection.channel()
        try:
            _, messages, consumers = channel.queue_declare(name, passive=True)
            return messages, consumers
        except self.connection.channel_errors:
            return None
        finally:
            try:
                channel.close()
            except Exception:  # the broker closed it after a 404
                pass

    def cleanup(self) -> None:
        for name in dict.fromkeys(self.queues):
            channel = self.connection.channel()
            try:
                channel.queue_delete(name)
            finally:
                channel.close()
        for name in self.exchanges:
            channel = self.connection.channel()
            try:
                channel.exchange_delete(name)
            finally:
                channel.close()
        self.connection.release()


class ListenerProcess(ManagedProcess):
    """``osism listener`` in a subprocess, configured through its environment."""

    def __init__(
        self,
        workdir: Path,
        broker: Broker,
        redis_port: int,
        prefix: str,
        env: Optional[Mapping[str, str]] = None,
        name: str = "listener",
    ) -> None:
        super().__init__(workdir / f"{name}.log")
        self.name = name
        self.broker = broker
        self.prefix = prefix
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REDIS_", "LISTENER_", "RABBITMQ_"))
        }
        self.env.update(
            RABBITMQ_URL=broker.url,
            REDIS_HOST="127.0.0.1",
            REDIS_PORT=str(redis_port),
            LISTENER_QUEUE_PREFIX=prefix,
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env or {})
        services = self.env.get("LISTENER_SERVICES", ",".join(SERVICES))
        self.queues = [f"{prefix}-{s.strip()}" for s in services.split(",")]
        broker.queues.extend(self.queues)

    def start(self, timeout: float = 20.0) -> None:
        """Start it; return once it consumes from every one of its queues."""
        self._spawn(
            [
                sys.executable,
                "-m",
                "osism.cli.main",
                "--log-level",
                "debug",
                "listener",
            ],
            self.env,
        )
        assert self.process is not None
        timeout = deadline(timeout)
        until = time.monotonic() + timeout
        while not all(self.consumed(queue) for queue in self.queues):
            if self.process.poll() is not None or time.monotonic() > until:
                self.stop(timeout=5.0)
                raise ServerError(
                    f"the listener did not consume from {self.queues} within "
                    f"{timeout} s; its log ends with:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def consumed(self, queue: str) -> bool:
        state = self.broker.queue_state(queue)
        return state is not None and state[1] >= 1

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        """SIGTERM and wait; the exit status (SIGKILL and an error on a hang)."""
        return self._terminate(deadline(timeout))

    def log_tail(self, lines: int = 80) -> str:
        return super().log_tail(lines)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_text()))
