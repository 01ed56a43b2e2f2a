"""Bridge between the processes of the event stream, over Redis pub/sub.

A publisher (the listener, or the API's POST endpoint) calls ``add_event``; the
event is published on the Redis channel ``osism:events``. Every API process
subscribes to that channel in a thread and hands each event to its WebSocket
manager. Without a reachable Redis, events stay in this process: a bounded
local queue, drained by a processor thread into the manager, or, in a process
without a manager, forwarded to Redis once it is back.

Threads and asyncio meet in exactly one place, ``_process_single_event``.
"""

import asyncio
import json
import logging
import queue
import threading
import time
from typing import Any, Dict, Optional

from osism import settings
from osism.services.ratelimit import RateLimitedLog

try:
    import redis

    from osism.services.redis_connection import (
        RedisSettings,
        create_client,
        explain,
    )

    REDIS_AVAILABLE = True
except ImportError:  # pragma: no cover - redis is a runtime requirement
    redis = None  # type: ignore[assignment]
    REDIS_AVAILABLE = False

logger = logging.getLogger("osism.event_bridge")

CHANNEL = "osism:events"
# Put on the local queue at shutdown so that its reader wakes up at once.
_WAKE: Dict[str, Any] = {}


class EventBridge:
    """Publishes events on Redis and feeds the ones it receives to a manager."""

    SUBSCRIBE_MAX_RETRIES = 5
    SUBSCRIBE_RETRY_DELAY = settings.env_float("SUBSCRIBER_RETRY_DELAY", 5.0)
    RESTART_MIN_DELAY = 1.0
    FORWARD_MIN_DELAY = 0.5

    def __init__(self, connect: bool = True, queue_size: Optional[int] = None) -> None:
        self._redis_client: Optional[Any] = None
        self._redis_subscriber: Optional[Any] = None
        size = settings.BRIDGE_QUEUE_SIZE if queue_size is None else queue_size
        self._event_queue: "queue.Queue[Dict[str, Any]]" = queue.Queue(maxsize=size)
        self._shutdown_event = threading.Event()
        self._websocket_manager: Optional[Any] = None
        self._processor_thread: Optional[threading.Thread] = None
        self._subscriber_thread: Optional[threading.Thread] = None
        self._forwarder_thread: Optional[threading.Thread] = None
        self._watcher_thread: Optional[threading.Thread] = None
        self._redis_lock = threading.RLock()
        self._close_lock = threading.Lock()
        self._subscribed = False
        self.dropped_events = 0
        self.published = 0
        self.subscriber_restarts = 0
        self._drop_log = RateLimitedLog(logger, interval=10.0)
        self._no_subscriber_log = RateLimitedLog(logger, interval=60.0)
        if connect:
            self._init_redis()

    def connect(self) -> bool:
        """Connect to Redis now; True when it answered."""
        self._init_redis()
        return self._redis_client is not None

    def set_websocket_manager(self, manager: Any) -> None:
        """Deliver events to ``manager`` and start the threads that do it."""
        self._websocket_manager = manager
        self._shutdown_event.clear()
        if self._redis_client and self._subscriber_thread is None:
            self._start_redis_subscriber()
        thread = self._processor_thread
        if thread is None or not thread.is_alive():
            self._start_processor_thread()
        logger.info("Event bridge delivering to the WebSocket manager")

    def start_forwarding(self) -> None:
        """In a process without a manager: publish locally held events later."""
        self._shutdown_event.clear()
        thread = self._forwarder_thread
        if thread is None or not thread.is_alive():
            self._forwarder_thread = threading.Thread(
                target=self._forward_events, name="osism-bridge-forwarder", daemon=True
            )
            self._forwarder_thread.start()

    def watch_for_redis(self) -> None:
        """Without Redis: keep looking for it, and subscribe once it answers.

        An API process that started while Redis was down would otherwise stay
        on its in-process bridge and miss every event of the other processes.
        """
        self._shutdown_event.clear()
        if self._redis_client is not None or _alive(self._watcher_thread):
            return
        self._watcher_thread = threading.Thread(
            target=self._watch_redis, name="osism-redis-watcher", daemon=True
        )
        self._watcher_thread.start()

    def add_event(self, event_type: str, payload: Any) -> bool:
        """Publish an event; True once it is published or held locally."""
        try:
            event = {"event_type": event_type, "payload": payload}
            message = json.dumps(event)
            client = self._redis_client
            if client is not None and not self._backlog_pending():
                if self._publish(client, message, event_type):
                    return True
                self._init_redis(with_subscriber=False)
                client = self._redis_client
                if client is not None and self._publish(client, message, event_type):
                    logger.info("Published %s after reconnecting to Redis", event_type)
                    return True
            return self._queue_locally(event)
        except Exception as exc:
            logger.error("Error adding event %r: %s; event dropped", event_type, exc)
            return False

    def shutdown(self) -> None:
        """Stop every thread this bridge started and close its Redis subscriber."""
        logger.info("Shutting down event bridge")
        self._shutdown_event.set()
        self._wake_queue_reader()
        error = self._close_pubsub(self._redis_subscriber)
        if error is not None:
            logger.error("Error closing Redis subscriber: %s", error)
        for thread in (
            self._subscriber_thread,
            self._processor_thread,
            self._forwarder_thread,
            self._watcher_thread,
        ):
            if thread is not None and thread.is_alive():
                thread.join(timeout=5.0)
        self._subscriber_thread = None
        self._processor_thread = None
        self._forwarder_thread = None
        self._watcher_thread = None
        wakes = sum(1 for event in list(self._event_queue.queue) if event is _WAKE)
        pending = self._event_queue.unfinished_tasks - wakes
        if pending and self._websocket_manager is None:
            logger.warning("%d events were not forwarded to Redis", pending)

    def status(self) -> Dict[str, Any]:
        return {
            "mode": "redis" if self._redis_client is not None else "local",
            "redis": _redis_where(),
            "subscribed": self._subscribed,
            "subscriber_alive": _alive(self._subscriber_thread),
            "processor_alive": _alive(self._processor_thread),
            "forwarder_alive": _alive(self._forwarder_thread),
            "watching_for_redis": _alive(self._watcher_thread),
            "subscriber_restarts": self.subscriber_restarts,
            "local_queue": self._event_queue.qsize(),
            "local_queue_size": self._event_queue.maxsize,
            "published": self.published,
            "dropped_events": self.dropped_events,
        }

    def _init_redis(self, with_subscriber: bool = True) -> None:
        if not REDIS_AVAILABLE:
            logger.warning("Python package redis not available; events stay local")
            return
        with self._redis_lock:
            config: Optional[RedisSettings] = None
            try:
                config = RedisSettings.from_env()
                client = create_client(config)
                client.ping()
                self._redis_client = client
                if with_subscriber:
                    self._close_subscriber()
                    self._redis_subscriber = client.pubsub()
                logger.info("Connected to Redis at %s", config.describe())
            except Exception as exc:
                logger.error(
                    "%s; events stay in this process, connecting is tried again",
                    explain(exc, config),
                )
                self._redis_client = None
                if with_subscriber:
                    self._close_subscriber()

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

    def _start_redis_subscriber(self) -> None:
        self._subscriber_thread = threading.Thread(
            target=self._supervise_subscriber,
            name="osism-redis-subscriber",
            daemon=True,
        )
        self._subscriber_thread.start()

    def _start_processor_thread(self) -> None:
        self._processor_thread = threading.Thread(
            target=self._process_events, name="osism-bridge-processor", daemon=True
        )
        self._processor_thread.start()

    def _supervise_subscriber(self) -> None:
        """Run the subscriber loop; after it gives up, start it again, backing off."""
        delay = self.RESTART_MIN_DELAY
        while not self._shutdown_event.is_set():
            started = time.monotonic()
            self._redis_subscriber_loop()
            if self._shutdown_event.is_set():
                break
            if time.monotonic() - started > 2 * settings.SUBSCRIBER_RESTART_MAX_DELAY:
                delay = self.RESTART_MIN_DELAY
            self.subscriber_restarts += 1
            logger.warning(
                "Redis subscriber stopped; starting it again in %.1f s (restart %d)",
                delay,
                self.subscriber_restarts,
            )
            if self._shutdown_event.wait(delay):
                break
            delay = min(delay * 2, settings.SUBSCRIBER_RESTART_MAX_DELAY)
            self._init_redis()
        logger.info("Redis subscriber stopped for shutdown")

    def _redis_subscriber_loop(self) -> None:
        if self._redis_subscriber is None:
            logger.error("Redis subscriber not initialized; not subscribing")
            return
        retry_count = 0
        try:
            while (
                not self._shutdown_event.is_set()
                and retry_count < self.SUBSCRIBE_MAX_RETRIES
            ):
                try:
                    subscriber = self._redis_subscriber
                    if subscriber is None:
                        raise ConnectionError("no connection to Redis")
                    subscriber.subscribe(CHANNEL)
                    self._subscribed = True
                    retry_count = 0
                    logger.info("Subscribed to Redis channel %s", CHANNEL)
                    while not self._shutdown_event.is_set():
                        message = subscriber.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._handle_message(message["data"])
                except Exception as exc:
                    self._subscribed = False
                    retry_count += 1
                    if self._shutdown_event.is_set():
                        break
                    logger.error(
                        "Redis subscription failed (%d/%d): %s; retrying in %.1f s",
                        retry_count,
                        self.SUBSCRIBE_MAX_RETRIES,
                        exc,
                        self.SUBSCRIBE_RETRY_DELAY,
                    )
                    if retry_count < self.SUBSCRIBE_MAX_RETRIES:
                        if self._shutdown_event.wait(self.SUBSCRIBE_RETRY_DELAY):
                            break
                        self._init_redis()
            if retry_count >= self.SUBSCRIBE_MAX_RETRIES:
                logger.error("Max Redis reconnection attempts reached, giving up")
        finally:
            self._subscribed = False
            error = self._close_pubsub(self._redis_subscriber)
            if error is not None:
                logger.debug("Closing Redis subscriber failed: %s", error)

    def _handle_message(self, data: str) -> None:
        try:
            event_data = json.loads(data)
            if self._websocket_manager is not None:
                self._process_single_event(event_data)
            else:
                self._queue_locally(event_data)
        except json.JSONDecodeError as exc:
            logger.error("Invalid JSON on %s: %s; message skipped", CHANNEL, exc)
        except Exception as exc:
            logger.error("Error processing Redis event: %s; message skipped", exc)

    def _process_single_event(self, event_data: Dict[str, Any]) -> None:
        manager = self._websocket_manager
        if manager is None:
            logger.warning("No WebSocket manager available; event dropped")
            return
        event_type = event_data.get("event_type", "")
        payload = event_data.get("payload", {})
        loop = getattr(manager, "loop", None)
        if (
            isinstance(loop, asyncio.AbstractEventLoop)
            and loop.is_running()
            and not loop.is_closed()
        ):
            # The one place where threads meet asyncio: this runs in a bridge
            # thread, the manager lives on its broadcaster's loop. The work is
            # handed to that loop and runs there; this thread does not wait.
            loop.call_soon_threadsafe(manager.add_notification, event_type, payload)
            return
        # No broadcaster loop exists yet, so nothing else touches the manager:
        # a private loop may drive the coroutine.
        private_loop = asyncio.new_event_loop()
        try:
            private_loop.run_until_complete(
                manager.broadcast_event_from_notification(event_type, payload)
            )
        except Exception as exc:
            logger.error("Error broadcasting %r: %s", event_type, exc)
        finally:
            private_loop.close()

    def _process_events(self) -> None:
        while not self._shutdown_event.is_set():
            try:
                event_data = self._event_queue.get(timeout=1.0)
            except queue.Empty:
                continue
            if event_data is _WAKE:
                self._event_queue.task_done()
                continue
            try:
                self._process_single_event(event_data)
            except Exception as exc:
                logger.error("Error processing local event: %s; continuing", exc)
            finally:
                self._event_queue.task_done()

    def _watch_redis(self) -> None:
        delay = self.RESTART_MIN_DELAY
        while not self._shutdown_event.wait(delay):
            if _redis_answers():
                self._init_redis()
                if self._redis_client is not None:
                    if (
                        self._websocket_manager is not None
                        and self._subscriber_thread is None
                    ):
                        self._start_redis_subscriber()
                    logger.info("Redis answers now: events go through it")
                    return
            delay = min(delay * 2, settings.SUBSCRIBER_RESTART_MAX_DELAY)

    def _forward_events(self) -> None:
        """Publish locally held events, oldest first, whenever Redis is there."""
        pending: Optional[Dict[str, Any]] = None
        delay = self.FORWARD_MIN_DELAY
        while not self._shutdown_event.is_set():
            if pending is None:
                try:
                    pending = self._event_queue.get(timeout=1.0)
                except queue.Empty:
                    continue
                if pending is _WAKE:
                    self._event_queue.task_done()
                    pending = None
                    continue
            if self._forward(pending):
                self._event_queue.task_done()
                pending = None
                delay = self.FORWARD_MIN_DELAY
            elif self._shutdown_event.wait(delay):
                break
            else:
                delay = min(delay * 2, settings.SUBSCRIBER_RESTART_MAX_DELAY)

    def _forward(self, event: Dict[str, Any]) -> bool:
        client = self._redis_client
        if client is None:
            self._init_redis(with_subscriber=False)
            client = self._redis_client
            if client is None:
                return False
        event_type = str(event.get("event_type"))
        receivers = self._send(client, json.dumps(event), event_type)
        if receivers is None:
            self._redis_client = None
            return False
        if receivers == 0:
            # Redis keeps no pub/sub message for later: published before an
            # API process has (re)subscribed, it reached nobody. Nobody got
            # it, so publishing it again later duplicates nothing.
            self._no_subscriber_log.warning(
                "No Redis subscribers on %s yet: holding %s until an API "
                "process subscribes",
                CHANNEL,
                event_type,
            )
            return False
        self.published += 1
        logger.debug("Forwarded %s to %s subscribers", event_type, receivers)
        return True

    def _publish(self, client: Any, message: str, event_type: str) -> bool:
        receivers = self._send(client, message, event_type)
        if receivers is None:
            return False
        self.published += 1
        if receivers > 0:
            logger.debug("Published %s to %d subscribers", event_type, receivers)
        else:
            self._no_subscriber_log.warning(
                "No Redis subscribers on %s: %s reached no API process",
                CHANNEL,
                event_type,
            )
        return True

    def _send(self, client: Any, message: str, event_type: str) -> Optional[int]:
        """PUBLISH on the channel: how many subscribers heard it, None on failure."""
        try:
            receivers: int = client.publish(CHANNEL, message)
        except Exception as exc:
            logger.warning("Publishing %s to Redis failed: %s", event_type, exc)
            return None
        return receivers

    def _queue_locally(self, event: Dict[str, Any]) -> bool:
        """Hold an event in the bounded local queue, dropping the oldest if full."""
        try:
            self._event_queue.put_nowait(event)
            logger.debug("Queued %s locally", event.get("event_type"))
            return True
        except queue.Full:
            pass
        try:
            self._event_queue.get_nowait()
            self._event_queue.task_done()
            self.dropped_events += 1
            self._event_queue.put_nowait(event)
            self._drop_log.warning(
                "Local event queue full (%d): dropped the oldest event, "
                "%d dropped so far",
                self._event_queue.maxsize,
                self.dropped_events,
            )
            return True
        except (queue.Empty, queue.Full):
            self.dropped_events += 1
            self._drop_log.warning(
                "Local event queue full: dropped %s, %d dropped so far",
                event.get("event_type"),
                self.dropped_events,
            )
            return False

    def _wake_queue_reader(self) -> None:
        """Let a thread blocked on the local queue see the shutdown at once."""
        if _alive(self._processor_thread) or _alive(self._forwarder_thread):
            try:
                self._event_queue.put_nowait(_WAKE)
            except queue.Full:
                pass  # a full queue wakes its reader anyway

    def _backlog_pending(self) -> bool:
        """Whether held events must be forwarded before a new one is published."""
        return _alive(self._forwarder_thread) and self._event_queue.unfinished_tasks > 0


def _redis_where() -> str:
    """Where Redis is, secrets masked (for the status)."""
    return RedisSettings.from_env().describe()


def _redis_answers() -> bool:
    """A quiet, quick check (one try, no retries, no error log) for the watcher."""
    config: Optional[RedisSettings] = None
    try:
        config = RedisSettings.from_env()
        client = create_client(config, probe=True)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:
        logger.debug("Redis does not answer yet: %s", explain(exc, config))
        return False


def _alive(thread: Optional[threading.Thread]) -> bool:
    return thread is not None and thread.is_alive()


event_bridge = EventBridge(connect=False)
