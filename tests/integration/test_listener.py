"""The listener against a real RabbitMQ: notifications reach WebSocket clients.

``osism listener`` runs as a subprocess (stopped with SIGTERM, exit 0), bound
to queues with a name prefix of this test's own, so nothing else on the broker
consumes from them or is consumed by them; the queues, and exchanges of the
test's own, are deleted afterwards. The broker is the session's own (see
conftest.py), or the one OSISM_TEST_RABBITMQ_URL names. Notifications are
published with kombu the way oslo.messaging sends them (rabbitmq.py).
"""

import asyncio
import uuid
from typing import Any, List, Optional, Set, Tuple

import pytest

from tests.integration.deadlines import async_wait_until
from tests.integration.conftest import StartApi
from tests.integration.rabbitmq import (  # noqa: F401 (used by other test modules)
    DEFAULT_KEYS,
    SERVICES,
    Broker,
    ListenerProcess,
    oslo_envelope,
)
from tests.integration.scenario import connect, event, ironic, nova

pytestmark = pytest.mark.integration

POWER_SET = "baremetal.node.power_set.end"
PROVISION_SET = "baremetal.node.provision_set.end"


class BrokerProxy:
    """A TCP proxy in front of RabbitMQ: stopping it is, for the listener, the
    broker going away (connections reset, the port refuses), without touching
    the broker everyone else uses; it starts again on the same port."""

    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: Optional[asyncio.base_events.Server] = None
        self.writers: List[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                *self.target
            )
        except OSError:
            writer.transport.abort()
            return
        self.writers += [writer, upstream_writer]
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_an_ironic_notification_reaches_the_client_whose_filters_select_it(
    start_api: StartApi, start_listener: Any, broker: Broker
) -> None:
    api = start_api()
    listener = start_listener()
    node = f"node-{uuid.uuid4().hex[:8]}"
    key = DEFAULT_KEYS["ironic"]

    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters(event_filters=[POWER_SET], node_filters=[node])
        # Not selected: another node; another event type; and a message that
        # is not a notification at all, which the listener rejects and
        # survives. The selected one comes last: it is the next thing the
        # client receives, so the others were filtered out (or rejected).
        await asyncio.to_thread(
            broker.publish, "ironic", key, oslo_envelope(POWER_SET, ironic("other"))
        )
        await asyncio.to_thread(
            broker.publish, "ironic", key, oslo_envelope(PROVISION_SET, ironic(node))
        )
        await asyncio.to_thread(broker.publish, "ironic", key, "{oops", raw=True)
        await asyncio.to_thread(
            broker.publish,
            "ironic",
            key,
            oslo_envelope(POWER_SET, ironic(node, uuid="1be26c0b")),
        )
        received = await operator.expect(
            event(
                POWER_SET,
                node=node,
                service_type="baremetal",
                resource_id="1be26c0b",
            ),
            within=15.0,
        )
        assert received["data"]["ironic_object.data"]["power_state"] == "power on"

    assert listener.count(r"Rejected a malformed message from exchange ironic") == 1
    assert listener.stop() == 0
    assert "Listener stopped" in listener.log_text()


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_each_service_default_exchange_and_routing_key_is_consumed(
    start_api: StartApi, start_listener: Any, broker: Broker
) -> None:
    api = start_api()
    listener = start_listener()
    host = f"host-{uuid.uuid4().hex[:8]}"
    payloads = {
        "ironic": ("baremetal.node.power_set.end", ironic(host)),
        "nova": ("compute.instance.update", nova(host)),
        "neutron": ("port.create.end", {"port": {"id": "p1"}, "host": host}),
        "cinder": ("volume.create.end", {"volume_id": "v1", "host": host}),
        "glance": ("image.upload", {"id": "i1", "host": host}),
        "keystone": ("identity.project.created", {"resource_info": "k1"}),
    }
    async with connect(api.ws_url, "operator") as operator:
        event_types = [event_type for event_type, _ in payloads.values()]
        await operator.set_filters(event_filters=event_types)
        for service, (event_type, payload) in payloads.items():
            await asyncio.to_thread(
                broker.publish,
                service,
                DEFAULT_KEYS[service],
                oslo_envelope(event_type, payload),
            )
        seen: Set[str] = set()
        while seen != set(event_types):
            message = await operator.expect(
                {"event_type": lambda value: value in event_types}, within=15.0
            )
            seen.add(message["event_type"])
    assert listener.stop() == 0


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_the_listener_reconnects_when_the_broker_goes_away_and_loses_nothing(
    start_api: StartApi, start_listener: Any, broker: Broker
) -> None:
    token = uuid.uuid4().hex[:8]
    exchange = f"osism-test-{token}-ironic"
    broker.exchanges.append(exchange)
    key = DEFAULT_KEYS["ironic"]
    proxy = BrokerProxy(("127.0.0.1", broker.connection.port or 5672))
    await proxy.start()
    api = start_api()
    try:
        listener = await asyncio.to_thread(
            start_listener,
            {
                "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}//",
                "LISTENER_SERVICES": "ironic",
                "LISTENER_IRONIC_EXCHANGE": exchange,
                "LISTENER_RECONNECT_MAX_DELAY": "2",
            },
        )
        queue = listener.queues[0]
        nodes = [f"reconnect-{token}-{i:02d}" for i in range(20)]
        async with connect(api.ws_url, "operator") as operator:
            await operator.set_filters(
                event_filters=[POWER_SET], node_filters=[f"first-{token}", *nodes]
            )
            await asyncio.to_thread(
                broker.publish,
                exchange,
                key,
                oslo_envelope(POWER_SET, ironic(f"first-{token}")),
            )
            await operator.expect(event(POWER_SET, node=f"first-{token}"), within=15)

            await proxy.stop()
            await async_wait_until(
                lambda: (broker.queue_state(queue) or (0, 1))[1] == 0, timeout=15.0
            )
            # What arrives meanwhile waits in the durable queue.
            await asyncio.to_thread(
                broker.publish,
                exchange,
                key,
                *(oslo_envelope(POWER_SET, ironic(node)) for node in nodes),
            )
            await async_wait_until(
                lambda: (broker.queue_state(queue) or (0, 1))[0] >= len(nodes),
                timeout=10.0,
            )
            # The listener keeps retrying, backing off (capped at 2 s).
            await async_wait_until(
                lambda: listener.count("Cannot reach RabbitMQ") >= 2, timeout=15.0
            )
            assert listener.process is not None
            assert listener.process.poll() is None

            await proxy.start()
            received: List[str] = []
            while len(received) < len(nodes) + 1 and nodes[-1] not in received:
                message = await operator.expect(event(POWER_SET), within=30.0)
                received.append(message["node_name"])
        # If the first one's ack had not passed the proxy when it stopped, the
        # broker redelivers it (at least once): it comes again, before the rest.
        if received[0] == f"first-{token}":
            received.pop(0)
        assert received == nodes
        assert broker.queue_state(queue) == (0, 1)
        assert await asyncio.to_thread(listener.stop) == 0
    finally:
        await proxy.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_notifications_sent_while_the_listener_is_stopped_wait_for_it(
    start_api: StartApi, start_listener: Any, broker: Broker
) -> None:
    token = uuid.uuid4().hex[:8]
    exchange = f"osism-test-{token}-ironic"
    broker.exchanges.append(exchange)
    env = {"LISTENER_SERVICES": "ironic", "LISTENER_IRONIC_EXCHANGE": exchange}
    api = start_api()
    first = start_listener(env)
    assert first.stop() == 0
    nodes = [f"restart-{token}-{i:02d}" for i in range(10)]
    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters(event_filters=[POWER_SET], node_filters=nodes)
        await asyncio.to_thread(
            broker.publish,
            exchange,
            DEFAULT_KEYS["ironic"],
            *(oslo_envelope(POWER_SET, ironic(node)) for node in nodes),
        )
        # The queue outlives the listener: the notifications wait in it.
        await async_wait_until(
            lambda: broker.queue_state(first.queues[0]) == (len(nodes), 0),
            timeout=10.0,
        )
        second = await asyncio.to_thread(start_listener, env, first.prefix)
        received = await operator.expect_each(
            [event(POWER_SET, node=node) for node in nodes], within=30.0
        )
    assert [m["node_name"] for m in received] == nodes
    assert await asyncio.to_thread(second.stop) == 0
