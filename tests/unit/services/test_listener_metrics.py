"""The listener's counters per service, its collector, and its small server."""

import errno
import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from typing import Dict, Iterator, List, NamedTuple, Tuple

import pytest
from kombu import Connection
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osism.services.listener.consumer import ListenerConfig, NotificationListener
from osism.services.listener.metrics import (
    ListenerMetrics,
    MetricsServer,
    start_from_env,
)
from tests.conftest import wait_until
from tests.unit.services.test_listener import (
    IRONIC_PAYLOAD,
    LOGGER,
    FakeBridge,
    FakeMessage,
    Waits,
    envelope,
    make_listener,
)

pytestmark = pytest.mark.usefixtures("bounded_stop_event")

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


def counted(metrics: ListenerMetrics, outcome: str, service: str) -> float:
    """What /metrics says of one outcome of one service."""
    return scraped(metrics)[(f"osism_listener_messages_{outcome}_total", service)]


class TestCounters:
    def test_every_outcome_of_a_configured_service_starts_at_zero(self) -> None:
        found = scraped(ListenerMetrics({"ironic": "ironic", "nova": "nova"}))
        for outcome in ("consumed", "acked", "requeued", "rejected"):
            for service in ("ironic", "nova"):
                assert found[(f"osism_listener_messages_{outcome}_total", service)] == 0
        assert found[("osism_listener_ready", "")] == 0

    def test_every_family_says_what_it_counts(self) -> None:
        registry = CollectorRegistry()
        registry.register(ListenerMetrics())
        text = generate_latest(registry).decode()
        assert {
            family.name: family.documentation
            for family in text_string_to_metric_families(text)
        } == {
            "osism_listener_messages_consumed": (
                "Notifications consumed by the listener, per service."
            ),
            "osism_listener_messages_acked": (
                "Notifications acked by the listener, per service."
            ),
            "osism_listener_messages_requeued": (
                "Notifications requeued by the listener, per service."
            ),
            "osism_listener_messages_rejected": (
                "Notifications rejected by the listener, per service."
            ),
            "osism_listener_ready": "1 while the listener consumes from RabbitMQ.",
        }

    def test_an_unknown_exchange_counts_under_its_own_name(self) -> None:
        metrics = ListenerMetrics({"ironic": "ironic"})
        metrics.count("other", "consumed")
        metrics.count("", "consumed")
        assert counted(metrics, "consumed", "other") == 1
        assert counted(metrics, "consumed", "unknown") == 1


class TestListenerHooks:
    def test_ack_requeue_and_reject_are_counted_per_service(self) -> None:
        listener, _ = make_listener(FakeBridge(True, False, True))
        for body in (NOTIFICATION, NOTIFICATION, NOTIFICATION, "not json"):
            raw = envelope(body) if isinstance(body, dict) else b"not json"
            listener.on_message(FakeMessage(raw))

        # The second one is refused once, kept and offered again, then taken.
        found = scraped(listener.metrics)
        assert found[("osism_listener_messages_consumed_total", "ironic")] == 4
        assert found[("osism_listener_messages_acked_total", "ironic")] == 3
        assert found[("osism_listener_messages_requeued_total", "ironic")] == 1
        assert found[("osism_listener_messages_rejected_total", "ironic")] == 1

    def test_a_new_listener_exports_zero_for_every_configured_service(self) -> None:
        config = ListenerConfig.from_env({"LISTENER_SERVICES": "nova,glance"})
        listener, _ = make_listener(FakeBridge(), config)
        found = scraped(listener.metrics)
        for outcome in ("consumed", "acked", "requeued", "rejected"):
            for service in ("nova", "glance"):
                assert found[(f"osism_listener_messages_{outcome}_total", service)] == 0

    def test_a_custom_exchange_counts_under_its_service(self) -> None:
        config = ListenerConfig.from_env(
            {"LISTENER_SERVICES": "nova", "LISTENER_NOVA_EXCHANGE": "openstack"}
        )
        listener, _ = make_listener(FakeBridge(), config)
        message = FakeMessage(envelope(NOTIFICATION))
        message.delivery_info = {"exchange": "openstack", "routing_key": "x.info"}
        listener.on_message(message)
        assert counted(listener.metrics, "acked", "nova") == 1
        assert ("osism_listener_messages_acked_total", "openstack") not in scraped(
            listener.metrics
        )

    def test_ready_while_consuming_not_after_a_connection_error(self) -> None:
        listener, _ = make_listener(FakeBridge())
        listener.on_consume_ready(None, None, [])
        assert listener.metrics.ready is True
        listener.on_connection_error(OSError("gone"), 1.0)
        assert listener.metrics.ready is False

    def test_not_ready_while_waiting_to_restart_after_a_failure(self) -> None:
        ready_while_waiting: List[bool] = []
        config = ListenerConfig(reconnect_max_delay=1.0)

        stopped = Waits(stop_at=1)

        def wait(delay: float) -> bool:
            ready_while_waiting.append(listener.metrics.ready)
            return stopped(delay)

        listener = NotificationListener(
            Connection("memory://"), FakeBridge(), config, wait=wait
        )

        def run() -> None:
            listener.on_consume_ready(None, None, [])
            raise RuntimeError("bug")

        listener.run = run  # type: ignore[method-assign]
        listener.serve()
        assert ready_while_waiting == [False]
        assert scraped(listener.metrics)[("osism_listener_ready", "")] == 0


class TestServer:
    def test_off_unless_a_port_is_set(self) -> None:
        metrics = ListenerMetrics()
        assert start_from_env(metrics, env={}) is None
        assert start_from_env(metrics, env={"LISTENER_METRICS_PORT": "0"}) is None

    def test_serves_the_given_metrics_on_the_configured_address(
        self, free_port: int
    ) -> None:
        metrics = ListenerMetrics({"nova": "nova"})
        env = {
            "LISTENER_METRICS_PORT": str(free_port),
            "LISTENER_METRICS_HOST": "127.0.0.1",
        }
        server = start_from_env(metrics, env=env)
        assert server is not None
        try:
            status, _, body = get(f"http://127.0.0.1:{free_port}/metrics")
        finally:
            server.stop()
        assert status == 200
        assert b'osism_listener_messages_acked_total{service="nova"} 0.0' in body

    def test_a_port_in_use_is_logged_not_fatal(
        self, busy_port: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        env = {
            "LISTENER_METRICS_PORT": str(busy_port),
            "LISTENER_METRICS_HOST": "127.0.0.1",
        }
        with caplog.at_level(logging.ERROR, LOGGER):
            assert start_from_env(ListenerMetrics(), env=env) is None
        assert [r.getMessage() for r in caplog.records] == [
            f"Cannot serve listener metrics on 127.0.0.1:{busy_port}: "
            f"[Errno {errno.EADDRINUSE}] {os.strerror(errno.EADDRINUSE)}; "
            "running without them"
        ]

    def test_binds_every_interface_unless_a_host_is_set(
        self, busy_port: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, LOGGER):
            start_from_env(
                ListenerMetrics(), env={"LISTENER_METRICS_PORT": str(busy_port)}
            )
        assert f"on 0.0.0.0:{busy_port}: " in caplog.text

    def test_reads_the_process_environment_by_default(
        self,
        busy_port: int,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setenv("LISTENER_METRICS_PORT", str(busy_port))
        monkeypatch.setenv("LISTENER_METRICS_HOST", "127.0.0.1")
        with caplog.at_level(logging.ERROR, LOGGER):
            assert start_from_env(ListenerMetrics()) is None
        assert f"Cannot serve listener metrics on 127.0.0.1:{busy_port}" in caplog.text


class Served(NamedTuple):
    metrics: ListenerMetrics
    base: str
    port: int
    started: List[str]  # what was logged on start


def get(url: str) -> Tuple[int, Dict[str, str], bytes]:
    """Status, headers and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class TestHttp:
    """A server on a loopback port per test."""

    @pytest.fixture
    def served(self) -> Iterator[Served]:
        metrics = ListenerMetrics({"nova": "nova"})
        metrics.count("nova", "acked")
        server = MetricsServer(metrics, "127.0.0.1", 0)
        started: List[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: started.append(  # type: ignore[method-assign]
            record.getMessage()
        )
        logger = logging.getLogger(LOGGER)
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            server.start()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        try:
            yield Served(
                metrics, f"http://127.0.0.1:{server.port}", server.port, started
            )
        finally:
            server.stop()

    def test_the_start_is_logged_with_the_address(self, served: Served) -> None:
        assert served.started == [
            f"Listener metrics on http://127.0.0.1:{served.port}/metrics "
            "(readiness at /ready)"
        ]

    def test_serves_from_a_daemon_thread_named_for_it(self, served: Served) -> None:
        (thread,) = [
            t for t in threading.enumerate() if t.name == "osism-listener-metrics"
        ]
        assert thread.daemon is True

    @pytest.mark.parametrize("query", ["", "?name[]=x", "?a=1?b=2"])
    def test_metrics_in_prometheus_text(self, served: Served, query: str) -> None:
        status, headers, body = get(f"{served.base}/metrics{query}")
        assert status == 200
        assert headers["Content-Type"] == CONTENT_TYPE_LATEST
        assert headers["Content-Length"] == str(len(body))
        assert b'osism_listener_messages_acked_total{service="nova"} 1.0' in body

    @pytest.mark.parametrize(
        "ready, status", [(False, 503), (True, 200)], ids=["not-ready", "ready"]
    )
    def test_ready_says_whether_the_listener_consumes(
        self, served: Served, ready: bool, status: int
    ) -> None:
        served.metrics.set_ready(ready)
        answer = get(f"{served.base}/ready?probe=1")
        body = json.dumps({"ready": ready}).encode()
        assert answer == (
            status,
            {**answer[1], "Content-Type": "application/json"},
            body,
        )
        assert answer[1]["Content-Length"] == str(len(body))

    def test_any_other_path_is_not_found(self, served: Served) -> None:
        status, headers, body = get(f"{served.base}/nothing")
        assert (status, json.loads(body)) == (404, {"detail": "not found"})
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Length"] == str(len(body))

    def test_requests_are_logged_at_debug_level(
        self, served: Served, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, LOGGER):
            get(f"{served.base}/nothing")
        assert [
            (r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER
        ] == [(logging.DEBUG, 'metrics: "GET /nothing HTTP/1.1" 404 -')]


class TestStop:
    def test_ends_the_serving_thread(self) -> None:
        server = MetricsServer(ListenerMetrics(), "127.0.0.1", 0)
        server.start()
        server.stop()
        wait_until(
            lambda: all(
                t.name != "osism-listener-metrics" for t in threading.enumerate()
            )
        )

    def test_does_not_wait_for_a_client_that_sends_nothing(self) -> None:
        server = MetricsServer(ListenerMetrics(), "127.0.0.1", 0)
        server.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            stopping = threading.Thread(target=server.stop, name="test-stop")
            stopping.start()
            stopping.join(timeout=3)
            stopped = not stopping.is_alive()
        stopping.join(timeout=5)  # the client is gone: its request ends
        assert stopped
