"""The listener's counters per service, its collector, and its small server."""

import json
import urllib.error
import urllib.request
from typing import Dict, Tuple

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osism.services import listener_metrics
from osism.services.listener_metrics import (
    ListenerMetrics,
    MetricsServer,
    start_from_env,
)
from tests.unit.services.test_listener import (
    IRONIC_PAYLOAD,
    FakeBridge,
    FakeMessage,
    envelope,
    make_listener,
)

NOTIFICATION = {
    "event_type": "baremetal.node.power_set.end",
    "payload": IRONIC_PAYLOAD,
    "priority": "INFO",
    "message_id": "6f1a0e58",
}


def scraped(metrics: ListenerMetrics) -> Dict[Tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels.get("service", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class TestCounters:
    def test_every_outcome_of_a_configured_service_starts_at_zero(self) -> None:
        found = scraped(ListenerMetrics({"ironic": "ironic", "nova": "nova"}))
        for outcome in ("consumed", "acked", "requeued", "rejected"):
            for service in ("ironic", "nova"):
                assert found[(f"osism_listener_messages_{outcome}_total", service)] == 0
        assert found[("osism_listener_ready", "")] == 0

    def test_an_unknown_exchange_counts_under_its_own_name(self) -> None:
        metrics = ListenerMetrics({"ironic": "ironic"})
        metrics.count("other", "consumed")
        metrics.count("", "consumed")
        assert metrics.value("other", "consumed") == 1
        assert metrics.value("unknown", "consumed") == 1


class TestListenerHooks:
    def test_ack_requeue_and_reject_are_counted_per_service(self) -> None:
        listener, _ = make_listener(FakeBridge(True, False, True))
        for body in (NOTIFICATION, NOTIFICATION, NOTIFICATION, "not json"):
            raw = envelope(body) if isinstance(body, dict) else b"not json"
            listener.on_message(FakeMessage(raw))

        # The second one is refused once, kept and offered again, then taken.
        metrics = listener.metrics
        assert metrics.value("ironic", "consumed") == 4
        assert metrics.value("ironic", "acked") == 3
        assert metrics.value("ironic", "requeued") == 1
        assert metrics.value("ironic", "rejected") == 1
        found = scraped(metrics)
        assert found[("osism_listener_messages_acked_total", "ironic")] == 3

    def test_ready_while_consuming_not_after_a_connection_error(self) -> None:
        listener, _ = make_listener(FakeBridge())
        listener.on_consume_ready(None, None, [])
        assert listener.metrics.ready is True
        listener.on_connection_error(OSError("gone"), 1.0)
        assert listener.metrics.ready is False


class TestServer:
    def test_off_unless_a_port_is_set(self) -> None:
        metrics = ListenerMetrics()
        assert start_from_env(metrics, env={}) is None
        assert start_from_env(metrics, env={"LISTENER_METRICS_PORT": "0"}) is None

    def test_a_port_in_use_is_logged_not_fatal(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def refuse(*args: object) -> None:
            raise OSError(98, "Address already in use")

        monkeypatch.setattr(listener_metrics, "MetricsServer", refuse)
        env = {"LISTENER_METRICS_PORT": "9", "LISTENER_METRICS_HOST": "127.0.0.1"}
        assert start_from_env(ListenerMetrics(), env=env) is None
        assert "Cannot serve listener metrics on 127.0.0.1:9" in caplog.text

    def test_metrics_and_ready_over_http(self) -> None:
        metrics = ListenerMetrics({"nova": "nova"})
        metrics.count("nova", "acked")
        server = MetricsServer(metrics, "127.0.0.1", 0)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                text = response.read().decode()
            assert 'osism_listener_messages_acked_total{service="nova"} 1.0' in text
            with pytest.raises(urllib.error.HTTPError) as not_ready:
                urllib.request.urlopen(base + "/ready", timeout=5)
            assert not_ready.value.code == 503
            not_ready.value.close()
            metrics.set_ready(True)
            with urllib.request.urlopen(base + "/ready", timeout=5) as response:
                assert json.loads(response.read()) == {"ready": True}
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(base + "/nothing", timeout=5)
            assert missing.value.code == 404
            missing.value.close()
        finally:
            server.stop()
