"""The broker restarted mid-stream: nothing lost, nothing twice, nothing reordered.

The test owns its RabbitMQ (``own_rabbitmq``, whatever OSISM_TEST_RABBITMQ_URL
says) and runs the path as production does: a real ``osism listener`` on a
durable exchange and its durable queue (``LISTENER_EXCHANGE_DURABLE=1``, as
with OpenStack's ``amqp_durable_queues``), a real ``osism api``, a real
WebSocket client. The test's publisher sends 300 notifications the way a
careful OpenStack service does: persistent, mandatory, each one confirmed by
the broker before the next; a publish the broker did not confirm (it went
away) is sent again, with the same ``message_id``, once it is back. While they
flow, the broker is stopped (SIGTERM: it closes every connection) and started
again with the same node name, ports and data directory, so what it had
confirmed is still queued. The listener, never restarted, must reconnect by
itself, and the client must receive each of the 300 exactly once, in order.
"""

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import amqp
import pytest

from tests.integration.conftest import SERVERS, StartApi
from tests.integration.deadlines import async_wait_until, deadline
from tests.integration.rabbitmq import DEFAULT_KEYS, Broker, ListenerProcess
from tests.integration.rabbitmq import oslo_envelope
from tests.integration.scenario import connect, event, ironic
from tests.integration.servers import RabbitMQServer, RedisServer

pytestmark = pytest.mark.integration

POWER_SET = "baremetal.node.power_set.end"
KEY = DEFAULT_KEYS["ironic"]
NOTIFICATIONS = 300
# The broker is stopped once this many were confirmed, the rest flow around
# the restart; one publish every PACE seconds keeps them flowing meanwhile.
STOP_AFTER = 100
PACE = 0.01
PUBLISH_ERRORS = (OSError, amqp.exceptions.AMQPError, amqp.exceptions.MessageNacked)


class ConfirmingPublisher:
    """Publishes notifications one at a time, each confirmed by the broker.

    A publish that fails (connection refused or closed, no confirm, the
    message returned as unroutable) is retried on a new connection until the
    broker confirms it or ``timeout`` passes: a retried notification may reach
    the broker twice, with the same ``message_id``, as a real service's retry
    would.
    """

    def __init__(self, server: RabbitMQServer, exchange: str) -> None:
        self.server = server
        self.exchange = exchange
        self.connection: Optional[amqp.Connection] = None
        self.channel: Any = None
        self.returned = False
        self.confirmed = 0
        self.retries = 0
        self.last_error: Optional[BaseException] = None

    def _connect(self) -> Any:
        if self.channel is None:
            connection = amqp.Connection(
                host=f"{self.server.host}:{self.server.port}",
                userid="guest",
                password="guest",
                connect_timeout=2,
                confirm_publish=True,
            )
            self.connection = connection
            connection.connect()
            channel = connection.channel()
            channel.events["basic_return"].add(self._on_return)
            # The same declaration as the listener's (and oslo.messaging's
            # with amqp_durable_queues): a topic exchange, durable.
            channel.exchange_declare(
                self.exchange, "topic", durable=True, auto_delete=False
            )
            self.channel = channel
        return self.channel

    def _on_return(self, *args: Any) -> None:
        self.returned = True

    def _drop(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            try:
                connection.collect()
            except Exception:  # already gone with the broker
                pass

    def publish(self, body: Dict[str, str], timeout: float) -> None:
        message = amqp.Message(
            json.dumps(body),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        until = time.monotonic() + timeout
        while True:
            self.returned = False
            try:
                channel = self._connect()
                channel.basic_publish(
                    message,
                    exchange=self.exchange,
                    routing_key=KEY,
                    mandatory=True,
                    confirm_timeout=5,
                )
            except PUBLISH_ERRORS as exc:
                self.last_error = exc
                self._drop()
            else:
                if not self.returned:
                    self.confirmed += 1
                    return
                self.last_error = RuntimeError(f"returned unroutable by {KEY}")
            if time.monotonic() > until:
                raise TimeoutError(
                    f"notification {self.confirmed + 1} not confirmed within "
                    f"{timeout} s; last error: {self.last_error!r}"
                )
            self.retries += 1
            time.sleep(0.05)

    def publish_all(self, bodies: List[Dict[str, str]], timeout: float) -> None:
        try:
            for body in bodies:
                self.publish(body, timeout)
                time.sleep(PACE)
        finally:
            self._drop()


def run_in_thread(work: Any) -> "asyncio.Future[None]":
    """Run ``work()`` in a thread of its own; its exception goes to the future."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[None]" = loop.create_future()

    def target() -> None:
        try:
            work()
        except BaseException as exc:
            loop.call_soon_threadsafe(future.set_exception, exc)
        else:
            loop.call_soon_threadsafe(future.set_result, None)

    threading.Thread(target=target, daemon=True).start()
    return future


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_a_broker_restart_mid_stream_delivers_each_notification_once_in_order(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    own_rabbitmq: RabbitMQServer,
    redis_server: RedisServer,
    start_api: StartApi,
    report_figure: Any,
) -> None:
    token = uuid.uuid4().hex[:8]
    exchange = f"osism-test-{token}-ironic"
    api = start_api()
    before = Broker(own_rabbitmq.url)
    listener = ListenerProcess(
        tmp_path,
        before,
        redis_server.port,
        f"osism-test-{token}",
        {
            "LISTENER_SERVICES": "ironic",
            "LISTENER_IRONIC_EXCHANGE": exchange,
            "LISTENER_EXCHANGE_DURABLE": "1",
            "LISTENER_RECONNECT_MAX_DELAY": "1",
        },
    )
    request.node.stash.setdefault(SERVERS, []).append(listener)
    publisher = ConfirmingPublisher(own_rabbitmq, exchange)
    nodes = [f"restart-{token}-{i:03d}" for i in range(NOTIFICATIONS)]
    bodies = [oslo_envelope(POWER_SET, ironic(node)) for node in nodes]
    try:
        await asyncio.to_thread(listener.start)
        before.connection.release()
        queue = listener.queues[0]
        async with connect(api.ws_url, "operator") as operator:
            await operator.set_filters(event_filters=[POWER_SET])
            publishing = run_in_thread(
                lambda: publisher.publish_all(bodies, timeout=deadline(120))
            )
            await async_wait_until(
                lambda: publisher.confirmed >= STOP_AFTER or publishing.done(),
                timeout=30,
            )
            await asyncio.to_thread(own_rabbitmq.stop)
            stopped_at = publisher.confirmed
            report_figure(
                "notifications confirmed before the broker stopped", stopped_at
            )
            restart_began = time.monotonic()
            await asyncio.to_thread(own_rabbitmq.start)
            report_figure(
                "broker restart (start after stop)",
                round(time.monotonic() - restart_began, 1),
                "s",
            )

            received: List[str] = []
            while len(received) < NOTIFICATIONS:
                message = await operator.expect(event(POWER_SET), within=60)
                received.append(message["node_name"])
            await asyncio.wait_for(publishing, timeout=deadline(60))

            # Exactly once: with the queue drained and every delivery acked, a
            # last notification is the very next thing the client receives.
            after = Broker(own_rabbitmq.url)
            try:
                await async_wait_until(
                    lambda: after.queue_state(queue) == (0, 1), timeout=30
                )
                last = f"last-{token}"
                await asyncio.to_thread(
                    publisher.publish_all,
                    [oslo_envelope(POWER_SET, ironic(last))],
                    deadline(30),
                )
                following = await operator.expect(event(POWER_SET), within=30)
            finally:
                after.connection.release()
        assert received == nodes
        assert following["node_name"] == last
        # The restart happened while they flowed: some were confirmed before
        # it, the others only after it, by a publisher that had to retry.
        assert 0 < stopped_at < NOTIFICATIONS
        assert publisher.retries > 0
        report_figure("publishes retried across the restart", publisher.retries)
        # The same listener process, never restarted, reconnected by itself.
        assert listener.running
        assert listener.count("Cannot reach RabbitMQ") >= 1
        assert await asyncio.to_thread(listener.stop) == 0
    finally:
        listener.stop()
