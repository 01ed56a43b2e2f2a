"""Prometheus metrics of the API, read from the status dicts at scrape time.

``ApiCollector`` turns ``manager.status()`` and ``bridge.status()`` into
metric families when Prometheus scrapes ``GET /metrics``; nothing is counted
twice and no hot path pays for it. Keys are read with defaults, so a status
without a key gives 0 rather than an error. The publish latency is the one
figure observed as it happens (a histogram in ``ApiMetrics``).

Each process has its own registry: with several uvicorn workers a scrape
reaches one of them (docs/howto/monitoring.md: one worker per replica, scrape each).
"""

import os
from typing import Any, Callable, Dict, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from osism.api.system_channel import redis_state

StatusSource = Callable[[], Mapping[str, Any]]

PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _number(status: Mapping[str, Any], key: str) -> float:
    value = status.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return 0.0


def _counts(status: Mapping[str, Any], key: str) -> Dict[str, float]:
    """A ``{label: number}`` dict of a status, numbers only."""
    value = status.get(key)
    if not isinstance(value, Mapping):
        return {}
    return {
        str(name): float(count)
        for name, count in value.items()
        if isinstance(count, (int, float)) and not isinstance(count, bool)
    }


class ApiCollector(Collector):
    """The API's figures, as of the moment of the scrape."""

    def __init__(self, manager: StatusSource, bridge: StatusSource) -> None:
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
            _number(manager, "connections"),
        )
        yield counter(
            "osism_events_received",
            "Events this process received from the bridge.",
            _number(manager, "received"),
        )
        yield counter(
            "osism_events_delivered",
            "Events handed to clients (one per client and event).",
            _number(manager, "delivered"),
        )
        deliveries = CounterMetricFamily(
            "osism_deliveries",
            "Deliveries to clients by outcome.",
            labels=["outcome"],
        )
        outcomes = {
            "delivered": _number(manager, "delivered"),
            "client_too_slow": _number(manager, "slow_disconnects"),
        }
        outcomes.update(_counts(manager, "deliveries"))
        for outcome, value in sorted(outcomes.items()):
            deliveries.add_metric([outcome], value)
        yield deliveries
        drops = CounterMetricFamily(
            "osism_events_dropped",
            "Events dropped, by reason.",
            labels=["reason"],
        )
        reasons = {
            "manager_queue_full": _number(manager, "dropped_events"),
            "bridge_queue_full": _number(bridge, "dropped_events"),
            "missed": _number(bridge, "missed") or _number(bridge, "missed_warnings"),
        }
        reasons.update(_counts(bridge, "drops"))
        for reason, value in sorted(reasons.items()):
            drops.add_metric([reason], value)
        yield drops
        yield counter(
            "osism_slow_clients_closed",
            "Clients closed with 1013 because their outbox overflowed.",
            _number(manager, "slow_disconnects"),
        )
        yield counter(
            "osism_replays",
            "Resume requests answered from the event log.",
            _number(manager, "resumes") or _number(manager, "replays"),
        )
        yield counter(
            "osism_replayed_events",
            "Events sent to resuming clients.",
            _number(manager, "replayed_events") or _number(manager, "replayed"),
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
            _number(bridge, "subscriber_restarts"),
        )
        yield counter(
            "osism_bridge_duplicates",
            "Redelivered events the log recognised and did not append again.",
            _number(bridge, "duplicates"),
        )
        yield counter(
            "osism_bridge_published",
            "Events this process published through the bridge.",
            _number(bridge, "published"),
        )
        yield gauge(
            "osism_event_queue_length",
            "Events waiting for the broadcaster.",
            _number(manager, "queued_events"),
        )


class ApiMetrics:
    """The registry of one app: its collector and the publish histogram."""

    def __init__(self, manager: StatusSource, bridge: StatusSource) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ApiCollector(manager, bridge))
        self.publish_seconds = Histogram(
            "osism_publish_seconds",
            "Time the publish endpoint took to hand an event to the bridge.",
            labelnames=["result"],
            buckets=PUBLISH_BUCKETS,
            registry=self.registry,
        )
