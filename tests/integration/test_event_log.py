"""The event log against real processes: nothing lost, one id everywhere.

redis-server, ``osism api``, ``osism listener`` and RabbitMQ run for real, and
the faults are real: the Redis process is stopped (or frozen with SIGSTOP),
the listener is killed with SIGKILL. Fixtures come from conftest.py and
test_listener.py (queues and exchanges of each test's own).
"""

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.integration.deadlines import async_wait_until, deadline
from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.scenario import User, connect, event, ironic
from tests.integration.servers import ApiServer, RedisServer
from tests.integration.rabbitmq import DEFAULT_KEYS, Broker, ListenerProcess
from tests.integration.test_listener import POWER_SET

pytestmark = pytest.mark.integration


@pytest.fixture
def rabbit(broker: Broker) -> Broker:
    """conftest's broker fixture: this test's queues and exchanges."""
    return broker


@pytest.fixture
def listeners(start_listener: Any) -> Any:
    """conftest's start_listener fixture."""
    return start_listener


KEY = DEFAULT_KEYS["ironic"]


def notification(
    node: str, message_id: Optional[str] = None, event_type: str = POWER_SET
) -> Dict[str, str]:
    """An ironic notification as oslo.messaging sends it, with its message_id."""
    message = {
        "message_id": message_id or str(uuid.uuid4()),
        "publisher_id": "ironic-conductor.test-host",
        "event_type": event_type,
        "priority": "INFO",
        "payload": ironic(node),
        "timestamp": "2026-01-01 00:00:00.000000",
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message)}


def own_exchange(rabbit: Broker) -> Tuple[str, Dict[str, str]]:
    """An ironic exchange of this test's own, and the listener settings for it."""
    exchange = f"osism-test-{uuid.uuid4().hex[:8]}-ironic"
    rabbit.exchanges.append(exchange)
    return exchange, {
        "LISTENER_SERVICES": "ironic",
        "LISTENER_IRONIC_EXCHANGE": exchange,
    }


async def publish_all(rabbit: Broker, exchange: str, bodies: List[Any]) -> None:
    await asyncio.to_thread(rabbit.publish, exchange, KEY, *bodies)


async def receive_nodes(
    user: User, count: int, within: float, prefix: str
) -> List[Dict[str, Any]]:
    """The next ``count`` events whose node starts with ``prefix``."""
    until = time.monotonic() + deadline(within)
    received: List[Dict[str, Any]] = []
    while len(received) < count:
        message = await user.expect_by(event(POWER_SET), until)
        if str(message["node_name"]).startswith(prefix):
            received.append(message)
    return received


async def nothing_more_before(
    user: User,
    rabbit: Broker,
    exchange: str,
    ignore: Optional[Dict[str, Any]] = None,
) -> None:
    """A last notification is the very next event: nothing came twice."""
    node = f"sentinel-{uuid.uuid4().hex[:6]}"
    await publish_all(rabbit, exchange, [notification(node)])
    await user.expect(event(POWER_SET, node=node), within=30.0, ignore=ignore)


def kill(process: ListenerProcess) -> None:
    """SIGKILL the listener this test started (no chance to clean up)."""
    assert process.process is not None
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(10.0)
    process._close_log()


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_redis_down_30s_and_the_listener_killed_loses_nothing(
    start_api: StartApi,
    listeners: Any,
    rabbit: Broker,
    redis_server: RedisServer,
    report_figure: ReportFigure,
) -> None:
    count, outage = 300, 30.0
    exchange, env = own_exchange(rabbit)
    api = start_api(
        env={"SUBSCRIBER_RETRY_DELAY": "0.5", "SUBSCRIBER_RESTART_MAX_DELAY": "2"}
    )
    listener = listeners(env)
    queue = listener.queues[0]
    token = uuid.uuid4().hex[:6]
    nodes = [f"n{token}-{i:03d}" for i in range(count)]

    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters(event_filters=[POWER_SET])
        await publish_all(rabbit, exchange, [notification(f"before-{token}")])
        await operator.expect(event(POWER_SET, node=f"before-{token}"), within=15.0)

        await asyncio.to_thread(redis_server.stop)
        down_at = time.monotonic()
        await publish_all(rabbit, exchange, [notification(n) for n in nodes[:150]])
        # The listener holds the first one unacknowledged, waiting for Redis;
        # the rest wait in RabbitMQ.
        await async_wait_until(
            lambda: listener.count("keeping it unacknowledged") >= 1, timeout=15.0
        )
        await asyncio.to_thread(kill, listener)
        await publish_all(rabbit, exchange, [notification(n) for n in nodes[150:]])
        # Everything, including what the killed listener had taken, is back
        # in the durable queue.
        await async_wait_until(
            lambda: (rabbit.queue_state(queue) or (0, 0))[0] == count, timeout=15.0
        )
        restarted = await asyncio.to_thread(listeners, env, listener.prefix)
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - down_at)))
        assert restarted.count(rf"Acknowledged {POWER_SET}") == 0

        await asyncio.to_thread(redis_server.start)
        back_at = time.monotonic()
        received = await receive_nodes(operator, count, within=120.0, prefix="n")
        delivered_at = time.monotonic()
        assert [m["node_name"] for m in received] == nodes
        await nothing_more_before(operator, rabbit, exchange)

    assert len({m["id"] for m in received}) == count
    assert rabbit.queue_state(queue) == (0, 1)
    report_figure("notifications across a 30 s Redis outage", count, "")
    report_figure(
        "Redis back to all 300 delivered", f"{delivered_at - back_at:.2f}", "s"
    )
    assert await asyncio.to_thread(restarted.stop) == 0
    assert api.status()["bridge"]["subscribed"] is True


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_notification_delivered_twice_reaches_clients_once(
    start_api: StartApi,
    listeners: Any,
    rabbit: Broker,
    redis_server: RedisServer,
) -> None:
    exchange, env = own_exchange(rabbit)
    api = start_api()
    listener = listeners(env)
    message_id = str(uuid.uuid4())
    node = f"twice-{uuid.uuid4().hex[:6]}"
    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters(event_filters=[POWER_SET])
        body = notification(node, message_id)
        await publish_all(rabbit, exchange, [body, body])
        first = await operator.expect(event(POWER_SET, node=node), within=15.0)
        assert first["id"] == message_id
        await async_wait_until(
            lambda: listener.count(rf"Acknowledged {POWER_SET}") == 2, timeout=15.0
        )
        await nothing_more_before(operator, rabbit, exchange)
    client = redis_server.client()
    try:
        logged = [
            json.loads(fields[b"event"])["id"]
            for _, fields in client.xrange("osism:events:log")
        ]
    finally:
        client.close()
    assert logged.count(message_id) == 1


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_two_replicas_give_the_same_event_the_same_id(
    start_api: StartApi, listeners: Any, rabbit: Broker
) -> None:
    exchange, env = own_exchange(rabbit)
    api1, api2 = start_api(), start_api()
    listeners(env)
    message_id = str(uuid.uuid4())
    node = f"replicas-{uuid.uuid4().hex[:6]}"
    async with connect(api1.ws_url, "one") as one, connect(api2.ws_url, "two") as two:
        for user in (one, two):
            await user.set_filters(event_filters=[POWER_SET, "replica.post"])
        # Through the listener: the notification's message_id is the id.
        await publish_all(rabbit, exchange, [notification(node, message_id)])
        seen = [
            await user.expect(event(POWER_SET, node=node), within=15.0)
            for user in (one, two)
        ]
        assert [m["id"] for m in seen] == [message_id, message_id]
        assert seen[0]["timestamp"] == seen[1]["timestamp"]
        # Posted to one replica: a fresh id, the same on both.
        await api1.apublish("replica.post", {"n": 1})
        posted = [
            await user.expect(event("replica.post"), within=15.0) for user in (one, two)
        ]
        assert posted[0]["id"] == posted[1]["id"]
        assert uuid.UUID(posted[0]["id"]).version == 4


def osism_publish(api: ApiServer, node: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "osism.cli.main",
            "publish",
            POWER_SET,
            "--payload",
            json.dumps(ironic(node)),
            "--url",
            api.http_url,
        ],
        capture_output=True,
        text=True,
        timeout=deadline(60),
    )


async def ready_becomes(api: ApiServer, wanted: bool, timeout: float) -> float:
    """Seconds until /v1/status says ready == ``wanted``."""
    started = time.monotonic()

    async def check() -> bool:
        return bool((await api.astatus())["ready"] is wanted)

    await async_wait_until(check, timeout=timeout, interval=0.1)
    return time.monotonic() - started


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_a_frozen_redis_blocks_no_call_beyond_its_timeout(
    start_api: StartApi,
    listeners: Any,
    rabbit: Broker,
    redis_server: RedisServer,
    report_figure: ReportFigure,
) -> None:
    socket_timeout, freeze = 3.0, 20.0
    timeouts = {"REDIS_SOCKET_TIMEOUT": str(socket_timeout)}
    exchange, env = own_exchange(rabbit)
    api = start_api(env={**timeouts, "SUBSCRIBER_RETRY_DELAY": "1"})
    listener = listeners({**env, **timeouts})
    token = uuid.uuid4().hex[:6]
    nodes = [f"f{token}-{i:02d}" for i in range(20)]
    assert redis_server.process is not None

    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters(event_filters=[POWER_SET])
        await publish_all(rabbit, exchange, [notification(f"before-{token}")])
        await operator.expect(event(POWER_SET, node=f"before-{token}"), within=15.0)

        redis_server.process.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            # osism publish: the API answers within the socket timeout (503),
            # well inside the command's own 10 s.
            started = time.monotonic()
            result = await asyncio.to_thread(osism_publish, api, f"cli-{token}")
            publish_took = time.monotonic() - started
            assert result.returncode != 0
            assert "answered 503" in result.stderr
            assert publish_took < 10.0
            # ready turns false once the subscription's PING goes unanswered.
            not_ready = await ready_becomes(api, False, timeout=4 * socket_timeout)
            # The listener: the notification waits, unacknowledged, and the
            # listener says so within its socket timeout.
            sent_at = time.monotonic()
            await publish_all(rabbit, exchange, [notification(n) for n in nodes])
            await async_wait_until(
                lambda: listener.count("keeping it unacknowledged") >= 1,
                timeout=3 * socket_timeout + 2,
            )
            listener_waited = time.monotonic() - sent_at
            remaining = freeze - (time.monotonic() - frozen_at)
            assert remaining > 0, "the checks above outlasted the freeze"
            await asyncio.sleep(remaining)
            assert listener.running
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        thawed_at = time.monotonic()
        received = await receive_nodes(operator, len(nodes), within=60.0, prefix="f")
        arrived = time.monotonic() - thawed_at
        assert [m["node_name"] for m in received] == nodes
        ready_again = await ready_becomes(api, True, timeout=30.0)
        # What the listener retried after a timeout (Redis ran it once it
        # resumed) was logged once: nothing comes twice. (The event osism
        # publish was refused may still come once: Redis ran it on SIGCONT.)
        cli = {"node_name": lambda node: str(node).startswith("cli-")}
        await nothing_more_before(operator, rabbit, exchange, ignore=cli)

    report_figure(
        "osism publish answered during the freeze in", f"{publish_took:.2f}", "s"
    )
    report_figure("ready false after the freeze began", f"{not_ready:.2f}", "s")
    report_figure("listener reported the wait after", f"{listener_waited:.2f}", "s")
    report_figure("everything delivered after SIGCONT in", f"{arrived:.2f}", "s")
    report_figure("ready again after SIGCONT in", f"{ready_again:.2f}", "s")
    assert await asyncio.to_thread(listener.stop) == 0
