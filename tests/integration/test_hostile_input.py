"""Hostile input over a live socket: a reply or a close for the sender, and
nothing at all for everybody else."""

from typing import List, Tuple, Union

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.deadlines import async_wait_until
from tests.integration.conftest import StartApi
from tests.integration.scenario import (
    connect,
    error_reply,
    event,
    filter_update,
    ironic,
    publish,
    User,
    run_users,
)
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

POWER_ON = "baremetal.node.power_set.end"
NESTING = 5000  # far deeper than Python's recursion limit, ~10 KB of text

# What mallory sends, and what the error reply must say.
HOSTILE: List[Tuple[Union[str, bytes, dict], str]] = [
    ("this is not json", "not valid JSON"),
    ("{'action': 'set_filters'}", "not valid JSON"),
    ("[1, 2, 3]", "must be a JSON object"),
    ('"set_filters"', "must be a JSON object"),
    ("null", "must be a JSON object"),
    ("[" * NESTING + "]" * NESTING, "nested too deeply"),
    ('{"a":' * NESTING + "1" + "}" * NESTING, "nested too deeply"),
    ({"action": "subscribe", "channel": "*"}, "unknown action"),
    ({"event_filters": ["compute.instance.create.end"]}, "unknown action"),
    ({"action": "set_filters", "event_filters": "compute"}, "list of strings"),
    ({"action": "set_filters", "node_filters": [1, 2]}, "list of strings"),
    ({"action": "set_filters", "service_filters": {"a": 1}}, "list of strings"),
    ({"action": "set_filters", "node_filters": [None]}, "list of strings"),
    ({"action": "set_filters", "everything": True}, "unknown field"),
    ({"action": "set_filters", "event_filters": ["x" * 300]}, "limit"),
    ({"action": "set_filters", "node_filters": [str(i) for i in range(101)]}, "limit"),
    (b"\x00\xff binary", "binary frames are not supported"),
    ("x" * 100_000, "message too large"),
]


@pytest.mark.asyncio
async def test_bad_messages_get_an_error_reply_and_bother_nobody_else(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api()
    redis = redis_server.async_client()
    try:
        async with (
            connect(api.ws_url, "mallory") as mallory,
            connect(api.ws_url, "alice") as alice,
            connect(api.ws_url, "bob") as bob,
        ):
            await run_users(
                mallory.set_filters(node_filters=["node-1"]),
                alice.set_filters(service_filters=["baremetal"]),
                bob.set_filters(),
                within=10.0,
            )

            for message, complaint in HOSTILE:
                await mallory.send(message)
                await mallory.expect(error_reply(complaint))

            # None of it changed mallory's filters or closed its connection.
            await mallory.send({"action": "set_filters"})
            await mallory.expect(
                filter_update(
                    event_filters=[], node_filters=["node-1"], service_filters=[]
                )
            )
            await publish(redis, POWER_ON, ironic("node-1"))
            await run_users(
                *(
                    u.expect(event(POWER_ON, node="node-1"))
                    for u in (mallory, alice, bob)
                ),
                within=10.0,
            )
    finally:
        await redis.aclose()
    assert api.tracebacks() == []


@pytest.mark.asyncio
async def test_a_frame_over_the_size_limit_closes_only_that_connection_with_1009(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api()  # WEBSOCKET_MAX_FRAME_BYTES: 1 MiB by default
    redis = redis_server.async_client()
    try:
        async with (
            connect(api.ws_url, "mallory") as mallory,
            connect(api.ws_url, "alice") as alice,
            connect(api.ws_url, "bob") as bob,
        ):
            await run_users(
                *(u.set_filters() for u in (mallory, alice, bob)), within=10
            )

            await _send_regardless(mallory, "x" * (4 << 20))
            await mallory.expect_closed(1009)

            await async_wait_until(lambda: api.has_connections(2), timeout=10.0)
            await publish(redis, POWER_ON, ironic("node-2"))
            await run_users(
                alice.expect(event(POWER_ON, node="node-2")),
                bob.expect(event(POWER_ON, node="node-2")),
                within=10.0,
            )
    finally:
        await redis.aclose()
    assert api.tracebacks() == []


async def _send_regardless(user: User, message: str) -> None:
    """Send; the server may close the connection before all of it is out."""
    try:
        await user.send(message)
    except ConnectionClosed:
        pass
