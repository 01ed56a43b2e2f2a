"""``/metrics`` of a live API and of a live listener, after known traffic.

Both are read with prometheus-client's own parser. The listener's exchanges
are the test's own, so that no other notifications on the broker reach it.
"""

import asyncio
import uuid
from typing import Any, Dict, Tuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.deadlines import async_wait_until
from tests.integration.conftest import StartApi
from tests.integration.scenario import connect, event, ironic, nova
from tests.integration.servers import free_port
from tests.integration.rabbitmq import DEFAULT_KEYS, Broker, oslo_envelope

pytestmark = pytest.mark.integration

POWER = "baremetal.node.power_set.end"
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if k != "pid")
            )
            found[(sample.name, labels)] = sample.value
    return found


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.get(url)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.mark.asyncio
async def test_api_counters_after_known_traffic(start_api: StartApi) -> None:
    api = start_api()
    node = f"node-{uuid.uuid4().hex[:8]}"
    async with (
        connect(api.ws_url, "all") as everything,
        connect(api.ws_url, "one") as one,
    ):
        await everything.set_filters()
        await one.set_filters(node_filters=[node])
        for name in ("other-1", node, "other-2"):
            await api.apublish(POWER, ironic(name))
        for name in ("other-1", node, "other-2"):
            await everything.expect(event(POWER, node=name))
        await one.expect(event(POWER, node=node))
        found = await scrape(f"{api.http_url}/metrics")

    assert found[("osism_websocket_connections", ())] == 2
    assert found[("osism_events_received_total", ())] == 3
    assert found[("osism_events_delivered_total", ())] == 4
    assert found[("osism_deliveries_total", (("outcome", "delivered"),))] == 4
    assert found[("osism_redis_up", ())] == 1
    assert found[("osism_redis_subscribed", ())] == 1
    accepted = (("result", "accepted"),)
    assert found[("osism_publish_seconds_count", accepted)] == 3
    assert found[("osism_publish_seconds_sum", accepted)] > 0
    assert found[("osism_slow_clients_closed_total", ())] == 0
    assert found[("osism_api_info", (("mode", "redis"),))] == 1


async def _ready(url: str) -> bool:
    """Whether the listener answers 200 at /ready (False when it cannot)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_listener_counts_per_service_and_answers_ready(
    start_api: StartApi, start_listener: Any, broker: Broker
) -> None:
    start_api()
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    exchanges = {"ironic": f"osism-test-ironic-{tag}", "nova": f"osism-test-nova-{tag}"}
    broker.exchanges.extend(exchanges.values())
    listener = start_listener(
        env={
            "LISTENER_SERVICES": "ironic,nova",
            "LISTENER_IRONIC_EXCHANGE": exchanges["ironic"],
            "LISTENER_NOVA_EXCHANGE": exchanges["nova"],
            "LISTENER_METRICS_PORT": str(port),
            "LISTENER_METRICS_HOST": "127.0.0.1",
        }
    )
    base = f"http://127.0.0.1:{port}"
    await async_wait_until(lambda: _ready(f"{base}/ready"), 10.0)

    ironic_key, nova_key = DEFAULT_KEYS["ironic"], DEFAULT_KEYS["nova"]
    for name in ("n1", "n2"):
        await asyncio.to_thread(
            broker.publish,
            exchanges["ironic"],
            ironic_key,
            oslo_envelope(POWER, ironic(name)),
        )
    await asyncio.to_thread(
        broker.publish, exchanges["ironic"], ironic_key, "{oops", raw=True
    )
    await asyncio.to_thread(
        broker.publish,
        exchanges["nova"],
        nova_key,
        oslo_envelope("compute.instance.create.end", nova("h1")),
    )

    async def counted() -> bool:
        found = await scrape(f"{base}/metrics")
        return (
            found.get(
                ("osism_listener_messages_consumed_total", (("service", "ironic"),))
            )
            == 3
            and found.get(
                ("osism_listener_messages_acked_total", (("service", "nova"),))
            )
            == 1
        )

    await async_wait_until(counted, 15.0)
    found = await scrape(f"{base}/metrics")
    ironic_label = (("service", "ironic"),)
    nova_label = (("service", "nova"),)
    assert found[("osism_listener_messages_acked_total", ironic_label)] == 2
    assert found[("osism_listener_messages_rejected_total", ironic_label)] == 1
    assert found[("osism_listener_messages_requeued_total", ironic_label)] == 0
    assert found[("osism_listener_messages_consumed_total", nova_label)] == 1
    assert found[("osism_listener_ready", ())] == 1
    assert listener.stop() == 0
