"""/metrics: the collector's families, read with prometheus-client's parser."""

import os
from typing import Dict, Iterator, List, Tuple

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osism.api.routes import create_app
from osism.api.metrics import ApiMetrics
from osism.api.security import SecurityConfig
from osism.services.bridge.status import BridgeStatus
from osism.services.event_bridge import EventBridge
from osism.services.fanout.status import ManagerStatus
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


def scrape(manager: ManagerStatus, bridge: BridgeStatus) -> Samples:
    metrics = ApiMetrics(lambda: manager, lambda: bridge)
    return samples(generate_latest(metrics.registry).decode())


# Every family of the exposition, in order: name, type and HELP text.
FAMILIES = [
    ("osism_api_info", "gauge", "This API process (1)."),
    ("osism_websocket_connections", "gauge", "Event WebSocket clients connected now."),
    (
        "osism_events_received",
        "counter",
        "Events this process received from the bridge.",
    ),
    (
        "osism_events_delivered",
        "counter",
        "Events handed to clients (one per client and event).",
    ),
    ("osism_deliveries", "counter", "Deliveries to clients by outcome."),
    ("osism_events_dropped", "counter", "Events dropped, by reason."),
    (
        "osism_slow_clients_closed",
        "counter",
        "Clients closed with 1013 because their outbox overflowed.",
    ),
    ("osism_replays", "counter", "Resume requests answered from the event log."),
    ("osism_replayed_events", "counter", "Events sent to resuming clients."),
    ("osism_redis_up", "gauge", "1 when Redis is connected."),
    (
        "osism_redis_subscribed",
        "gauge",
        "1 when the subscription to the Redis channel is live.",
    ),
    (
        "osism_subscriber_restarts",
        "counter",
        "Restarts of the Redis subscriber after it gave up.",
    ),
    (
        "osism_bridge_duplicates",
        "counter",
        "Redelivered events the log recognised and did not append again.",
    ),
    (
        "osism_bridge_published",
        "counter",
        "Events this process published through the bridge.",
    ),
    ("osism_event_queue_length", "gauge", "Events waiting for the broadcaster."),
    (
        "osism_publish_seconds",
        "histogram",
        "Time the publish endpoint took to hand an event to the bridge.",
    ),
]


class TestExposition:
    def test_every_family_with_its_type_and_help_text(self) -> None:
        metrics = ApiMetrics(ManagerStatus, BridgeStatus)
        text = generate_latest(metrics.registry).decode()
        found = [
            (family.name, family.type, family.documentation)
            for family in text_string_to_metric_families(text)
        ]
        assert found == FAMILIES

    def test_info_is_one_with_the_pid_and_the_bridge_mode(self) -> None:
        found = scrape(ManagerStatus(), BridgeStatus(mode="redis"))
        info = (("mode", "redis"), ("pid", str(os.getpid())))
        assert found[("osism_api_info", info)] == 1

    def test_publish_seconds_has_buckets_from_1_ms_to_5_s(self) -> None:
        metrics = ApiMetrics(ManagerStatus, BridgeStatus)
        for seconds in (0.003, 0.2, 7.0):
            metrics.publish_seconds.labels("accepted").observe(seconds)
        text = generate_latest(metrics.registry).decode()
        buckets: List[Tuple[str, float]] = [
            (sample.labels["le"], sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "osism_publish_seconds_bucket"
        ]
        assert buckets == [
            ("0.001", 0),
            ("0.0025", 0),
            ("0.005", 1),
            ("0.01", 1),
            ("0.025", 1),
            ("0.05", 1),
            ("0.1", 1),
            ("0.25", 2),
            ("0.5", 2),
            ("1.0", 2),
            ("2.5", 2),
            ("5.0", 2),
            ("+Inf", 3),
        ]


class TestCollector:
    def test_every_figure_from_the_statuses(self) -> None:
        found = scrape(
            ManagerStatus(
                connections=3,
                received=10,
                delivered=25,
                dropped_events=2,
                slow_disconnects=1,
                resumes=4,
                replayed_events=40,
                queued_events=5,
            ),
            BridgeStatus(
                mode="redis",
                redis_connected=True,
                subscribed=True,
                subscriber_restarts=6,
                dropped_events=7,
                missed_warnings=8,
                published=9,
                duplicates=11,
            ),
        )
        assert found[("osism_websocket_connections", ())] == 3
        assert found[("osism_events_received_total", ())] == 10
        assert found[("osism_events_delivered_total", ())] == 25
        assert found[("osism_deliveries_total", (("outcome", "delivered"),))] == 25
        assert found[("osism_deliveries_total", (("outcome", "client_too_slow"),))] == 1
        drops = {
            dict(labels)["reason"]: value
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
        assert found[("osism_bridge_duplicates_total", ())] == 11
        assert found[("osism_event_queue_length", ())] == 5

    def test_fresh_statuses_are_all_zero(self) -> None:
        found = scrape(ManagerStatus(), BridgeStatus())
        figures = {
            key: value for key, value in found.items() if key[0] != "osism_api_info"
        }
        assert set(figures.values()) == {0}
        info = (("mode", "local"), ("pid", str(os.getpid())))
        assert found[("osism_api_info", info)] == 1

    @pytest.mark.parametrize(
        "bridge, up, subscribed",
        [
            (BridgeStatus(mode="redis", redis_connected=True, subscribed=True), 1, 1),
            (BridgeStatus(mode="redis", redis_connected=True), 0, 0),
            (BridgeStatus(mode="redis", subscribed=True), 0, 1),
            (BridgeStatus(mode="local", redis_connected=True, subscribed=True), 0, 1),
        ],
        ids=["live", "not-subscribed", "no-client", "embedded"],
    )
    def test_redis_is_up_with_a_client_and_a_live_subscription(
        self, bridge: BridgeStatus, up: int, subscribed: int
    ) -> None:
        found = scrape(ManagerStatus(), bridge)
        assert (
            found[("osism_redis_up", ())],
            found[("osism_redis_subscribed", ())],
        ) == (up, subscribed)

    def test_two_apps_have_two_registries(self) -> None:
        first = ApiMetrics(ManagerStatus, BridgeStatus)
        second = ApiMetrics(ManagerStatus, BridgeStatus)
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
