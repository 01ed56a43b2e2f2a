"""Real notifications of the six services, through RabbitMQ, to WebSocket clients.

Every sample in tests/data/openstack is published the way
oslo.messaging sends it with the services' default configuration: the
``oslo.message`` envelope on the service's exchange (``nova``, ``ironic``,
...) with routing key ``<topic>.<priority>`` (nova's legacy notifications on
``notifications``, its versioned ones on ``versioned_notifications``). The
``osism listener`` subprocess consumes them on queues of this test's own
prefix; clients of a live ``osism api`` receive them.

Each run gives the samples fresh message ids (the event log deduplicates by
id, and other tests may publish on the same exchanges): a client here looks
only at the events whose message id this run gave out.
"""

import asyncio
import json
import urllib.request
import uuid
from typing import Any, Dict, List, Set

import pytest

from tests.integration.deadlines import deadline
from tests.integration.conftest import StartApi
from tests.integration.scenario import User, connect
from tests.integration.rabbitmq import Broker
from tests.openstack_samples import Sample, load_all

pytestmark = pytest.mark.integration

NOVA_FILTERS = (["nova"], ["compute"])


def osism_meta(message: Dict[str, Any]) -> Dict[str, Any]:
    meta = message.get("data", {}).get("_osism")
    return meta if isinstance(meta, dict) else {}


async def collect(user: User, wanted: Set[str], within: float) -> Dict[str, Any]:
    """The events whose message id is in ``wanted``, until all have come;
    anything else (heartbeats, other tests' events) is passed over."""
    found: Dict[str, Any] = {}
    async with asyncio.timeout(deadline(within)):
        while set(found) != wanted:
            message = await user.next_message(within)
            message_id = osism_meta(message).get("message_id")
            if message_id in wanted:
                assert message_id not in found, f"{user.name}: {message_id} twice"
                found[message_id] = message
    return found


async def until_sentinel(user: User, sentinel: str, within: float) -> List[Any]:
    """Every message up to the sentinel event (not included)."""
    seen: List[Any] = []
    async with asyncio.timeout(deadline(within)):
        while True:
            message = await user.next_message(within)
            if osism_meta(message).get("message_id") == sentinel:
                return seen
            seen.append(message)


def post(url: str, body: Dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"{url}/v1/events/openstack",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=deadline(10)) as response:
        status: int = response.status
    return status


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_every_sample_reaches_clients_with_service_node_resource_and_metadata(
    start_api: StartApi, start_listener: Any, broker: Broker
) -> None:
    samples = load_all()
    api = start_api()
    start_listener()
    ids = {str(uuid.uuid4()): sample for sample in samples}
    mine = set(ids)
    nova_ids = {i for i, s in ids.items() if s.service == "nova"}
    error_ids = {i for i, s in ids.items() if s.message["priority"] == "ERROR"}
    assert len(nova_ids) == 6 and len(error_ids) == 2

    async with (
        connect(api.ws_url, "all") as everyone,
        connect(api.ws_url, "nova") as by_nova,
        connect(api.ws_url, "compute") as by_compute,
        connect(api.ws_url, "errors") as errors,
    ):
        await by_nova.set_filters(service_filters=["nova"])
        await by_compute.set_filters(service_filters=["compute"])
        await errors.set_filters(priority_filters=["ERROR"])

        for message_id, sample in ids.items():
            exchange, routing_key = sample.route()
            await asyncio.to_thread(
                broker.publish,
                exchange,
                routing_key,
                sample.envelope(message_id),
                raw=True,
            )

        received = await collect(everyone, mine, within=30.0)
        for message_id, message in received.items():
            sample: Sample = ids[message_id]
            meta = osism_meta(message)
            expected = sample.expected
            assert message["event_type"] == sample.message["event_type"], sample.name
            assert message["source"] == "openstack"
            assert message["data"]["service_type"] == expected["service_type"]
            assert meta["service"] == expected["service"], sample.name
            assert message["node_name"] == expected["node_name"], sample.name
            assert message["data"]["resource_id"] == expected["resource_id"]
            assert meta["priority"] == sample.message["priority"], sample.name
            assert meta["publisher_id"] == sample.message["publisher_id"]
            assert meta["emitted_at"] == (
                sample.message["timestamp"].replace(" ", "T") + "Z"
            )
        upload = next(
            m for i, m in received.items() if ids[i].name.endswith("upload.json")
        )
        assert (
            upload["data"]["payload"]
            == ids[upload["data"]["_osism"]["message_id"]].message["payload"]
        )

        # Every sample has been fanned out to every client by now; one more
        # event that each filter lets through marks the end of their streams.
        sentinel = str(uuid.uuid4())
        status = await asyncio.to_thread(
            post,
            api.http_url,
            {
                "event_type": "instance.osism-sentinel.error",
                "payload": {},
                "priority": "ERROR",
                "service": "nova",
                "message_id": sentinel,
            },
        )
        assert status == 202
        for user, wanted in (
            (by_nova, nova_ids),
            (by_compute, nova_ids),
            (errors, error_ids),
        ):
            seen = await until_sentinel(user, sentinel, within=15.0)
            got = [
                osism_meta(m).get("message_id")
                for m in seen
                if osism_meta(m).get("message_id") in mine
            ]
            assert sorted(got) == sorted(wanted), (
                user.name,
                sorted(ids[i].name for i in got),
            )
