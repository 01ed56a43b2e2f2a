"""Unit tests of osism.services.event_bridge.

Every EventBridge is built with ``redis.Redis`` patched, so no test touches a
network; no test starts a thread. The bridge's loops are called directly and
end through ``_shutdown_event``, which here is a :class:`StopEvent`: it never
blocks, records every back-off delay, and ends any loop that runs longer than
its budget (the test then fails instead of hanging).
"""

import asyncio
import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional
from unittest.mock import AsyncMock, MagicMock, call

import fakeredis
import pytest
import redis

from osism import settings
from osism.services.event_bridge import CHANNEL, EventBridge, _log_failure
from osism.services.event_log import position_key
from osism.services.redis_log import RedisEventLog
from osism.services.subscription import DeadConnection
from osism.services.websocket_manager import WebSocketManager
from tests.conftest import async_wait_until, wait_until

LOGGER = "osism.event_bridge"
EVENT_TYPE = "baremetal.node.power_set.end"
PAYLOAD = {"ironic_object.data": {"name": "node1", "uuid": "abc-123"}}


class StopEvent(threading.Event):
    """A ``_shutdown_event`` that never blocks and ends every loop.

    ``wait(timeout)`` records ``timeout`` in ``waits`` (and in ``journal`` when
    one is given) and returns at once; the ``stop_on_wait``-th wait sets the
    event, as a shutdown during a back-off would. Once ``is_set()`` and
    ``wait()`` were called more than ``budget`` times in all, the event sets
    itself and ``exhausted`` tells that the loop under test did not end the
    way the test meant it to.
    """

    def __init__(self, stop_on_wait: Optional[int] = None, budget: int = 200) -> None:
        super().__init__()
        self.stop_on_wait = stop_on_wait
        self.budget = budget
        self.checks = 0
        self.waits: List[Optional[float]] = []
        self.journal: Optional[List[Any]] = None
        self.exhausted = False

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks > self.budget and not super().is_set():
            self.exhausted = True
            self.set()
        return super().is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.waits.append(timeout)
        if self.journal is not None:
            self.journal.append(("wait", timeout))
        if self.stop_on_wait is not None and len(self.waits) >= self.stop_on_wait:
            self.set()
        return self.is_set()


def stop_on_last(event: threading.Event, *results: Any) -> Callable[..., Any]:
    """A side effect giving ``results`` one per call (exceptions are raised).

    The call that gives the last result sets ``event`` first, as a shutdown
    arriving meanwhile would; any later call gives the last result again.
    """
    pending = list(results)

    def effect(*args: Any, **kwargs: Any) -> Any:
        if len(pending) > 1:
            result = pending.pop(0)
        else:
            event.set()
            result = pending[0]
        if isinstance(result, BaseException) or (
            isinstance(result, type) and issubclass(result, BaseException)
        ):
            raise result
        return result

    return effect


def message(event_type: str = EVENT_TYPE, payload: Any = None) -> dict:
    """A pub/sub message as ``PubSub.get_message`` returns it."""
    body = {
        "event_type": event_type,
        "payload": PAYLOAD if payload is None else payload,
    }
    return {"type": "message", "channel": CHANNEL, "data": json.dumps(body)}


SUBSCRIBED = {"type": "subscribe", "channel": CHANNEL, "data": 1}


def logged(caplog: pytest.LogCaptureFixture, level: int) -> List[str]:
    """The bridge's log lines at exactly ``level``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == level
    ]


def queued(bridge: EventBridge) -> List[Any]:
    """The events in the bridge's local queue, oldest first (not consumed)."""
    return list(bridge._event_queue.queue)


def thread_mock(alive: bool) -> MagicMock:
    thread = MagicMock(spec=threading.Thread)
    thread.is_alive.return_value = alive
    return thread


@pytest.fixture(autouse=True)
def redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's defaults hold whatever the caller's environment says."""
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def caplog_bridge(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


@pytest.fixture
def redis_cls(mocker: Any) -> MagicMock:
    """``redis.Redis`` as the bridge sees it; its client answers ping."""
    cls = mocker.patch("osism.services.event_bridge.redis.Redis")
    cls.return_value.publish.return_value = 1
    return cls


@pytest.fixture
def client(redis_cls: MagicMock) -> MagicMock:
    return redis_cls.return_value


@pytest.fixture
def make_bridge(redis_cls: MagicMock) -> Callable[..., EventBridge]:
    """Fresh bridges, always built with redis.Redis patched."""
    return EventBridge


@pytest.fixture
def bridge(make_bridge: Callable[..., EventBridge]) -> EventBridge:
    return make_bridge()


@pytest.fixture
def stop_event() -> Any:
    """Installs a StopEvent on a bridge; fails a test whose loop ran away."""
    events: List[StopEvent] = []

    def install(bridge: EventBridge, **kwargs: Any) -> StopEvent:
        event = StopEvent(**kwargs)
        bridge._shutdown_event = event
        events.append(event)
        return event

    yield install
    assert not any(e.exhausted for e in events), "a loop under test did not end"


@pytest.fixture
def no_wait(bridge: EventBridge, stop_event: Any) -> StopEvent:
    return stop_event(bridge)


class TestInitRedis:
    """EventBridge.__init__ / _init_redis / _close_subscriber."""

    def test_init_redis_connects_with_seed_defaults(
        self, redis_cls: MagicMock, make_bridge: Any
    ) -> None:
        make_bridge()
        redis_cls.assert_called_once_with(
            host="redis",
            port=6379,
            db=0,
            decode_responses=True,
            socket_connect_timeout=10.0,
            socket_timeout=5.0,
            health_check_interval=30,
            socket_keepalive=True,
        )

    @pytest.mark.parametrize(
        "env, expected",
        [
            ({"REDIS_HOST": "redis.example"}, ("redis.example", 6379, 0)),
            ({"REDIS_PORT": "6380"}, ("redis", 6380, 0)),
            ({"REDIS_DB": "3"}, ("redis", 6379, 3)),
            (
                {"REDIS_HOST": "10.0.0.5", "REDIS_PORT": "7000", "REDIS_DB": "1"},
                ("10.0.0.5", 7000, 1),
            ),
            ({"REDIS_PORT": "not-a-port"}, ("redis", 6379, 0)),
        ],
        ids=["host", "port", "db", "all", "invalid-port-keeps-default"],
    )
    def test_init_redis_address_from_environment(
        self,
        monkeypatch: pytest.MonkeyPatch,
        redis_cls: MagicMock,
        make_bridge: Any,
        env: dict,
        expected: tuple,
    ) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        make_bridge()
        kwargs = redis_cls.call_args.kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == expected
        assert type(kwargs["port"]) is int and type(kwargs["db"]) is int

    def test_init_redis_ping_success_sets_client_and_subscriber(
        self, client: MagicMock, make_bridge: Any
    ) -> None:
        bridge = make_bridge()
        client.ping.assert_called_once_with()
        client.pubsub.assert_called_once_with()
        assert bridge._redis_client is client
        assert bridge._redis_subscriber is client.pubsub.return_value

    def test_init_redis_ping_failure_logs_error_and_leaves_both_none(
        self, client: MagicMock, make_bridge: Any, caplog_bridge: Any
    ) -> None:
        client.ping.side_effect = ConnectionError("refused")
        bridge = make_bridge()
        assert bridge._redis_client is None
        assert bridge._redis_subscriber is None
        client.pubsub.assert_not_called()
        [error] = logged(caplog_bridge, logging.ERROR)
        assert "Cannot connect to Redis at redis:6379/0: refused" in error
        assert bridge.status()["mode"] == "local"

    def test_init_redis_without_redis_package_warns_and_stays_local(
        self, mocker: Any, redis_cls: MagicMock, make_bridge: Any, caplog_bridge: Any
    ) -> None:
        mocker.patch("osism.services.event_bridge.REDIS_AVAILABLE", False)
        bridge = make_bridge()
        redis_cls.assert_not_called()
        assert bridge._redis_client is None
        assert bridge._redis_subscriber is None
        assert logged(caplog_bridge, logging.WARNING) == [
            "Python package redis not available; events stay local"
        ]

    def test_init_connect_false_does_not_touch_redis(
        self, redis_cls: MagicMock, make_bridge: Any
    ) -> None:
        bridge = make_bridge(connect=False)
        redis_cls.assert_not_called()
        assert bridge._redis_client is None

    @pytest.mark.parametrize(
        "queue_size, expected",
        [(None, settings.BRIDGE_QUEUE_SIZE), (3, 3)],
        ids=["settings", "argument"],
    )
    def test_init_local_queue_is_bounded(
        self, make_bridge: Any, queue_size: Optional[int], expected: int
    ) -> None:
        bridge = make_bridge(connect=False, queue_size=queue_size)
        assert bridge._event_queue.maxsize == expected > 0

    def test_init_redis_closes_previous_subscriber_before_replacing_it(
        self, client: MagicMock, bridge: EventBridge
    ) -> None:
        old = bridge._redis_subscriber
        new = MagicMock(name="new pubsub")

        def pubsub() -> MagicMock:
            assert old.close.called, "new pubsub created before the old was closed"
            return new

        client.pubsub.side_effect = pubsub
        bridge._init_redis()
        old.close.assert_called_once_with()
        assert bridge._redis_subscriber is new
        new.close.assert_not_called()

    def test_init_redis_swallows_close_error_of_previous_subscriber(
        self, client: MagicMock, bridge: EventBridge, caplog_bridge: Any
    ) -> None:
        old = bridge._redis_subscriber
        old.close.side_effect = RuntimeError("already broken")
        new = MagicMock(name="new pubsub")
        client.pubsub.side_effect = None
        client.pubsub.return_value = new
        bridge._init_redis()
        assert bridge._redis_subscriber is new
        assert bridge._redis_client is client
        assert "Closing the old Redis subscriber failed: already broken" in logged(
            caplog_bridge, logging.DEBUG
        )

    def test_init_redis_failure_closes_and_clears_previous_subscriber(
        self, client: MagicMock, bridge: EventBridge
    ) -> None:
        old = bridge._redis_subscriber
        client.ping.side_effect = ConnectionError("down")
        bridge._init_redis()
        old.close.assert_called_once_with()
        assert bridge._redis_subscriber is None
        assert bridge._redis_client is None

    @pytest.mark.parametrize("redis_up", [True, False], ids=["up", "down"])
    def test_init_redis_without_subscriber_keeps_subscriber_untouched(
        self, client: MagicMock, bridge: EventBridge, redis_up: bool
    ) -> None:
        old = bridge._redis_subscriber
        client.pubsub.reset_mock()
        if not redis_up:
            client.ping.side_effect = ConnectionError("down")
        bridge._init_redis(with_subscriber=False)
        assert bridge._redis_subscriber is old
        old.close.assert_not_called()
        client.pubsub.assert_not_called()
        assert (bridge._redis_client is client) is redis_up

    @pytest.mark.parametrize("redis_up", [True, False], ids=["up", "down"])
    def test_use_redis_connects_the_publisher_and_keeps_the_subscriber(
        self, client: MagicMock, bridge: EventBridge, redis_up: bool
    ) -> None:
        old = bridge._redis_subscriber
        client.pubsub.reset_mock()
        if not redis_up:
            client.ping.side_effect = ConnectionError("down")
        assert bridge.use_redis() is redis_up
        assert bridge._redis_subscriber is old
        old.close.assert_not_called()
        client.pubsub.assert_not_called()
        assert (bridge._redis_client is client) is redis_up


class TestConnect:
    """EventBridge.connect."""

    @pytest.mark.parametrize(
        "redis_available, ping_error, expected",
        [
            (True, None, True),
            (True, ConnectionError("down"), False),
            (False, None, False),
        ],
        ids=["answers", "ping-fails", "no-redis-package"],
    )
    def test_connect_returns_whether_redis_answered(
        self,
        mocker: Any,
        client: MagicMock,
        make_bridge: Any,
        redis_available: bool,
        ping_error: Optional[Exception],
        expected: bool,
    ) -> None:
        bridge = make_bridge(connect=False)
        mocker.patch("osism.services.event_bridge.REDIS_AVAILABLE", redis_available)
        client.ping.side_effect = ping_error
        assert bridge.connect() is expected
        assert (bridge._redis_client is not None) is expected


@pytest.fixture
def starters(mocker: Any) -> SimpleNamespace:
    return SimpleNamespace(
        subscriber=mocker.patch.object(EventBridge, "_start_redis_subscriber"),
        processor=mocker.patch.object(EventBridge, "_start_processor_thread"),
    )


class TestSetWebsocketManager:
    """EventBridge.set_websocket_manager."""

    @pytest.mark.parametrize(
        "has_client, subscriber_thread, starts",
        [(True, None, True), (False, None, False), (True, "thread", False)],
        ids=["client-no-thread", "no-client", "thread-exists"],
    )
    def test_set_websocket_manager_starts_subscriber_only_when_needed(
        self,
        bridge: EventBridge,
        starters: SimpleNamespace,
        has_client: bool,
        subscriber_thread: Optional[str],
        starts: bool,
    ) -> None:
        if not has_client:
            bridge._redis_client = None
        if subscriber_thread:
            bridge._subscriber_thread = thread_mock(alive=True)
        bridge.set_websocket_manager(MagicMock())
        assert starters.subscriber.called is starts

    @pytest.mark.parametrize(
        "processor, starts",
        [(None, True), (True, False), (False, True)],
        ids=["none", "alive", "dead"],
    )
    def test_set_websocket_manager_starts_processor_unless_alive(
        self,
        bridge: EventBridge,
        starters: SimpleNamespace,
        processor: Optional[bool],
        starts: bool,
    ) -> None:
        if processor is not None:
            bridge._processor_thread = thread_mock(alive=processor)
        bridge.set_websocket_manager(MagicMock())
        assert starters.processor.call_count == int(starts)

    def test_set_websocket_manager_stores_manager(
        self, bridge: EventBridge, starters: SimpleNamespace, caplog_bridge: Any
    ) -> None:
        manager = MagicMock()
        bridge.set_websocket_manager(manager)
        assert bridge._websocket_manager is manager
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Event bridge delivering to the WebSocket manager"
        )

    def test_set_websocket_manager_clears_previous_shutdown(
        self, bridge: EventBridge, starters: SimpleNamespace
    ) -> None:
        bridge.shutdown()
        assert bridge._shutdown_event.is_set()
        bridge.set_websocket_manager(MagicMock())
        assert not bridge._shutdown_event.is_set()


class TestStartThreads:
    """_start_redis_subscriber / _start_processor_thread."""

    @pytest.fixture
    def thread_cls(self, bridge: EventBridge, mocker: Any) -> MagicMock:
        # Replaces the module's ``threading`` only: the bridge is already built.
        return mocker.patch("osism.services.event_bridge.threading").Thread

    @pytest.mark.parametrize(
        "starter, target, attribute",
        [
            ("_start_redis_subscriber", "_supervise_subscriber", "_subscriber_thread"),
            ("_start_processor_thread", "_process_events", "_processor_thread"),
        ],
        ids=["subscriber-is-supervised", "processor"],
    )
    def test_start_threads_run_target_in_one_daemon_thread(
        self,
        bridge: EventBridge,
        thread_cls: MagicMock,
        starter: str,
        target: str,
        attribute: str,
    ) -> None:
        getattr(bridge, starter)()
        thread_cls.assert_called_once()
        kwargs = thread_cls.call_args.kwargs
        assert kwargs["target"] == getattr(bridge, target)
        assert kwargs["daemon"] is True
        assert kwargs["name"].startswith("osism-")
        thread_cls.return_value.start.assert_called_once_with()
        assert getattr(bridge, attribute) is thread_cls.return_value


class TestRedisSubscriberLoop:
    """EventBridge._redis_subscriber_loop (and _handle_message)."""

    DELAY = 7.5

    @pytest.fixture
    def sub(self, bridge: EventBridge) -> MagicMock:
        subscriber = MagicMock(name="pubsub")
        bridge._redis_subscriber = subscriber
        bridge._websocket_manager = MagicMock(name="manager")
        bridge.SUBSCRIBE_RETRY_DELAY = self.DELAY
        return subscriber

    @pytest.fixture
    def process(self, mocker: Any, bridge: EventBridge) -> MagicMock:
        return mocker.patch.object(bridge, "_process_single_event")

    @pytest.fixture
    def init(self, mocker: Any, bridge: EventBridge) -> MagicMock:
        return mocker.patch.object(bridge, "_init_redis")

    def test_subscriber_loop_without_subscriber_logs_error_and_returns(
        self,
        bridge: EventBridge,
        no_wait: StopEvent,
        init: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        bridge._redis_subscriber = None
        bridge._redis_subscriber_loop()
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscriber not initialized; not subscribing"
        ]
        init.assert_not_called()
        assert no_wait.waits == []

    def test_subscriber_loop_subscribes_to_channel_once_on_entry(
        self, bridge: EventBridge, sub: MagicMock, no_wait: StopEvent, process: Any
    ) -> None:
        sub.get_message.side_effect = stop_on_last(no_wait, None, None)
        bridge._redis_subscriber_loop()
        sub.subscribe.assert_called_once_with("osism:events")
        sub.get_message.assert_called_with(timeout=1.0)

    def test_subscriber_loop_reports_subscribed_while_listening(
        self, bridge: EventBridge, sub: MagicMock, no_wait: StopEvent, process: Any
    ) -> None:
        seen = []
        confirmations = [SUBSCRIBED, None]

        def get_message(timeout: float) -> Any:
            seen.append(bridge._subscribed)
            if len(seen) == 2:
                no_wait.set()
            return confirmations.pop(0)

        sub.get_message.side_effect = get_message
        bridge._redis_subscriber_loop()
        # Live only once Redis confirmed the subscription.
        assert seen == [False, True]
        assert bridge._subscribed is False

    def test_subscriber_loop_keeps_polling_after_timeouts(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        sub.get_message.side_effect = stop_on_last(no_wait, None, None, None, None)
        bridge._redis_subscriber_loop()
        assert sub.get_message.call_count == 4
        process.assert_not_called()
        assert logged(caplog_bridge, logging.ERROR) == []

    @pytest.mark.parametrize("kind", ["psubscribe", "pong", "unsubscribe"])
    def test_subscriber_loop_ignores_non_message_types(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: MagicMock,
        kind: str,
    ) -> None:
        control = {"type": kind, "channel": CHANNEL, "data": 1}
        sub.get_message.side_effect = stop_on_last(no_wait, control)
        bridge._redis_subscriber_loop()
        process.assert_not_called()
        assert queued(bridge) == []

    def test_subscriber_loop_hands_decoded_event_to_process_single_event(
        self, bridge: EventBridge, sub: MagicMock, no_wait: StopEvent, process: Any
    ) -> None:
        sub.get_message.side_effect = stop_on_last(no_wait, message())
        bridge._redis_subscriber_loop()
        process.assert_called_once_with({"event_type": EVENT_TYPE, "payload": PAYLOAD})

    def test_subscriber_loop_without_manager_queues_event_locally(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: MagicMock,
    ) -> None:
        bridge._websocket_manager = None
        sub.get_message.side_effect = stop_on_last(no_wait, message())
        bridge._redis_subscriber_loop()
        process.assert_not_called()
        assert queued(bridge) == [{"event_type": EVENT_TYPE, "payload": PAYLOAD}]

    def test_subscriber_loop_skips_invalid_json_and_continues(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        bad = {"type": "message", "channel": CHANNEL, "data": "{not json"}
        sub.get_message.side_effect = stop_on_last(no_wait, bad, message())
        bridge._redis_subscriber_loop()
        [error] = logged(caplog_bridge, logging.ERROR)
        assert error.startswith("Invalid JSON on osism:events")
        process.assert_called_once()
        sub.subscribe.assert_called_once()

    def test_subscriber_loop_skips_json_that_is_not_an_event(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        bad = {"type": "message", "channel": CHANNEL, "data": "[1]"}
        sub.get_message.side_effect = stop_on_last(no_wait, bad)
        bridge._redis_subscriber_loop()
        assert logged(caplog_bridge, logging.ERROR) == [
            "Invalid JSON on osism:events: not a JSON object; message skipped"
        ]
        process.assert_not_called()

    def test_subscriber_loop_survives_process_single_event_error(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        process.side_effect = [RuntimeError("manager broke"), None]
        sub.get_message.side_effect = stop_on_last(no_wait, message("a"), message("b"))
        bridge._redis_subscriber_loop()
        assert process.call_count == 2
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error processing Redis event: manager broke; message skipped"
        ]
        sub.subscribe.assert_called_once()

    def test_subscriber_loop_get_message_error_waits_then_reinitialises(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        process: Any,
        caplog_bridge: Any,
    ) -> None:
        waits_at_init = []
        init.side_effect = lambda: waits_at_init.append(list(no_wait.waits))
        sub.get_message.side_effect = stop_on_last(
            no_wait, ConnectionError("lost"), None
        )
        bridge._redis_subscriber_loop()
        assert waits_at_init == [[self.DELAY]]
        init.assert_called_once_with()
        assert sub.subscribe.call_count == 2
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscription failed (1/5): lost; retrying in 7.5 s"
        ]

    def test_subscriber_loop_every_get_message_error_backs_off(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        stop_event: Any,
        init: MagicMock,
        process: Any,
    ) -> None:
        event = stop_event(bridge, stop_on_wait=3)
        sub.get_message.side_effect = ConnectionError("lost")
        bridge._redis_subscriber_loop()
        # no busy loop: one poll, one resubscribe, one back-off per failure
        assert sub.get_message.call_count == 3
        assert sub.subscribe.call_count == 3
        assert event.waits == [self.DELAY] * 3
        assert init.call_count == 2

    def test_subscriber_loop_subscribe_error_takes_same_back_off(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        process: Any,
    ) -> None:
        sub.subscribe.side_effect = [ConnectionError("refused"), None]
        sub.get_message.side_effect = stop_on_last(no_wait, None)
        bridge._redis_subscriber_loop()
        assert no_wait.waits == [self.DELAY]
        init.assert_called_once_with()
        assert sub.subscribe.call_count == 2

    @pytest.mark.parametrize("max_retries", [1, 3, 5])
    def test_subscriber_loop_gives_up_after_max_consecutive_failures(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        caplog_bridge: Any,
        max_retries: int,
    ) -> None:
        bridge.SUBSCRIBE_MAX_RETRIES = max_retries
        sub.subscribe.side_effect = ConnectionError("refused")
        bridge._redis_subscriber_loop()
        assert sub.subscribe.call_count == max_retries
        assert no_wait.waits == [self.DELAY] * (max_retries - 1)
        assert init.call_count == max_retries - 1
        errors = logged(caplog_bridge, logging.ERROR)
        assert errors[-1] == "Max Redis reconnection attempts reached, giving up"
        assert errors[-2].startswith(
            f"Redis subscription failed ({max_retries}/{max_retries})"
        )
        assert not no_wait.is_set()

    def test_subscriber_loop_successful_subscribe_resets_retry_count(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        refused = ConnectionError("refused")
        sub.subscribe.side_effect = [refused] * 4 + [None] + [refused] * 3 + [None]
        sub.get_message.side_effect = stop_on_last(
            no_wait, SUBSCRIBED, ConnectionError("lost"), SUBSCRIBED, None
        )
        bridge._redis_subscriber_loop()
        # eight failures in all, never five in a row: the loop did not give up
        assert len(no_wait.waits) == 8
        assert "giving up" not in " ".join(logged(caplog_bridge, logging.ERROR))

    def test_subscriber_loop_only_a_confirmation_resets_the_failure_count(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        sub.get_message.side_effect = [message(), ConnectionError("lost")] * 5
        bridge._redis_subscriber_loop()
        assert process.call_count == 5
        assert logged(caplog_bridge, logging.ERROR)[-2:] == [
            "Redis subscription failed (5/5): lost; retrying in 7.5 s",
            "Max Redis reconnection attempts reached, giving up",
        ]

    def test_subscriber_loop_missing_subscriber_after_failed_reinit_is_a_failure(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        def redis_still_down() -> None:
            bridge._redis_client = None
            bridge._redis_subscriber = None

        init.side_effect = redis_still_down
        sub.subscribe.side_effect = ConnectionError("refused")
        bridge._redis_subscriber_loop()
        sub.subscribe.assert_called_once()
        assert no_wait.waits == [self.DELAY] * 4
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscription failed (1/5): refused; retrying in 7.5 s",
            "Redis subscription failed (2/5): no connection to Redis; retrying in "
            "7.5 s",
            "Redis subscription failed (3/5): no connection to Redis; retrying in "
            "7.5 s",
            "Redis subscription failed (4/5): no connection to Redis; retrying in "
            "7.5 s",
            "Redis subscription failed (5/5): no connection to Redis; retrying in "
            "7.5 s",
            "Max Redis reconnection attempts reached, giving up",
        ]

    def test_subscriber_loop_without_a_log_is_a_failure(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        stop_event: Any,
        caplog_bridge: Any,
    ) -> None:
        stop_event(bridge, stop_on_wait=1)
        bridge._redis_log = None
        bridge._redis_subscriber_loop()
        sub.subscribe.assert_not_called()
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscription failed (1/5): no connection to Redis; retrying in "
            "7.5 s"
        ]

    def test_subscriber_loop_stops_when_shutdown_during_back_off(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        stop_event: Any,
        init: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        event = stop_event(bridge, stop_on_wait=1)
        sub.subscribe.side_effect = ConnectionError("refused")
        bridge._redis_subscriber_loop()
        sub.subscribe.assert_called_once()
        init.assert_not_called()
        assert "giving up" not in " ".join(logged(caplog_bridge, logging.ERROR))
        assert event.waits == [self.DELAY]

    def test_subscriber_loop_error_caused_by_shutdown_exits_quietly(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        init: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        def closed_by_shutdown(timeout: float) -> None:
            no_wait.set()
            raise ValueError("I/O operation on closed file")

        sub.get_message.side_effect = closed_by_shutdown
        bridge._redis_subscriber_loop()
        assert logged(caplog_bridge, logging.ERROR) == []
        assert no_wait.waits == []
        init.assert_not_called()

    def test_subscriber_loop_with_shutdown_set_does_not_subscribe(
        self, bridge: EventBridge, sub: MagicMock, no_wait: StopEvent
    ) -> None:
        no_wait.set()
        bridge._redis_subscriber_loop()
        sub.subscribe.assert_not_called()
        sub.close.assert_called_once_with()

    def test_subscriber_loop_closes_subscriber_on_exit(
        self, bridge: EventBridge, sub: MagicMock, no_wait: StopEvent, process: Any
    ) -> None:
        sub.get_message.side_effect = stop_on_last(no_wait, None)
        bridge._redis_subscriber_loop()
        sub.close.assert_called_once_with()

    def test_subscriber_loop_swallows_close_error_on_exit(
        self,
        bridge: EventBridge,
        sub: MagicMock,
        no_wait: StopEvent,
        process: Any,
        caplog_bridge: Any,
    ) -> None:
        sub.get_message.side_effect = stop_on_last(no_wait, None)
        sub.close.side_effect = RuntimeError("close failed")
        bridge._redis_subscriber_loop()
        assert "Closing Redis subscriber failed: close failed" in logged(
            caplog_bridge, logging.DEBUG
        )
        assert bridge._subscribed is False


class TestSuperviseSubscriber:
    """EventBridge._supervise_subscriber (restarts a subscriber that gave up)."""

    MAX_DELAY = 8.0

    @pytest.fixture
    def runs(
        self, mocker: Any, bridge: EventBridge, monkeypatch: pytest.MonkeyPatch
    ) -> SimpleNamespace:
        monkeypatch.setattr(settings, "SUBSCRIBER_RESTART_MAX_DELAY", self.MAX_DELAY)
        # One wait per back-off (probes are tested on their own below).
        monkeypatch.setattr("osism.services.bridge_subscriber.PROBE_INTERVAL", 100.0)
        mocker.patch("osism.services.bridge_link._redis_answers", return_value=False)
        clock = mocker.patch("osism.services.bridge_subscriber.time")
        clock.monotonic.return_value = 0.0
        journal: List[Any] = []
        loop = mocker.patch.object(
            bridge, "_redis_subscriber_loop", side_effect=lambda: journal.append("run")
        )
        init = mocker.patch.object(
            bridge, "_init_redis", side_effect=lambda: journal.append("init")
        )
        return SimpleNamespace(loop=loop, init=init, clock=clock, journal=journal)

    def test_supervise_restarts_with_capped_exponential_back_off(
        self, bridge: EventBridge, stop_event: Any, runs: SimpleNamespace
    ) -> None:
        event = stop_event(bridge, stop_on_wait=7)
        bridge._supervise_subscriber()
        assert event.waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
        assert runs.loop.call_count == 7
        assert bridge.subscriber_restarts == 7

    def test_supervise_reinitialises_redis_before_each_restart(
        self, bridge: EventBridge, stop_event: Any, runs: SimpleNamespace
    ) -> None:
        event = stop_event(bridge, stop_on_wait=3)
        event.journal = runs.journal
        bridge._supervise_subscriber()
        assert runs.journal == [
            "run",
            ("wait", 1.0),
            "init",
            "run",
            ("wait", 2.0),
            "init",
            "run",
            ("wait", 4.0),
        ]
        runs.init.assert_called_with()

    def test_supervise_logs_each_restart(
        self,
        bridge: EventBridge,
        stop_event: Any,
        runs: SimpleNamespace,
        caplog_bridge: Any,
    ) -> None:
        stop_event(bridge, stop_on_wait=2)
        bridge._supervise_subscriber()
        assert logged(caplog_bridge, logging.WARNING) == [
            "Redis subscriber stopped; starting it again in 1.0 s (restart 1)",
            "Redis subscriber stopped; starting it again in 2.0 s (restart 2)",
        ]
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Redis subscriber stopped for shutdown"
        )

    @pytest.mark.parametrize(
        "healthy_for, next_delay",
        [(2 * MAX_DELAY, MAX_DELAY), (2 * MAX_DELAY + 0.5, 1.0)],
        ids=["not-long-enough", "long-healthy-run-resets"],
    )
    def test_supervise_resets_delay_after_long_healthy_run(
        self,
        bridge: EventBridge,
        stop_event: Any,
        runs: SimpleNamespace,
        healthy_for: float,
        next_delay: float,
    ) -> None:
        event = stop_event(bridge, stop_on_wait=4)
        # start/end of three short runs, then one that stayed up healthy_for s
        runs.clock.monotonic.side_effect = [0.0] * 6 + [100.0, 100.0 + healthy_for]
        bridge._supervise_subscriber()
        assert event.waits == [1.0, 2.0, 4.0, next_delay]

    def test_supervise_exits_at_once_when_shutdown_is_set(
        self, bridge: EventBridge, no_wait: StopEvent, runs: SimpleNamespace
    ) -> None:
        no_wait.set()
        bridge._supervise_subscriber()
        runs.loop.assert_not_called()
        assert bridge.subscriber_restarts == 0

    def test_supervise_exits_when_loop_returns_for_shutdown(
        self,
        bridge: EventBridge,
        no_wait: StopEvent,
        runs: SimpleNamespace,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        runs.loop.side_effect = no_wait.set
        with caplog.at_level(logging.INFO, LOGGER):
            bridge._supervise_subscriber()
        runs.loop.assert_called_once_with()
        runs.init.assert_not_called()
        assert no_wait.waits == []
        assert bridge.subscriber_restarts == 0
        assert logged(caplog, logging.INFO) == ["Redis subscriber stopped for shutdown"]

    def test_supervise_exits_when_shutdown_during_back_off(
        self, bridge: EventBridge, stop_event: Any, runs: SimpleNamespace
    ) -> None:
        event = stop_event(bridge, stop_on_wait=1)
        bridge._supervise_subscriber()
        runs.loop.assert_called_once_with()
        runs.init.assert_not_called()
        assert event.waits == [1.0]


class TestRestartBackOff:
    """The supervisor's back-off ends early once Redis answers a probe."""

    @pytest.fixture
    def answers(self, mocker: Any) -> MagicMock:
        return mocker.patch("osism.services.bridge_link._redis_answers")

    def test_probes_each_second_and_restarts_once_redis_answers(
        self,
        bridge: EventBridge,
        no_wait: StopEvent,
        answers: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        answers.side_effect = [False, False, True]
        assert bridge._back_off(8.0) is False
        assert no_wait.waits == [1.0, 1.0, 1.0]
        assert answers.call_count == 3
        assert logged(caplog_bridge, logging.INFO) == [
            "Redis answers again; restarting the subscriber now"
        ]

    def test_waits_the_whole_delay_while_redis_is_silent(
        self, bridge: EventBridge, no_wait: StopEvent, answers: MagicMock
    ) -> None:
        answers.return_value = False
        assert bridge._back_off(2.5) is False
        assert no_wait.waits == [1.0, 1.0, 0.5]
        assert answers.call_count == 2  # none after the last slice

    def test_a_shutdown_ends_it(
        self, bridge: EventBridge, stop_event: Any, answers: MagicMock
    ) -> None:
        event = stop_event(bridge, stop_on_wait=2)
        answers.return_value = False
        assert bridge._back_off(8.0) is True
        assert event.waits == [1.0, 1.0]


def loop_state(running: bool, closed: bool) -> MagicMock:
    loop = MagicMock(spec=asyncio.AbstractEventLoop)
    loop.is_running.return_value = running
    loop.is_closed.return_value = closed
    return loop


class TestProcessEvents:
    """EventBridge._process_events (the local-queue processor loop)."""

    @pytest.fixture
    def process(self, mocker: Any, bridge: EventBridge) -> MagicMock:
        return mocker.patch.object(bridge, "_process_single_event")

    def test_process_events_processes_queued_event_and_marks_it_done(
        self, bridge: EventBridge, no_wait: StopEvent, process: MagicMock
    ) -> None:
        event = {"event_type": EVENT_TYPE, "payload": PAYLOAD}
        bridge._event_queue.put_nowait(event)
        process.side_effect = lambda data: no_wait.set()
        bridge._process_events()
        process.assert_called_once_with(event)
        assert bridge._event_queue.unfinished_tasks == 0

    def test_process_events_keeps_queue_order(
        self, bridge: EventBridge, no_wait: StopEvent, process: MagicMock
    ) -> None:
        for name in ("a", "b", "c"):
            bridge._event_queue.put_nowait({"event_type": name, "payload": {}})
        process.side_effect = stop_on_last(no_wait, None, None, None)
        bridge._process_events()
        assert [c.args[0]["event_type"] for c in process.call_args_list] == [
            "a",
            "b",
            "c",
        ]

    def test_process_events_empty_queue_continues_until_shutdown(
        self, mocker: Any, bridge: EventBridge, no_wait: StopEvent, process: MagicMock
    ) -> None:
        get = mocker.patch.object(
            bridge._event_queue,
            "get",
            side_effect=stop_on_last(no_wait, queue.Empty, queue.Empty, queue.Empty),
        )
        bridge._process_events()
        assert get.call_args_list == [call(timeout=1.0)] * 3
        process.assert_not_called()

    def test_process_events_exits_at_once_when_shutdown_is_set(
        self, mocker: Any, bridge: EventBridge, no_wait: StopEvent, process: MagicMock
    ) -> None:
        get = mocker.spy(bridge._event_queue, "get")
        no_wait.set()
        bridge._process_events()
        get.assert_not_called()
        process.assert_not_called()

    def test_the_wake_up_left_by_a_shutdown_is_not_an_event(
        self,
        bridge: EventBridge,
        stop_event: Any,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        bridge._processor_thread = thread_mock(alive=True)
        bridge.shutdown()  # wakes the processor through its queue
        event = {"event_type": EVENT_TYPE, "payload": PAYLOAD}
        bridge._event_queue.put_nowait(event)
        # A processor started again later reads on past the stale wake-up.
        running = stop_event(bridge)
        process.side_effect = lambda data: running.set()
        bridge._process_events()
        process.assert_called_once_with(event)
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_process_events_error_is_logged_and_loop_continues(
        self,
        bridge: EventBridge,
        no_wait: StopEvent,
        process: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        for name in ("a", "b"):
            bridge._event_queue.put_nowait({"event_type": name, "payload": {}})
        process.side_effect = stop_on_last(no_wait, RuntimeError("bad event"), None)
        bridge._process_events()
        assert process.call_count == 2
        assert bridge._event_queue.unfinished_tasks == 0
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error processing local event: bad event; continuing"
        ]


class TestShutdown:
    """EventBridge.shutdown."""

    def test_shutdown_sets_shutdown_event(
        self, bridge: EventBridge, caplog_bridge: Any
    ) -> None:
        bridge.shutdown()
        assert bridge._shutdown_event.is_set()
        assert logged(caplog_bridge, logging.INFO) == ["Shutting down event bridge"]

    def test_shutdown_wakes_a_waiting_processor_at_once(self, make_bridge: Any) -> None:
        bridge = make_bridge(connect=False)
        bridge._start_processor_thread()
        processor = bridge._processor_thread
        bridge._queue_locally({"event_type": EVENT_TYPE, "payload": PAYLOAD})
        wait_until(lambda: bridge._event_queue.unfinished_tasks == 0)
        started = time.monotonic()  # the processor waits on its queue again
        bridge.shutdown()
        # Not after its one-second poll: the shutdown put a wake-up there.
        assert time.monotonic() - started < 0.9
        assert not processor.is_alive()

    def test_shutdown_closes_redis_subscriber(self, bridge: EventBridge) -> None:
        subscriber = bridge._redis_subscriber
        bridge.shutdown()
        subscriber.close.assert_called_once_with()

    def test_shutdown_without_subscriber_is_fine(
        self, make_bridge: Any, caplog_bridge: Any
    ) -> None:
        bridge = make_bridge(connect=False)
        bridge.shutdown()
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_shutdown_close_error_is_logged_and_shutdown_continues(
        self, bridge: EventBridge, caplog_bridge: Any
    ) -> None:
        bridge._redis_subscriber.close.side_effect = RuntimeError("broken pipe")
        thread = thread_mock(alive=True)
        bridge._processor_thread = thread
        bridge.shutdown()
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error closing Redis subscriber: broken pipe"
        ]
        thread.join.assert_called_once_with(timeout=5.0)
        assert bridge._shutdown_event.is_set()

    @pytest.mark.parametrize("attribute", ["_subscriber_thread", "_processor_thread"])
    @pytest.mark.parametrize(
        "alive, joins", [(True, True), (False, False)], ids=["alive", "dead"]
    )
    def test_shutdown_joins_live_threads_only(
        self, bridge: EventBridge, attribute: str, alive: bool, joins: bool
    ) -> None:
        thread = thread_mock(alive=alive)
        setattr(bridge, attribute, thread)
        bridge.shutdown()
        if joins:
            thread.join.assert_called_once_with(timeout=5.0)
        else:
            thread.join.assert_not_called()
        assert getattr(bridge, attribute) is None

    def test_shutdown_joins_all_live_threads(self, bridge: EventBridge) -> None:
        threads = [thread_mock(alive=True) for _ in range(2)]
        bridge._subscriber_thread, bridge._processor_thread = threads
        bridge.shutdown()
        for thread in threads:
            thread.join.assert_called_once_with(timeout=5.0)


class TestStatus:
    """EventBridge.status."""

    def test_status_reports_redis_mode_once_connected(
        self, bridge: EventBridge
    ) -> None:
        assert bridge.status()["mode"] == "redis"
        # Redis mode stays when Redis goes away: add_event says False then.
        bridge._redis_client = None
        assert bridge.status()["mode"] == "redis"
        assert bridge.status()["redis_connected"] is False

    def test_status_reports_local_mode_without_redis(self, make_bridge: Any) -> None:
        assert make_bridge(connect=False).status()["mode"] == "local"

    def test_status_reports_threads_queue_and_counters(
        self, make_bridge: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REDIS_HOST", "cache")
        monkeypatch.setenv("REDIS_PORT", "6390")
        monkeypatch.setenv("REDIS_DB", "2")
        monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
        bridge = make_bridge(connect=False, queue_size=1)
        bridge.add_event("a", {})
        bridge.add_event("b", {})
        bridge._subscribed = True
        bridge._subscriber_thread = thread_mock(alive=True)
        bridge._processor_thread = thread_mock(alive=False)
        bridge.subscriber_restarts = 2
        bridge.published = 3
        status = bridge.status()
        assert status == {
            "mode": "local",
            "redis": "redis://:***@cache:6390/2",
            "redis_connected": False,
            "subscribed": True,
            "subscriber_alive": True,
            "processor_alive": False,
            "watching_for_redis": False,
            "subscriber_restarts": 2,
            "local_queue": 1,
            "local_queue_size": 1,
            "local_history": 2,
            "published": 3,
            "duplicates": 0,
            "dropped_events": 1,
            "last_position": None,
            "caught_up": 0,
            "missed_warnings": 0,
        }
        assert "s3cret" not in json.dumps(status)


class TestWatchForRedis:
    """EventBridge.watch_for_redis / _watch_redis: an API that started without Redis."""

    MAX_DELAY = 4.0

    @pytest.fixture
    def answers(self, mocker: Any) -> MagicMock:
        return mocker.patch("osism.services.bridge_link._redis_answers")

    def test_watch_starts_one_watcher_thread(
        self, make_bridge: Any, mocker: Any
    ) -> None:
        thread_cls = mocker.patch("osism.services.event_bridge.threading.Thread")
        bridge = make_bridge(connect=False)
        bridge.watch_for_redis()
        thread_cls.return_value.is_alive.return_value = True
        bridge.watch_for_redis()
        thread_cls.assert_called_once_with(
            target=bridge._watch_redis, name="osism-redis-watcher", daemon=True
        )
        thread_cls.return_value.start.assert_called_once_with()
        assert bridge.status()["watching_for_redis"] is True

    def test_watch_is_not_needed_with_redis(
        self, bridge: EventBridge, mocker: Any
    ) -> None:
        thread_cls = mocker.patch("osism.services.event_bridge.threading.Thread")
        bridge.watch_for_redis()
        thread_cls.assert_not_called()

    def test_watcher_backs_off_while_redis_is_silent(
        self,
        make_bridge: Any,
        stop_event: Any,
        answers: MagicMock,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setattr(settings, "SUBSCRIBER_RESTART_MAX_DELAY", self.MAX_DELAY)
        bridge = make_bridge(connect=False)
        event = stop_event(bridge, stop_on_wait=5)
        answers.return_value = False
        with caplog.at_level(logging.DEBUG, "osism.event_bridge"):
            bridge._watch_redis()
        assert event.waits == [1.0, 2.0, 4.0, 4.0, 4.0]
        # One INFO line says where events stay and how to point at Redis;
        # nothing louder while the default Redis is absent.
        [info] = logged(caplog, logging.INFO)
        assert info.startswith("No Redis answers at redis:6379/0: events stay")
        assert "REDIS_HOST" in info
        assert logged(caplog, logging.WARNING) + logged(caplog, logging.ERROR) == []
        # The first look is at once: an API serves before Redis is found.
        assert answers.call_count == 5
        assert bridge._redis_client is None

    def test_watcher_connects_and_subscribes_once_redis_answers(
        self,
        make_bridge: Any,
        stop_event: Any,
        answers: MagicMock,
        mocker: Any,
        caplog_bridge: Any,
    ) -> None:
        bridge = make_bridge(connect=False)
        bridge._websocket_manager = MagicMock()
        start = mocker.patch.object(bridge, "_start_redis_subscriber")
        event = stop_event(bridge)
        answers.side_effect = [False, True]
        bridge._watch_redis()
        assert event.waits == [1.0]
        assert bridge._redis_client is not None
        start.assert_called_once_with()
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Redis at redis:6379/0 answers: events go through it"
        )

    def test_a_watcher_that_finds_redis_at_once_switches_without_waiting(
        self,
        make_bridge: Any,
        stop_event: Any,
        answers: MagicMock,
        caplog_bridge: Any,
    ) -> None:
        bridge = make_bridge(connect=False)
        event = stop_event(bridge)
        answers.return_value = True
        bridge._watch_redis()
        assert event.waits == []
        assert bridge._redis_client is not None
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Redis at redis:6379/0 answers: events go through it"
        )

    def test_a_watcher_started_after_shutdown_does_not_look(
        self, make_bridge: Any, stop_event: Any, answers: MagicMock
    ) -> None:
        bridge = make_bridge(connect=False)
        stop_event(bridge).set()
        bridge._watch_redis()
        answers.assert_not_called()
        assert bridge._redis_client is None

    def test_watcher_keeps_watching_when_connect_fails_after_the_probe(
        self, make_bridge: Any, stop_event: Any, answers: MagicMock, mocker: Any
    ) -> None:
        bridge = make_bridge(connect=False)
        init = mocker.patch.object(bridge, "_init_redis")
        event = stop_event(bridge, stop_on_wait=2)
        answers.return_value = True
        bridge._watch_redis()
        assert init.call_count == 2
        assert event.waits == [1.0, 2.0]

    def test_watcher_does_not_subscribe_without_a_manager(
        self, make_bridge: Any, stop_event: Any, answers: MagicMock, mocker: Any
    ) -> None:
        bridge = make_bridge(connect=False)
        start = mocker.patch.object(bridge, "_start_redis_subscriber")
        stop_event(bridge)
        answers.return_value = True
        bridge._watch_redis()
        assert bridge._redis_client is not None
        start.assert_not_called()

    def test_shutdown_joins_the_watcher(self, make_bridge: Any) -> None:
        bridge = make_bridge(connect=False)
        watcher = thread_mock(alive=True)
        bridge._watcher_thread = watcher
        bridge.shutdown()
        # Shorter than the others: it may sit in a name lookup, holding nothing.
        watcher.join.assert_called_once_with(timeout=1.0)
        assert bridge._watcher_thread is None


class TestRedisAnswers:
    """_redis_answers: the watcher's quiet probe."""

    def test_redis_answers_true_on_ping_and_closes_its_client(
        self, redis_cls: MagicMock
    ) -> None:
        from osism.services.bridge_link import _redis_answers

        redis_cls.return_value.ping.return_value = True
        assert _redis_answers() is True
        kwargs = redis_cls.call_args.kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis", 6379, 0)
        assert kwargs["retry"].get_retries() == 0
        redis_cls.return_value.close.assert_called_once_with()

    def test_redis_answers_false_without_error_log(
        self, redis_cls: MagicMock, caplog_bridge: Any
    ) -> None:
        from osism.services.bridge_link import _redis_answers

        redis_cls.return_value.ping.side_effect = ConnectionError("refused")
        assert _redis_answers() is False
        assert logged(caplog_bridge, logging.ERROR) == []
        assert logged(caplog_bridge, logging.WARNING) == []


@pytest.fixture
def server(mocker: Any) -> fakeredis.FakeServer:
    """One fakeredis server behind every redis.Redis the bridge builds."""
    server = fakeredis.FakeServer()
    mocker.patch(
        "osism.services.event_bridge.redis.Redis",
        side_effect=lambda **kwargs: fakeredis.FakeRedis(
            server=server, decode_responses=True
        ),
    )
    return server


@pytest.fixture
def redis_view(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    """The test's own client of the same server."""
    return fakeredis.FakeRedis(server=server, decode_responses=True)


@pytest.fixture
def live(server: fakeredis.FakeServer) -> EventBridge:
    """A bridge connected to the fakeredis server (Redis mode)."""
    return EventBridge()


def channel_of(redis: fakeredis.FakeRedis) -> Any:
    pubsub = redis.pubsub()
    pubsub.subscribe(CHANNEL)
    assert pubsub.get_message(timeout=0.1)["type"] == "subscribe"
    return pubsub


def logged_events(redis: fakeredis.FakeRedis) -> List[Dict[str, Any]]:
    return [json.loads(f["event"]) for _, f in redis.xrange(f"{CHANNEL}:log")]


class TestAddEvent:
    """EventBridge.add_event: True once the log has the event."""

    def test_add_event_publishes_the_event_json_on_the_channel(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis, caplog_bridge: Any
    ) -> None:
        pubsub = channel_of(redis_view)
        assert live.add_event(EVENT_TYPE, PAYLOAD) is True
        message = pubsub.get_message(timeout=0.1)
        assert message["channel"] == "osism:events"
        published = json.loads(message["data"])
        # The seed's meaning: the event's event_type and payload.
        assert (published["event_type"], published["payload"]) == (
            EVENT_TYPE,
            PAYLOAD,
        )
        assert uuid.UUID(published["id"]).version == 4
        assert published["timestamp"].endswith("Z")
        # The same event is in the log, at the position the channel named.
        [(position, fields)] = redis_view.xrange("osism:events:log")
        assert published["stream_id"] == position
        assert json.loads(fields["event"]) == {
            k: v for k, v in published.items() if k != "stream_id"
        }
        assert logged(caplog_bridge, logging.DEBUG) == [
            f"Logged {EVENT_TYPE} as {published['id']} at {position} (1 subscribers)"
        ]

    def test_several_events_are_logged_in_order_and_counted(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis
    ) -> None:
        for n in range(4):
            assert live.add_event(EVENT_TYPE, {"n": n}) is True
        assert [e["payload"]["n"] for e in logged_events(redis_view)] == [0, 1, 2, 3]
        assert live.status()["published"] == 4
        assert live.status()["local_history"] == 0  # nothing kept in memory

    def test_a_redelivered_notification_is_logged_and_published_once(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis
    ) -> None:
        pubsub = channel_of(redis_view)
        message_id = str(uuid.uuid4())
        meta = {"message_id": message_id, "service": "ironic", "priority": "INFO"}
        assert live.add_event(EVENT_TYPE, PAYLOAD, meta=meta) is True
        assert live.add_event(EVENT_TYPE, PAYLOAD, meta=meta) is True
        [event] = logged_events(redis_view)
        assert event["id"] == message_id
        assert event["meta"] == meta
        assert pubsub.get_message(timeout=0.1) is not None
        assert pubsub.get_message(timeout=0.1) is None
        assert live.status()["duplicates"] == 1

    def test_an_event_nobody_listens_to_is_kept_in_the_log_quietly(
        self,
        live: EventBridge,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        assert live.add_event(EVENT_TYPE, PAYLOAD) is True
        assert len(logged_events(redis_view)) == 1
        assert logged(caplog_bridge, logging.WARNING) == []

    def test_redis_down_means_false_and_nothing_held(
        self,
        live: EventBridge,
        server: fakeredis.FakeServer,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        server.connected = False
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False
        assert (live.status()["local_history"], queued(live)) == (0, [])
        assert live.status()["mode"] == "redis"
        assert logged(caplog_bridge, logging.WARNING) == [
            f"Appending {EVENT_TYPE} failed: FakeRedis is emulating a connection error."
        ]
        assert any(
            "Cannot connect to Redis" in line
            for line in logged(caplog_bridge, logging.ERROR)
        )
        server.connected = True
        assert live.add_event(EVENT_TYPE, {"n": 1}) is True
        assert [e["payload"] for e in logged_events(redis_view)] == [{"n": 1}]

    def test_a_broken_connection_is_retried_once_after_reconnecting(
        self,
        live: EventBridge,
        redis_view: fakeredis.FakeRedis,
        mocker: Any,
        caplog_bridge: Any,
    ) -> None:
        clients = []
        real_append = RedisEventLog.append

        def append(log: RedisEventLog, envelope: Dict[str, Any]) -> Any:
            clients.append(log.client)
            if len(clients) == 1:
                raise redis.ConnectionError("reset")
            return real_append(log, envelope)

        mocker.patch.object(RedisEventLog, "append", autospec=True, side_effect=append)
        assert live.add_event(EVENT_TYPE, PAYLOAD) is True
        [event] = logged_events(redis_view)
        assert event["payload"] == PAYLOAD
        assert clients[0] is not clients[1]  # through a new client
        assert logged(caplog_bridge, logging.WARNING) == [
            f"Appending {EVENT_TYPE} failed: reset"
        ]
        assert f"Appended {event['id']} after reconnecting to Redis" in logged(
            caplog_bridge, logging.INFO
        )

    @pytest.mark.parametrize(
        "second, warnings",
        [
            (
                redis.ConnectionError("again"),
                ["Appending after reconnecting failed: again"],
            ),
            (None, []),
        ],
        ids=["fails", "no-redis"],
    )
    def test_a_reconnect_that_does_not_help_is_false(
        self,
        bridge: EventBridge,
        client: MagicMock,
        mocker: Any,
        caplog_bridge: Any,
        second: Optional[Exception],
        warnings: List[str],
    ) -> None:
        mocker.patch(
            "osism.services.redis_log.RedisEventLog.append",
            side_effect=[redis.ConnectionError("reset"), second],
        )
        if second is None:
            client.ping.side_effect = ConnectionError("refused")
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is False
        assert logged(caplog_bridge, logging.WARNING) == [
            f"Appending {EVENT_TYPE} failed: reset",
            *warnings,
        ]

    def test_a_publisher_does_not_wait_for_another_threads_reconnect(
        self, bridge: EventBridge, mocker: Any
    ) -> None:
        bridge._redis_client = None
        lock = MagicMock()
        lock.acquire.return_value = False  # the subscriber is reconnecting
        bridge._redis_lock = lock
        init = mocker.patch.object(bridge, "_init_redis")
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is False
        lock.acquire.assert_called_once_with(blocking=False)
        init.assert_not_called()

    def test_a_timeout_is_not_retried(
        self,
        bridge: EventBridge,
        redis_cls: MagicMock,
        mocker: Any,
        caplog_bridge: Any,
    ) -> None:
        # A frozen Redis: one socket timeout, no second wait on top.
        append = mocker.patch(
            "osism.services.redis_log.RedisEventLog.append",
            side_effect=redis.TimeoutError("Timeout reading from socket"),
        )
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is False
        assert (append.call_count, redis_cls.call_count) == (1, 1)
        assert logged(caplog_bridge, logging.WARNING) == [
            f"Redis did not take {EVENT_TYPE}: Timeout reading from socket; not taken"
        ]

    def test_the_clients_retry_broken_connections_once_and_timeouts_never(
        self, live: EventBridge
    ) -> None:
        retry = live._redis_client.get_retry()
        assert retry.get_retries() == 1
        assert redis.ConnectionError in retry._supported_errors
        assert redis.TimeoutError not in retry._supported_errors

    def test_a_payload_that_is_not_json_is_an_error_and_false(
        self, live: EventBridge, caplog_bridge: Any
    ) -> None:
        assert live.add_event(EVENT_TYPE, {"bad": object()}) is False
        assert logged(caplog_bridge, logging.ERROR) == [
            f"Error adding event {EVENT_TYPE!r}: Object of type object is not JSON "
            "serializable; event not taken"
        ]

    def test_a_publisher_in_redis_mode_waits_for_redis(
        self, server: fakeredis.FakeServer, redis_view: fakeredis.FakeRedis
    ) -> None:
        server.connected = False
        bridge = EventBridge(connect=False)
        assert bridge.use_redis() is False
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is False
        server.connected = True
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is True
        assert len(logged_events(redis_view)) == 1


class TestEmbeddedMode:
    """Without Redis at start: the bounded history lives in this process."""

    def test_events_are_logged_in_memory_and_handed_on_in_order(
        self, make_bridge: Any
    ) -> None:
        bridge = make_bridge(connect=False)
        for n in range(3):
            assert bridge.add_event(EVENT_TYPE, {"n": n}) is True
        handed = queued(bridge)
        assert [e["payload"] for e in handed] == [{"n": 0}, {"n": 1}, {"n": 2}]
        positions = [e["stream_id"] for e in handed]
        assert positions == sorted(positions, key=position_key)
        assert bridge.status()["local_history"] == 3

    def test_the_history_holds_event_history_size_events(
        self, make_bridge: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "EVENT_HISTORY_SIZE", 2)
        bridge = make_bridge(connect=False)
        for n in range(3):
            bridge.add_event(EVENT_TYPE, {"n": n})
        assert bridge.status()["local_history"] == 2

    def test_a_redelivery_after_the_dedupe_window_is_logged_again(
        self, make_bridge: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "EVENT_DEDUPE_SECONDS", 0)
        bridge = make_bridge(connect=False)
        meta = {"message_id": str(uuid.uuid4())}
        bridge.add_event(EVENT_TYPE, PAYLOAD, meta=meta)
        bridge.add_event(EVENT_TYPE, PAYLOAD, meta=meta)
        assert (len(queued(bridge)), bridge.status()["duplicates"]) == (2, 0)

    def test_a_redelivery_is_logged_and_handed_on_once(self, make_bridge: Any) -> None:
        bridge = make_bridge(connect=False)
        meta = {"message_id": str(uuid.uuid4())}
        assert bridge.add_event(EVENT_TYPE, PAYLOAD, meta=meta) is True
        assert bridge.add_event(EVENT_TYPE, PAYLOAD, meta=meta) is True
        assert [e["id"] for e in queued(bridge)] == [meta["message_id"]]
        assert bridge.status()["duplicates"] == 1

    def test_a_full_hand_off_queue_drops_the_oldest_waiting_but_logs_all(
        self, make_bridge: Any, caplog_bridge: Any
    ) -> None:
        bridge = make_bridge(connect=False, queue_size=2)
        for n in range(4):
            assert bridge.add_event(EVENT_TYPE, {"n": n}) is True
        assert [e["payload"]["n"] for e in queued(bridge)] == [2, 3]
        assert bridge.dropped_events == 2
        assert len(logged(caplog_bridge, logging.WARNING)) == 1  # rate-limited
        # Still in the log: a client can resume from it.
        assert len(bridge._memory_log.read_after(None, 10)) == 4

    def test_replay_reads_the_memory_log(self, make_bridge: Any) -> None:
        bridge = make_bridge(connect=False)
        for n in range(4):
            bridge.add_event(EVENT_TYPE, {"n": n})
        first = queued(bridge)[0]["id"]
        replay = bridge.replay(first, 10)
        assert [e.event["payload"]["n"] for e in replay.entries] == [1, 2, 3]
        assert (replay.recovered, replay.oldest_id) == (True, first)


class TestReplay:
    """EventBridge.replay delegates to the current log."""

    def test_replay_reads_the_redis_log(self, live: EventBridge) -> None:
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for event_id in ids:
            live.add_event(EVENT_TYPE, PAYLOAD, meta={"message_id": event_id})
        replay = live.replay(ids[0], 10)
        assert [e.event["id"] for e in replay.entries] == ids[1:]
        assert replay.recovered is True

    def test_replay_with_redis_down_recovers_nothing_and_warns(
        self,
        live: EventBridge,
        server: fakeredis.FakeServer,
        caplog_bridge: Any,
    ) -> None:
        server.connected = False
        assert live.replay(str(uuid.uuid4()), 10) == ([], False, None)
        assert logged(caplog_bridge, logging.WARNING) == [
            "Cannot read the event log for a resume: FakeRedis is emulating a "
            "connection error."
        ]

    def test_a_publisher_that_never_reached_redis_has_nothing_to_replay(
        self, server: fakeredis.FakeServer
    ) -> None:
        server.connected = False
        bridge = EventBridge(connect=False)
        assert bridge.use_redis() is False
        assert bridge.replay(str(uuid.uuid4()), 10) == ([], False, None)


def envelope_of(event_type: str = EVENT_TYPE, **extra: Any) -> Dict[str, Any]:
    return {"event_type": event_type, "payload": PAYLOAD, **extra}


class TestProcessSingleEvent:
    """EventBridge._process_single_event: where threads meet asyncio."""

    def test_without_manager_warns_and_returns(
        self, bridge: EventBridge, caplog_bridge: Any
    ) -> None:
        bridge._process_single_event(envelope_of())
        assert logged(caplog_bridge, logging.WARNING) == [
            "No WebSocket manager available; event dropped"
        ]
        assert logged(caplog_bridge, logging.ERROR) == []

    @pytest.mark.asyncio
    async def test_hands_the_coroutine_to_the_manager_loop(
        self, bridge: EventBridge
    ) -> None:
        manager = MagicMock()
        manager.loop = asyncio.get_running_loop()
        manager.broadcast_event_from_notification = AsyncMock()
        bridge._websocket_manager = manager
        meta = {"service": "ironic"}
        bridge._process_single_event(
            envelope_of(id="e1", timestamp="2026-01-01T00:00:00Z", meta=meta)
            | {"stream_id": "5-0"}
        )
        await async_wait_until(
            lambda: manager.broadcast_event_from_notification.await_count == 1
        )
        manager.broadcast_event_from_notification.assert_awaited_once_with(
            EVENT_TYPE,
            PAYLOAD,
            meta=meta,
            event_id="e1",
            timestamp="2026-01-01T00:00:00Z",
            position="5-0",
        )

    @pytest.mark.asyncio
    async def test_a_plain_seed_message_and_missing_keys(
        self, bridge: EventBridge
    ) -> None:
        manager = MagicMock()
        manager.loop = asyncio.get_running_loop()
        manager.broadcast_event_from_notification = AsyncMock()
        bridge._websocket_manager = manager
        bridge._process_single_event({"event_type": EVENT_TYPE, "payload": PAYLOAD})
        bridge._process_single_event({})
        await async_wait_until(
            lambda: manager.broadcast_event_from_notification.await_count == 2
        )
        calls = manager.broadcast_event_from_notification.await_args_list
        none = dict(meta=None, event_id=None, timestamp=None, position=None)
        assert calls == [call(EVENT_TYPE, PAYLOAD, **none), call("", {}, **none)]

    @pytest.mark.asyncio
    async def test_a_real_manager_gets_the_events_in_order_with_their_ids(
        self, make_bridge: Any
    ) -> None:
        bridge = make_bridge(connect=False)
        manager = WebSocketManager()
        manager.loop = asyncio.get_running_loop()
        bridge._websocket_manager = manager
        for n in range(5):
            bridge.add_event(EVENT_TYPE, {"n": n})
        handed = queued(bridge)
        for event in handed:
            bridge._process_single_event(event)
        await async_wait_until(lambda: manager.event_queue.qsize() == 5)
        events = [manager.event_queue.get_nowait() for _ in range(5)]
        assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]
        assert [e.id for e in events] == [e["id"] for e in handed]
        assert [e.position for e in events] == [e["stream_id"] for e in handed]
        assert [e.timestamp for e in events] == [e["timestamp"] for e in handed]

    @pytest.mark.parametrize(
        "loop", [None, "not-running", "closed", "not-a-loop", "no-loop"], ids=str
    )
    def test_without_a_running_loop_the_event_is_counted_not_run(
        self, bridge: EventBridge, caplog_bridge: Any, loop: Any
    ) -> None:
        manager = MagicMock()
        if loop == "no-loop":
            del manager.loop
        elif loop == "not-running":
            manager.loop = asyncio.new_event_loop()
        elif loop == "closed":
            manager.loop = asyncio.new_event_loop()
            manager.loop.close()
        elif loop == "not-a-loop":
            manager.loop = "loop"
        else:
            manager.loop = None
        bridge._websocket_manager = manager
        try:
            bridge._process_single_event(envelope_of())
            bridge._process_single_event(envelope_of())
        finally:
            if isinstance(getattr(manager, "loop", None), asyncio.AbstractEventLoop):
                manager.loop.close()
        manager.broadcast_event_from_notification.assert_not_called()
        assert bridge.dropped_events == 2
        assert logged(caplog_bridge, logging.WARNING) == [  # rate-limited
            "The WebSocket manager's loop is not running; "
            f"{EVENT_TYPE} not delivered (1 so far)"
        ]

    @pytest.mark.asyncio
    async def test_a_failing_coroutine_is_logged(
        self, bridge: EventBridge, caplog_bridge: Any
    ) -> None:
        manager = MagicMock()
        manager.loop = asyncio.get_running_loop()
        manager.broadcast_event_from_notification = AsyncMock(
            side_effect=RuntimeError("broken")
        )
        bridge._websocket_manager = manager
        bridge._process_single_event(envelope_of())
        await async_wait_until(
            lambda: "Error broadcasting an event: broken"
            in logged(caplog_bridge, logging.ERROR)
        )


def finished(outcome: str) -> "Future[Any]":
    future: "Future[Any]" = Future()
    if outcome == "result":
        future.set_result(None)
    elif outcome == "error":
        future.set_exception(RuntimeError("broken"))
    else:
        future.cancel()
    return future


class TestLogFailure:
    """_log_failure: the done-callback of every hand-off to the manager."""

    @pytest.mark.parametrize(
        "outcome, errors",
        [
            ("result", []),
            ("error", ["Error broadcasting an event: broken"]),
            ("cancelled", []),
        ],
    )
    def test_only_a_failed_broadcast_is_logged(
        self, caplog_bridge: Any, outcome: str, errors: List[str]
    ) -> None:
        _log_failure(finished(outcome))
        assert logged(caplog_bridge, logging.ERROR) == errors


class TestSubscriberCatchesUp:
    """The subscriber loop on fakeredis: after every (re)subscribe it reads
    the log from the last position it delivered, then continues live, with
    no gap and no duplicate. Without a manager, what it delivers lands on the
    local queue, where the test reads it."""

    def drive(self, bridge: EventBridge, steps: List[Callable[[], None]]) -> None:
        """Run the loop; before each get_message the next step runs; after
        the last one, shutdown."""
        subscriber = bridge._redis_subscriber
        real = subscriber.get_message
        pending = list(steps)

        def get_message(timeout: float) -> Any:
            if not pending:
                bridge._shutdown_event.set()
                return None
            pending.pop(0)()
            return real(timeout=0.01)

        subscriber.get_message = get_message
        bridge._redis_subscriber_loop()

    def test_the_first_subscribe_starts_at_the_tail_then_goes_live(
        self, live: EventBridge, caplog_bridge: Any
    ) -> None:
        live.add_event(EVENT_TYPE, {"n": "before"})
        tail = live._redis_log.last_position()
        self.drive(
            live,
            [
                lambda: None,  # the confirmation: nothing to catch up
                lambda: live.add_event(EVENT_TYPE, {"n": 1}),
                lambda: live.add_event(EVENT_TYPE, {"n": 2}),
            ],
        )
        assert [e["payload"]["n"] for e in queued(live)] == [1, 2]
        assert live.status()["caught_up"] == 0
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            f"Subscribed to Redis channel osism:events; live from {tail}"
        )

    def test_the_health_check_pings_on_the_subscription_between_events(
        self, live: EventBridge, stop_event: Any, caplog_bridge: Any
    ) -> None:
        stop_event(live)
        live._feed.interval = 0.0  # a PING at every poll
        self.drive(
            live,
            [
                lambda: None,
                lambda: live.add_event(EVENT_TYPE, {"n": 1}),
                lambda: None,
                lambda: live.add_event(EVENT_TYPE, {"n": 2}),
                lambda: None,
            ],
        )
        assert [e["payload"]["n"] for e in queued(live)] == [1, 2]
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_a_resubscribe_delivers_the_gap_then_live_without_duplicates(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis
    ) -> None:
        # Delivered up to the first event; two more came while away.
        live.add_event(EVENT_TYPE, {"n": 0})
        live._feed.started = True
        live._feed.position = live._redis_log.last_position()
        live.add_event(EVENT_TYPE, {"n": 1})
        live.add_event(EVENT_TYPE, {"n": 2})
        self.drive(
            live,
            [
                # Published while the loop catches up: in the log and on the
                # channel, so it must come once.
                lambda: live.add_event(EVENT_TYPE, {"n": 3}),
                lambda: live.add_event(EVENT_TYPE, {"n": 4}),
                lambda: None,
                lambda: None,
            ],
        )
        assert [e["payload"]["n"] for e in queued(live)] == [1, 2, 3, 4]
        status = live.status()
        assert status["caught_up"] == 3
        assert status["last_position"] == live._redis_log.last_position()

    def test_a_plain_seed_message_is_delivered_as_it_is(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis
    ) -> None:
        plain = {"event_type": EVENT_TYPE, "payload": PAYLOAD}
        self.drive(
            live,
            [
                lambda: None,
                lambda: redis_view.publish(CHANNEL, json.dumps(plain)),
                lambda: None,
            ],
        )
        assert queued(live) == [plain]

    def test_a_dead_connection_found_by_the_health_check_takes_the_retry_path(
        self, bridge: EventBridge, no_wait: StopEvent, mocker: Any
    ) -> None:
        sub = MagicMock(name="pubsub")
        bridge._redis_subscriber = sub
        init = mocker.patch.object(bridge, "_init_redis")
        check = mocker.patch.object(
            bridge._feed,
            "check_health",
            side_effect=[None, DeadConnection("no pong"), None],
        )
        sub.get_message.side_effect = stop_on_last(no_wait, SUBSCRIBED, None, None)
        seen: List[bool] = []
        init.side_effect = lambda: seen.append(bridge._subscribed)
        bridge._redis_subscriber_loop()
        assert check.call_count == 3
        assert seen == [False]  # not ready while it reconnects
        assert sub.subscribe.call_count == 2
