"""Unit tests of osism.services.event_bridge, through the bridge (with the
parts it composes: bridge/publisher.py, subscriber.py, supervisor.py, link.py
and handoff.py; test_bridge_parts.py tests the parts on their own).

The tests watch what the bridge does, not how it calls its collaborators:

- Redis is a fakeredis server (:class:`FakeRedisServer`) behind every
  ``redis.Redis`` the code builds; a test reads the log, the channel and the
  subscriptions from its own client of that server, and takes Redis away
  with ``server.connected = False``;
- threads are :class:`FakeThread` objects: started, they are alive (as
  ``status()`` reports) but run only when a test calls ``run()``, in the
  test's thread; a hung one makes ``join`` wait out its timeout on a fake
  clock;
- ``_shutdown_event`` is a :class:`StopEvent`: a fake clock that never blocks,
  records every wait and ends any loop that runs longer than its budget;
- what reaches the WebSocket manager is read from a real
  :class:`WebSocketManager`'s queue, on the test's event loop; without a
  manager the bridge hands events to its local queue, where a test reads them.
"""

import asyncio
import json
import logging
import queue
import threading
import uuid
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List, Optional
from unittest.mock import AsyncMock, MagicMock

import fakeredis
import pytest
import pytest_asyncio
import redis

from osism import settings
from osism.core import backoff
from osism.services import event_bridge as event_bridge_module
from osism.services.bridge.link import _redis_answers
from osism.services.bridge.status import BridgeStatus
from osism.services.event_bridge import CHANNEL, EventBridge, _log_failure
from osism.core.event_log import position_key
from osism.services.bridge.redis_log import RedisEventLog
from osism.services.websocket_manager import WebSocketManager
from tests.conftest import async_wait_until, wait_until

LOGGER = "osism.event_bridge"
EVENT_TYPE = "baremetal.node.power_set.end"
PAYLOAD = {"ironic_object.data": {"name": "node1", "uuid": "abc-123"}}
# The settings every client of the bridge gets from a bare environment.
UPSTREAM_CLIENT = {
    "host": "redis",
    "port": 6379,
    "db": 0,
    "decode_responses": True,
    "socket_connect_timeout": 10.0,
    "socket_timeout": 5.0,
    "health_check_interval": 30,
    "socket_keepalive": True,
}


class StopEvent(threading.Event):
    """A ``_shutdown_event`` that never blocks and ends every loop.

    ``wait(timeout)`` records ``timeout`` in ``waits`` (and in ``journal`` when
    one is given), runs ``on_wait`` (what happens meanwhile) and returns at
    once; the ``stop_on_wait``-th wait sets the event, as a shutdown during a
    back-off would, and so does the ``stop_on_check``-th ``is_set()``. Once
    ``is_set()`` and ``wait()`` were called more than ``budget`` times in all,
    the event sets itself and ``exhausted`` tells that the loop under test did
    not end the way the test meant it to.
    """

    def __init__(
        self,
        stop_on_wait: Optional[int] = None,
        budget: int = 200,
        stop_on_check: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.stop_on_wait = stop_on_wait
        self.stop_on_check = stop_on_check
        self.budget = budget
        self.checks = 0
        self.waits: List[Optional[float]] = []
        self.journal: Optional[List[Any]] = None
        self.on_wait: Callable[[], None] = lambda: None
        self.exhausted = False

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks == self.stop_on_check:
            self.set()
        if self.checks > self.budget and not super().is_set():
            self.exhausted = True
            self.set()
        return super().is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.waits.append(timeout)
        if self.journal is not None:
            self.journal.append(("wait", timeout))
        self.on_wait()
        if self.stop_on_wait is not None and len(self.waits) >= self.stop_on_wait:
            self.set()
        return self.is_set()


class FakeThread:
    """``threading.Thread`` for the bridge: ``start()`` makes it alive without
    running it; ``run()`` runs its target in the test's thread; ``join`` ends
    it at once, unless it ``hangs``: then ``join(timeout)`` waits the whole
    timeout on the fake clock (``waited``) and it stays alive."""

    def __init__(
        self,
        threads: "FakeThreads",
        target: Callable[[], None],
        name: str,
        daemon: bool,
    ) -> None:
        self.threads, self.target, self.name, self.daemon = (
            threads,
            target,
            name,
            daemon,
        )
        self.alive = False
        self.hangs = False
        self.waited = 0.0

    def start(self) -> None:
        self.alive = True
        self.threads.started.append(self)

    def is_alive(self) -> bool:
        return self.alive

    def join(self, timeout: Optional[float] = None) -> None:
        if not self.alive:
            return
        if timeout is None:
            pytest.fail(f"{self.name} joined without a timeout")
        if self.hangs:
            self.waited += timeout
        else:
            self.alive = False

    def run(self) -> None:
        try:
            self.target()
        finally:
            self.alive = False


class FakeThreads:
    """The threads the bridge started, by name."""

    def __init__(self) -> None:
        self.started: List[FakeThread] = []

    def Thread(self, target: Callable[[], None], name: str, daemon: bool) -> FakeThread:
        return FakeThread(self, target, name, daemon)

    def names(self) -> List[str]:
        return [thread.name for thread in self.started]

    def named(self, name: str) -> FakeThread:
        [thread] = [t for t in self.started if t.name == name]
        return thread


SUBSCRIBER = "osism-redis-subscriber"
PROCESSOR = "osism-bridge-processor"
WATCHER = "osism-redis-watcher"


class FakeClient(fakeredis.FakeRedis):
    """A fakeredis client that knows whether it was closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class FakeRedisServer(fakeredis.FakeServer):
    """A fakeredis server behind every ``redis.Redis`` the code builds;
    ``built`` holds the settings each was built with, ``refuse`` makes
    building one fail (a Redis that answers a probe but refuses clients)."""

    def __init__(self) -> None:
        super().__init__()
        self.built: List[Dict[str, Any]] = []
        self.clients_built: List[FakeClient] = []
        self.refuse: Callable[[Dict[str, Any]], bool] = lambda settings: False

    def build(self, **settings: Any) -> fakeredis.FakeRedis:
        self.built.append(settings)
        if self.refuse(settings):
            raise redis.ConnectionError("refused")
        client = FakeClient(server=self, decode_responses=True)
        self.clients_built.append(client)
        return client

    def open_clients(self) -> int:
        return sum(1 for client in self.clients_built if not client.closed)

    def probes(self) -> int:
        """How often the code asked whether Redis answers (probe clients)."""
        return sum(1 for settings in self.built if "retry" in settings)

    def channel_subscribers(self) -> int:
        """How many subscriptions to the channel the server holds."""
        view = fakeredis.FakeRedis(server=self, decode_responses=True)
        return int(dict(view.pubsub_numsub(CHANNEL))[CHANNEL])


class BrokenPubSub:
    """A subscription whose close() fails, as one on a broken socket may."""

    def __init__(self, error: str) -> None:
        self.error = error

    def close(self) -> None:
        raise RuntimeError(self.error)


def message(event_type: str = EVENT_TYPE, payload: Any = None) -> dict:
    """A pub/sub message as ``PubSub.get_message`` returns it."""
    body = {
        "event_type": event_type,
        "payload": PAYLOAD if payload is None else payload,
    }
    return {"type": "message", "channel": CHANNEL, "data": json.dumps(body)}


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


def draw(monkeypatch: pytest.MonkeyPatch, *values: float) -> None:
    """Every back-off draws ``values`` in turn (then the test fails)."""
    monkeypatch.setattr(backoff, "source", iter(values).__next__)


@pytest.fixture(autouse=True)
def highest_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every back-off draws its highest delay, the step itself, so that a test
    reads the steps; TestJitter draws other delays."""
    monkeypatch.setattr(backoff, "source", lambda: 1.0)


@pytest.fixture(autouse=True)
def redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream osism's defaults hold whatever the caller's environment says."""
    for name in (
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_DB",
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def caplog_bridge(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeRedisServer:
    """The fakeredis server behind every redis.Redis (the module attribute
    upstream osism names: ``osism.services.event_bridge.redis``)."""
    server = FakeRedisServer()
    monkeypatch.setattr(event_bridge_module.redis, "Redis", server.build)
    return server


@pytest.fixture
def redis_view(server: FakeRedisServer) -> fakeredis.FakeRedis:
    """The test's own client of the same server."""
    return fakeredis.FakeRedis(server=server, decode_responses=True)


@pytest.fixture
def live(server: FakeRedisServer) -> EventBridge:
    """A bridge connected to the fakeredis server (Redis mode)."""
    return EventBridge()


@pytest.fixture
def local(server: FakeRedisServer) -> EventBridge:
    """A bridge that did not connect (embedded mode until told otherwise)."""
    return EventBridge(connect=False)


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> FakeThreads:
    """The threads the bridge starts are FakeThreads."""
    threads = FakeThreads()
    monkeypatch.setattr(
        event_bridge_module,
        "threading",
        SimpleNamespace(
            Thread=threads.Thread,
            Event=threading.Event,
            Lock=threading.Lock,
            RLock=threading.RLock,
        ),
    )
    return threads


@pytest.fixture
def stop_event() -> Iterator[Callable[..., StopEvent]]:
    """Installs a StopEvent on a bridge; fails a test whose loop ran away."""
    events: List[StopEvent] = []

    def install(bridge: EventBridge, **kwargs: Any) -> StopEvent:
        event = StopEvent(**kwargs)
        bridge._shutdown_event = event
        events.append(event)
        return event

    yield install
    assert not any(e.exhausted for e in events), "a loop under test did not end"


@pytest_asyncio.fixture
async def manager() -> WebSocketManager:
    """A real manager bound to the test's running loop."""
    manager = WebSocketManager()
    manager.loop = asyncio.get_running_loop()
    return manager


async def received(manager: WebSocketManager, count: int) -> List[Any]:
    """The first ``count`` events that reached ``manager`` (waits for them)."""
    await async_wait_until(lambda: manager.event_queue.qsize() >= count)
    return [manager.event_queue.get_nowait() for _ in range(count)]


def subscribe(pubsub: Any) -> Any:
    """Subscribe ``pubsub`` to the channel and take the confirmation."""
    pubsub.subscribe(CHANNEL)
    assert pubsub.get_message(timeout=0.1)["type"] == "subscribe"
    return pubsub


class TestConnecting:
    """EventBridge.__init__ / _init_redis / connect / use_redis: which Redis the
    bridge talks to, and what it reports when it cannot."""

    def test_the_client_gets_upstreams_defaults(self, server: FakeRedisServer) -> None:
        bridge = EventBridge()
        assert server.built == [UPSTREAM_CLIENT]
        assert bridge.status().redis == "redis:6379/0"

    @pytest.mark.parametrize(
        "env, where, address",
        [
            (
                {"REDIS_HOST": "redis.example"},
                "redis.example:6379/0",
                ("redis.example", 6379, 0),
            ),
            ({"REDIS_PORT": "6380"}, "redis:6380/0", ("redis", 6380, 0)),
            ({"REDIS_DB": "3"}, "redis:6379/3", ("redis", 6379, 3)),
            (
                {"REDIS_HOST": "10.0.0.5", "REDIS_PORT": "7000", "REDIS_DB": "1"},
                "10.0.0.5:7000/1",
                ("10.0.0.5", 7000, 1),
            ),
            ({"REDIS_PORT": "not-a-port"}, "redis:6379/0", ("redis", 6379, 0)),
        ],
        ids=["host", "port", "db", "all", "invalid-port-keeps-default"],
    )
    def test_the_address_comes_from_the_environment(
        self,
        monkeypatch: pytest.MonkeyPatch,
        server: FakeRedisServer,
        env: dict,
        where: str,
        address: tuple,
    ) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        bridge = EventBridge()
        [client] = server.built
        built = (client["host"], client["port"], client["db"])
        assert built == address
        assert type(client["port"]) is int and type(client["db"]) is int
        assert bridge.status().redis == where

    def test_a_bridge_that_reached_redis_logs_there_and_subscribes(
        self,
        server: FakeRedisServer,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        bridge = EventBridge()
        assert logged(caplog_bridge, logging.INFO) == [
            "Connected to Redis at redis:6379/0"
        ]
        status = bridge.status()
        assert (status.mode, status.redis_connected) == ("redis", True)
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is True
        assert redis_view.xlen(f"{CHANNEL}:log") == 1
        # Its subscription is open on the same server.
        subscribe(bridge._redis_subscriber)
        assert server.channel_subscribers() == 1

    def test_a_redis_that_does_not_answer_leaves_the_bridge_local(
        self, server: FakeRedisServer, caplog_bridge: Any
    ) -> None:
        server.connected = False
        bridge = EventBridge()
        status = bridge.status()
        assert (status.mode, status.redis_connected) == ("local", False)
        assert logged(caplog_bridge, logging.ERROR) == [
            "Failed to connect to Redis: Cannot connect to Redis at redis:6379/0: "
            f"{DOWN}; retrying with back-off"
        ]
        # No subscription to run.
        bridge._redis_subscriber_loop()
        assert logged(caplog_bridge, logging.ERROR)[-1] == (
            "Redis subscriber not available; not subscribing"
        )

    def test_without_the_redis_package_redis_is_not_used(
        self,
        monkeypatch: pytest.MonkeyPatch,
        server: FakeRedisServer,
        caplog_bridge: Any,
    ) -> None:
        monkeypatch.setattr(event_bridge_module, "REDIS_AVAILABLE", False)
        bridge = EventBridge()
        assert server.built == []
        assert (bridge.status().mode, bridge.status().redis_connected) == (
            "local",
            False,
        )
        assert bridge._redis_subscriber is None
        assert logged(caplog_bridge, logging.WARNING) == [
            "Redis not available - event bridge will use local queue only "
            "(the Python package redis is missing)"
        ]

    def test_a_bridge_built_without_connecting_keeps_events_in_memory(
        self, server: FakeRedisServer, redis_view: fakeredis.FakeRedis
    ) -> None:
        bridge = EventBridge(connect=False)
        assert bridge.add_event(EVENT_TYPE, PAYLOAD) is True
        assert server.built == []
        assert redis_view.exists(f"{CHANNEL}:log") == 0
        assert bridge.status().local_history == 1

    @pytest.mark.parametrize(
        "queue_size, expected",
        [(None, settings.BRIDGE_QUEUE_SIZE), (3, 3)],
        ids=["settings", "argument"],
    )
    def test_the_local_queue_is_bounded(
        self, server: FakeRedisServer, queue_size: Optional[int], expected: int
    ) -> None:
        bridge = EventBridge(connect=False, queue_size=queue_size)
        assert bridge.status().local_queue_size == expected > 0

    def test_a_reconnect_replaces_the_subscription(
        self, live: EventBridge, server: FakeRedisServer
    ) -> None:
        old = subscribe(live._redis_subscriber)
        live._init_redis()
        assert server.channel_subscribers() == 0  # the old one is closed
        new = live._redis_subscriber
        assert new is not None and new is not old
        subscribe(new)
        assert server.channel_subscribers() == 1

    def test_a_reconnect_survives_an_old_subscription_that_fails_to_close(
        self, live: EventBridge, server: FakeRedisServer, caplog_bridge: Any
    ) -> None:
        live._redis_subscriber = BrokenPubSub("already broken")
        live._init_redis()
        subscribe(live._redis_subscriber)
        assert server.channel_subscribers() == 1
        assert live.status().redis_connected is True
        assert "Closing the old Redis subscriber failed: already broken" in logged(
            caplog_bridge, logging.DEBUG
        )

    def test_a_failed_reconnect_closes_the_old_subscription(
        self, live: EventBridge, server: FakeRedisServer
    ) -> None:
        subscribe(live._redis_subscriber)
        server.connected = False
        live._init_redis()
        server.connected = True
        assert server.channel_subscribers() == 0
        assert live._redis_subscriber is None
        assert live.status().redis_connected is False

    @pytest.mark.parametrize("redis_up", [True, False], ids=["up", "down"])
    def test_connecting_the_publisher_keeps_the_subscription(
        self, live: EventBridge, server: FakeRedisServer, redis_up: bool
    ) -> None:
        old = subscribe(live._redis_subscriber)
        server.connected = redis_up
        live._init_redis(with_subscriber=False)
        server.connected = True
        assert live._redis_subscriber is old
        assert server.channel_subscribers() == 1
        assert live.status().redis_connected is redis_up

    @pytest.mark.parametrize("redis_up", [True, False], ids=["up", "down"])
    def test_use_redis_connects_the_publisher_and_keeps_the_subscription(
        self, live: EventBridge, server: FakeRedisServer, redis_up: bool
    ) -> None:
        old = subscribe(live._redis_subscriber)
        server.connected = redis_up
        assert live.use_redis() is redis_up
        server.connected = True
        assert live._redis_subscriber is old
        assert server.channel_subscribers() == 1
        assert live.status().redis_connected is redis_up

    @pytest.mark.parametrize(
        "redis_available, redis_up, expected",
        [(True, True, True), (True, False, False), (False, True, False)],
        ids=["answers", "ping-fails", "no-redis-package"],
    )
    def test_connect_returns_whether_redis_answered(
        self,
        monkeypatch: pytest.MonkeyPatch,
        local: EventBridge,
        server: FakeRedisServer,
        redis_available: bool,
        redis_up: bool,
        expected: bool,
    ) -> None:
        monkeypatch.setattr(event_bridge_module, "REDIS_AVAILABLE", redis_available)
        server.connected = redis_up
        assert local.connect() is expected
        assert local.status().redis_connected is expected


class TestSetWebsocketManager:
    """EventBridge.set_websocket_manager: the threads that deliver."""

    @pytest.mark.parametrize(
        "redis_up, started",
        [(True, [SUBSCRIBER]), (False, [PROCESSOR])],
        ids=["redis-subscriber-only", "embedded-processor-only"],
    )
    def test_it_starts_the_threads_delivery_needs(
        self,
        server: FakeRedisServer,
        threads: FakeThreads,
        caplog_bridge: Any,
        redis_up: bool,
        started: List[str],
    ) -> None:
        server.connected = redis_up
        bridge = EventBridge()
        caplog_bridge.clear()
        bridge.set_websocket_manager(object())
        assert threads.names() == started
        thread = "Redis event subscriber" if redis_up else "event bridge processor"
        assert logged(caplog_bridge, logging.INFO) == [
            "WebSocket manager connected to event bridge",
            f"Started {thread} thread",
        ]
        assert all(thread.daemon for thread in threads.started)
        status = bridge.status()
        assert (status.subscriber_alive, status.processor_alive) == (
            redis_up,
            not redis_up,
        )

    def test_a_second_manager_starts_no_second_thread(
        self, live: EventBridge, threads: FakeThreads
    ) -> None:
        live.set_websocket_manager(object())
        live.set_websocket_manager(object())
        assert threads.names() == [SUBSCRIBER]

    def test_a_second_manager_in_embedded_mode_starts_no_second_processor(
        self, local: EventBridge, threads: FakeThreads
    ) -> None:
        local.set_websocket_manager(object())
        local.set_websocket_manager(object())
        assert threads.names() == [PROCESSOR]

    def test_a_processor_that_ended_is_started_again(
        self, local: EventBridge, threads: FakeThreads, stop_event: Any
    ) -> None:
        local.set_websocket_manager(object())
        stop_event(local).set()
        threads.named(PROCESSOR).run()  # ends at once: shutdown is set
        assert local.status().processor_alive is False
        local.set_websocket_manager(object())
        assert threads.names() == [PROCESSOR, PROCESSOR]
        assert local.status().processor_alive is True

    @pytest.mark.asyncio
    async def test_the_processor_delivers_to_the_manager(
        self,
        local: EventBridge,
        threads: FakeThreads,
        stop_event: Any,
        manager: WebSocketManager,
        caplog_bridge: Any,
    ) -> None:
        local.set_websocket_manager(manager)
        assert local.add_event(EVENT_TYPE, {"n": 1}) is True
        stop_event(local, stop_on_check=2)  # after one event
        threads.named(PROCESSOR).run()
        [event] = await received(manager, 1)
        assert (event.event_type, event.data["n"]) == (EVENT_TYPE, 1)
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Event bridge processor stopped"
        )

    @pytest.mark.asyncio
    async def test_a_manager_set_after_a_shutdown_is_served(
        self, local: EventBridge, threads: FakeThreads, manager: WebSocketManager
    ) -> None:
        local.shutdown()
        local.set_websocket_manager(manager)
        # The processor ends once it finds its queue empty.
        waiting = local._event_queue = ClockQueue(on_empty=local.shutdown)
        local.add_event(EVENT_TYPE, PAYLOAD)
        threads.named(PROCESSOR).run()
        [event] = await received(manager, 1)
        assert event.event_type == EVENT_TYPE
        assert waiting.waited == [1.0]


class TestRedisSubscriberThread:
    """_start_redis_subscriber: a daemon thread that runs the supervised loop."""

    @pytest.mark.asyncio
    async def test_the_subscriber_thread_delivers_what_is_published(
        self,
        live: EventBridge,
        threads: FakeThreads,
        stop_event: Any,
        manager: WebSocketManager,
        redis_view: fakeredis.FakeRedis,
    ) -> None:
        live.set_websocket_manager(manager)
        subscriber = threads.named(SUBSCRIBER)
        assert subscriber.daemon is True
        pubsub = live._redis_subscriber
        real_get = pubsub.get_message
        steps = [lambda: None, lambda: live.add_event(EVENT_TYPE, {"n": 1})]

        def get_message(timeout: float) -> Any:
            if not steps:
                live._shutdown_event.set()
                return None
            steps.pop(0)()
            return real_get(timeout=0.01)

        pubsub.get_message = get_message
        stop_event(live)
        subscriber.run()
        [event] = await received(manager, 1)
        assert (event.event_type, event.data["n"]) == (EVENT_TYPE, 1)
        assert live.status().subscriber_alive is False


class TestShutdown:
    """EventBridge.shutdown."""

    def test_shutdown_sets_shutdown_event(
        self, local: EventBridge, caplog_bridge: Any
    ) -> None:
        local.shutdown()
        assert local._shutdown_event.is_set()
        assert logged(caplog_bridge, logging.INFO) == ["Shutting down event bridge"]

    def test_a_waiting_processor_wakes_at_once_without_a_timeout(
        self, local: EventBridge, threads: FakeThreads
    ) -> None:
        """A shutdown while the processor waits on its empty queue wakes it
        through the queue: its wait ends with no timeout."""

        class WaitingQueue(queue.Queue):  # type: ignore[type-arg]
            timeouts = 0

            def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
                if self.empty():
                    local.shutdown()  # arrives while the processor waits
                try:
                    return super().get(block=False)
                except queue.Empty:
                    self.timeouts += 1  # had to wait out its timeout
                    raise

        waiting = local._event_queue = WaitingQueue()
        local.set_websocket_manager(object())
        threads.named(PROCESSOR).run()
        assert waiting.timeouts == 0
        assert local.status().processor_alive is False

    def test_shutdown_closes_the_subscription(
        self, live: EventBridge, server: FakeRedisServer, caplog_bridge: Any
    ) -> None:
        subscribe(live._redis_subscriber)
        live.shutdown()
        assert server.channel_subscribers() == 0
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_shutdown_without_subscription_is_fine(
        self, local: EventBridge, caplog_bridge: Any
    ) -> None:
        local.shutdown()
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_a_close_error_is_logged_and_shutdown_goes_on(
        self, live: EventBridge, threads: FakeThreads, caplog_bridge: Any
    ) -> None:
        live.set_websocket_manager(object())
        live._redis_subscriber = BrokenPubSub("broken pipe")
        live.shutdown()
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error closing Redis subscriber: broken pipe"
        ]
        assert not any(thread.alive for thread in threads.started)
        assert live._shutdown_event.is_set()

    def test_shutdown_ends_every_thread(
        self, local: EventBridge, threads: FakeThreads, server: FakeRedisServer
    ) -> None:
        # Embedded first (the processor), then on Redis (the subscriber).
        local.set_websocket_manager(object())
        local.connect()
        local.set_websocket_manager(object())
        assert threads.names() == [PROCESSOR, SUBSCRIBER]
        local.shutdown()
        assert not any(thread.alive for thread in threads.started)
        status = local.status()
        assert (status.subscriber_alive, status.processor_alive) == (False, False)

    def test_shutdown_waits_a_bounded_time_for_threads_that_hang(
        self, local: EventBridge, threads: FakeThreads, server: FakeRedisServer
    ) -> None:
        local.set_websocket_manager(object())
        local.watch_for_redis()
        local.connect()
        local.set_websocket_manager(object())
        for thread in threads.started:
            thread.hangs = True
        local.shutdown()
        # Five seconds each; the watcher holds nothing (a name lookup): one.
        assert {t.name: t.waited for t in threads.started} == {
            WATCHER: 1.0,
            SUBSCRIBER: 5.0,
            PROCESSOR: 5.0,
        }
        status = local.status()
        assert not (
            status.subscriber_alive
            or status.processor_alive
            or status.watching_for_redis
        )


class TestStatus:
    """EventBridge.status (what /v1/status reports of the bridge)."""

    def test_redis_mode_stays_when_redis_goes_away(
        self, live: EventBridge, server: FakeRedisServer
    ) -> None:
        assert live.status().mode == "redis"
        server.connected = False
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False
        # add_event says False then; the mode does not change.
        status = live.status()
        assert (status.mode, status.redis_connected) == ("redis", False)

    def test_local_mode_without_redis(self, local: EventBridge) -> None:
        assert local.status().mode == "local"

    def test_an_embedded_bridge_reports_its_threads_queue_and_history(
        self,
        server: FakeRedisServer,
        threads: FakeThreads,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("REDIS_HOST", "cache")
        monkeypatch.setenv("REDIS_PORT", "6390")
        monkeypatch.setenv("REDIS_DB", "2")
        monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
        server.connected = False
        bridge = EventBridge(connect=False, queue_size=1)
        bridge.add_event("a", {})
        bridge.add_event("b", {})
        bridge.set_websocket_manager(object())
        status = bridge.status()
        assert status.as_dict() == {
            "mode": "local",
            "redis": "redis://:***@cache:6390/2",
            "redis_connected": False,
            "subscribed": False,
            "subscriber_alive": False,
            "processor_alive": True,
            "watching_for_redis": False,
            "subscriber_restarts": 0,
            "local_queue": 1,
            "local_queue_size": 1,
            "local_history": 2,
            "published": 0,
            "duplicates": 0,
            "dropped_events": 1,
            "last_position": None,
            "caught_up": 0,
            "missed_warnings": 0,
        }
        assert "s3cret" not in json.dumps(status.as_dict())
        bridge.watch_for_redis()
        assert bridge.status().watching_for_redis is True

    def test_a_redis_bridge_reports_its_subscription_and_what_it_published(
        self,
        live: EventBridge,
        redis_view: fakeredis.FakeRedis,
        threads: FakeThreads,
        stop_event: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(settings, "SUBSCRIBER_RESTART_MAX_DELAY", 1.0)
        live.set_websocket_manager(None)  # threads only; events stay local
        for n in range(3):
            live.add_event(EVENT_TYPE, {"n": n})
        seen: List[BridgeStatus] = []
        pubsub = live._redis_subscriber
        real_get = pubsub.get_message

        def get_message(timeout: float) -> Any:
            seen.append(live.status())
            if len(seen) == 2:
                raise redis.ConnectionError("lost")  # the loop gives up
            return real_get(timeout=0.01)

        pubsub.get_message = get_message
        live.SUBSCRIBE_MAX_RETRIES = 1
        stop_event(live, stop_on_wait=1)
        threads.named(SUBSCRIBER).run()
        confirmed = seen[1]
        assert confirmed.subscribed is True
        assert confirmed.subscriber_alive is True
        assert confirmed.processor_alive is False  # no work in Redis mode
        assert confirmed.published == 3
        assert confirmed.last_position == log_tail(redis_view)
        status = live.status()
        assert (status.subscribed, status.subscriber_restarts) == (False, 1)
        assert status.subscriber_alive is False


Step = Callable[[], Any]


class Poller:
    """Drives the subscriber loop through its polls of the bridge's current
    subscription (whichever: a reconnect opens a new one).

    Before each poll the next step runs; what it returns decides the poll:
    None reads the subscription on the fakeredis server, a dict is the
    message the poll gives instead, an exception is raised by the poll. After
    the last step the next poll sets shutdown. ``timeouts`` says how long each
    poll would have waited for a message; ``subscribed`` what ``status()``
    said at each poll.
    """

    def __init__(self, bridge: EventBridge, steps: List[Step]) -> None:
        self.bridge = bridge
        self.steps = list(steps)
        self.timeouts: List[Optional[float]] = []
        self.subscribed: List[bool] = []
        self.real = redis.client.PubSub.get_message

    def get_message(self, pubsub: Any, *args: Any, **kwargs: Any) -> Any:
        if pubsub is not self.bridge._redis_subscriber:
            return self.real(pubsub, *args, **kwargs)
        self.timeouts.append(kwargs.get("timeout", args[1] if len(args) > 1 else 0))
        self.subscribed.append(self.bridge.status().subscribed)
        if not self.steps:
            self.bridge._shutdown_event.set()
            return None
        outcome = self.steps.pop(0)()
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, dict):
            return outcome
        return self.real(pubsub, timeout=0.0)


@pytest.fixture
def poll(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Poller]:
    """Runs a bridge's subscriber loop through the given steps."""

    def run(bridge: EventBridge, *steps: Step) -> Poller:
        poller = Poller(bridge, list(steps))

        def get_message(pubsub: Any, *args: Any, **kwargs: Any) -> Any:
            return poller.get_message(pubsub, *args, **kwargs)

        monkeypatch.setattr(redis.client.PubSub, "get_message", get_message)
        bridge._redis_subscriber_loop()
        monkeypatch.setattr(redis.client.PubSub, "get_message", poller.real)
        return poller

    return run


def idle() -> None:
    """A poll that finds nothing new (or the confirmation of a subscribe)."""


def fail(error: BaseException) -> Step:
    return lambda: error


def give(value: Any) -> Step:
    return lambda: value


def control(kind: str) -> Dict[str, Any]:
    return {"type": kind, "channel": CHANNEL, "data": 1}


def raw(data: str) -> Dict[str, Any]:
    return {"type": "message", "channel": CHANNEL, "data": data}


class FlakyManager:
    """A manager whose hand-off fails at once for events of type "broken";
    the others go on to ``real``."""

    def __init__(self, real: WebSocketManager) -> None:
        self.real = real
        self.loop = real.loop

    def broadcast_event_from_notification(
        self, event_type: str, payload: Any, **kwargs: Any
    ) -> Any:
        if event_type == "broken":
            raise RuntimeError("manager broke")
        return self.real.broadcast_event_from_notification(
            event_type, payload, **kwargs
        )


def subscriptions_confirmed(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for line in logged(caplog, logging.INFO)
        if line.startswith("Subscribed to Redis events channel")
    )


def reconnects(caplog: pytest.LogCaptureFixture) -> int:
    """New connections to Redis (a bridge's first one is made before the test
    watches the log)."""
    return sum(
        1
        for line in logged(caplog, logging.INFO)
        if line.startswith("Connected to Redis at")
    )


DOWN = "FakeRedis is emulating a connection error."


class TestRedisSubscriberLoop:
    """EventBridge._redis_subscriber_loop (and _handle_message), on fakeredis."""

    DELAY = 7.5

    @pytest.fixture
    def sub(self, live: EventBridge, stop_event: Any) -> StopEvent:
        """The live bridge's loop with a StopEvent: its back-off delays."""
        live.SUBSCRIBE_RETRY_DELAY = self.DELAY
        return stop_event(live)

    def publish(self, bridge: EventBridge, **payload: Any) -> Step:
        return lambda: bridge.add_event(EVENT_TYPE, payload) and None

    def test_without_a_subscription_it_logs_and_returns(
        self, local: EventBridge, stop_event: Any, caplog_bridge: Any
    ) -> None:
        event = stop_event(local)
        local._redis_subscriber_loop()
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscriber not available; not subscribing"
        ]
        assert event.waits == []

    def test_it_subscribes_once_and_polls_at_most_a_second_at_a_time(
        self,
        live: EventBridge,
        sub: StopEvent,
        server: FakeRedisServer,
        poll: Any,
        caplog_bridge: Any,
    ) -> None:
        during: List[int] = []
        poller = poll(live, idle, lambda: during.append(server.channel_subscribers()))
        assert during == [1]
        assert subscriptions_confirmed(caplog_bridge) == 1
        # A shutdown is seen within a second.
        assert set(poller.timeouts) == {1.0}
        assert server.channel_subscribers() == 0  # closed on the way out

    def test_it_reports_subscribed_once_redis_confirmed(
        self, live: EventBridge, sub: StopEvent, poll: Any
    ) -> None:
        poller = poll(live, idle, idle)
        # Live only once Redis confirmed the subscription.
        assert poller.subscribed == [False, True, True]
        assert live.status().subscribed is False

    def test_it_keeps_polling_through_quiet_timeouts(
        self, live: EventBridge, sub: StopEvent, poll: Any, caplog_bridge: Any
    ) -> None:
        poller = poll(live, idle, idle, idle, idle)
        assert len(poller.timeouts) == 5
        assert queued(live) == []
        assert logged(caplog_bridge, logging.ERROR) == []

    @pytest.mark.parametrize("kind", ["psubscribe", "pong", "unsubscribe"])
    def test_it_hands_on_no_control_message(
        self, live: EventBridge, sub: StopEvent, poll: Any, kind: str
    ) -> None:
        poll(live, idle, give(control(kind)))
        assert queued(live) == []

    @pytest.mark.asyncio
    async def test_an_event_on_the_channel_reaches_the_manager(
        self,
        live: EventBridge,
        sub: StopEvent,
        poll: Any,
        manager: WebSocketManager,
        redis_view: fakeredis.FakeRedis,
    ) -> None:
        live._websocket_manager = manager
        plain = {"event_type": EVENT_TYPE, "payload": PAYLOAD}
        poll(
            live, idle, lambda: redis_view.publish(CHANNEL, json.dumps(plain)) and None
        )
        [event] = await received(manager, 1)
        assert (event.event_type, event.node_name) == (EVENT_TYPE, "node1")
        assert queued(live) == []

    def test_without_a_manager_an_event_waits_on_the_local_queue(
        self,
        live: EventBridge,
        sub: StopEvent,
        poll: Any,
        redis_view: fakeredis.FakeRedis,
    ) -> None:
        plain = {"event_type": EVENT_TYPE, "payload": PAYLOAD}
        poll(
            live, idle, lambda: redis_view.publish(CHANNEL, json.dumps(plain)) and None
        )
        assert queued(live) == [plain]

    def test_invalid_json_is_skipped_and_the_loop_goes_on(
        self, live: EventBridge, sub: StopEvent, poll: Any, caplog_bridge: Any
    ) -> None:
        poll(live, idle, give(raw("{not json")), self.publish(live, n=1))
        [error] = logged(caplog_bridge, logging.ERROR)
        assert error.startswith("Failed to decode Redis event message: ")
        assert [e["payload"] for e in queued(live)] == [{"n": 1}]
        assert subscriptions_confirmed(caplog_bridge) == 1

    def test_json_that_is_not_an_event_is_skipped(
        self, live: EventBridge, sub: StopEvent, poll: Any, caplog_bridge: Any
    ) -> None:
        poll(live, idle, give(raw("[1]")))
        assert logged(caplog_bridge, logging.ERROR) == [
            "Failed to decode Redis event message: not a JSON object (channel "
            "osism:events); skipped"
        ]
        assert queued(live) == []

    @pytest.mark.asyncio
    async def test_an_event_the_manager_fails_on_is_skipped(
        self,
        live: EventBridge,
        sub: StopEvent,
        poll: Any,
        manager: WebSocketManager,
        caplog_bridge: Any,
    ) -> None:
        live._websocket_manager = FlakyManager(manager)
        poll(
            live,
            idle,
            lambda: live.add_event("broken", {}) and None,
            self.publish(live, n=1),
        )
        [event] = await received(manager, 1)
        assert event.data["n"] == 1
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error processing event via bridge: manager broke"
        ]

    def test_a_hand_off_that_raises_is_skipped(
        self,
        live: EventBridge,
        sub: StopEvent,
        poll: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        handed: List[Any] = []

        def hand_off(event: Dict[str, Any]) -> None:
            handed.append(event["payload"])
            if len(handed) == 1:
                raise RuntimeError("hand-off broke")

        live._websocket_manager = object()
        monkeypatch.setattr(live, "_process_single_event", hand_off)
        poll(live, idle, self.publish(live, n=0), self.publish(live, n=1))
        assert handed == [{"n": 0}, {"n": 1}]
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error processing Redis event: hand-off broke; message skipped"
        ]
        assert subscriptions_confirmed(caplog_bridge) == 1

    def test_a_lost_connection_is_reopened_after_the_delay_and_delivery_goes_on(
        self,
        live: EventBridge,
        sub: StopEvent,
        server: FakeRedisServer,
        poll: Any,
        caplog_bridge: Any,
    ) -> None:
        sub.on_wait = lambda: setattr(server, "connected", True)
        poll(
            live,
            idle,
            lambda: setattr(server, "connected", False),
            idle,
            self.publish(live, n=1),
        )
        assert sub.waits == [self.DELAY]
        assert [e["payload"] for e in queued(live)] == [{"n": 1}]
        assert reconnects(caplog_bridge) == 1  # after the delay
        assert subscriptions_confirmed(caplog_bridge) == 2
        assert logged(caplog_bridge, logging.ERROR) == [
            f"Redis subscriber error (attempt 1/5): {DOWN}; retrying in 7.5 s"
        ]

    def test_every_failure_costs_one_back_off(
        self, live: EventBridge, stop_event: Any, poll: Any, caplog_bridge: Any
    ) -> None:
        live.SUBSCRIBE_RETRY_DELAY = self.DELAY
        event = stop_event(live, stop_on_wait=3)
        lost = redis.ConnectionError("lost")
        poll(live, fail(lost), fail(lost), fail(lost))
        # No busy loop: one back-off per failure, then a new connection.
        assert event.waits == [self.DELAY] * 3
        assert reconnects(caplog_bridge) == 2

    def test_retries_are_drawn_in_the_second_half_of_the_delay(
        self,
        live: EventBridge,
        stop_event: Any,
        poll: Any,
        caplog_bridge: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        live.SUBSCRIBE_RETRY_DELAY = self.DELAY
        event = stop_event(live, stop_on_wait=3)
        draw(monkeypatch, 0.0, 0.5, 1.0)
        lost = redis.ConnectionError("lost")
        poll(live, fail(lost), fail(lost), fail(lost))
        assert event.waits == [3.75, 5.625, 7.5]
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscriber error (attempt 1/5): lost; retrying in 3.8 s",
            "Redis subscriber error (attempt 2/5): lost; retrying in 5.6 s",
            "Redis subscriber error (attempt 3/5): lost; retrying in 7.5 s",
        ]

    def test_a_failed_subscribe_takes_the_same_back_off(
        self,
        live: EventBridge,
        sub: StopEvent,
        server: FakeRedisServer,
        poll: Any,
        caplog_bridge: Any,
    ) -> None:
        server.connected = False
        sub.on_wait = lambda: setattr(server, "connected", True)
        poll(live, idle)
        assert sub.waits == [self.DELAY]
        assert subscriptions_confirmed(caplog_bridge) == 1

    @pytest.mark.parametrize("max_retries", [1, 3, 5])
    def test_it_gives_up_after_max_consecutive_failures(
        self,
        live: EventBridge,
        sub: StopEvent,
        server: FakeRedisServer,
        poll: Any,
        caplog_bridge: Any,
        max_retries: int,
    ) -> None:
        live.SUBSCRIBE_MAX_RETRIES = max_retries
        server.connected = False
        poll(live)
        assert sub.waits == [self.DELAY] * (max_retries - 1)
        errors = logged(caplog_bridge, logging.ERROR)
        assert errors[-1] == "Max Redis reconnection attempts reached, giving up"
        assert errors[-2].startswith(
            f"Redis subscriber error (attempt {max_retries}/{max_retries})"
        )
        assert not sub.is_set()

    def test_a_confirmed_subscribe_resets_the_failure_count(
        self, live: EventBridge, sub: StopEvent, poll: Any, caplog_bridge: Any
    ) -> None:
        lost = fail(redis.ConnectionError("lost"))
        poll(live, *[lost] * 4, idle, *[lost] * 4, idle)
        # Eight failures in all, never five in a row: the loop did not give up.
        assert len(sub.waits) == 8
        assert "giving up" not in " ".join(logged(caplog_bridge, logging.ERROR))

    def test_only_a_confirmation_resets_the_failure_count(
        self, live: EventBridge, sub: StopEvent, poll: Any, caplog_bridge: Any
    ) -> None:
        lost = fail(redis.ConnectionError("lost"))
        poll(live, *[give(message()), lost] * 5)
        assert len(queued(live)) == 5
        assert logged(caplog_bridge, logging.ERROR)[-2:] == [
            "Redis subscriber error (attempt 5/5): lost; retrying in 7.5 s",
            "Max Redis reconnection attempts reached, giving up",
        ]

    def test_no_connection_after_a_failed_reconnect_is_a_failure(
        self,
        live: EventBridge,
        sub: StopEvent,
        server: FakeRedisServer,
        poll: Any,
        caplog_bridge: Any,
    ) -> None:
        poll(live, idle, lambda: setattr(server, "connected", False))
        assert sub.waits == [self.DELAY] * 4
        no_connection = "no connection to Redis; retrying in 7.5 s"
        assert [
            line
            for line in logged(caplog_bridge, logging.ERROR)
            if not line.startswith("Failed to connect to Redis")
        ] == [
            f"Redis subscriber error (attempt 1/5): {DOWN}; retrying in 7.5 s",
            f"Redis subscriber error (attempt 2/5): {no_connection}",
            f"Redis subscriber error (attempt 3/5): {no_connection}",
            f"Redis subscriber error (attempt 4/5): {no_connection}",
            f"Redis subscriber error (attempt 5/5): {no_connection}",
            "Max Redis reconnection attempts reached, giving up",
        ]

    def test_a_subscription_without_a_log_is_a_failure(
        self,
        live: EventBridge,
        stop_event: Any,
        server: FakeRedisServer,
        poll: Any,
        caplog_bridge: Any,
    ) -> None:
        live.SUBSCRIBE_RETRY_DELAY = self.DELAY
        stop_event(live, stop_on_wait=1)
        live._redis_log = None
        poll(live)
        assert subscriptions_confirmed(caplog_bridge) == 0
        assert logged(caplog_bridge, logging.ERROR) == [
            "Redis subscriber error (attempt 1/5): no connection to Redis; retrying in "
            "7.5 s"
        ]

    def test_a_shutdown_during_the_back_off_ends_it(
        self, live: EventBridge, stop_event: Any, poll: Any, caplog_bridge: Any
    ) -> None:
        live.SUBSCRIBE_RETRY_DELAY = self.DELAY
        event = stop_event(live, stop_on_wait=1)
        poll(live, fail(redis.ConnectionError("refused")))
        assert event.waits == [self.DELAY]
        assert reconnects(caplog_bridge) == 0
        assert "giving up" not in " ".join(logged(caplog_bridge, logging.ERROR))

    def test_an_error_caused_by_shutdown_ends_it_quietly(
        self, live: EventBridge, sub: StopEvent, poll: Any, caplog_bridge: Any
    ) -> None:
        def closed_by_shutdown() -> Exception:
            sub.set()
            return ValueError("I/O operation on closed file")

        poll(live, closed_by_shutdown)
        assert logged(caplog_bridge, logging.ERROR) == []
        assert sub.waits == []
        assert reconnects(caplog_bridge) == 0

    def test_after_a_shutdown_it_does_not_subscribe_and_closes(
        self,
        live: EventBridge,
        sub: StopEvent,
        server: FakeRedisServer,
        caplog_bridge: Any,
    ) -> None:
        subscribe(live._redis_subscriber)
        sub.set()
        live._redis_subscriber_loop()
        assert subscriptions_confirmed(caplog_bridge) == 0
        assert server.channel_subscribers() == 0

    def test_a_close_error_on_the_way_out_is_swallowed(
        self,
        live: EventBridge,
        sub: StopEvent,
        poll: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        def broken_close(pubsub: Any) -> None:
            raise RuntimeError("close failed")

        poll(
            live,
            idle,
            lambda: monkeypatch.setattr(redis.client.PubSub, "close", broken_close),
        )
        assert "Closing Redis subscriber failed: close failed" in logged(
            caplog_bridge, logging.DEBUG
        )
        assert live.status().subscribed is False

    def test_a_connection_that_does_not_answer_ping_is_reopened(
        self,
        live: EventBridge,
        stop_event: Any,
        poll: Any,
        caplog_bridge: Any,
    ) -> None:
        live.SUBSCRIBE_RETRY_DELAY = self.DELAY
        event = stop_event(live, stop_on_wait=2)
        subscribed: List[bool] = []
        event.on_wait = lambda: subscribed.append(live.status().subscribed)
        # A PING at every poll, and no answer is ever in time.
        live._subscription.feed.interval, live._subscription.feed.timeout = 0.0, -1.0
        poll(live, *[idle] * 4)
        assert subscribed == [False, False]  # not ready while it reconnects
        assert subscriptions_confirmed(caplog_bridge) == 2
        assert logged(caplog_bridge, logging.ERROR)[0].startswith(
            "Redis subscriber error (attempt 1/5): Redis did not answer PING"
        )


class FakeClock:
    """``time`` for the supervisor: monotonic() gives ``readings`` in turn
    (the last one for ever)."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings) or [0.0]

    def monotonic(self) -> float:
        if len(self.readings) > 1:
            return self.readings.pop(0)
        return self.readings[0]


class TestSuperviseSubscriber:
    """EventBridge._supervise_subscriber (restarts a subscriber that gave up)."""

    MAX_DELAY = 8.0

    @pytest.fixture
    def journal(
        self,
        monkeypatch: pytest.MonkeyPatch,
        local: EventBridge,
        server: FakeRedisServer,
    ) -> List[Any]:
        """What the supervisor did, in order: "run" (a subscriber loop that
        gave up), "connect" (a new connection), ("wait", delay)."""
        journal: List[Any] = []
        monkeypatch.setattr(settings, "SUBSCRIBER_RESTART_MAX_DELAY", self.MAX_DELAY)
        # One wait per back-off (probes are tested on their own below).
        monkeypatch.setattr("osism.services.bridge.supervisor.PROBE_INTERVAL", 100.0)
        server.connected = False  # the probes fail
        monkeypatch.setattr(
            local, "_redis_subscriber_loop", lambda: journal.append("run")
        )
        monkeypatch.setattr(local, "_init_redis", lambda: journal.append("connect"))
        self.clock(monkeypatch, 0.0)
        return journal

    def clock(self, monkeypatch: pytest.MonkeyPatch, *readings: float) -> None:
        monkeypatch.setattr(
            "osism.services.bridge.supervisor.time", FakeClock(*readings)
        )

    def test_it_restarts_with_capped_exponential_back_off(
        self, local: EventBridge, stop_event: Any, journal: List[Any]
    ) -> None:
        event = stop_event(local, stop_on_wait=7)
        local._supervise_subscriber()
        assert event.waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
        assert journal.count("run") == 7
        assert local.status().subscriber_restarts == 7

    def test_it_reconnects_before_each_restart(
        self, local: EventBridge, stop_event: Any, journal: List[Any]
    ) -> None:
        event = stop_event(local, stop_on_wait=3)
        event.journal = journal
        local._supervise_subscriber()
        assert journal == [
            "run",
            ("wait", 1.0),
            "connect",
            "run",
            ("wait", 2.0),
            "connect",
            "run",
            ("wait", 4.0),
        ]

    def test_it_logs_each_restart(
        self,
        local: EventBridge,
        stop_event: Any,
        journal: List[Any],
        caplog_bridge: Any,
    ) -> None:
        stop_event(local, stop_on_wait=2)
        local._supervise_subscriber()
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
    def test_a_long_healthy_run_resets_the_delay(
        self,
        local: EventBridge,
        stop_event: Any,
        journal: List[Any],
        monkeypatch: pytest.MonkeyPatch,
        healthy_for: float,
        next_delay: float,
    ) -> None:
        event = stop_event(local, stop_on_wait=4)
        # start/end of three short runs, then one that stayed up healthy_for s
        self.clock(monkeypatch, *[0.0] * 6, 100.0, 100.0 + healthy_for)
        local._supervise_subscriber()
        assert event.waits == [1.0, 2.0, 4.0, next_delay]

    def test_each_restart_waits_a_draw_below_its_step(
        self,
        local: EventBridge,
        stop_event: Any,
        journal: List[Any],
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        event = stop_event(local, stop_on_wait=4)
        draw(monkeypatch, 0.5, 0.25, 0.75, 0.5)
        local._supervise_subscriber()
        # steps 1, 2, 4, 8 s
        assert event.waits == [0.5, 0.5, 3.0, 4.0]
        assert logged(caplog_bridge, logging.WARNING)[:2] == [
            "Redis subscriber stopped; starting it again in 0.5 s (restart 1)",
            "Redis subscriber stopped; starting it again in 0.5 s (restart 2)",
        ]

    def test_it_does_not_start_after_a_shutdown(
        self, local: EventBridge, stop_event: Any, journal: List[Any]
    ) -> None:
        stop_event(local).set()
        local._supervise_subscriber()
        assert journal == []
        assert local.status().subscriber_restarts == 0

    def test_a_loop_that_ends_for_shutdown_is_not_restarted(
        self,
        local: EventBridge,
        stop_event: Any,
        journal: List[Any],
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        event = stop_event(local)

        def run_until_shutdown() -> None:
            journal.append("run")
            event.set()

        monkeypatch.setattr(local, "_redis_subscriber_loop", run_until_shutdown)
        local._supervise_subscriber()
        assert journal == ["run"]
        assert event.waits == []
        assert local.status().subscriber_restarts == 0
        assert logged(caplog_bridge, logging.INFO) == [
            "Redis subscriber stopped for shutdown"
        ]

    def test_a_shutdown_during_the_back_off_ends_it(
        self, local: EventBridge, stop_event: Any, journal: List[Any]
    ) -> None:
        event = stop_event(local, stop_on_wait=1)
        local._supervise_subscriber()
        assert journal == ["run"]
        assert event.waits == [1.0]


class TestRestartBackOff:
    """The supervisor's back-off ends early once Redis answers a probe."""

    def test_it_probes_each_second_and_restarts_once_redis_answers(
        self,
        local: EventBridge,
        stop_event: Any,
        server: FakeRedisServer,
        caplog_bridge: Any,
    ) -> None:
        event = stop_event(local)
        server.connected = False
        event.on_wait = lambda: setattr(server, "connected", len(event.waits) == 3)
        assert local._back_off(8.0) is False
        assert event.waits == [1.0, 1.0, 1.0]
        assert server.probes() == 3
        assert logged(caplog_bridge, logging.INFO) == [
            "Redis answers again; restarting the subscriber now"
        ]

    def test_it_waits_the_whole_delay_while_redis_is_silent(
        self, local: EventBridge, stop_event: Any, server: FakeRedisServer
    ) -> None:
        event = stop_event(local)
        server.connected = False
        assert local._back_off(2.5) is False
        assert event.waits == [1.0, 1.0, 0.5]
        assert server.probes() == 2  # none after the last slice

    def test_a_shutdown_ends_it(
        self, local: EventBridge, stop_event: Any, server: FakeRedisServer
    ) -> None:
        event = stop_event(local, stop_on_wait=2)
        server.connected = False
        assert local._back_off(8.0) is True
        assert event.waits == [1.0, 1.0]


class ClockQueue(queue.Queue):  # type: ignore[type-arg]
    """The local queue on a fake clock: a get() on an empty queue waits out
    its timeout at once (``waited``), meanwhile ``on_empty`` happens, and
    raises queue.Empty."""

    def __init__(self, on_empty: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.waited: List[Optional[float]] = []
        self.on_empty = on_empty

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        try:
            return super().get(block=False)
        except queue.Empty:
            self.waited.append(timeout)
            self.on_empty()
            raise


class TestProcessEvents:
    """EventBridge._process_events (the local-queue processor loop)."""

    @pytest.mark.asyncio
    async def test_queued_events_reach_the_manager_in_order(
        self, local: EventBridge, stop_event: Any, manager: WebSocketManager
    ) -> None:
        local._websocket_manager = manager
        for name in ("a", "b", "c"):
            local.add_event(f"compute.instance.{name}", {})
        stop_event(local, stop_on_check=4)  # after three events
        local._process_events()
        events = await received(manager, 3)
        assert [e.event_type for e in events] == [
            "compute.instance.a",
            "compute.instance.b",
            "compute.instance.c",
        ]
        assert local._event_queue.unfinished_tasks == 0

    def test_an_idle_processor_looks_for_shutdown_every_second(
        self, local: EventBridge, stop_event: Any
    ) -> None:
        waiting = local._event_queue = ClockQueue()
        stop_event(local, stop_on_check=4)
        local._process_events()
        assert waiting.waited == [1.0, 1.0, 1.0]

    def test_a_processor_after_shutdown_does_not_read(
        self, local: EventBridge, stop_event: Any
    ) -> None:
        local.add_event(EVENT_TYPE, PAYLOAD)
        stop_event(local).set()
        local._process_events()
        assert len(queued(local)) == 1

    @pytest.mark.asyncio
    async def test_the_wake_up_left_by_a_shutdown_is_not_an_event(
        self,
        local: EventBridge,
        threads: FakeThreads,
        stop_event: Any,
        manager: WebSocketManager,
        caplog_bridge: Any,
    ) -> None:
        local.set_websocket_manager(manager)
        threads.named(PROCESSOR).hangs = True  # still waiting on its queue
        local.shutdown()  # wakes the processor through its queue
        local.add_event(EVENT_TYPE, PAYLOAD)
        # A processor started again later reads on past the stale wake-up.
        stop_event(local, stop_on_check=3)
        local._process_events()
        [event] = await received(manager, 1)
        assert event.event_type == EVENT_TYPE
        assert manager.event_queue.empty()
        assert logged(caplog_bridge, logging.ERROR) == []

    @pytest.mark.asyncio
    async def test_an_event_the_manager_fails_on_is_logged_and_the_loop_goes_on(
        self,
        local: EventBridge,
        stop_event: Any,
        manager: WebSocketManager,
        caplog_bridge: Any,
    ) -> None:
        local._websocket_manager = FlakyManager(manager)
        local.add_event("broken", {})
        local.add_event(EVENT_TYPE, {"n": 1})
        stop_event(local, stop_on_check=3)
        local._process_events()
        [event] = await received(manager, 1)
        assert event.data["n"] == 1
        assert local._event_queue.unfinished_tasks == 0
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error processing event via bridge: manager broke"
        ]

    def test_a_hand_off_that_raises_is_logged_and_the_loop_goes_on(
        self,
        local: EventBridge,
        stop_event: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        handed: List[Any] = []

        def hand_off(event: Dict[str, Any]) -> None:
            handed.append(event["payload"])
            if len(handed) == 1:
                raise RuntimeError("hand-off broke")

        monkeypatch.setattr(local, "_process_single_event", hand_off)
        local.add_event(EVENT_TYPE, {"n": 0})
        local.add_event(EVENT_TYPE, {"n": 1})
        stop_event(local, stop_on_check=3)
        local._process_events()
        assert handed == [{"n": 0}, {"n": 1}]
        assert local._event_queue.unfinished_tasks == 0
        assert logged(caplog_bridge, logging.ERROR) == [
            "Unexpected error in event bridge processor: hand-off broke; continuing"
        ]
        assert logged(caplog_bridge, logging.INFO)[-2:] == [
            "Event bridge processor started",
            "Event bridge processor stopped",
        ]


class TestWatchForRedis:
    """EventBridge.watch_for_redis / _watch_redis: an API that started without Redis."""

    MAX_DELAY = 4.0

    @pytest.fixture(autouse=True)
    def max_delay(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(settings, "SUBSCRIBER_RESTART_MAX_DELAY", self.MAX_DELAY)

    def test_one_watcher_thread_looks_for_redis(
        self, local: EventBridge, threads: FakeThreads, stop_event: Any
    ) -> None:
        local.watch_for_redis()
        local.watch_for_redis()
        [watcher] = threads.started
        assert (watcher.name, watcher.daemon) == (WATCHER, True)
        assert local.status().watching_for_redis is True
        stop_event(local)
        watcher.run()
        status = local.status()
        assert (status.mode, status.redis_connected) == ("redis", True)
        assert status.watching_for_redis is False

    def test_no_watcher_is_needed_with_redis(
        self, live: EventBridge, threads: FakeThreads
    ) -> None:
        live.watch_for_redis()
        assert threads.started == []
        assert live.status().watching_for_redis is False

    def test_a_watch_after_a_shutdown_looks_again(
        self, local: EventBridge, threads: FakeThreads
    ) -> None:
        local.shutdown()
        local.watch_for_redis()
        threads.named(WATCHER).run()  # Redis answers at once
        assert local.status().redis_connected is True

    def test_the_watcher_backs_off_while_redis_is_silent(
        self,
        local: EventBridge,
        server: FakeRedisServer,
        stop_event: Any,
        caplog_bridge: Any,
    ) -> None:
        event = stop_event(local, stop_on_wait=5)
        server.connected = False
        local._watch_redis()
        assert event.waits == [1.0, 2.0, 4.0, 4.0, 4.0]
        # The first look is at once: an API serves before Redis is found.
        assert server.probes() == 5
        # One INFO line says where events stay and how to point at Redis;
        # nothing louder while the default Redis is absent.
        [info] = logged(caplog_bridge, logging.INFO)
        assert info.startswith("No Redis answers at redis:6379/0: events stay")
        assert "REDIS_HOST" in info
        assert logged(caplog_bridge, logging.WARNING) == []
        assert logged(caplog_bridge, logging.ERROR) == []
        assert local.status().redis_connected is False

    def test_the_watcher_waits_a_draw_below_each_step(
        self,
        local: EventBridge,
        server: FakeRedisServer,
        stop_event: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        event = stop_event(local, stop_on_wait=4)
        server.connected = False
        draw(monkeypatch, 0.5, 0.25, 0.0, 0.75)
        local._watch_redis()
        # steps 1, 2, 4, 4 s; a draw of 0 looks again at once
        assert event.waits == [0.5, 0.5, 0.0, 3.0]
        assert server.probes() == 4

    def test_the_watcher_switches_to_redis_and_subscribes_once_it_answers(
        self,
        local: EventBridge,
        server: FakeRedisServer,
        threads: FakeThreads,
        stop_event: Any,
        caplog_bridge: Any,
    ) -> None:
        local.set_websocket_manager(object())
        event = stop_event(local)
        server.connected = False
        event.on_wait = lambda: setattr(server, "connected", True)
        local._watch_redis()
        assert event.waits == [1.0]
        status = local.status()
        assert (status.mode, status.redis_connected) == ("redis", True)
        assert threads.names() == [PROCESSOR, SUBSCRIBER]
        assert status.subscriber_alive is True
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Redis at redis:6379/0 answers: events go through it"
        )

    def test_a_watcher_that_finds_redis_at_once_switches_without_waiting(
        self, local: EventBridge, stop_event: Any, caplog_bridge: Any
    ) -> None:
        event = stop_event(local)
        local._watch_redis()
        assert event.waits == []
        assert local.status().redis_connected is True
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Redis at redis:6379/0 answers: events go through it"
        )

    def test_a_watcher_started_after_shutdown_does_not_look(
        self, local: EventBridge, server: FakeRedisServer, stop_event: Any
    ) -> None:
        stop_event(local).set()
        local._watch_redis()
        assert server.built == []
        assert local.status().redis_connected is False

    def test_the_watcher_keeps_looking_when_connecting_fails_after_the_probe(
        self, local: EventBridge, server: FakeRedisServer, stop_event: Any
    ) -> None:
        server.refuse = lambda settings: "retry" not in settings  # probes only
        event = stop_event(local, stop_on_wait=2)
        local._watch_redis()
        assert event.waits == [1.0, 2.0]
        assert server.probes() == 2
        assert local.status().redis_connected is False

    def test_the_watcher_does_not_subscribe_without_a_manager(
        self, local: EventBridge, threads: FakeThreads, stop_event: Any
    ) -> None:
        stop_event(local)
        local._watch_redis()
        assert local.status().redis_connected is True
        assert threads.started == []

    def test_an_absent_redis_is_no_error_for_the_watcher(
        self,
        local: EventBridge,
        server: FakeRedisServer,
        stop_event: Any,
        caplog_bridge: Any,
    ) -> None:
        server.connected = False
        stop_event(local, stop_on_wait=3)
        local._watch_redis()
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_the_watcher_says_why_redis_refuses_it_once_per_reason(
        self,
        local: EventBridge,
        server: FakeRedisServer,
        stop_event: Any,
        caplog_bridge: Any,
    ) -> None:
        # The first look, then two after a back-off each.
        reasons = ["invalid password", "user disabled", "user disabled"]

        def refuse(settings: Dict[str, Any]) -> bool:
            raise redis.AuthenticationError(reasons.pop(0))

        server.refuse = refuse
        stop_event(local, stop_on_wait=3)
        local._watch_redis()
        refused = (
            "Redis at redis:6379/0 refused the credentials (wrong password or "
            "unknown user; REDIS_URL/REDIS_USERNAME/REDIS_PASSWORD)"
        )
        stays = (
            "events stay in this process (embedded mode), trying again in the "
            "background"
        )
        assert logged(caplog_bridge, logging.ERROR) == [
            f"{refused}: invalid password; {stays}",
            f"{refused}: user disabled; {stays}",
        ]


class TestRedisAnswers:
    """_redis_answers: the watcher's quiet probe."""

    def test_it_is_true_when_redis_answers_and_leaves_no_client_behind(
        self, server: FakeRedisServer, redis_view: fakeredis.FakeRedis
    ) -> None:
        assert _redis_answers() is True
        [probe] = server.built
        assert (probe["host"], probe["port"], probe["db"]) == ("redis", 6379, 0)
        assert probe["retry"].get_retries() == 0
        assert server.open_clients() == 0

    def test_it_is_false_without_an_error_log(
        self, server: FakeRedisServer, caplog_bridge: Any
    ) -> None:
        server.connected = False
        assert _redis_answers() is False
        assert logged(caplog_bridge, logging.ERROR) == []
        assert logged(caplog_bridge, logging.WARNING) == []
        reason = f"Cannot connect to Redis at redis:6379/0: {DOWN}"
        assert logged(caplog_bridge, logging.DEBUG) == [
            f"Redis does not answer yet: {reason}"
        ]


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
        # Upstream osism's meaning: the event's event_type and payload.
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
            f"Published event to Redis: {EVENT_TYPE} (subscribers: 1), logged as "
            f"{published['id']} at {position}"
        ]

    def test_several_events_are_logged_in_order_and_counted(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis
    ) -> None:
        for n in range(4):
            assert live.add_event(EVENT_TYPE, {"n": n}) is True
        assert [e["payload"]["n"] for e in logged_events(redis_view)] == [0, 1, 2, 3]
        assert live.status().published == 4
        assert live.status().local_history == 0  # nothing kept in memory

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
        assert live.status().duplicates == 1

    def test_an_event_nobody_listens_to_is_kept_in_the_log_with_a_warning(
        self,
        live: EventBridge,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        assert live.add_event(EVENT_TYPE, PAYLOAD) is True
        assert len(logged_events(redis_view)) == 1
        assert logged(caplog_bridge, logging.WARNING) == [
            f"No Redis subscribers for event: {EVENT_TYPE}; it is in the log "
            "for subscribers that catch up"
        ]

    def test_a_second_unheard_event_within_the_interval_warns_no_more(
        self,
        live: EventBridge,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        assert live.add_event(EVENT_TYPE, PAYLOAD) is True
        assert live.add_event("compute.instance.delete.end", PAYLOAD) is True
        assert len(logged_events(redis_view)) == 2
        assert len(logged(caplog_bridge, logging.WARNING)) == 1

    def test_redis_down_means_false_and_nothing_held(
        self,
        live: EventBridge,
        server: fakeredis.FakeServer,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        server.connected = False
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False
        assert (live.status().local_history, queued(live)) == (0, [])
        assert live.status().mode == "redis"
        assert logged(caplog_bridge, logging.WARNING) == [
            "Failed to publish event to Redis: FakeRedis is emulating a connection "
            f"error. ({EVENT_TYPE}); reconnecting"
        ]
        assert any(
            line.startswith("Failed to connect to Redis: Cannot connect to Redis")
            for line in logged(caplog_bridge, logging.ERROR)
        )
        server.connected = True
        assert live.add_event(EVENT_TYPE, {"n": 1}) is True
        assert [e["payload"] for e in logged_events(redis_view)] == [{"n": 1}]

    def test_a_broken_connection_is_retried_once_after_reconnecting(
        self,
        live: EventBridge,
        redis_view: fakeredis.FakeRedis,
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        clients = []
        real_append = RedisEventLog.append

        def append(log: RedisEventLog, envelope: Dict[str, Any]) -> Any:
            clients.append(log.client)
            if len(clients) == 1:
                raise redis.ConnectionError("reset")
            return real_append(log, envelope)

        monkeypatch.setattr(RedisEventLog, "append", append)
        listener = channel_of(redis_view)  # someone listens: no warning for that
        assert live.add_event(EVENT_TYPE, PAYLOAD) is True
        [event] = logged_events(redis_view)
        assert event["payload"] == PAYLOAD
        assert clients[0] is not clients[1]  # through a new client
        assert logged(caplog_bridge, logging.WARNING) == [
            f"Failed to publish event to Redis: reset ({EVENT_TYPE}); reconnecting"
        ]
        assert (
            f"Published event to Redis after reconnect: {EVENT_TYPE} ({event['id']})"
            in logged(caplog_bridge, logging.INFO)
        )
        listener.close()

    @pytest.mark.parametrize(
        "second, warnings",
        [
            (
                redis.ConnectionError("again"),
                ["Redis reconnection failed: again; event not taken"],
            ),
            (None, []),
        ],
        ids=["fails-again", "redis-gone"],
    )
    def test_a_reconnect_that_does_not_help_is_false(
        self,
        live: EventBridge,
        server: FakeRedisServer,
        redis_view: fakeredis.FakeRedis,
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
        second: Optional[Exception],
        warnings: List[str],
    ) -> None:
        failures: List[Exception] = [redis.ConnectionError("reset")]
        if second is not None:
            failures.append(second)

        def append(log: RedisEventLog, envelope: Dict[str, Any]) -> Any:
            if second is None:
                server.connected = False  # the reconnect finds no Redis
            raise failures.pop(0)

        monkeypatch.setattr(RedisEventLog, "append", append)
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False
        assert logged(caplog_bridge, logging.WARNING) == [
            f"Failed to publish event to Redis: reset ({EVENT_TYPE}); reconnecting",
            *warnings,
        ]
        server.connected = True
        assert logged_events(redis_view) == []

    def test_a_publisher_does_not_wait_for_another_threads_reconnect(
        self, live: EventBridge, server: FakeRedisServer
    ) -> None:
        class HeldElsewhere:
            """The bridge's lock while the subscriber thread reconnects."""

            def acquire(self, blocking: bool = True) -> bool:
                if blocking:
                    pytest.fail("the publisher waits for the other thread")
                return False

        server.connected = False
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False  # Redis went away
        server.connected = True
        clients = len(server.built)
        live._redis_lock = HeldElsewhere()  # type: ignore[assignment]
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False
        assert len(server.built) == clients  # no connection of its own

    def test_a_timeout_is_not_retried(
        self,
        live: EventBridge,
        server: FakeRedisServer,
        monkeypatch: pytest.MonkeyPatch,
        caplog_bridge: Any,
    ) -> None:
        # A frozen Redis: one socket timeout, no second wait on top.
        attempts: List[str] = []

        def frozen(log: RedisEventLog, envelope: Dict[str, Any]) -> Any:
            attempts.append(envelope["id"])
            raise redis.TimeoutError("Timeout reading from socket")

        monkeypatch.setattr(RedisEventLog, "append", frozen)
        assert live.add_event(EVENT_TYPE, PAYLOAD) is False
        assert len(attempts) == 1
        assert len(server.built) == 1  # no reconnect
        assert logged(caplog_bridge, logging.WARNING) == [
            "Failed to publish event to Redis: Timeout reading from socket "
            f"({EVENT_TYPE}); not taken"
        ]

    @pytest.mark.parametrize(
        "error, tries",
        [(redis.ConnectionError("reset"), 2), (redis.TimeoutError("frozen"), 1)],
        ids=["broken-connection-once-more", "timeout-never"],
    )
    def test_the_clients_retry_broken_connections_once_and_timeouts_never(
        self, live: EventBridge, error: Exception, tries: int
    ) -> None:
        attempts: List[int] = []

        def command() -> str:
            attempts.append(1)
            raise error

        retry = live._redis_client.get_retry()
        with pytest.raises(type(error)):
            retry.call_with_retry(command, lambda error: None)
        assert len(attempts) == tries

    def test_a_payload_that_is_not_json_is_an_error_and_false(
        self, live: EventBridge, caplog_bridge: Any
    ) -> None:
        assert live.add_event(EVENT_TYPE, {"bad": object()}) is False
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error adding event to bridge: Object of type object is not JSON "
            f"serializable ({EVENT_TYPE}); event not taken"
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
        self, local: EventBridge
    ) -> None:
        for n in range(3):
            assert local.add_event(EVENT_TYPE, {"n": n}) is True
        handed = queued(local)
        assert [e["payload"] for e in handed] == [{"n": 0}, {"n": 1}, {"n": 2}]
        positions = [e["stream_id"] for e in handed]
        assert positions == sorted(positions, key=position_key)
        assert local.status().local_history == 3

    def test_the_history_holds_event_history_size_events(
        self, server: FakeRedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "EVENT_HISTORY_SIZE", 2)
        bridge = EventBridge(connect=False)
        for n in range(3):
            bridge.add_event(EVENT_TYPE, {"n": n})
        assert bridge.status().local_history == 2

    def test_a_redelivery_after_the_dedupe_window_is_logged_again(
        self, server: FakeRedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "EVENT_DEDUPE_SECONDS", 0)
        bridge = EventBridge(connect=False)
        meta = {"message_id": str(uuid.uuid4())}
        bridge.add_event(EVENT_TYPE, PAYLOAD, meta=meta)
        bridge.add_event(EVENT_TYPE, PAYLOAD, meta=meta)
        assert (len(queued(bridge)), bridge.status().duplicates) == (2, 0)

    def test_a_redelivery_is_logged_and_handed_on_once(
        self, local: EventBridge
    ) -> None:
        meta = {"message_id": str(uuid.uuid4())}
        assert local.add_event(EVENT_TYPE, PAYLOAD, meta=meta) is True
        assert local.add_event(EVENT_TYPE, PAYLOAD, meta=meta) is True
        assert [e["id"] for e in queued(local)] == [meta["message_id"]]
        assert local.status().duplicates == 1

    def test_a_full_hand_off_queue_drops_the_oldest_waiting_but_logs_all(
        self, server: FakeRedisServer, caplog_bridge: Any
    ) -> None:
        bridge = EventBridge(connect=False, queue_size=2)
        ids = [str(uuid.uuid4()) for _ in range(4)]
        for n, event_id in enumerate(ids):
            meta = {"message_id": event_id}
            assert bridge.add_event(EVENT_TYPE, {"n": n}, meta=meta) is True
        assert [e["payload"]["n"] for e in queued(bridge)] == [2, 3]
        assert bridge.status().dropped_events == 2
        assert len(logged(caplog_bridge, logging.WARNING)) == 1  # rate-limited
        # Still in the log: a client that saw the first can resume.
        replay = bridge.replay(ids[0], 10)
        assert [e.event["id"] for e in replay.entries] == ids[1:]

    def test_replay_reads_the_memory_log(self, local: EventBridge) -> None:
        for n in range(4):
            local.add_event(EVENT_TYPE, {"n": n})
        first = queued(local)[0]["id"]
        replay = local.replay(first, 10)
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


class FailingManager:
    """A manager on ``loop`` whose broadcast fails once it runs."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        self.loop = loop

    async def broadcast_event_from_notification(
        self, event_type: str, payload: Any, **kwargs: Any
    ) -> None:
        raise RuntimeError("broken")


class TestProcessSingleEvent:
    """EventBridge._process_single_event: where threads meet asyncio."""

    def test_without_manager_warns_and_returns(
        self, local: EventBridge, caplog_bridge: Any
    ) -> None:
        local._process_single_event(envelope_of())
        assert logged(caplog_bridge, logging.WARNING) == [
            "No WebSocket manager available, dropping event"
        ]
        assert logged(caplog_bridge, logging.ERROR) == []

    @pytest.mark.asyncio
    async def test_the_manager_gets_the_event_with_what_the_log_said(
        self, local: EventBridge, manager: WebSocketManager
    ) -> None:
        local._websocket_manager = manager
        meta = {"service": "ironic", "priority": "info"}
        local._process_single_event(
            envelope_of(id="e1", timestamp="2026-01-01T00:00:00Z", meta=meta)
            | {"stream_id": "5-0"}
        )
        [event] = await received(manager, 1)
        assert (event.event_type, event.node_name) == (EVENT_TYPE, "node1")
        assert (event.id, event.timestamp, event.position) == (
            "e1",
            "2026-01-01T00:00:00Z",
            "5-0",
        )
        assert event.data["_osism"]["priority"] == "INFO"

    @pytest.mark.asyncio
    async def test_a_plain_upstream_message_and_one_without_keys(
        self, local: EventBridge, manager: WebSocketManager
    ) -> None:
        local._websocket_manager = manager
        local._process_single_event({"event_type": EVENT_TYPE, "payload": PAYLOAD})
        local._process_single_event({})
        plain, empty = await received(manager, 2)
        assert (plain.event_type, plain.node_name) == (EVENT_TYPE, "node1")
        assert plain.position is None and "_osism" not in plain.data
        uuid.UUID(plain.id)  # one of its own
        assert (empty.event_type, empty.data["service_type"]) == ("", "unknown")

    @pytest.mark.asyncio
    async def test_events_from_the_log_keep_their_order_ids_and_positions(
        self, local: EventBridge, manager: WebSocketManager
    ) -> None:
        local._websocket_manager = manager
        for n in range(5):
            local.add_event(EVENT_TYPE, {"n": n})
        handed = queued(local)
        for event in handed:
            local._process_single_event(event)
        events = await received(manager, 5)
        assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]
        assert [e.id for e in events] == [e["id"] for e in handed]
        assert [e.position for e in events] == [e["stream_id"] for e in handed]
        assert [e.timestamp for e in events] == [e["timestamp"] for e in handed]

    @pytest.mark.parametrize("closed", [False, True], ids=["stopped", "closed"])
    def test_with_a_loop_that_does_not_run_the_event_is_counted_not_run(
        self, local: EventBridge, caplog_bridge: Any, closed: bool
    ) -> None:
        stopped = asyncio.new_event_loop()
        try:
            manager = WebSocketManager()
            manager.loop = stopped
            if closed:
                stopped.close()
            local._websocket_manager = manager
            local._process_single_event(envelope_of())
            local._process_single_event(envelope_of())
        finally:
            stopped.close()
        assert manager.event_queue.empty()
        assert local.status().dropped_events == 2
        assert logged(caplog_bridge, logging.WARNING) == [  # rate-limited
            "The WebSocket manager's loop is not running; "
            f"{EVENT_TYPE} not delivered (1 so far)"
        ]

    @pytest.mark.parametrize("loop", [None, "not-a-loop"], ids=str)
    def test_a_manager_without_a_loop_gets_the_event_on_a_private_loop(
        self, local: EventBridge, caplog_bridge: Any, loop: Any
    ) -> None:
        # As upstream osism: no broadcaster yet, so the queue has no waiters.
        manager = WebSocketManager()
        manager.loop = loop
        local._websocket_manager = manager
        local._process_single_event(envelope_of(id="e1"))
        [event] = [manager.event_queue.get_nowait()]
        assert (event.id, event.node_name) == ("e1", "node1")
        assert local.status().dropped_events == 0
        assert logged(caplog_bridge, logging.WARNING) == []

    def test_a_mock_manager_is_awaited_on_a_private_loop(
        self, local: EventBridge
    ) -> None:
        # Upstream osism's tests hand a MagicMock with an AsyncMock method.
        manager = MagicMock()
        manager.broadcast_event_from_notification = AsyncMock()
        local._websocket_manager = manager
        local._process_single_event(envelope_of())
        manager.broadcast_event_from_notification.assert_awaited_once()
        args = manager.broadcast_event_from_notification.await_args.args
        assert args == (EVENT_TYPE, PAYLOAD)

    def test_a_broadcast_failing_on_the_private_loop_is_logged_and_swallowed(
        self, local: EventBridge, caplog_bridge: Any
    ) -> None:
        local._websocket_manager = FailingManager(None)
        local._process_single_event(envelope_of())
        assert logged(caplog_bridge, logging.ERROR) == [
            "Error processing event via bridge: broken"
        ]

    def test_a_manager_without_a_loop_attribute_gets_a_private_loop(
        self, local: EventBridge
    ) -> None:
        taken: List[str] = []

        class Plain:
            async def broadcast_event_from_notification(
                self, event_type: str, payload: Any, **kwargs: Any
            ) -> None:
                taken.append(event_type)

        local._websocket_manager = Plain()
        local._process_single_event(envelope_of())
        assert taken == [EVENT_TYPE]

    def test_a_manager_that_cannot_take_events_is_logged(
        self, local: EventBridge, caplog_bridge: Any
    ) -> None:
        local._websocket_manager = SimpleNamespace()  # nothing to call
        local._process_single_event(envelope_of())
        [error] = logged(caplog_bridge, logging.ERROR)
        assert error.startswith("Error processing event via bridge: ")
        assert local.status().dropped_events == 0

    @pytest.mark.asyncio
    async def test_a_failing_broadcast_is_logged(
        self, local: EventBridge, caplog_bridge: Any
    ) -> None:
        local._websocket_manager = FailingManager(asyncio.get_running_loop())
        local._process_single_event(envelope_of())
        await async_wait_until(
            lambda: "Error processing event via bridge: broken"
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
            ("error", ["Error processing event via bridge: broken"]),
            ("cancelled", []),
        ],
    )
    def test_only_a_failed_broadcast_is_logged(
        self, caplog_bridge: Any, outcome: str, errors: List[str]
    ) -> None:
        _log_failure(finished(outcome))
        assert logged(caplog_bridge, logging.ERROR) == errors


def redis_ms(redis_view: fakeredis.FakeRedis) -> int:
    """Redis's clock in milliseconds, as it numbers log entries."""
    seconds, micros = redis_view.time()
    return int(seconds) * 1000 + int(micros) // 1000


def log_tail(redis_view: fakeredis.FakeRedis) -> str:
    """The position of the newest event in the log."""
    [(position, _)] = redis_view.xrevrange(f"{CHANNEL}:log", count=1)
    return str(position)


class TestSubscriberCatchesUp:
    """The subscriber loop on fakeredis: after every (re)subscribe it reads
    the log from the last position it delivered, then continues live, with
    no gap and no duplicate. Without a manager, what it delivers lands on the
    local queue, where the test reads it."""

    @pytest.fixture(autouse=True)
    def stopped(self, live: EventBridge, stop_event: Any) -> StopEvent:
        return stop_event(live)

    def publish(self, bridge: EventBridge, n: Any) -> Step:
        return lambda: bridge.add_event(EVENT_TYPE, {"n": n}) and None

    def test_the_first_subscribe_starts_at_the_tail_then_goes_live(
        self,
        live: EventBridge,
        poll: Any,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        live.add_event(EVENT_TYPE, {"n": "before"})
        tail = log_tail(redis_view)
        poll(live, idle, self.publish(live, 1), self.publish(live, 2))
        assert [e["payload"]["n"] for e in queued(live)] == [1, 2]
        assert live.status().caught_up == 0
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            f"Subscribed to Redis events channel osism:events; live from {tail}"
        )

    def test_the_health_check_pings_on_the_subscription_between_events(
        self, live: EventBridge, poll: Any, caplog_bridge: Any
    ) -> None:
        live._subscription.feed.interval = 0.0  # a PING at every poll
        poll(live, idle, self.publish(live, 1), idle, self.publish(live, 2), idle)
        assert [e["payload"]["n"] for e in queued(live)] == [1, 2]
        assert logged(caplog_bridge, logging.ERROR) == []

    def test_a_subscriber_that_comes_back_delivers_the_gap_then_live_once(
        self,
        live: EventBridge,
        stopped: StopEvent,
        poll: Any,
        redis_view: fakeredis.FakeRedis,
    ) -> None:
        # Delivered up to the first event, then away.
        poll(live, idle, self.publish(live, 0))
        live.add_event(EVENT_TYPE, {"n": 1})
        live.add_event(EVENT_TYPE, {"n": 2})
        live._init_redis()
        stopped.clear()
        poll(
            live,
            # Published while the loop catches up: in the log and on the
            # channel, so it must come once.
            self.publish(live, 3),
            self.publish(live, 4),
            idle,
            idle,
        )
        assert [e["payload"]["n"] for e in queued(live)] == [0, 1, 2, 3, 4]
        status = live.status()
        assert status.caught_up == 3
        assert status.last_position == log_tail(redis_view)

    def test_a_gap_the_log_no_longer_holds_is_counted_as_missed(
        self,
        live: EventBridge,
        stopped: StopEvent,
        poll: Any,
        redis_view: fakeredis.FakeRedis,
    ) -> None:
        poll(live, idle, self.publish(live, 0))
        # A restarted Redis numbers its log from its clock again: once that is
        # past the last event's millisecond (it is, when Redis really
        # restarts), the new log's first id follows the old one's.
        seen = int(live.status().last_position.split("-")[0])
        wait_until(lambda: redis_ms(redis_view) > seen)
        # Redis lost the log (restarted empty) while the subscriber was away.
        redis_view.delete(f"{CHANNEL}:log")
        live.add_event(EVENT_TYPE, {"n": 1})
        live._init_redis()
        stopped.clear()
        poll(live, idle, idle)
        assert [e["payload"]["n"] for e in queued(live)] == [0, 1]
        assert live.status().missed_warnings == 1

    def test_a_plain_upstream_message_is_delivered_as_it_is(
        self,
        live: EventBridge,
        poll: Any,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        plain = {"event_type": EVENT_TYPE, "payload": PAYLOAD}
        poll(
            live, idle, lambda: redis_view.publish(CHANNEL, json.dumps(plain)) and None
        )
        assert queued(live) == [plain]
        assert logged(caplog_bridge, logging.DEBUG) == [
            f"Received event from Redis: {EVENT_TYPE} at None"
        ]

    def test_each_event_received_is_logged_with_its_position(
        self,
        live: EventBridge,
        poll: Any,
        redis_view: fakeredis.FakeRedis,
        caplog_bridge: Any,
    ) -> None:
        poll(live, idle, self.publish(live, 1))
        received = [
            line
            for line in logged(caplog_bridge, logging.DEBUG)
            if line.startswith("Received event from Redis: ")
        ]
        assert received == [
            f"Received event from Redis: {EVENT_TYPE} at {log_tail(redis_view)}"
        ]


class TestChannel:
    """EventBridge(channel=...): the channel (and log) it publishes and
    subscribes on, as upstream osism; by default EVENTS_PREFIX."""

    def test_the_default_channel_is_the_events_prefix(self, live: EventBridge) -> None:
        assert live.channel == settings.EVENTS_PREFIX == CHANNEL

    def test_an_event_goes_to_the_bridges_own_channel_and_log(
        self, server: FakeRedisServer, redis_view: fakeredis.FakeRedis
    ) -> None:
        bridge = EventBridge(channel="other:events")
        listener = subscribe_to(redis_view, "other:events")
        default = subscribe_to(redis_view, CHANNEL)
        assert bridge.add_event(EVENT_TYPE, {"n": 1}) is True
        [message] = drain(listener)
        assert json.loads(message["data"])["payload"] == {"n": 1}
        assert drain(default) == []
        assert redis_view.xlen("other:events:log") == 1
        assert redis_view.exists(f"{CHANNEL}:log") == 0

    def test_two_bridges_on_two_channels_do_not_see_each_others_events(
        self, server: FakeRedisServer, poll: Any, stop_event: Any
    ) -> None:
        first = EventBridge(channel="first:events")
        second = EventBridge(channel="second:events")
        stop_event(first)
        stop_event(second)
        poll(
            first,
            idle,
            lambda: second.add_event(EVENT_TYPE, {"to": "second"}) and None,
            lambda: first.add_event(EVENT_TYPE, {"to": "first"}) and None,
            idle,
        )
        assert [e["payload"] for e in queued(first)] == [{"to": "first"}]
        # The second's log holds only its own event, for its own subscriber.
        [entry] = second._redis_log.read_after(None, 10)  # type: ignore[union-attr]
        assert entry.event["payload"] == {"to": "second"}

    def test_the_subscriber_says_which_channel_it_subscribed_to(
        self,
        server: FakeRedisServer,
        poll: Any,
        stop_event: Any,
        caplog_bridge: Any,
    ) -> None:
        bridge = EventBridge(channel="other:events")
        stop_event(bridge)
        poll(bridge, idle)
        assert logged(caplog_bridge, logging.INFO)[-1] == (
            "Subscribed to Redis events channel other:events; live from None"
        )


def subscribe_to(redis_view: fakeredis.FakeRedis, channel: str) -> Any:
    pubsub = redis_view.pubsub()
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=0.1)["type"] == "subscribe"
    return pubsub


def drain(pubsub: Any) -> List[Dict[str, Any]]:
    """The messages waiting on ``pubsub``."""
    messages = []
    while (message := pubsub.get_message(timeout=0.01)) is not None:
        messages.append(message)
    return messages


def run_in_threads(count: int, work: Callable[[], None]) -> None:
    """``work`` in ``count`` real threads at once; every one has ended when
    this returns, or the test fails (bounded: no thread outlives the test)."""
    start = threading.Barrier(count)

    def run() -> None:
        start.wait(timeout=5.0)
        work()

    workers = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10.0)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"


class TestCountersAcrossThreads:
    """The counters the caller's threads, the subscriber and the processor
    share count every increment, with several real threads at once."""

    THREADS = 4

    def test_drops_for_a_stopped_loop_are_all_counted(self, local: EventBridge) -> None:
        stopped = asyncio.new_event_loop()
        try:
            manager = WebSocketManager()
            manager.loop = stopped
            local._websocket_manager = manager

            def deliver() -> None:
                for _ in range(250):
                    local._process_single_event(envelope_of())

            run_in_threads(self.THREADS, deliver)
        finally:
            stopped.close()
        assert local.status().dropped_events == self.THREADS * 250

    def test_events_published_from_several_threads_are_all_counted(
        self, live: EventBridge, redis_view: fakeredis.FakeRedis
    ) -> None:
        def publish() -> None:
            for n in range(25):
                assert live.add_event(EVENT_TYPE, {"n": n}) is True

        run_in_threads(self.THREADS, publish)
        assert live.status().published == self.THREADS * 25
        assert redis_view.xlen(f"{CHANNEL}:log") == self.THREADS * 25
