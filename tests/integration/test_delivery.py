"""Events travel from a publisher through Redis to the clients of every replica."""

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any, Dict, List

import pytest

from tests.integration.deadlines import async_wait_until, deadline
from tests.integration.conftest import StartApi
from tests.integration.scenario import (
    CHANNEL,
    EVENT_KEYS,
    HEARTBEAT,
    connect,
    connect_many,
    event,
    filter_update,
    ironic,
    nova,
    publish,
    run_users,
)
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

POWER_ON = "baremetal.node.power_set.end"
PROVISIONED = "baremetal.node.provision_set.end"
INSTANCE_CREATED = "compute.instance.create.end"


@pytest.mark.asyncio
async def test_an_event_posted_to_the_api_reaches_its_client_through_redis(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api(env={"HEARTBEAT_INTERVAL": "0.5"})
    payload = ironic("node-1", uuid="1be26c0b-03f2-4d2e-ae87-c02d7f33c123")
    watcher = redis_server.async_client()
    channel = watcher.pubsub()
    try:
        await channel.subscribe(CHANNEL)
        async with connect(api.ws_url, "operator") as operator:
            await operator.set_filters()

            await api.apublish(POWER_ON, payload)

            received = await operator.expect(
                event(
                    POWER_ON,
                    node="node-1",
                    service_type="baremetal",
                    resource_id="1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
                )
            )
            # The exact wire format: EventMessage.to_dict(), data = payload +
            # service_type + resource_id.
            assert set(received) == EVENT_KEYS
            assert received["source"] == "openstack"
            assert received["data"] == {
                **payload,
                "service_type": "baremetal",
                "resource_id": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
            }
            uuid.UUID(received["id"])
            assert received["timestamp"].endswith("Z")
            datetime.fromisoformat(received["timestamp"][:-1])

            # Heartbeats keep the stream alive, in the same format.
            heartbeat = await operator.expect(HEARTBEAT, within=5.0)
            assert set(heartbeat) == EVENT_KEYS
            assert heartbeat["node_name"] is None

        # It went through Redis: the channel carries the event with its
        # event_type and payload, its position in the log and the id the
        # client saw.
        published = await _next_published(channel)
        assert (published["event_type"], published["payload"]) == (POWER_ON, payload)
        assert published["id"] == received["id"]
        assert published["timestamp"] == received["timestamp"]
        assert "stream_id" in published
        status = await api.astatus()
        assert status["bridge"]["mode"] == "redis"
        assert status["bridge"]["published"] == 1
    finally:
        await channel.aclose()
        await watcher.aclose()


@pytest.mark.asyncio
async def test_one_event_published_once_reaches_the_clients_of_both_replicas(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api1, api2 = start_api(), start_api()
    redis = redis_server.async_client()
    try:
        async with (
            connect(api1.ws_url, "alice") as alice,
            connect(api2.ws_url, "bob") as bob,
        ):
            await run_users(alice.set_filters(), bob.set_filters(), within=10)

            assert await publish(redis, POWER_ON, ironic("node-7")) == 2
            assert await publish(redis, PROVISIONED, ironic("node-7")) == 2

            # Each gets it exactly once: the next event follows directly.
            for user in (alice, bob):
                await user.expect_each(
                    [event(POWER_ON, node="node-7"), event(PROVISIONED, node="node-7")]
                )
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_filters_are_anded_changed_mid_stream_and_acknowledged(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api()
    redis = redis_server.async_client()

    async def send_all(*events: Any) -> None:
        for event_type, payload in events:
            await publish(redis, event_type, payload)

    try:
        async with (
            connect(api.ws_url, "operator") as operator,
            connect(api.ws_url, "watcher") as watcher,
        ):
            await watcher.set_filters()
            reply = await operator.set_filters(service_filters=["baremetal"])
            assert reply == {
                "type": "filter_update",
                "status": "success",
                "event_filters": [],
                "node_filters": [],
                "service_filters": ["baremetal"],
                "priority_filters": [],
            }

            # Only baremetal reaches the operator; the compute event, published
            # first, would have arrived first.
            await send_all(
                (INSTANCE_CREATED, nova("compute-1")), (POWER_ON, ironic("node-1"))
            )
            await operator.expect(
                event(POWER_ON, node="node-1"),
                # Narrow down as soon as it arrives: a node filter is added,
                # the service filter is kept (a key left out keeps its list).
                then_send={"action": "set_filters", "node_filters": ["node-2"]},
            )
            await operator.expect(
                filter_update(
                    event_filters=[],
                    node_filters=["node-2"],
                    service_filters=["baremetal"],
                )
            )

            # baremetal AND node-2: the others are filtered out.
            await send_all(
                (POWER_ON, ironic("node-1")),
                (INSTANCE_CREATED, nova("node-2")),
                (POWER_ON, ironic("node-2")),
            )
            await operator.expect(event(POWER_ON, node="node-2"))

            # All three kinds at once.
            await operator.set_filters(event_filters=[PROVISIONED])
            await send_all(
                (POWER_ON, ironic("node-2")), (PROVISIONED, ironic("node-2"))
            )
            await operator.expect(event(PROVISIONED, node="node-2"))

            # [] clears a list: everything again.
            await operator.set_filters(
                event_filters=[], node_filters=[], service_filters=[]
            )
            await send_all((INSTANCE_CREATED, nova("compute-9")))
            await operator.expect(event(INSTANCE_CREATED, node="compute-9"))

            # The watcher, without filters, saw every event in publish order.
            await watcher.expect_each(
                [
                    event(INSTANCE_CREATED, node="compute-1"),
                    event(POWER_ON, node="node-1"),
                    event(POWER_ON, node="node-1"),
                    event(INSTANCE_CREATED, node="node-2"),
                    event(POWER_ON, node="node-2"),
                    event(POWER_ON, node="node-2"),
                    event(PROVISIONED, node="node-2"),
                    event(INSTANCE_CREATED, node="compute-9"),
                ]
            )
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_fifty_clients_receive_every_event_in_publish_order(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api()
    redis = redis_server.async_client()
    sequence: List[Dict[str, Any]] = []
    try:
        async with connect_many(api.ws_url, 50, prefix="client") as clients:
            await async_wait_until(lambda: api.has_connections(50), timeout=10.0)
            for seq in range(30):
                if seq % 3 == 2:
                    event_type, payload = INSTANCE_CREATED, nova(f"compute-{seq}")
                    node = f"compute-{seq}"
                else:
                    event_type, payload = POWER_ON, ironic(f"node-{seq}")
                    node = f"node-{seq}"
                payload["seq"] = seq
                sequence.append(event(event_type, node=node, seq=seq))
                assert await publish(redis, event_type, payload) == 1

            await run_users(
                *(client.expect_each(sequence, within=20.0) for client in clients),
                within=30.0,
            )
        await async_wait_until(lambda: api.has_connections(0), timeout=10.0)
        status = await api.astatus()
        assert status["websocket"]["slow_disconnects"] == 0
        assert status["websocket"]["dropped_events"] == 0
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_a_client_that_reconnects_gets_the_events_published_after_it_is_back(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api()
    redis = redis_server.async_client()
    try:
        async with connect(api.ws_url, "steady") as steady:
            await steady.set_filters()
            async with connect(api.ws_url, "roamer") as roamer:
                await roamer.set_filters()
                await publish(redis, POWER_ON, ironic("node-1"))
                await run_users(
                    roamer.expect(event(POWER_ON, node="node-1")),
                    steady.expect(event(POWER_ON, node="node-1")),
                    within=10.0,
                )
            await async_wait_until(lambda: api.has_connections(1), timeout=10.0)

            # While the roamer is away; once steady has it, it has been fanned
            # out to everybody connected then.
            await publish(redis, POWER_ON, ironic("node-2"))
            await steady.expect(event(POWER_ON, node="node-2"))

            async with connect(api.ws_url, "roamer") as roamer:
                await roamer.set_filters()
                await publish(redis, POWER_ON, ironic("node-3"))
                await publish(redis, PROVISIONED, ironic("node-3"))
                # What was published while it was away is not replayed.
                await roamer.expect_each(
                    [event(POWER_ON, node="node-3"), event(PROVISIONED, node="node-3")]
                )
            await steady.expect_each(
                [event(POWER_ON, node="node-3"), event(PROVISIONED, node="node-3")]
            )
    finally:
        await redis.aclose()


async def _next_published(channel: Any, within: float = 5.0) -> Dict[str, Any]:
    async with asyncio.timeout(deadline(within)):
        while True:
            message = await channel.get_message(
                ignore_subscribe_messages=True, timeout=1.0
            )
            if message is not None:
                result: Dict[str, Any] = json.loads(message["data"])
                return result
