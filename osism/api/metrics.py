"""Prometheus metrics of the API, read from the typed statuses at scrape time.

``ApiCollector`` turns ``manager.status()`` (a ``ManagerStatus``) and
``bridge.status()`` (a ``BridgeStatus``) into metric families when
Prometheus scrapes ``GET /metrics``; nothing is counted twice and no hot path
pays for it. The publish latency is the one figure observed as it happens (a
histogram in ``ApiMetrics``).

Each process has its own registry: with several uvicorn workers a scrape
reaches one of them (docs/howto/monitoring.md: one worker per replica, scrape each).
"""

import os
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from osism.api.system_channel import redis_state
from osism.services.bridge.status import BridgeStatus
from osism.services.fanout.status import ManagerStatus

ManagerSource = Callable[[], ManagerStatus]
BridgeSource = Callable[[], BridgeStatus]

PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ApiCollector(Collector):
    """The API's figures, as of the moment of the scrape."""

    def __init__(self, manager: ManagerSource, bridge: BridgeSource) -> None:
        self._manager = manager
        self._bridge = bridge

    def collect(self) -> Iterator[Metric]:
        manager = self._manager()
        bridge = self._bridge()
        mode, connected, live = redis_state(bridge)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        info = GaugeMetricFamily(
            "osism_api_info", "This API process (1).", labels=["pid", "mode"]
        )
        info.add_metric([str(os.getpid()), mode], 1)
        yield info
        yield gauge(
            "osism_websocket_connections",
            "Event WebSocket clients connected now.",
            manager.connections,
        )
        yield counter(
            "osism_events_received",
            "Events this process received from the bridge.",
            manager.received,
        )
        yield counter(
            "osism_events_delivered",
            "Events handed to clients (one per client and event).",
            manager.delivered,
        )
        deliveries = CounterMetricFamily(
            "osism_deliveries",
            "Deliveries to clients by outcome.",
            labels=["outcome"],
        )
        outcomes = {
            "delivered": manager.delivered,
            "client_too_slow": manager.slow_disconnects,
        }
        for outcome, value in sorted(outcomes.items()):
            deliveries.add_metric([outcome], value)
        yield deliveries
        drops = CounterMetricFamily(
            "osism_events_dropped",
            "Events dropped, by reason.",
            labels=["reason"],
        )
        reasons = {
            "manager_queue_full": manager.dropped_events,
            "bridge_queue_full": bridge.dropped_events,
            "missed": bridge.missed_warnings,
        }
        for reason, value in sorted(reasons.items()):
            drops.add_metric([reason], value)
        yield drops
        yield counter(
            "osism_slow_clients_closed",
            "Clients closed with 1013 because their outbox overflowed.",
            manager.slow_disconnects,
        )
        yield counter(
            "osism_replays",
            "Resume requests answered from the event log.",
            manager.resumes,
        )
        yield counter(
            "osism_replayed_events",
            "Events sent to resuming clients.",
            manager.replayed_events,
        )
        yield gauge("osism_redis_up", "1 when Redis is connected.", float(connected))
        yield gauge(
            "osism_redis_subscribed",
            "1 when the subscription to the Redis channel is live.",
            float(live),
        )
        yield counter(
            "osism_subscriber_restarts",
            "Restarts of the Redis subscriber after it gave up.",
            bridge.subscriber_restarts,
        )
        yield counter(
            "osism_bridge_duplicates",
            "Redelivered events the log recognised and did not append again.",
            bridge.duplicates,
        )
        yield counter(
            "osism_bridge_published",
            "Events this process published through the bridge.",
            bridge.published,
        )
        yield gauge(
            "osism_event_queue_length",
            "Events waiting for the broadcaster.",
            manager.queued_events,
        )


class ApiMetrics:
    """The registry of one app: its collector and the publish histogram."""

    def __init__(self, manager: ManagerSource, bridge: BridgeSource) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ApiCollector(manager, bridge))
        self.publish_seconds = Histogram(
            "osism_publish_seconds",
            "Time the publish endpoint took to hand an event to the bridge.",
            labelnames=["result"],
            buckets=PUBLISH_BUCKETS,
            registry=self.registry,
        )
