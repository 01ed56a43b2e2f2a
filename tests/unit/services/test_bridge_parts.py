"""Unit tests of the parts EventBridge composes, on their own: what each
returns and keeps, given plain callables (test_event_bridge.py tests them
through the bridge, on fakeredis)."""

import logging
import threading
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

import pytest
import redis

from osism.core import backoff
from osism.core.ratelimit import RateLimitedLog
from osism.services.bridge import link
from osism.services.bridge.link import WatchEnd, close_pubsub, watch_for_redis
from osism.services.bridge.publisher import Publisher
from osism.services.bridge.subscriber import LoopEnd, SubscriberLoop
from osism.services.bridge.subscription import Subscription
from osism.services.bridge.supervisor import Supervisor

LOGGER = "osism.event_bridge"
ENVELOPE = {"id": "e-1", "event_type": "compute.instance.create.end", "payload": {}}


class Stop(threading.Event):
    """A shutdown Event that never blocks; the ``stop_on_wait``-th wait sets it."""

    def __init__(self, stop_on_wait: Optional[int] = None) -> None:
        super().__init__()
        self.stop_on_wait = stop_on_wait
        self.waits: List[Optional[float]] = []

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.waits.append(timeout)
        if self.stop_on_wait is not None and len(self.waits) >= self.stop_on_wait:
            self.set()
        return self.is_set()


@pytest.fixture(autouse=True)
def highest_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every jittered delay is its step."""
    monkeypatch.setattr(backoff, "source", lambda: 1.0)


def warnings(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING
    ]


class FakeLog:
    """A Redis log that takes every envelope, or raises ``errors`` in turn."""

    def __init__(self, receivers: int = 1, *errors: Exception) -> None:
        self.receivers = receivers
        self.errors = list(errors)
        self.events: List[Dict[str, Any]] = []

    def append(self, envelope: Dict[str, Any]) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        self.events.append(envelope)
        return SimpleNamespace(event=envelope, position=f"{len(self.events)}-0")


def publisher(
    current: Optional[FakeLog], again: Optional[FakeLog] = None, interval: float = 60
) -> Publisher:
    return Publisher(
        current_log=lambda: current,  # type: ignore[arg-type,return-value]
        reconnect=lambda: again,  # type: ignore[arg-type,return-value]
        down_log=RateLimitedLog(logging.getLogger(LOGGER), 30.0),
        unheard_interval=interval,
    )


class TestPublisher:
    def test_an_appended_event_is_taken_and_counted(self) -> None:
        log = FakeLog()
        part = publisher(log)
        assert part.append(ENVELOPE) is True
        assert (log.events, part.published.value) == ([ENVELOPE], 1)

    @pytest.mark.parametrize("connected", [False, True])
    def test_without_a_new_connection_the_event_is_not_taken(
        self, connected: bool
    ) -> None:
        # Not connected, or connected until the append broke the connection.
        broken = FakeLog(1, redis.ConnectionError("reset"))
        part = publisher(broken if connected else None, again=None)
        assert part.append(ENVELOPE) is False
        assert part.published.value == 0

    def test_an_event_the_log_did_not_take_is_not_taken(self) -> None:
        log = FakeLog()
        log.append = lambda envelope: None  # type: ignore[method-assign]
        part = publisher(log)
        assert part.append(ENVELOPE) is False
        assert part.published.value == 0

    def test_without_a_connection_it_appends_to_the_new_one(self) -> None:
        again = FakeLog()
        part = publisher(None, again=again)
        assert part.append(ENVELOPE) is True
        assert again.events == [ENVELOPE]

    def test_unheard_events_warn_once_per_interval(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        part = publisher(FakeLog(receivers=0))
        assert part.append(ENVELOPE) is True
        assert part.append(ENVELOPE) is True
        assert warnings(caplog) == [
            "No Redis subscribers for event: compute.instance.create.end; it is "
            "in the log for subscribers that catch up"
        ]

    @pytest.mark.parametrize("later, count", [(59.9, 1), (60.0, 2)])
    def test_an_unheard_event_warns_again_a_minute_later(
        self, caplog: pytest.LogCaptureFixture, later: float, count: int
    ) -> None:
        readings = iter([0.0, later])
        unheard = FakeLog(receivers=0)
        part = Publisher(
            current_log=lambda: unheard,  # type: ignore[arg-type,return-value]
            reconnect=lambda: None,
            down_log=RateLimitedLog(logging.getLogger(LOGGER), 30.0),
            clock=lambda: next(readings),
        )
        part.append(ENVELOPE)
        part.append(ENVELOPE)
        assert len(warnings(caplog)) == count

    def test_a_heard_event_warns_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        publisher(FakeLog(receivers=1)).append(ENVELOPE)
        assert warnings(caplog) == []


class Closable:
    def __init__(self, error: Optional[Exception] = None) -> None:
        self.error = error
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        if self.error is not None:
            raise self.error


class TestClosePubsub:
    def test_nothing_to_close_is_no_error(self) -> None:
        assert close_pubsub(None, threading.Lock()) is None

    def test_it_closes_and_returns_no_error(self) -> None:
        pubsub = Closable()
        assert close_pubsub(pubsub, threading.Lock()) is None
        assert pubsub.closed == 1

    def test_a_failed_close_returns_the_error(self) -> None:
        error = OSError("gone")
        assert close_pubsub(Closable(error), threading.Lock()) is error


def loop(pubsub: Any, log: Any = None) -> SubscriberLoop:
    return SubscriberLoop(
        channel="osism:events",
        feed=Subscription(interval=30.0, timeout=5.0),
        pubsub=lambda: pubsub,
        log=lambda: log,
        reconnect=lambda: None,
        deliver=lambda event: None,
        close=lambda pubsub: None,
    )


class TestSubscriberLoop:
    def test_without_a_pubsub_it_ends_at_once(self) -> None:
        assert loop(None).run(Stop(), 5, 1.0) is LoopEnd.NO_SUBSCRIBER

    def test_after_max_retries_failures_it_gives_up(self) -> None:
        stop = Stop()
        # No log: every attempt fails.
        assert loop(Closable()).run(stop, 3, 2.0) is LoopEnd.GAVE_UP
        assert stop.waits == [2.0, 2.0]

    def test_a_shutdown_during_the_retry_wait_ends_it(self) -> None:
        stop = Stop(stop_on_wait=1)
        assert loop(Closable()).run(stop, 3, 2.0) is LoopEnd.SHUTDOWN

    def test_after_a_shutdown_it_ends_for_shutdown(self) -> None:
        stop = Stop()
        stop.set()
        part = loop(Closable())
        assert part.run(stop, 3, 2.0) is LoopEnd.SHUTDOWN
        assert part.subscribed is False


class TestSupervisor:
    def test_each_run_that_gave_up_is_a_restart(self) -> None:
        runs: List[str] = []
        part = Supervisor(
            run_loop=lambda: runs.append("run"),
            reconnect=lambda: runs.append("connect"),
            probe=lambda: False,
        )
        part.run(Stop(stop_on_wait=3), 1.0, 1.0)
        assert runs == ["run", "connect", "run", "connect", "run"]
        assert part.restarts == 3


class TestWatchForRedis:
    @pytest.fixture
    def answers(self, monkeypatch: pytest.MonkeyPatch) -> List[bool]:
        """What the quiet probes say, in turn."""
        replies: List[bool] = []
        monkeypatch.setattr(link, "_redis_answers", lambda report: replies.pop(0))
        return replies

    def test_it_ends_switched_once_redis_answers_and_the_switch_took(
        self, answers: List[bool]
    ) -> None:
        answers[:] = [False, True, True]
        switched = iter([False, True])
        stop = Stop()
        assert watch_for_redis(stop, lambda: next(switched), 1.0, 4.0) is (
            WatchEnd.SWITCHED
        )
        assert stop.waits == [1.0, 2.0]

    def test_it_ends_for_shutdown_while_redis_is_silent(
        self, answers: List[bool]
    ) -> None:
        answers[:] = [False, False]
        switched: List[bool] = []

        def switch() -> bool:
            switched.append(True)
            return True

        end = watch_for_redis(Stop(stop_on_wait=1), switch, 1.0, 4.0)
        assert (end, switched) == (WatchEnd.SHUTDOWN, [])

    def test_after_a_shutdown_it_does_not_look(self, answers: List[bool]) -> None:
        stop = Stop()
        stop.set()
        assert watch_for_redis(stop, lambda: True, 1.0, 4.0) is WatchEnd.SHUTDOWN
