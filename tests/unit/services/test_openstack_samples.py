"""Every real notification in tests/data/openstack gives expected.json.

Each sample goes the way the listener takes it: the oslo envelope as it is on
RabbitMQ, ``parse_notification`` with the service of the exchange it arrives
on, then ``event_fields`` with the metadata the listener hands on.
"""

from typing import Any, Dict, Optional

import pytest

from osism.services.listener.consumer import Notification, parse_notification
from osism.core.notifications import META_FIELDS, META_KEY, event_fields
from osism.services.websocket_manager import WebSocketManager
from tests.openstack_samples import Sample, load_all, load_sample, sample_names

NAMES = sample_names()


def derived(notification: Notification) -> Dict[str, Any]:
    data, node_name = event_fields(
        notification.event_type, notification.payload, notification.meta()
    )
    return {
        "service_type": data["service_type"],
        "service": data[META_KEY]["service"],
        "node_name": node_name,
        "resource_id": data["resource_id"],
    }


@pytest.mark.parametrize("name", NAMES)
def test_sample_arriving_on_its_exchange_gives_the_expected_fields(name: str) -> None:
    sample = load_sample(name)
    notification = parse_notification(sample.envelope(), sample.service)

    assert derived(notification) == sample.expected


@pytest.mark.parametrize("name", NAMES)
def test_sample_without_its_exchange_is_placed_by_its_publisher_id(name: str) -> None:
    # e.g. published on a shared exchange: the publisher_id names the service
    sample = load_sample(name)
    notification = parse_notification(sample.envelope())

    assert derived(notification) == sample.expected


@pytest.mark.parametrize("name", NAMES)
def test_sample_metadata_travels_in_osism(name: str) -> None:
    sample = load_sample(name)
    message = sample.message
    notification = parse_notification(sample.envelope(), sample.service)

    data, _ = event_fields(
        notification.event_type, notification.payload, notification.meta()
    )

    meta = data[META_KEY]
    assert set(meta) == set(META_FIELDS)
    assert meta["priority"] == message["priority"]
    assert meta["message_id"] == message["message_id"]
    assert meta["publisher_id"] == message["publisher_id"]
    # oslo's "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) as ISO 8601 with Z
    assert meta["emitted_at"] == message["timestamp"].replace(" ", "T") + "Z"


@pytest.mark.parametrize("name", NAMES)
def test_sample_payload_reaches_data_unchanged(name: str) -> None:
    sample = load_sample(name)
    payload = sample.message["payload"]
    notification = parse_notification(sample.envelope(), sample.service)

    data, _ = event_fields(
        notification.event_type, notification.payload, notification.meta()
    )

    if isinstance(payload, dict):
        assert {k: data[k] for k in payload} == payload
    else:
        # Glance's error notification: a plain string, wrapped as documented
        assert data["payload"] == payload


def test_every_service_has_samples_and_an_error_one_is_among_them() -> None:
    samples = load_all()
    assert {s.service for s in samples} == {
        "nova",
        "ironic",
        "neutron",
        "cinder",
        "glance",
        "keystone",
    }
    errors = [s.name for s in samples if s.message["priority"] == "ERROR"]
    assert sorted(errors) == [
        "glance/image.upload.json",
        "nova/instance.create.error.json",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_manager_queues_the_sample_with_node_and_metadata(name: str) -> None:
    sample: Sample = load_sample(name)
    notification = parse_notification(sample.envelope(), sample.service)
    manager = WebSocketManager(queue_size=2)

    manager.add_notification(
        notification.event_type, notification.payload, meta=notification.meta()
    )

    event = manager.event_queue.get_nowait()
    expected_node: Optional[str] = sample.expected["node_name"]
    assert event.node_name == expected_node
    assert event.data["resource_id"] == sample.expected["resource_id"]
    assert event.data[META_KEY]["service"] == sample.expected["service"]
    assert set(event.to_dict()) == {
        "id",
        "timestamp",
        "event_type",
        "source",
        "node_name",
        "data",
    }
