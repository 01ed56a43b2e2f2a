"""Resume: what a client receives, in which order, across the seam.

Each test runs a fresh WebSocketManager with its broadcaster and real writers
on fake websockets; the replay source is a plain function (called in a worker
thread, as in production). Live events that arrive while a replay is read are
injected from inside the source, through the manager's loop, exactly the way
the bridge's thread hands events over.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple
from unittest.mock import MagicMock

import pytest

from osism import settings
from osism.services.fanout import resume as replay_module
from osism.core.event_log import Envelope, LogEntry, MemoryEventLog, Replay
from osism.services.fanout.resume import ResumeState, event_of, resume_keys
from osism.services.websocket_manager import CLOSE_TRY_AGAIN_LATER, WebSocketManager
from tests.conftest import async_wait_until

LOGGER = "osism.websocket"
IRONIC = "baremetal.node.power_set.end"
NOVA = "compute.instance.update"

WebSocketFactory = Callable[[], MagicMock]


def event_id(number: int) -> str:
    return str(uuid.UUID(int=number))


def envelope(number: int, event_type: str = IRONIC) -> Envelope:
    """The log's event number ``number``: its id and position follow from it."""
    if event_type.startswith("compute"):
        payload = {"nova_object.data": {"host": f"host{number}"}}
    else:
        payload = {"ironic_object.data": {"name": f"node{number}"}}
    return {
        "id": event_id(number),
        "timestamp": f"2026-11-23T13:00:{number % 60:02d}.000000Z",
        "event_type": event_type,
        "payload": payload,
        "meta": {"service": "ironic"},
    }


def entry(number: int, event_type: str = IRONIC) -> LogEntry:
    return LogEntry(f"{1000 + number}-0", envelope(number, event_type))


def entries(*numbers: int) -> List[LogEntry]:
    return [entry(number) for number in numbers]


def make_reply(keys: Dict[str, Any]) -> str:
    return json.dumps({"type": "filter_update", "status": "success", **keys})


def received(websocket: MagicMock) -> List[Dict[str, Any]]:
    return [json.loads(call.args[0]) for call in websocket.send_text.await_args_list]


def ids(messages: Sequence[Dict[str, Any]]) -> List[Any]:
    """What a client saw, shortened: "reply" or the number of each event."""
    shown: List[Any] = []
    for message in messages:
        if message.get("type") == "filter_update":
            shown.append("reply")
        elif message.get("event_type") == "heartbeat":
            shown.append("heartbeat")
        else:
            shown.append(uuid.UUID(message["id"]).int)
    return shown


def live(manager: WebSocketManager, entry_: LogEntry) -> None:
    """Hand a logged event to the manager as the bridge does (on its loop)."""
    event = entry_.event
    manager.add_notification(
        event["event_type"],
        event["payload"],
        meta=event["meta"],
        event_id=event["id"],
        timestamp=event["timestamp"],
        position=entry_.position,
    )


def plain(manager: WebSocketManager, number: int) -> None:
    """A plain publish (old listener): no id from the log, no position."""
    manager.add_notification(IRONIC, {"ironic_object.data": {"name": "plain"}})


class Source:
    """A replay source; ``during`` runs on the manager's loop while it reads."""

    def __init__(
        self,
        manager: WebSocketManager,
        answer: Replay,
        during: Optional[Callable[[], Any]] = None,
        error: Optional[Exception] = None,
        until: Optional[Callable[[], bool]] = None,
    ) -> None:
        self.manager = manager
        self.answer = answer
        self.during = during
        self.error = error
        self.until = until
        self.loop = asyncio.get_running_loop()

    def __call__(self, last_event_id: str, limit: int) -> Replay:
        if self.during is not None:
            future = asyncio.run_coroutine_threadsafe(self._inject(), self.loop)
            future.result(timeout=5)
        if self.error is not None:
            raise self.error
        return self.answer

    async def _inject(self) -> None:
        assert self.during is not None
        result = self.during()
        if asyncio.iscoroutine(result):
            await result
        # Fanned out once the broadcaster has taken everything off the queue.
        await async_wait_until(lambda: self.manager.event_queue.empty())
        if self.until is not None:
            await async_wait_until(self.until)


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[WebSocketManager]:
    manager = WebSocketManager(**kwargs)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def connected(manager: WebSocketManager, factory: WebSocketFactory) -> MagicMock:
    websocket = factory()
    await manager.connect(websocket)
    return websocket


async def settled(manager: WebSocketManager, websocket: MagicMock) -> None:
    """Wait until the resume is over and everything queued was sent."""
    connection = manager.connections[websocket]
    await async_wait_until(
        lambda: connection.resume is None
        and connection.outbox.empty()
        and manager.event_queue.empty()
    )
    await asyncio.sleep(0)


@pytest.fixture
def ws_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def messages_at(caplog: pytest.LogCaptureFixture, level: int) -> List[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == level
    ]


class TestRecovered:
    @pytest.mark.asyncio
    async def test_reply_then_missed_events_in_order_then_live(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            source = Source(manager, Replay(entries(2, 3, 4), True, event_id(1)))
            manager.replay_source = source

            assert await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)
            live(manager, entry(5))
            await async_wait_until(lambda: websocket.send_text.await_count == 5)

            messages = received(websocket)
            assert ids(messages) == ["reply", 2, 3, 4, 5]
            assert messages[0] == {
                "type": "filter_update",
                "status": "success",
                "recovered": True,
                "replayed": 3,
                "oldest_id": event_id(1),
            }
            assert messages_at(ws_logs, logging.INFO)[-1] == (
                f"Client resumes after {event_id(1)}: 3 of 3 events in the log "
                "replayed, recovered=True"
            )

    @pytest.mark.asyncio
    async def test_replayed_event_is_sent_with_the_logs_id_and_time(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(manager, Replay(entries(7), True, None))

            await manager.resume(websocket, event_id(6), make_reply)
            await settled(manager, websocket)

            event = received(websocket)[1]
            assert event == {
                "id": event_id(7),
                "timestamp": envelope(7)["timestamp"],
                "event_type": IRONIC,
                "source": "openstack",
                "node_name": "node7",
                "data": {
                    "ironic_object.data": {"name": "node7"},
                    "service_type": "baremetal",
                    "resource_id": None,
                    "_osism": {
                        "service": "ironic",
                        "priority": None,
                        "message_id": None,
                        "publisher_id": None,
                        "emitted_at": None,
                    },
                },
            }

    @pytest.mark.asyncio
    async def test_nothing_missed_replays_nothing_and_goes_live(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(manager, Replay([], True, event_id(1)))

            await manager.resume(websocket, event_id(9), make_reply)
            await settled(manager, websocket)
            live(manager, entry(10))
            await async_wait_until(lambda: websocket.send_text.await_count == 2)

            messages = received(websocket)
            assert ids(messages) == ["reply", 10]
            assert messages[0]["replayed"] == 0
            assert messages[0]["recovered"] is True
            assert manager.connections[websocket].resume is None


class TestSeam:
    @pytest.mark.asyncio
    async def test_live_events_during_the_read_follow_without_duplicates(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)

            def meanwhile() -> None:
                for number in (4, 5, 6):  # 4 and 5 are in the replay too
                    live(manager, entry(number))
                plain(manager, 0)

            manager.replay_source = Source(
                manager, Replay(entries(2, 3, 4, 5), True, event_id(1)), meanwhile
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)
            live(manager, entry(7))
            await async_wait_until(lambda: websocket.send_text.await_count == 8)

            messages = received(websocket)
            shown = ids(messages)
            # The plain event has a fresh id of its own: shown by its node.
            assert shown[:6] == ["reply", 2, 3, 4, 5, 6]
            assert messages[6]["node_name"] == "plain"
            assert shown[7] == 7
            assert len(messages) == 8
            assert (
                "Resume done: 4 replayed, 2 live events already replayed skipped"
                in messages_at(ws_logs, logging.DEBUG)
            )

    @pytest.mark.parametrize("filtered", [False, True])
    @pytest.mark.asyncio
    async def test_a_replayed_event_that_reaches_the_manager_after_going_live_is_not_sent_again(  # noqa: E501
        self, fake_websocket: WebSocketFactory, filtered: bool
    ) -> None:
        # The log had 4 when the replay was read, but the bridge hands 4 over
        # only after the client went live.
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            if filtered:
                await manager.update_filters(websocket, event_filters=["baremetal.*"])
            manager.replay_source = Source(
                manager, Replay(entries(2, 3, 4), True, event_id(1))
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)
            for number in (3, 4, 5, 6):
                live(manager, entry(number))
            await async_wait_until(lambda: 6 in ids(received(websocket)))

            assert ids(received(websocket)) == ["reply", 2, 3, 4, 5, 6]

    @pytest.mark.asyncio
    async def test_live_events_wait_until_the_replay_is_sent(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running(outbox_size=2) as manager:
            websocket = await connected(manager, fake_websocket)

            def meanwhile() -> None:
                live(manager, entry(30))

            manager.replay_source = Source(
                manager, Replay(entries(*range(10, 30)), True, None), meanwhile
            )

            await manager.resume(websocket, event_id(9), make_reply)
            # More live events while the replay is still being fed.
            live(manager, entry(31))
            live(manager, entry(32))
            await settled(manager, websocket)

            assert ids(received(websocket)) == ["reply", *range(10, 33)]
            assert manager.slow_disconnects == 0

    @pytest.mark.asyncio
    async def test_heartbeats_are_not_held_during_a_resume(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)

            manager.replay_source = Source(
                manager, Replay(entries(2), True, None), manager.send_heartbeat
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            assert ids(received(websocket)) == ["reply", 2]


class TestFilters:
    @pytest.mark.asyncio
    # The held events arrive in one turn; 6 (baremetal) is not for this client.
    @pytest.mark.parametrize(
        "held",
        [[(5, NOVA), (6, IRONIC)], [(6, IRONIC), (5, NOVA)]],
        ids=["match-first", "other-first"],
    )
    async def test_replay_and_held_events_are_filtered(
        self, fake_websocket: WebSocketFactory, held: List[Tuple[int, str]]
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            await manager.update_filters(websocket, service_filters=["compute"])

            def meanwhile() -> None:
                for number, event_type in held:
                    live(manager, entry(number, event_type))

            log = [entry(2, NOVA), entry(3), entry(4, NOVA)]
            manager.replay_source = Source(
                manager, Replay(log, True, event_id(1)), meanwhile
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", 2, 4, 5]
            assert messages[0]["replayed"] == 2
            assert manager.replayed_events == 2
            assert manager.resumes == 1


class TestNotRecovered:
    @pytest.mark.asyncio
    async def test_id_older_than_the_log_gets_false_and_the_oldest_id(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(
                manager, Replay(entries(50, 51), False, event_id(50))
            )

            await manager.resume(websocket, str(uuid.uuid4()), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", 50, 51]
            assert messages[0]["recovered"] is False
            assert messages[0]["oldest_id"] == event_id(50)
            assert messages[0]["replayed"] == 2

    @pytest.mark.parametrize(
        "last, expected, recovered",
        [
            # the log is asked for what follows the client's id ...
            (8, [9, 10], True),
            # ... and for at most REPLAY_LIMIT events: the newest of them
            (5, [8, 9, 10], False),
        ],
    )
    @pytest.mark.asyncio
    async def test_the_log_is_read_after_the_id_up_to_the_bound(
        self,
        fake_websocket: WebSocketFactory,
        monkeypatch: pytest.MonkeyPatch,
        last: int,
        expected: List[int],
        recovered: bool,
    ) -> None:
        monkeypatch.setattr(settings, "REPLAY_LIMIT", 3)
        log = MemoryEventLog(100, dedupe_seconds=3600)
        for number in range(1, 11):
            log.append(envelope(number))
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = log.replay

            await manager.resume(websocket, event_id(last), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", *expected]
            assert messages[0]["recovered"] is recovered
            assert messages[0]["oldest_id"] == event_id(1)

    @pytest.mark.asyncio
    async def test_a_source_giving_more_than_the_bound_is_cut_to_the_newest(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "REPLAY_LIMIT", 2)
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(
                manager, Replay(entries(2, 3, 4, 5, 6), True, event_id(1))
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", 5, 6]
            assert messages[0]["recovered"] is False
            assert messages[0]["oldest_id"] == event_id(1)

    @pytest.mark.asyncio
    async def test_a_source_giving_exactly_the_bound_is_taken_as_it_is(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "REPLAY_LIMIT", 2)
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(
                manager, Replay(entries(2, 3), True, event_id(1))
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", 2, 3]
            assert messages[0]["recovered"] is True

    @pytest.mark.asyncio
    async def test_without_a_source_false_warning_and_live_continues(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)

            assert await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)
            live(manager, entry(2))
            await async_wait_until(lambda: websocket.send_text.await_count == 2)

            messages = received(websocket)
            assert messages[0]["recovered"] is False
            assert messages[0]["oldest_id"] is None
            assert messages[0]["replayed"] == 0
            assert ids(messages) == ["reply", 2]
            warnings = messages_at(ws_logs, logging.WARNING)
            assert len(warnings) == 1
            assert "no event log to replay from" in warnings[0]

    @pytest.mark.asyncio
    async def test_a_failing_source_false_warning_and_held_events_follow(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(
                manager,
                Replay([], True, None),
                lambda: live(manager, entry(3)),
                error=ConnectionError("Redis is down"),
            )

            assert await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", 3]
            assert messages[0]["recovered"] is False
            assert messages[0]["oldest_id"] is None
            assert messages_at(ws_logs, logging.WARNING) == [
                "Reading the event log for a resuming client failed (Redis is "
                "down); it gets recovered=false and continues live"
            ]
            assert websocket in manager.connections

    @pytest.mark.asyncio
    async def test_an_unusable_entry_is_skipped_and_logged(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            broken = LogEntry("1003-0", {**envelope(3), "payload": ["not", "a", "map"]})
            manager.replay_source = Source(
                manager, Replay([entry(2), broken, entry(4)], True, None)
            )

            await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            messages = received(websocket)
            assert ids(messages) == ["reply", 2, 4]
            assert messages[0]["replayed"] == 2
            assert messages_at(ws_logs, logging.ERROR) == [
                "Skipping log entry 1003-0 in a replay: payload is list, not an object"
            ]


class TestBounds:
    @pytest.mark.asyncio
    async def test_held_events_past_the_bound_close_the_client_1013(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "RESUME_BUFFER_SIZE", 2)
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            other = await connected(manager, fake_websocket)

            def meanwhile() -> None:
                for number in (5, 6, 7):
                    live(manager, entry(number))

            manager.replay_source = Source(
                manager, Replay(entries(2), True, None), meanwhile
            )

            assert not await manager.resume(websocket, event_id(1), make_reply)

            assert websocket not in manager.connections
            assert manager.slow_disconnects == 1
            await async_wait_until(lambda: websocket.close.await_count == 1)
            assert websocket.close.await_args.kwargs["code"] == CLOSE_TRY_AGAIN_LATER
            # Nobody else waits for it.
            await async_wait_until(lambda: other.send_text.await_count == 3)
            assert ids(received(other)) == [5, 6, 7]

    @pytest.mark.asyncio
    async def test_stalled_client_during_replay_is_closed_and_its_feed_ends(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running(outbox_size=2) as manager:
            websocket = await connected(manager, fake_websocket)
            never = asyncio.Event()

            async def stalled(text: str) -> None:
                await never.wait()

            websocket.send_text.side_effect = stalled
            connection = manager.connections[websocket]
            manager.replay_source = Source(
                manager, Replay(entries(*range(2, 20)), True, None)
            )

            await manager.resume(websocket, event_id(1), make_reply)
            state = connection.resume
            assert state is not None and state.task is not None
            # The feed waits for room; it never overflows the outbox.
            await async_wait_until(lambda: connection.outbox.qsize() == 2)
            assert websocket in manager.connections

            await manager.disconnect(websocket)

            await asyncio.gather(state.task, return_exceptions=True)
            assert state.task.cancelled()
            assert connection.outbox.qsize() == 2


class TestGone:
    @pytest.mark.asyncio
    async def test_client_whose_reply_does_not_fit_is_closed_and_refused(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running(outbox_size=1) as manager:
            websocket = await connected(manager, fake_websocket)
            never = asyncio.Event()

            async def stalled(text: str) -> None:
                await never.wait()

            websocket.send_text.side_effect = stalled
            manager.send_to(websocket, "held by the writer")
            await async_wait_until(lambda: websocket.send_text.await_count == 1)
            manager.send_to(websocket, "fills the outbox")
            manager.replay_source = Source(manager, Replay(entries(2), True, None))

            assert not await manager.resume(websocket, event_id(1), make_reply)

            assert websocket not in manager.connections
            await async_wait_until(lambda: websocket.close.await_count == 1)
            assert websocket.close.await_args.kwargs["code"] == CLOSE_TRY_AGAIN_LATER

    @pytest.mark.asyncio
    async def test_unknown_websocket_is_refused(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            assert not await manager.resume(fake_websocket(), event_id(1), make_reply)

    @pytest.mark.asyncio
    async def test_client_gone_during_the_read_gets_nothing(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)

            manager.replay_source = Source(
                manager,
                Replay(entries(2), True, None),
                lambda: manager.disconnect(websocket),
            )

            assert not await manager.resume(websocket, event_id(1), make_reply)
            assert received(websocket) == []
            assert manager.resumes == 0


class TestSecondResume:
    @pytest.mark.asyncio
    async def test_a_second_resume_starts_over_from_its_own_id(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running(outbox_size=2) as manager:
            websocket = await connected(manager, fake_websocket)
            release = asyncio.Event()

            async def held_up_until_released(text: str) -> None:
                await release.wait()

            websocket.send_text.side_effect = held_up_until_released
            connection = manager.connections[websocket]
            manager.replay_source = Source(
                manager, Replay(entries(2, 3, 4, 5, 6), True, None)
            )
            await manager.resume(websocket, event_id(1), make_reply)
            first = connection.resume
            assert first is not None and first.task is not None
            first_feed = first.task
            # The writer holds the reply, the outbox 2 and 3, the feed waits.
            await async_wait_until(lambda: connection.outbox.qsize() == 2)
            manager.replay_source = Source(
                manager,
                Replay(entries(4, 5, 6), True, None),
                release.set,
                until=lambda: connection.outbox.empty(),
            )

            assert await manager.resume(websocket, event_id(3), make_reply)
            await settled(manager, websocket)

            assert first_feed.cancelled()
            assert ids(received(websocket)) == ["reply", 2, 3, "reply", 4, 5, 6]
            assert manager.resumes == 2
            assert manager.status().replayed_events == 5 + 3


class TestPieces:
    def test_resume_keys(self) -> None:
        assert resume_keys(False, 0, None) == {
            "recovered": False,
            "replayed": 0,
            "oldest_id": None,
        }

    def test_hold_keeps_events_up_to_the_bound(self) -> None:
        state = ResumeState(bound=2)

        assert state.hold("1-0", "a")
        assert state.hold(None, "b")
        assert not state.hold("2-0", "c")
        assert list(state.held) == [("1-0", "a"), (None, "b")]

    def test_bound_defaults_to_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(settings, "RESUME_BUFFER_SIZE", 7)
        state = ResumeState()

        assert [state.hold(None, str(n)) for n in range(8)] == [True] * 7 + [False]

    def test_an_entry_without_event_type_is_an_event_of_service_unknown(
        self,
    ) -> None:
        event = event_of(LogEntry("1-0", {"id": event_id(1), "payload": {"a": 1}}))

        assert event is not None
        assert event.event_type == ""
        assert event.data == {"a": 1, "service_type": "unknown", "resource_id": None}

    def test_event_of_an_entry_without_payload_is_none(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger=LOGGER)

        assert event_of(LogEntry("1-0", {"id": event_id(1)})) is None
        assert "Skipping log entry 1-0" in caplog.text

    def test_replay_module_uses_the_manager_logger(self) -> None:
        assert replay_module.logger.name == LOGGER
