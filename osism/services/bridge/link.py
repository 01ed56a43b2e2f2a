"""The bridge's side of Redis: appending to the log, closing subscribers, and
the watcher that looks for Redis from an API process started without it.

A mixin of ``EventBridge`` (event_bridge.py), which owns the attributes.
"""

import logging
import threading
from typing import Any, Callable, List, Optional

import redis

from osism import settings
from osism.core.backoff import Backoff
from osism.core.event_log import Envelope
from osism.core.ratelimit import RateLimitedLog
from osism.services.bridge.counter import Counter
from osism.services.bridge.redis_client import (
    RedisSettings,
    create_client,
    explain,
    needs_attention,
)
from osism.services.bridge.redis_log import RedisEventLog

logger = logging.getLogger("osism.event_bridge")

# The default channel (EventBridge(channel=...) names another).
CHANNEL = settings.EVENTS_PREFIX


class RedisLink:
    """Appending to the Redis log; closing subscribers; watching for Redis."""

    RESTART_MIN_DELAY = 1.0

    _redis_client: Optional[Any]
    _redis_subscriber: Optional[Any]
    _redis_log: Optional[RedisEventLog]
    _close_lock: threading.Lock
    _redis_lock: threading.RLock
    _shutdown_event: threading.Event
    _websocket_manager: Optional[Any]
    _subscriber_thread: Optional[threading.Thread]
    _down_log: RateLimitedLog
    _published: Counter
    # EventBridge's
    _init_redis: Callable[[], None]
    _connect_redis: Callable[[], Optional[RedisEventLog]]
    _start_redis_subscriber: Callable[[], None]

    def _append_to_redis(self, envelope: Envelope) -> bool:
        log = self._redis_log if self._redis_client is not None else None
        if log is None:
            log = self._reconnect()
            if log is None:
                return False
        try:
            entry = log.append(envelope)
        except redis.ConnectionError as exc:
            logger.warning(
                "Failed to publish event to Redis: %s (%s); reconnecting",
                exc,
                envelope["event_type"],
            )
            log = self._reconnect()
            if log is None:
                return False
            try:
                entry = log.append(envelope)
            except redis.RedisError as again:
                logger.warning("Redis reconnection failed: %s; event not taken", again)
                return False
            logger.info(
                "Published event to Redis after reconnect: %s (%s)",
                envelope["event_type"],
                envelope["id"],
            )
        except redis.RedisError as exc:
            self._down_log.warning(
                "Failed to publish event to Redis: %s (%s); not taken",
                exc,
                envelope["event_type"],
            )
            return False
        if entry is not None:
            self._published.add()
            if log.receivers == 0:
                # Nothing lost: the event is in the log for every subscriber
                # that catches up (per event, so DEBUG).
                logger.debug(
                    "No Redis subscribers for event: %s; it is in the log",
                    envelope["event_type"],
                )
            logger.debug(
                "Published event to Redis: %s (subscribers: %d), logged as %s at %s",
                envelope["event_type"],
                log.receivers,
                entry.event.get("id"),
                entry.position,
            )
        return entry is not None

    def _reconnect(self) -> Optional[RedisEventLog]:
        """Connect again for a publisher; None while Redis does not answer.

        A thread that is (re)connecting already holds the lock: waiting for
        it could add its timeout to ours, so the caller gets None at once.
        """
        if not self._redis_lock.acquire(blocking=False):
            return None
        try:
            return self._connect_redis()
        finally:
            self._redis_lock.release()

    def _close_subscriber(self) -> None:
        subscriber, self._redis_subscriber = self._redis_subscriber, None
        error = self._close_pubsub(subscriber)
        if error is not None:
            logger.debug("Closing the old Redis subscriber failed: %s", error)

    def _close_pubsub(self, subscriber: Optional[Any]) -> Optional[Exception]:
        """Close a PubSub (None: nothing to close); the error, if it failed.

        shutdown() may close the subscriber while its thread closes it too, and
        redis-py's PubSub.close() is not safe to run twice at once.
        """
        if subscriber is None:
            return None
        try:
            with self._close_lock:
                subscriber.close()
        except Exception as exc:
            return exc
        return None

    def _watch_redis(self) -> None:
        where = RedisSettings.from_env().describe()
        backoff = Backoff(self.RESTART_MIN_DELAY, settings.SUBSCRIBER_RESTART_MAX_DELAY)
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

        if self._shutdown_event.is_set() or self._switch_to_redis(report, where):
            return
        logger.info(
            "No Redis answers at %s: events stay in this process "
            "(embedded mode). Set REDIS_HOST/REDIS_PORT/REDIS_DB, REDIS_URL "
            "or REDIS_SENTINELS to share them with the listener and other "
            "API processes; "
            "looking for Redis there in the background",
            where,
        )
        while not self._shutdown_event.wait(backoff.next()):
            if self._switch_to_redis(report, where):
                return

    def _switch_to_redis(
        self, report: Callable[[BaseException, str], None], where: str
    ) -> bool:
        """Once Redis answers the watcher's probe: connect, subscribe when a
        manager waits for events; True when events go through Redis now."""
        if not _redis_answers(report):
            return False
        self._init_redis()
        if self._redis_client is None:
            return False
        if self._websocket_manager is not None and self._subscriber_thread is None:
            self._start_redis_subscriber()
        logger.info("Redis at %s answers: events go through it", where)
        return True


def _redis_answers(
    report: Optional[Callable[[BaseException, str], None]] = None,
) -> bool:
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


def _alive(thread: Optional[threading.Thread]) -> bool:
    return thread is not None and thread.is_alive()
