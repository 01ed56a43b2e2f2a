"""The listener's metrics and readiness, on a port of its own.

``LISTENER_METRICS_PORT`` (0 or unset: off) starts a small HTTP server in a
daemon thread with two paths:

- ``/metrics``: Prometheus text; messages consumed, acknowledged, requeued
  and rejected per service, and whether the listener is consuming;
- ``/ready``: 200 ``{"ready": true}`` while it consumes from RabbitMQ, 503
  otherwise (before the first connection, during a reconnect).

The counters are kept by ``ListenerMetrics``; the listener calls ``count``
once per outcome, and ``set_ready`` when it starts or stops consuming.
"""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterable, Iterator, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from osism import config

logger = logging.getLogger("osism.listener")

OUTCOMES = ("consumed", "acked", "requeued", "rejected")


class ListenerMetrics(Collector):
    """Per-service message counters, thread-safe, read at scrape time."""

    def __init__(self, exchanges: Optional[Mapping[str, str]] = None) -> None:
        # exchange name -> service, to name the service of a delivery
        self._services = dict(exchanges or {})
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, str], int] = {}
        self.ready = False
        for service in set(self._services.values()):
            for outcome in OUTCOMES:
                self._counts[(service, outcome)] = 0

    def service_of(self, exchange: str) -> str:
        return self._services.get(exchange, exchange or "unknown")

    def count(self, exchange: str, outcome: str) -> None:
        key = (self.service_of(exchange), outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def set_ready(self, ready: bool) -> None:
        self.ready = ready

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = dict(self._counts)
        for outcome in OUTCOMES:
            family = CounterMetricFamily(
                f"osism_listener_messages_{outcome}",
                f"Notifications {outcome} by the listener, per service.",
                labels=["service"],
            )
            for (service, kind), value in sorted(counts.items()):
                if kind == outcome:
                    family.add_metric([service], value)
            yield family
        yield GaugeMetricFamily(
            "osism_listener_ready",
            "1 while the listener consumes from RabbitMQ.",
            value=float(self.ready),
        )


# How often the serving thread looks for a stop: stop() returns within it.
POLL_INTERVAL = 0.1


class MetricsServer:
    """``/metrics`` and ``/ready`` in a daemon thread; ``stop`` ends it."""

    def __init__(self, metrics: ListenerMetrics, host: str, port: int) -> None:
        registry = CollectorRegistry()
        registry.register(metrics)
        self._server = _HTTPServer((host, port), registry, metrics)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(POLL_INTERVAL,),  # pragma: no mutate
            name="osism-listener-metrics",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        logger.info(
            "Listener metrics on http://%s:%d/metrics (readiness at /ready)",
            self._server.server_address[0],
            self.port,
        )

    def stop(self) -> None:
        # shutdown() returns once serve_forever has returned, and would wait
        # for ever if the serving thread is not running.
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class _HTTPServer(ThreadingHTTPServer):
    # A client that sends nothing does not hold up stop().
    daemon_threads = True

    def __init__(
        self,
        address: Tuple[str, int],
        registry: CollectorRegistry,
        metrics: ListenerMetrics,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = urlsplit(self.path).path
        if path == "/metrics":
            body = generate_latest(self.server.registry)
            self._answer(200, body, CONTENT_TYPE_LATEST)
        elif path == "/ready":
            ready = self.server.metrics.ready
            body = json.dumps({"ready": ready}).encode()
            self._answer(200 if ready else 503, body, "application/json")
        else:
            self._answer(404, b'{"detail": "not found"}', "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("metrics: " + format, *args)


def start_from_env(
    metrics: ListenerMetrics, env: Optional[Mapping[str, str]] = None
) -> Optional[MetricsServer]:
    """Start the server on LISTENER_METRICS_PORT of ``env`` (the environment
    by default); None when it is 0 or unset."""
    return start(metrics, config.load_lenient(env)[0].metrics)


def start(
    metrics: ListenerMetrics, settings: config.MetricsSettings
) -> Optional[MetricsServer]:
    """Start the server the model's metrics group asks for; None when its
    port is 0 (off) or cannot be bound (logged)."""
    port, host = settings.port, settings.host
    if port == 0:
        return None
    try:
        server = MetricsServer(metrics, host, port)
    except OSError as exc:
        logger.error(
            "Cannot serve listener metrics on %s:%d: %s; running without them",
            host,
            port,
            exc,
        )
        return None
    server.start()
    return server


def exchanges_of(bindings: Iterable[object]) -> Dict[str, str]:
    """exchange -> service of the listener's bindings."""
    return {
        str(getattr(item, "exchange")): str(getattr(item, "service"))
        for item in bindings
    }
