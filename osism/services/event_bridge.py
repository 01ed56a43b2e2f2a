"""Bridge between the processes of the event stream: the event log.

A publisher (the listener, the API's POST endpoint) calls ``add_event``: the
event is appended to the log and announced on the channel in one step
(redis_log). Every API process subscribes to the channel, fills any gap from
the log after each (re)subscribe (subscription) and hands each event to its
WebSocket manager. Without Redis at start (embedded mode) the log is a
bounded history in this process (event_log.MemoryEventLog).

EventBridge owns the connection, the threads and the queue; the work is done
by parts it composes, each with its own state, given callables bound to the
bridge (so that a patch of ``_init_redis`` or a new ``_redis_subscriber``
takes effect at once) and returning what happened:

part (module)                job                          returns
---------------------------  ---------------------------  ----------------------
Publisher (bridge/publisher)  append to the Redis log,     the log took it: bool
                              reconnect once if it broke
SubscriberLoop               subscribe, catch up, live,   why it ended: LoopEnd
(bridge/subscriber)           PING, retry
Supervisor                   restart the loop after it    (counts restarts)
(bridge/supervisor)           gave up, backing off
watch_for_redis (bridge/link) probe for Redis, switch     why it ended: WatchEnd
close_pubsub (bridge/link)    close a PubSub, one closer   the error, if any
                              at a time

Who runs what:

thread                   runs                               job
-----------------------  ---------------------------------  ----------------------
the caller's (listener,  add_event -> Publisher.append or   append to the log; True
POST endpoint)           the memory log                     once the log has it
osism-redis-subscriber   _supervise_subscriber ->           Redis mode: subscribe,
                         _redis_subscriber_loop             catch up, live, retry
osism-bridge-processor   _process_events                    embedded mode only: hand
                                                            on the memory log's new
                                                            entries
osism-redis-watcher      _watch_redis -> watch_for_redis    embedded API: look for
                                                            Redis, switch to it

Threads meet asyncio in exactly one place, ``bridge.handoff.deliver_to_loop``
(called by ``_process_single_event``): it submits the event to the manager's
running loop and does not wait, or runs it on a private loop while the
manager has none, as upstream osism.

The counters that several threads touch (``dropped_events``, ``published``)
are ``bridge.counter.Counter`` objects; ``status()`` is a frozen
``BridgeStatus`` (bridge/status.py).
"""

import logging
import queue
import threading
from typing import Any, Dict, Optional

from osism import settings
from osism.core.event_log import (
    Envelope,
    LogEntry,
    MemoryEventLog,
    Replay,
    new_envelope,
)
from osism.core.ratelimit import RateLimitedLog
from osism.services.bridge.counter import Counter
from osism.services.bridge import link as bridge_link
from osism.services.bridge.handoff import Handoff, _log_failure, deliver_to_loop
from osism.services.bridge.link import CHANNEL, WatchEnd, close_pubsub, watch_for_redis
from osism.services.bridge.publisher import Publisher
from osism.services.bridge.redis_settings import RedisSettings
from osism.services.bridge.status import BridgeStatus
from osism.services.bridge.subscriber import LoopEnd, SubscriberLoop
from osism.services.bridge.supervisor import Supervisor

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from osism.services.bridge.redis_client import create_client, explain
    from osism.services.bridge.redis_log import RedisEventLog
    from osism.services.bridge.subscription import Subscription

    REDIS_AVAILABLE = True
except ImportError:  # pragma: no cover - redis is a runtime requirement
    redis = None  # type: ignore[assignment]
    REDIS_AVAILABLE = False

logger = logging.getLogger("osism.event_bridge")

__all__ = [
    "CHANNEL",
    "REDIS_AVAILABLE",
    "BridgeStatus",
    "EventBridge",
    "_log_failure",
    "event_bridge",
    "redis",
]
# Put on the hand-off queue at shutdown, so that the processor stops at once.
_WAKE: Envelope = {}


class EventBridge:
    """Appends events to the log and feeds the ones it receives to a manager."""

    # Seconds between two warnings about dropped events, and about Redis down.
    DROP_WARNING_INTERVAL = 10.0
    DOWN_WARNING_INTERVAL = 30.0
    # The subscriber: failures in a row before it gives up, seconds between
    # them; the first restart (and the watcher's first look again) after s.
    SUBSCRIBE_MAX_RETRIES = 5
    SUBSCRIBE_RETRY_DELAY = settings.SUBSCRIBER_RETRY_DELAY
    RESTART_MIN_DELAY = 1.0

    def __init__(
        self,
        connect: bool = True,
        queue_size: Optional[int] = None,
        channel: Optional[str] = None,
    ) -> None:
        # The channel it publishes and subscribes on, as upstream osism; its
        # log in Redis is named after it (redis_log), so bridges on two
        # channels share nothing.
        self.channel = settings.EVENTS_PREFIX if channel is None else channel
        self._redis_client: Optional[Any] = None
        self._redis_subscriber: Optional[Any] = None
        size = settings.BRIDGE_QUEUE_SIZE if queue_size is None else queue_size
        self._event_queue: "queue.Queue[Envelope]" = queue.Queue(maxsize=size)
        self._shutdown_event = threading.Event()
        self._websocket_manager: Optional[Any] = None
        self._processor_thread: Optional[threading.Thread] = None
        self._subscriber_thread: Optional[threading.Thread] = None
        self._watcher_thread: Optional[threading.Thread] = None
        self._redis_lock = threading.RLock()
        self._close_lock = threading.Lock()
        self._redis_settings = RedisSettings.from_env()
        # Redis mode: events go to Redis (add_event is False while it is down).
        # Only its truth is read, so None here is False.
        self._redis_mode = False  # pragma: no mutate
        self._redis_log: Optional["RedisEventLog"] = None
        self._memory_log = MemoryEventLog(
            settings.EVENT_HISTORY_SIZE,
            settings.EVENT_DEDUPE_SECONDS,
            on_append=self._hand_on_locally,
        )
        timeout = self._redis_settings.socket_timeout
        self._dropped = Counter()
        self._drop_log = RateLimitedLog(logger, self.DROP_WARNING_INTERVAL)
        self._down_log = RateLimitedLog(logger, self.DOWN_WARNING_INTERVAL)
        # The parts read the bridge's attributes and call its methods through
        # these lambdas at call time, so that what a test (or a reconnect)
        # put on the bridge is what they use.
        self._publisher = Publisher(
            current_log=lambda: (
                self._redis_log if self._redis_client is not None else None
            ),
            reconnect=lambda: self._reconnect(),
            down_log=self._down_log,
        )
        self._subscription = SubscriberLoop(
            channel=self.channel,
            feed=Subscription(interval=timeout, timeout=timeout),
            pubsub=lambda: self._redis_subscriber,
            log=lambda: self._redis_log,
            reconnect=lambda: self._init_redis(),
            deliver=lambda event: self._deliver(event),
            close=lambda pubsub: self._close_pubsub(pubsub),
        )
        self._supervisor = Supervisor(
            run_loop=lambda: self._redis_subscriber_loop(),
            reconnect=lambda: self._init_redis(),
            probe=lambda: bridge_link._redis_answers(),
        )
        if connect:
            self._init_redis()

    def connect(self) -> bool:
        """Connect to Redis now (Redis mode once it answered); True when it did."""
        self._init_redis()
        return self._redis_client is not None

    def use_redis(self) -> bool:
        """A publishing process (the listener): Redis mode, reachable or not.

        ``add_event`` answers False until Redis has the event; True: Redis
        answers now.
        """
        self._redis_mode = True
        return self._connect_redis() is not None

    @property
    def dropped_events(self) -> int:
        """Events dropped at the full hand-off queue or for want of a loop."""
        return self._dropped.value

    @property
    def published(self) -> int:
        """Events this process put in the Redis log."""
        return self._publisher.published.value

    @property
    def subscriber_restarts(self) -> int:
        """Times the subscriber was started again after it gave up."""
        return self._supervisor.restarts

    def set_websocket_manager(self, manager: Any) -> None:
        """Deliver events to ``manager`` and start the threads that do it:
        the subscriber in Redis mode, the processor in embedded mode (the
        only mode where it has work: the memory log's new entries)."""
        self._websocket_manager = manager
        self._shutdown_event.clear()
        logger.info("WebSocket manager connected to event bridge")
        if self._redis_client and self._subscriber_thread is None:
            self._start_redis_subscriber()
        if self._redis_mode:
            return
        thread = self._processor_thread
        if thread is None or not thread.is_alive():
            self._start_processor_thread()

    def watch_for_redis(self) -> None:
        """In an API process without Redis: look for it in the background."""
        self._shutdown_event.clear()
        if self._redis_client is not None or _alive(self._watcher_thread):
            return
        self._watcher_thread = threading.Thread(
            target=self._watch_redis, name="osism-redis-watcher", daemon=True
        )
        self._watcher_thread.start()

    def add_event(
        self, event_type: str, payload: Any, meta: Optional[Dict[str, Any]] = None
    ) -> bool:
        """Put an event in the log; True once the log has it (the caller, the
        listener, acknowledges the notification only then)."""
        try:
            envelope = new_envelope(event_type, payload, meta)
            if not self._redis_mode:
                return self._memory_log.append(envelope) is not None
            return self._publisher.append(envelope)
        except Exception as exc:
            logger.error(
                "Error adding event to bridge: %s (%s); event not taken",
                exc,
                event_type,
            )
            return False

    def replay(self, last_event_id: str, limit: int) -> Replay:
        """What a client that saw ``last_event_id`` missed, from the current log."""
        log = self._redis_log if self._redis_mode else self._memory_log
        if log is None:
            return Replay([], False, None)
        try:
            return log.replay(last_event_id, limit)
        except redis.RedisError as exc:
            logger.warning("Cannot read the event log for a resume: %s", exc)
            return Replay([], False, None)

    def shutdown(self) -> None:
        """Stop every thread this bridge started and close its Redis subscriber."""
        logger.info("Shutting down event bridge")
        self._shutdown_event.set()
        if _alive(self._processor_thread):
            try:
                self._event_queue.put_nowait(_WAKE)
            except queue.Full:
                pass  # a full queue wakes its reader anyway
        error = self._close_pubsub(self._redis_subscriber)
        if error is not None:
            logger.error("Error closing Redis subscriber: %s", error)
        for thread in (self._subscriber_thread, self._processor_thread):
            if thread is not None and thread.is_alive():
                thread.join(timeout=5.0)
        if _alive(self._watcher_thread):
            # It may sit in a name lookup; it holds nothing and is a daemon.
            self._watcher_thread.join(timeout=1.0)  # type: ignore[union-attr]
        self._subscriber_thread = None
        self._processor_thread = None
        self._watcher_thread = None

    def status(self) -> BridgeStatus:
        """The bridge's state now (``/v1/status``, ``/metrics``, system channel)."""
        return BridgeStatus(
            mode="redis" if self._redis_mode else "local",
            redis=self._redis_settings.describe(),
            redis_connected=self._redis_client is not None,
            subscribed=self._subscription.subscribed,
            subscriber_alive=_alive(self._subscriber_thread),
            processor_alive=_alive(self._processor_thread),
            watching_for_redis=_alive(self._watcher_thread),
            subscriber_restarts=self.subscriber_restarts,
            local_queue=self._event_queue.qsize(),
            local_queue_size=self._event_queue.maxsize,
            local_history=len(self._memory_log),
            published=self.published,
            duplicates=self._memory_log.duplicates
            + (self._redis_log.duplicates if self._redis_log else 0),
            dropped_events=self.dropped_events,
            last_position=self._subscription.feed.position,
            caught_up=self._subscription.feed.caught_up,
            missed_warnings=self._subscription.feed.missed_warnings,
        )

    def _init_redis(self, with_subscriber: bool = True) -> None:
        """Connect (again) and open a new subscription, closing the old one;
        without ``with_subscriber``, connect only (``_connect_redis``)."""
        if not with_subscriber:
            self._connect_redis()
            return
        with self._redis_lock:
            log = self._connect_redis()
            self._close_subscriber()
            if log is not None:
                self._redis_subscriber = log.client.pubsub()

    def _connect_redis(self) -> Optional["RedisEventLog"]:
        """Connect (again) for publishing, leaving the subscription alone: the
        log in Redis, None while Redis does not answer."""
        if not REDIS_AVAILABLE:
            logger.warning(
                "Redis not available - event bridge will use local queue only "
                "(the Python package redis is missing)"
            )
            return None
        cfg = self._redis_settings = RedisSettings.from_env()
        with self._redis_lock:
            try:
                client = create_client(cfg)
                # One more try on a broken connection (Redis restarted); none
                # on a timeout, so that no call blocks longer than its timeout.
                client.set_retry(Retry(NoBackoff(), 1, (redis.ConnectionError,)))
                client.ping()
                self._redis_client = client
                self._redis_log = RedisEventLog(client, prefix=self.channel)
                self._redis_mode = True
                logger.info("Connected to Redis at %s", cfg.describe())
                return self._redis_log
            except Exception as exc:
                self._down_log.error(
                    "Failed to connect to Redis: %s; retrying with back-off",
                    explain(exc, cfg),
                )
                self._redis_client = None
                return None

    def _reconnect(self) -> Optional["RedisEventLog"]:
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
        return close_pubsub(subscriber, self._close_lock)

    def _redis_subscriber_loop(self) -> LoopEnd:
        """One run of the subscription (SubscriberLoop.run); why it ended."""
        return self._subscription.run(
            self._shutdown_event, self.SUBSCRIBE_MAX_RETRIES, self.SUBSCRIBE_RETRY_DELAY
        )

    def _supervise_subscriber(self) -> None:
        """The subscriber thread: the loop, restarted after it gives up."""
        self._supervisor.run(
            self._shutdown_event,
            self.RESTART_MIN_DELAY,
            settings.SUBSCRIBER_RESTART_MAX_DELAY,
        )

    def _back_off(self, delay: float) -> bool:
        """The supervisor's wait before a restart; True on shutdown."""
        return self._supervisor.back_off(self._shutdown_event, delay)

    def _watch_redis(self) -> WatchEnd:
        """The watcher thread: look for Redis until it answers or shutdown."""
        return watch_for_redis(
            self._shutdown_event,
            self._switch_to_redis,
            self.RESTART_MIN_DELAY,
            settings.SUBSCRIBER_RESTART_MAX_DELAY,
        )

    def _switch_to_redis(self) -> bool:
        """Redis answered the watcher: connect, subscribe when a manager waits
        for events; True when events go through Redis now."""
        self._init_redis()
        if self._redis_client is None:
            return False
        if self._websocket_manager is not None and self._subscriber_thread is None:
            self._start_redis_subscriber()
        return True

    def _start_redis_subscriber(self) -> None:
        self._subscriber_thread = threading.Thread(
            target=self._supervise_subscriber,
            name="osism-redis-subscriber",
            daemon=True,
        )
        self._subscriber_thread.start()
        logger.info("Started Redis event subscriber thread")

    def _start_processor_thread(self) -> None:
        self._processor_thread = threading.Thread(
            target=self._process_events, name="osism-bridge-processor", daemon=True
        )
        self._processor_thread.start()
        logger.info("Started event bridge processor thread")

    def _deliver(self, event_data: Envelope) -> None:
        if self._websocket_manager is not None:
            self._process_single_event(event_data)
        else:
            self._queue_locally(event_data)

    def _process_single_event(self, event_data: Envelope) -> None:
        """Hand one event to the manager, through ``deliver_to_loop``."""
        manager = self._websocket_manager
        if manager is None:
            logger.warning("No WebSocket manager available, dropping event")
            return
        event_type = event_data.get("event_type", "")
        try:
            outcome = deliver_to_loop(
                manager,
                manager.broadcast_event_from_notification(
                    event_type,
                    event_data.get("payload", {}),
                    meta=event_data.get("meta"),
                    event_id=event_data.get("id"),
                    timestamp=event_data.get("timestamp"),
                    position=event_data.get("stream_id"),
                ),
            )
        except Exception as exc:
            logger.error("Error processing event via bridge: %s", exc)
            return
        if outcome is Handoff.NO_LOOP:
            dropped = self._dropped.add()
            self._drop_log.warning(
                "The WebSocket manager's loop is not running; %s not delivered "
                "(%d so far)",
                event_type,
                dropped,
            )

    def _process_events(self) -> None:
        logger.info("Event bridge processor started")
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
                logger.error(
                    "Unexpected error in event bridge processor: %s; continuing", exc
                )
            finally:
                self._event_queue.task_done()
        logger.info("Event bridge processor stopped")

    def _hand_on_locally(self, entry: LogEntry) -> None:
        """The in-memory log's announcement: its new entry to the processor."""
        self._queue_locally(dict(entry.event, stream_id=entry.position))

    def _queue_locally(self, event: Envelope) -> None:
        """Put an event on the bounded hand-off queue; at the bound the oldest
        waiting one is dropped (it stays in the log: clients can resume)."""
        try:
            self._event_queue.put_nowait(event)
            return
        except queue.Full:
            pass
        try:
            self._event_queue.get_nowait()
            self._event_queue.task_done()
            self._event_queue.put_nowait(event)
        except (queue.Empty, queue.Full):
            pass
        dropped = self._dropped.add()
        self._drop_log.warning(
            "Event bridge queue is full, dropping event: the oldest waiting one "
            "(bound %d; it stays in the log), %d dropped so far",
            self._event_queue.maxsize,
            dropped,
        )


def _alive(thread: Optional[threading.Thread]) -> bool:
    return thread is not None and thread.is_alive()


event_bridge = EventBridge(connect=False)
