"""Finding Redis: the quiet probe, the watcher of an API process started
without it, and closing a subscription.

Functions that take what they need (the shutdown Event, a callable that
switches the bridge to Redis, a lock) and return what happened; the bridge
(event_bridge.py) owns the connection and the threads.
"""

import logging
import threading
from enum import Enum, auto
from typing import Any, Callable, List, Optional

from osism import settings
from osism.core.backoff import Backoff
from osism.services.bridge.redis_client import (
    RedisSettings,
    create_client,
    explain,
    needs_attention,
)

logger = logging.getLogger("osism.event_bridge")

# The default channel (EventBridge(channel=...) names another).
CHANNEL = settings.EVENTS_PREFIX

Report = Callable[[BaseException, str], None]


class WatchEnd(Enum):
    """Why ``watch_for_redis`` returned."""

    SWITCHED = auto()  # Redis answered and the bridge uses it now
    SHUTDOWN = auto()  # the bridge shut down first


def close_pubsub(
    subscriber: Optional[Any], lock: threading.Lock
) -> Optional[Exception]:
    """Close a PubSub (None: nothing to close); the error, if it failed.

    shutdown() may close the subscriber while its thread closes it too, and
    redis-py's PubSub.close() is not safe to run twice at once: ``lock``
    makes the two take turns.
    """
    if subscriber is None:
        return None
    try:
        with lock:
            subscriber.close()
    except Exception as exc:
        return exc
    return None


def watch_for_redis(
    shutdown: threading.Event,
    switch: Callable[[], bool],
    min_delay: float,
    max_delay: float,
) -> WatchEnd:
    """Look for Redis at once, then after a capped back-off each time, until
    it answers a quiet probe and ``switch`` (connect the bridge to it) says
    True, or ``shutdown`` is set."""
    where = RedisSettings.from_env().describe()
    backoff = Backoff(min_delay, max_delay)
    problem: List[str] = []

    def report(exc: BaseException, reason: str) -> None:
        # Redis refused us or TLS failed: say so (again when it changes).
        if needs_attention(exc) and problem != [reason]:
            problem[:] = [reason]
            logger.error(
                "%s; events stay in this process (embedded mode), trying "
                "again in the background",
                reason,
            )

    def found() -> bool:
        if not _redis_answers(report) or not switch():
            return False
        logger.info("Redis at %s answers: events go through it", where)
        return True

    if shutdown.is_set():
        return WatchEnd.SHUTDOWN
    if found():
        return WatchEnd.SWITCHED
    logger.info(
        "No Redis answers at %s: events stay in this process "
        "(embedded mode). Set REDIS_HOST/REDIS_PORT/REDIS_DB, REDIS_URL "
        "or REDIS_SENTINELS to share them with the listener and other "
        "API processes; "
        "looking for Redis there in the background",
        where,
    )
    while not shutdown.wait(backoff.next()):
        if found():
            return WatchEnd.SWITCHED
    return WatchEnd.SHUTDOWN


def _redis_answers(report: Optional[Report] = None) -> bool:
    """A quiet, quick check (one try, no retries, no error log) for the watcher;
    ``report`` hears why it failed."""
    cfg = RedisSettings.from_env()
    try:
        client = create_client(cfg, probe=True)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:
        reason = explain(exc, cfg)
        logger.debug("Redis does not answer yet: %s", reason)
        if report is not None:
            report(exc, reason)
        return False
