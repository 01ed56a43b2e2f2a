"""The system channel of a live ``osism api``: its messages, and a Redis outage.

The outage is real: the test's redis-server is stopped and started again.
redis-py retries by itself before the bridge learns of a lost connection, so
the channel reports an outage seconds after it began (see
test_redis_outage.py); the bounds below allow for that.
"""

import asyncio
import json
from typing import Any, Callable, Dict, List

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.conftest import StartApi
from tests.integration.deadlines import deadline
from tests.integration.scenario import ironic
from tests.integration.scenario import connect as connect_user
from tests.integration.servers import ApiServer, RedisServer

pytestmark = pytest.mark.integration

SYSTEM_PATH = "/v1/events/system"
FAST = {"SYSTEM_INTERVAL": "0.5", "SUBSCRIBER_RETRY_DELAY": "1"}
Message = Dict[str, Any]


def system_url(api: ApiServer) -> str:
    return f"ws://{api.host}:{api.port}{SYSTEM_PATH}"


async def next_message(
    ws: ClientConnection,
    predicate: Callable[[Message], bool],
    within: float,
    seen: List[Message],
) -> Message:
    """The first system message that satisfies ``predicate``."""

    async def wait() -> Message:
        while True:
            message: Message = json.loads(await ws.recv())
            seen.append(message)
            if predicate(message):
                return message

    try:
        return await asyncio.wait_for(wait(), deadline(within))
    except asyncio.TimeoutError:
        recent = json.dumps(seen[-3:], indent=1)
        pytest.fail(
            f"no such system message within {deadline(within)} s; last ones: {recent}"
        )


@pytest.mark.asyncio
async def test_state_at_connect_then_figures_as_they_change(
    start_api: StartApi,
) -> None:
    api = start_api(env=FAST)
    seen: List[Message] = []
    async with connect(system_url(api)) as system:
        first = await next_message(system, lambda m: True, 5.0, seen)
        assert first["type"] == "system" and first["reason"] == "connect"
        assert first["state"] == "ok"
        assert first["redis"]["connected"] is True
        assert first["redis"]["mode"] == "redis"
        assert first["subscription"]["live"] is True
        assert first["warnings"] == []
        assert first["connections"] == 0

        async with connect_user(api.ws_url, "operator") as operator:
            await operator.set_filters()
            for node in ("a", "b", "c"):
                await api.apublish("baremetal.node.power_set.end", ironic(node))
            for _ in range(3):
                await operator.next_message()
            later = await next_message(
                system,
                lambda m: m["connections"] == 1 and m["events_out"] >= 3,
                5.0,
                seen,
            )
    assert later["reason"] == "interval"
    assert later["events_in"] == 3
    assert later["events_out"] == 3
    # A message every SYSTEM_INTERVAL while nothing else changes.
    assert len(seen) >= 2


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_redis_outage_is_pushed_and_so_is_its_end(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api(env=FAST)
    seen: List[Message] = []
    async with connect(system_url(api)) as system:
        await next_message(system, lambda m: m["state"] == "ok", 5.0, seen)

        await asyncio.to_thread(redis_server.stop)
        outage = await next_message(
            system, lambda m: m["state"] == "degraded", 30.0, seen
        )
        assert outage["reason"] == "change"
        assert outage["redis"]["connected"] is False
        [warning] = [w for w in outage["warnings"] if w["code"] == "redis_unreachable"]
        assert warning["since"] == outage["redis"]["since"]
        assert "events are delayed" in warning["message"]

        await asyncio.to_thread(redis_server.start)
        back = await next_message(system, lambda m: m["state"] == "ok", 45.0, seen)
        assert back["reason"] == "change"
        assert back["warnings"] == []
        assert back["redis"]["connected"] is True
        assert back["redis"]["since"] > warning["since"]


@pytest.mark.asyncio
async def test_the_token_rule_of_the_events_endpoint_applies(
    start_api: StartApi,
) -> None:
    api = start_api(env={"API_TOKEN": "system-token-1"})
    async with connect(system_url(api)) as refused:
        with pytest.raises(Exception) as closed:
            await asyncio.wait_for(refused.recv(), deadline(5.0))
    assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 1008
    async with connect(
        system_url(api), additional_headers={"Authorization": "Bearer system-token-1"}
    ) as system:
        assert json.loads(await asyncio.wait_for(system.recv(), deadline(5.0)))[
            "type"
        ] == ("system")
