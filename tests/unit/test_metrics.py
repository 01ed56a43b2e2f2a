"""/metrics: the collector's families, read with prometheus-client's parser."""

from typing import Any, Dict, Iterator, Tuple

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osism.api import create_app
from osism.metrics import ApiMetrics
from osism.security import SecurityConfig
from osism.services.event_bridge import EventBridge
from osism.services.websocket_manager import WebSocketManager

Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """(sample name, sorted labels) -> value, without the pid label."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items()))
            found[(sample.name, labels)] = sample.value
    return found


def scrape(manager: Dict[str, Any], bridge: Dict[str, Any]) -> Samples:
    metrics = ApiMetrics(lambda: manager, lambda: bridge)
    return samples(generate_latest(metrics.registry).decode())


class TestCollector:
    def test_every_figure_from_the_status_dicts(self) -> None:
        found = scrape(
            {
                "connections": 3,
                "received": 10,
                "delivered": 25,
                "dropped_events": 2,
                "slow_disconnects": 1,
                "replays": 4,
                "replayed": 40,
                "queued_events": 5,
            },
            {
                "mode": "redis",
                "subscribed": True,
                "subscriber_restarts": 6,
                "dropped_events": 7,
                "missed": 8,
                "published": 9,
            },
        )
        assert found[("osism_websocket_connections", ())] == 3
        assert found[("osism_events_received_total", ())] == 10
        assert found[("osism_events_delivered_total", ())] == 25
        assert found[("osism_deliveries_total", (("outcome", "delivered"),))] == 25
        assert found[("osism_deliveries_total", (("outcome", "client_too_slow"),))] == 1
        drops = {
            labels[0][1]: value
            for (name, labels), value in found.items()
            if name == "osism_events_dropped_total"
        }
        assert drops == {
            "manager_queue_full": 2,
            "bridge_queue_full": 7,
            "missed": 8,
        }
        assert found[("osism_slow_clients_closed_total", ())] == 1
        assert found[("osism_replays_total", ())] == 4
        assert found[("osism_replayed_events_total", ())] == 40
        assert found[("osism_redis_up", ())] == 1
        assert found[("osism_redis_subscribed", ())] == 1
        assert found[("osism_subscriber_restarts_total", ())] == 6
        assert found[("osism_bridge_published_total", ())] == 9
        assert found[("osism_event_queue_length", ())] == 5

    def test_missing_or_odd_keys_are_zero_not_an_error(self) -> None:
        found = scrape({"connections": None, "deliveries": "x"}, {"drops": 3})
        assert found[("osism_websocket_connections", ())] == 0
        assert found[("osism_redis_up", ())] == 0
        assert found[("osism_events_received_total", ())] == 0

    def test_outcome_and_reason_dicts_add_labels(self) -> None:
        found = scrape(
            {"deliveries": {"filtered": 12, "bad": "x"}},
            {"drops": {"redis_down": 2}},
        )
        assert found[("osism_deliveries_total", (("outcome", "filtered"),))] == 12
        assert ("osism_deliveries_total", (("outcome", "bad"),)) not in found
        assert found[("osism_events_dropped_total", (("reason", "redis_down"),))] == 2

    def test_two_apps_have_two_registries(self) -> None:
        first = ApiMetrics(dict, dict)
        second = ApiMetrics(dict, dict)
        assert first.registry is not second.registry


@pytest.fixture
def bridge() -> EventBridge:
    return EventBridge(connect=False)


@pytest.fixture
def client(bridge: EventBridge) -> Iterator[TestClient]:
    app = create_app(
        WebSocketManager(),
        bridge,
        connect_redis=False,
        heartbeat_interval=0,
        security=SecurityConfig(),
    )
    with TestClient(app) as test_client:
        yield test_client


class TestEndpoint:
    def test_counts_after_known_traffic(self, client: TestClient) -> None:
        with client.websocket_connect("/v1/events/openstack") as ws:
            for node in ("a", "b", "c"):
                body = {
                    "event_type": "baremetal.node.power_set.end",
                    "payload": {"ironic_object.data": {"name": node}},
                }
                assert client.post("/v1/events/openstack", json=body).status_code
                assert ws.receive_json()["node_name"] == node
            response = client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        found = samples(response.text)
        assert found[("osism_events_received_total", ())] == 3
        assert found[("osism_events_delivered_total", ())] == 3
        accepted = (("result", "accepted"),)
        assert found[("osism_publish_seconds_count", accepted)] == 3
        assert found[("osism_publish_seconds_bucket", (("le", "+Inf"),) + accepted)]
        [info] = [k for k in found if k[0] == "osism_api_info"]
        assert ("mode", "local") in info[1]

    def test_a_refused_publish_is_observed_as_refused(
        self, client: TestClient, bridge: EventBridge
    ) -> None:
        bridge.add_event = lambda *a, **k: False  # type: ignore[method-assign]
        body = {"event_type": "x.y", "payload": {}}
        assert client.post("/v1/events/openstack", json=body).status_code == 503
        found = samples(client.get("/metrics").text)
        assert found[("osism_publish_seconds_count", (("result", "refused"),))] == 1
