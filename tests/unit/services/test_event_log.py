"""The event log: MemoryEventLog, and RedisEventLog on fakeredis (its Lua
script runs in fakeredis' Lua, so no network is needed)."""

import json
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import fakeredis
import pytest

from osism import settings
from osism.core.event_log import (
    LogEntry,
    MemoryEventLog,
    event_id_for,
    new_envelope,
    page_of,
    position_key,
)
from osism.services.bridge.redis_log import RedisEventLog

DEDUPE = 3600.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def envelopes(count: int) -> List[Dict[str, Any]]:
    return [new_envelope("a.b", {"n": n}) for n in range(count)]


def payloads(entries: List[LogEntry]) -> List[Any]:
    return [entry.event["payload"]["n"] for entry in entries]


class TestEnvelope:
    def test_a_uuid_message_id_is_the_event_id(self) -> None:
        message_id = str(uuid.uuid4())
        envelope = new_envelope("a.b", {"x": 1}, {"message_id": message_id})
        assert envelope["id"] == message_id
        assert envelope["meta"] == {"message_id": message_id}
        assert envelope["timestamp"].endswith("Z")
        assert (envelope["event_type"], envelope["payload"]) == ("a.b", {"x": 1})

    def test_the_timestamp_is_utc_whatever_the_local_zone(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TZ", "Etc/GMT+5")
        time.tzset()
        try:
            stamp = new_envelope("a.b", {})["timestamp"]
        finally:
            monkeypatch.undo()
            time.tzset()
        utc = datetime.now(timezone.utc).replace(tzinfo=None)
        assert abs(datetime.fromisoformat(stamp.rstrip("Z")) - utc) < timedelta(
            minutes=1
        )

    @pytest.mark.parametrize("message_id", [None, "not-a-uuid", 42])
    def test_otherwise_a_fresh_uuid4(self, message_id: Any) -> None:
        first, second = (event_id_for(message_id) for _ in range(2))
        assert first != second
        assert uuid.UUID(first).version == 4

    def test_positions_sort_by_time_then_sequence(self) -> None:
        assert position_key("12-3") == (12, 3)
        assert position_key("12") == (12, 0)
        assert sorted(["2-0", "10-0", "2-11", "2-2"], key=position_key) == [
            "2-0",
            "2-2",
            "2-11",
            "10-0",
        ]

    def test_page_of_keeps_the_newest(self) -> None:
        entries = [LogEntry(f"1-{n}", {"n": n}) for n in range(5)]
        assert page_of(entries, 2) == (entries[3:], False)
        assert page_of(entries, 5) == (entries, True)
        assert page_of(entries, 0) == ([], False)


class TestMemoryEventLog:
    def test_the_first_position_at_time_zero_is_0_1_as_in_redis(self) -> None:
        log = MemoryEventLog(10, DEDUPE, clock=Clock(0.0))
        positions = [log.append(e).position for e in envelopes(2)]  # type: ignore
        assert positions == ["0-1", "0-2"]

    def test_positions_increase_within_and_across_milliseconds(self) -> None:
        clock = Clock(1.0)
        log = MemoryEventLog(10, DEDUPE, clock=clock)
        first, second = (log.append(e) for e in envelopes(2))
        clock.now = 2.5
        third = log.append(new_envelope("a.b", {}))
        assert [e.position for e in (first, second, third)] == [
            "1000-0",
            "1000-1",
            "2500-0",
        ]
        clock.now = 2.0  # the clock went back: positions still increase
        assert log.append(new_envelope("a.b", {})).position == "2500-1"

    def test_an_id_seen_before_is_not_appended_or_announced_again(self) -> None:
        announced: List[LogEntry] = []
        log = MemoryEventLog(10, DEDUPE, on_append=announced.append)
        message_id = str(uuid.uuid4())
        first = log.append(new_envelope("a.b", {"n": 0}, {"message_id": message_id}))
        again = log.append(new_envelope("a.b", {"n": 1}, {"message_id": message_id}))
        assert again == first
        assert (len(log), log.duplicates, announced) == (1, 1, [first])
        log.append(new_envelope("a.b", {"n": 2}, {"message_id": message_id}))
        assert log.duplicates == 2

    def test_an_id_whose_entry_left_the_history_is_still_not_appended(self) -> None:
        log = MemoryEventLog(1, DEDUPE)
        sent = envelopes(2)
        first = log.append(sent[0])
        log.append(sent[1])
        again = dict(sent[0], payload={"n": "again"})
        assert first is not None
        assert log.append(again) == LogEntry(first.position, again)
        assert (payloads(log.read_after(None, 10)), log.duplicates) == ([1], 1)

    def test_ids_are_remembered_for_twice_the_history_size(self) -> None:
        log = MemoryEventLog(2, DEDUPE)
        sent = envelopes(5)
        for envelope in sent:
            log.append(envelope)
        log.append(sent[1])  # among the newest four: known
        log.append(sent[0])  # the fifth newest: forgotten
        assert log.duplicates == 1
        assert payloads(log.read_after(None, 10)) == [4, 0]

    def test_an_id_is_forgotten_after_the_dedupe_window(self) -> None:
        clock = Clock()
        log = MemoryEventLog(10, dedupe_seconds=60, clock=clock)
        envelope = new_envelope("a.b", {"n": 0})
        log.append(envelope)
        clock.now += 59.5
        log.append(envelope)
        assert (len(log), log.duplicates) == (1, 1)
        clock.now += 0.5  # the window ends
        log.append(envelope)
        assert (len(log), log.duplicates) == (2, 1)

    def test_the_history_is_bounded_and_the_oldest_go_first(self) -> None:
        log = MemoryEventLog(3, DEDUPE)
        for envelope in envelopes(5):
            log.append(envelope)
        assert payloads(log.read_after(None, 10)) == [2, 3, 4]

    def test_read_after_is_exclusive_and_limited(self) -> None:
        log = MemoryEventLog(10, DEDUPE)
        entries = [log.append(e) for e in envelopes(4)]
        assert payloads(log.read_after(entries[0].position, 2)) == [1, 2]
        assert log.read_after(entries[-1].position, 10) == []
        assert log.last_position() == entries[-1].position

    def test_an_empty_log(self) -> None:
        log = MemoryEventLog(3, DEDUPE)
        assert log.last_position() is None
        assert log.read_after(None, 5) == []
        assert log.replay(str(uuid.uuid4()), 5) == ([], False, None)

    def test_replay_after_a_known_id_is_complete(self) -> None:
        log = MemoryEventLog(10, DEDUPE)
        sent = envelopes(5)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(sent[1]["id"], 10)
        assert payloads(replay.entries) == [2, 3, 4]
        assert (replay.recovered, replay.oldest_id) == (True, sent[0]["id"])
        assert log.replay(sent[4]["id"], 10) == ([], True, sent[0]["id"])

    def test_replay_beyond_the_bound_gives_the_newest_part(self) -> None:
        log = MemoryEventLog(10, DEDUPE)
        sent = envelopes(6)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(sent[0]["id"], 2)
        assert (payloads(replay.entries), replay.recovered) == ([4, 5], False)

    def test_replay_of_an_id_older_than_the_log(self) -> None:
        log = MemoryEventLog(3, DEDUPE)
        sent = envelopes(5)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(sent[0]["id"], 2)
        assert payloads(replay.entries) == [3, 4]
        assert (replay.recovered, replay.oldest_id) == (False, sent[2]["id"])


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def log(redis: fakeredis.FakeRedis) -> RedisEventLog:
    return RedisEventLog(redis, prefix="test:events", history_size=1000)


class TestRedisEventLog:
    def test_subscribers_reached_by_the_last_append(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        assert log.receivers == 0
        envelope = new_envelope("a.b", {"n": 0})
        channel_of_log = redis.pubsub()
        channel_of_log.subscribe("test:events")
        log.append(envelope)
        assert log.receivers == 1
        log.append(envelope)  # known: announced to nobody
        assert log.receivers == 0

    def test_the_prefix_is_events_prefix_unless_given(
        self, redis: fakeredis.FakeRedis
    ) -> None:
        log = RedisEventLog(redis)
        assert (log.channel, log.stream) == (
            settings.EVENTS_PREFIX,
            f"{settings.EVENTS_PREFIX}:log",
        )

    def test_names_come_from_the_prefix(self, log: RedisEventLog) -> None:
        assert (log.channel, log.stream, log.id_key("x")) == (
            "test:events",
            "test:events:log",
            "test:events:id:x",
        )

    def test_append_logs_and_announces_with_the_stream_id_first(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        pubsub = redis.pubsub()
        pubsub.subscribe("test:events")
        pubsub.get_message(timeout=0.1)
        envelope = new_envelope("a.b", {"x": 1}, {"service": "ironic"})
        entry = log.append(envelope)
        assert entry is not None
        message = pubsub.get_message(timeout=0.1)
        assert message is not None
        assert message["data"].startswith('{"stream_id":"%s",' % entry.position)
        announced = json.loads(message["data"])
        assert announced == dict(envelope, stream_id=entry.position)
        assert log.receivers == 1
        assert redis.get(log.id_key(envelope["id"])) == entry.position
        assert 3500 < redis.ttl(log.id_key(envelope["id"])) <= 3600
        assert log.read_after(None, 10) == [entry]

    def test_a_known_id_is_neither_appended_nor_announced(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        pubsub = redis.pubsub()
        pubsub.subscribe("test:events")
        pubsub.get_message(timeout=0.1)
        message_id = str(uuid.uuid4())
        first = log.append(new_envelope("a.b", {"n": 0}, {"message_id": message_id}))
        again = log.append(new_envelope("a.b", {"n": 1}, {"message_id": message_id}))
        # The entry as logged the first time, timestamp included.
        assert again == first
        assert redis.xlen("test:events:log") == 1
        assert pubsub.get_message(timeout=0.1) is not None
        assert pubsub.get_message(timeout=0.1) is None
        assert log.duplicates == 1
        log.append(new_envelope("a.b", {"n": 2}, {"message_id": message_id}))
        assert log.duplicates == 2

    def test_a_known_id_is_said_so_at_debug_level(
        self, log: RedisEventLog, caplog: pytest.LogCaptureFixture
    ) -> None:
        envelope = new_envelope("a.b", {"n": 0})
        first = log.append(envelope)
        assert first is not None
        with caplog.at_level(logging.DEBUG, "osism.event_log"):
            log.append(envelope)
        assert caplog.messages == [
            f"Event {envelope['id']} is in the log already at {first.position}"
        ]

    def test_a_known_id_whose_entry_was_trimmed_is_not_appended_again(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        envelope = new_envelope("a.b", {"n": 0})
        first = log.append(envelope)
        assert first is not None
        redis.xtrim("test:events:log", maxlen=0, approximate=False)
        again = dict(envelope, payload={"n": "again"})
        assert log.append(again) == LogEntry(first.position, again)
        assert redis.xlen("test:events:log") == 0

    def test_the_stream_is_capped(self, redis: fakeredis.FakeRedis) -> None:
        log = RedisEventLog(redis, prefix="cap", history_size=10)
        for envelope in envelopes(50):
            log.append(envelope)
        # Approximate trimming: never much longer than the cap.
        assert redis.xlen("cap:log") <= 110
        assert payloads(log.read_after(log.last_position(), 5)) == []
        assert payloads(log.read_after(None, 100))[-1] == 49

    def test_read_after_is_exclusive_in_order_and_limited(
        self, log: RedisEventLog
    ) -> None:
        entries = [log.append(e) for e in envelopes(5)]
        assert payloads(log.read_after(entries[1].position, 2)) == [2, 3]
        assert log.last_position() == entries[-1].position
        assert payloads(log.read_after(None, 10)) == [0, 1, 2, 3, 4]

    def test_an_empty_log(self, log: RedisEventLog) -> None:
        assert log.last_position() is None
        assert log.read_after(None, 10) == []
        assert log.replay(str(uuid.uuid4()), 10) == ([], False, None)
        assert log.covers("1-0") is True

    def test_replay_after_a_known_id(self, log: RedisEventLog) -> None:
        sent = envelopes(5)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(sent[1]["id"], 10)
        assert payloads(replay.entries) == [2, 3, 4]
        assert (replay.recovered, replay.oldest_id) == (True, sent[0]["id"])

    @pytest.mark.parametrize("page", [1, 2, 1000])
    def test_replay_finds_an_id_whose_key_expired_by_scanning(
        self,
        log: RedisEventLog,
        redis: fakeredis.FakeRedis,
        monkeypatch: Any,
        page: int,
    ) -> None:
        monkeypatch.setattr("osism.services.bridge.redis_log.SCAN_PAGE", page)
        sent = envelopes(5)
        for envelope in sent:
            log.append(envelope)
        redis.delete(log.id_key(sent[3]["id"]))
        replay = log.replay(sent[3]["id"], 10)
        assert (payloads(replay.entries), replay.recovered) == ([4], True)

    def test_replay_of_exactly_the_bound_is_complete(self, log: RedisEventLog) -> None:
        sent = envelopes(4)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(sent[0]["id"], 3)
        assert (payloads(replay.entries), replay.recovered) == ([1, 2, 3], True)

    def test_replay_beyond_the_bound_gives_the_newest_part(
        self, log: RedisEventLog
    ) -> None:
        sent = envelopes(6)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(sent[0]["id"], 3)
        assert (payloads(replay.entries), replay.recovered) == ([3, 4, 5], False)
        assert replay.oldest_id == sent[0]["id"]

    def test_replay_of_an_unknown_or_trimmed_id(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        sent = envelopes(5)
        for envelope in sent:
            log.append(envelope)
        replay = log.replay(str(uuid.uuid4()), 2)
        assert (payloads(replay.entries), replay.recovered) == ([3, 4], False)
        assert replay.oldest_id == sent[0]["id"]
        assert payloads(log.replay(str(uuid.uuid4()), 1).entries) == [4]
        assert log.replay(str(uuid.uuid4()), 0) == ([], False, sent[0]["id"])
        redis.xtrim("test:events:log", maxlen=3, approximate=False)
        # Its id key lives on, but its entry is gone: maybe more with it.
        replay = log.replay(sent[0]["id"], 10)
        assert (payloads(replay.entries), replay.recovered) == ([2, 3, 4], False)
        assert replay.oldest_id == sent[2]["id"]

    def test_covers_tells_whether_entries_after_a_position_were_trimmed(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        entries = [log.append(e) for e in envelopes(5)]
        assert log.covers(entries[0].position) is True
        redis.xtrim("test:events:log", maxlen=2, approximate=False)
        assert log.covers(entries[0].position) is False
        assert log.covers(entries[3].position) is True

    @pytest.mark.parametrize(
        "fields", [{"id": "x", "event": "{oops"}, {"id": "x"}], ids=["bad", "none"]
    )
    def test_an_entry_that_is_not_json_is_skipped_with_a_warning(
        self,
        log: RedisEventLog,
        redis: fakeredis.FakeRedis,
        caplog: pytest.LogCaptureFixture,
        fields: Dict[str, str],
    ) -> None:
        position = redis.xadd("test:events:log", fields)
        log.append(new_envelope("a.b", {"n": 1}))
        with caplog.at_level(logging.WARNING, "osism.event_log"):
            assert payloads(log.read_after(None, 10)) == [1]
        assert caplog.messages == [
            f"Entry {position} of the event log is not JSON; skipped"
        ]

    def test_an_entry_that_is_not_an_object_is_skipped(
        self, log: RedisEventLog, redis: fakeredis.FakeRedis
    ) -> None:
        redis.xadd("test:events:log", {"id": "x", "event": "[1]"})
        log.append(new_envelope("a.b", {"n": 1}))
        assert payloads(log.read_after(None, 10)) == [1]
