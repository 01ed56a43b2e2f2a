"""Subscription: the Redis subscriber's position in the log and health check."""

import logging
from typing import Any, Dict, List
from unittest.mock import MagicMock

import fakeredis
import pytest

from osism.core.event_log import new_envelope
from osism.services.bridge.redis_log import RedisEventLog
from osism.services.bridge.subscription import (
    PING_TOKEN,
    DeadConnection,
    Subscription,
    decode,
    is_pong,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed(clock: Clock) -> Subscription:
    return Subscription(interval=5.0, timeout=2.0, clock=clock)


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def log(redis: fakeredis.FakeRedis) -> RedisEventLog:
    return RedisEventLog(redis, prefix="sub", history_size=1000)


def fill(log: RedisEventLog, *numbers: int) -> List[str]:
    positions = []
    for n in numbers:
        entry = log.append(new_envelope("a.b", {"n": n}))
        assert entry is not None
        positions.append(entry.position)
    return positions


class TestHealthCheck:
    def test_pings_once_per_interval_and_a_pong_clears_it(
        self, feed: Subscription, clock: Clock
    ) -> None:
        pubsub = MagicMock()
        feed.check_health(pubsub)
        pubsub.ping.assert_not_called()
        clock.now += 5.0
        feed.check_health(pubsub)
        pubsub.ping.assert_called_once_with(PING_TOKEN)
        clock.now += 1.0
        feed.check_health(pubsub)  # still waiting, within the timeout
        assert feed.pong({"type": "pong", "data": PING_TOKEN}) is True
        clock.now += 10.0
        feed.check_health(pubsub)
        assert pubsub.ping.call_count == 2

    def test_a_ping_without_answer_within_the_timeout_is_a_dead_connection(
        self, feed: Subscription, clock: Clock
    ) -> None:
        pubsub = MagicMock()
        clock.now += 5.0
        feed.check_health(pubsub)
        clock.now += 2.0
        feed.check_health(pubsub)  # the timeout itself is still in time
        clock.now += 0.5
        with pytest.raises(DeadConnection) as caught:
            feed.check_health(pubsub)
        assert str(caught.value) == (
            "Redis did not answer PING on the subscription within 2.0 s"
        )
        assert isinstance(caught.value, ConnectionError)

    def test_a_new_connection_starts_without_an_outstanding_ping(
        self, feed: Subscription, clock: Clock
    ) -> None:
        pubsub = MagicMock()
        clock.now += 5.0
        feed.check_health(pubsub)
        clock.now += 10.0
        feed.reset_health()
        feed.check_health(pubsub)
        assert pubsub.ping.call_count == 1

    @pytest.mark.parametrize(
        "message, answer",
        [
            ({"type": "pong", "data": PING_TOKEN}, True),
            ({"type": "pong", "data": PING_TOKEN.encode()}, True),
            # redis-py 8 with decode_responses: the token's characters
            ({"type": "o", "channel": "s", "data": "i"}, True),
            ({"type": "pong", "data": "redis-py-health-check"}, False),
            ({"type": "message", "channel": "sub", "data": "{}"}, False),
        ],
    )
    def test_recognises_our_pong(self, message: Dict[str, Any], answer: bool) -> None:
        assert is_pong(message) is answer

    def test_the_pong_of_a_real_subscription_is_recognised(
        self, redis: fakeredis.FakeRedis
    ) -> None:
        pubsub = redis.pubsub()
        pubsub.subscribe("sub")
        pubsub.get_message(timeout=0.1)
        pubsub.ping(PING_TOKEN)
        message = pubsub.get_message(timeout=0.1)
        assert message is not None and is_pong(message)


class TestCatchUpAndSeam:
    def test_the_first_subscribe_starts_at_the_tail(
        self, feed: Subscription, log: RedisEventLog
    ) -> None:
        positions = fill(log, 0, 1)
        feed.begin(log)
        fill(log, 2)
        feed.begin(log)  # later subscribes keep their position
        assert feed.position == positions[-1]
        delivered: List[Any] = []
        assert feed.catch_up(log, delivered.append) == 1
        assert [e["payload"]["n"] for e in delivered] == [2]

    def test_an_empty_log_at_the_first_subscribe_delivers_everything_later(
        self, feed: Subscription, log: RedisEventLog
    ) -> None:
        feed.begin(log)
        positions = fill(log, 0, 1)
        delivered: List[Any] = []
        feed.catch_up(log, delivered.append)
        assert [e["stream_id"] for e in delivered] == positions
        assert (feed.position, feed.caught_up) == (positions[-1], 2)

    def test_catch_up_reads_every_page_in_order(
        self,
        feed: Subscription,
        log: RedisEventLog,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr("osism.services.bridge.subscription.CATCH_UP_PAGE", 2)
        feed.begin(log)
        fill(log, *range(7))
        delivered: List[Any] = []
        assert feed.catch_up(log, delivered.append) == 7
        assert [e["payload"]["n"] for e in delivered] == list(range(7))

    def test_live_messages_delivered_already_are_skipped(
        self, feed: Subscription, log: RedisEventLog, caplog: pytest.LogCaptureFixture
    ) -> None:
        feed.begin(log)
        positions = fill(log, 0, 1, 2)
        feed.catch_up(log, lambda event: None)
        with caplog.at_level(logging.DEBUG, "osism.event_bridge"):
            assert feed.accept({"stream_id": positions[1]}) is False
            assert feed.accept({"stream_id": positions[2]}) is False
            assert feed.accept({"stream_id": "9999999999999-0"}) is True
        assert (feed.skipped, feed.position) == (2, "9999999999999-0")
        assert caplog.messages == [
            f"Skipped {positions[1]}: delivered already from the log",
            f"Skipped {positions[2]}: delivered already from the log",
        ]

    def test_every_catch_up_counts_and_says_what_it_delivered(
        self, feed: Subscription, log: RedisEventLog, caplog: pytest.LogCaptureFixture
    ) -> None:
        feed.begin(log)
        fill(log, 0, 1)
        with caplog.at_level(logging.INFO, "osism.event_bridge"):
            assert feed.catch_up(log, lambda event: None) == 2
            assert feed.catch_up(log, lambda event: None) == 0
            fill(log, 2)
            assert feed.catch_up(log, lambda event: None) == 1
        assert feed.caught_up == 3
        assert caplog.messages == [
            "Caught up with 2 events from the event log",
            "Caught up with 1 events from the event log",
        ]

    @pytest.mark.parametrize("event", [{}, {"stream_id": 5}, {"stream_id": "x-y"}])
    def test_a_message_without_a_usable_position_is_delivered(
        self, feed: Subscription, event: Dict[str, Any]
    ) -> None:
        feed.position = "5-0"
        assert feed.accept(event) is True
        assert feed.position == "5-0"

    def test_a_gap_longer_than_the_log_is_warned_about_and_counted(
        self,
        feed: Subscription,
        log: RedisEventLog,
        redis: fakeredis.FakeRedis,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        feed.begin(log)
        positions = fill(log, 0, 1, 2, 3, 4)
        feed.position = positions[0]
        redis.xtrim("sub:log", maxlen=2, approximate=False)
        delivered: List[Any] = []
        with caplog.at_level(logging.WARNING, "osism.event_bridge"):
            feed.catch_up(log, delivered.append)
        assert [e["payload"]["n"] for e in delivered] == [3, 4]
        assert feed.missed_warnings == 1
        assert caplog.messages == [
            f"The event log no longer reaches back to {positions[0]}, the last "
            "event this process delivered: events may have been missed (the log "
            "keeps about 1000 events, EVENT_HISTORY_SIZE); delivering what it "
            "holds and continuing"
        ]
        fill(log, 5)
        redis.xtrim("sub:log", maxlen=0, approximate=False)
        fill(log, 6)
        feed.catch_up(log, delivered.append)
        assert feed.missed_warnings == 2

    def test_no_warning_while_the_log_reaches_back(
        self,
        feed: Subscription,
        log: RedisEventLog,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        feed.begin(log)
        positions = fill(log, 0, 1, 2)
        feed.position = positions[0]
        with caplog.at_level(logging.WARNING, "osism.event_bridge"):
            feed.catch_up(log, lambda event: None)
        assert (feed.missed_warnings, caplog.text) == (0, "")


class TestDecode:
    def test_a_json_object(self) -> None:
        assert decode('{"a": 1}') == {"a": 1}

    @pytest.mark.parametrize("data", ["{oops", "[1]", "3"])
    def test_anything_else_is_a_value_error(self, data: str) -> None:
        with pytest.raises(ValueError):
            decode(data)

    def test_json_that_is_not_an_object_is_named_so(self) -> None:
        with pytest.raises(ValueError) as caught:
            decode("[1]")
        assert str(caught.value) == "not a JSON object"
