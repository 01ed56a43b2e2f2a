"""The listener process: signals, the consumer thread, an orderly stop.

``run`` is what ``osism listener`` runs: it connects the bridge, starts the
consumer (consumer.NotificationListener) in a thread, waits until SIGTERM or
SIGINT or until the consumer ends, then stops it and shuts the bridge down.
"""

import logging
import signal
import threading
from types import FrameType
from typing import Any, Dict, Optional

from kombu import Connection

from osism import config as model
from osism.services.listener.config import ListenerConfig
from osism.services.listener.consumer import NotificationListener
from osism.services.listener.handover import EventSink
from osism.services.listener.metrics import start as start_metrics_server

logger = logging.getLogger("osism.listener")

JOIN_TIMEOUT = 10.0
POLL_INTERVAL = 0.5


def install_signal_handlers(listener: NotificationListener) -> Dict[int, Any]:
    """Stop ``listener`` on SIGTERM and SIGINT; returns the previous handlers."""

    def handle(signum: int, frame: Optional[FrameType]) -> None:
        logger.info("Received %s, stopping", signal.Signals(signum).name)
        listener.stop()

    previous: Dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handle)
    return previous


def run(
    config: Optional[ListenerConfig] = None,
    bridge: Optional[EventSink] = None,
    settings: Optional[model.Settings] = None,
) -> int:
    """Run the listener until SIGTERM or SIGINT; 0 after a requested stop.

    ``settings``: the checked settings (read from the environment when not
    given; ConfigError if they cannot be used); ``config`` and the metrics
    server come from them unless ``config`` is given.
    """
    settings = model.load() if settings is None else settings
    config = ListenerConfig.of(settings.listener) if config is None else config
    if bridge is None:
        from osism.services.event_bridge import event_bridge

        bridge = event_bridge
    amqp_logger = logging.getLogger("amqp")
    if amqp_logger.level == logging.NOTSET:
        # py-amqp logs every heartbeat tick at DEBUG, once a second; keep
        # --log-level debug about our messages unless amqp's level was set.
        amqp_logger.setLevel(logging.INFO)
    logger.info("Listener starting\n%s", config.describe())
    listener = NotificationListener(Connection(config.url), bridge, config)
    # Installed first, so a stop during the (retrying) Redis connect is clean.
    previous = install_signal_handlers(listener)
    thread = threading.Thread(target=listener.serve, name="osism-listener", daemon=True)
    metrics_server = start_metrics_server(listener.metrics, settings.metrics)
    try:
        if not bridge.use_redis():
            logger.warning(
                "Redis does not answer yet; notifications wait in RabbitMQ "
                "until it does"
            )
        thread.start()
        while thread.is_alive() and not listener.wait_stopped(POLL_INTERVAL):
            pass
        requested = listener.should_stop
        listener.stop()
        thread.join(JOIN_TIMEOUT)
        stopped = not thread.is_alive()
        if not stopped:
            logger.error("Listener did not stop within %.0f s", JOIN_TIMEOUT)
        elif not requested:
            logger.error("Listener ended without being asked to")
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        bridge.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    logger.info("Listener exiting")
    return 0 if requested and stopped else 1
