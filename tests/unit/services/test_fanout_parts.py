"""The fan-out's parts on their own: each takes what it works on as
arguments and returns what it did (the manager keeps the counters)."""

import asyncio
import logging
from typing import Any, Callable, List
from unittest.mock import AsyncMock, MagicMock

import pytest
from fastapi import WebSocketDisconnect

from osism import settings
from osism.core.event import EventMessage
from osism.core.event_log import Replay
from osism.services.fanout import broadcast, intake, resume, writer
from osism.services.fanout.connection import WebSocketConnection
from osism.services.fanout.hold import ResumeState
from osism.services.fanout.outbox import text_size
from osism.transport.frames import framed
from tests.conftest import async_wait_until
from tests.unit.services.test_replay import (
    Source,
    connected,
    entries,
    entry,
    event_id,
    ids,
    live,
    make_reply,
    received,
    running,
    settled,
)

WebSocketFactory = Callable[[], MagicMock]


def event(event_type: str = "compute.instance.update") -> EventMessage:
    return EventMessage(event_type, "openstack", {"a": 1}, "node")


def connection(outbox_size: int = 10) -> WebSocketConnection:
    made = WebSocketConnection(MagicMock(), outbox_size=outbox_size)
    # A writer (never run) so that fan_out starts none.
    made.writer = MagicMock()
    return made


def turn(count: int) -> List[EventMessage]:
    return [event() for _ in range(count)]


def texts_of(events: List[EventMessage]) -> List[Any]:
    return [framed(e.to_json()) for e in events]


def no_writer(connection: WebSocketConnection) -> None:
    raise AssertionError("every connection has a writer")  # pragma: no cover


class TestTurnBounds:
    @pytest.mark.parametrize(
        "fanout_batch, outbox_size, expected",
        [(16, 1000, 16), (16, 10, 5), (16, 1, 0)],
    )
    def test_batch_size_is_at_most_half_an_outbox(
        self, fanout_batch: int, outbox_size: int, expected: int
    ) -> None:
        assert broadcast.batch_size(fanout_batch, outbox_size) == expected

    def test_byte_budget_is_half_the_byte_bound(self) -> None:
        assert broadcast.byte_budget(4001) == 2000


class TestFanOut:
    def test_returns_the_deliveries_and_nobody_too_slow(self) -> None:
        clients = [connection(), connection()]
        events = turn(3)

        delivered, slow = broadcast.fan_out(
            clients, events, texts_of(events), no_writer
        )

        assert (delivered, list(slow)) == (6, [])
        assert [c.outbox.qsize() for c in clients] == [3, 3]

    def test_returns_a_client_whose_outbox_is_full_and_leaves_it_alone(
        self,
    ) -> None:
        full, fine = connection(outbox_size=2), connection()
        events = turn(3)
        full.offer("x")
        full.offer("y")

        delivered, slow = broadcast.fan_out(
            [full, fine], events, texts_of(events), no_writer
        )

        assert (delivered, list(slow)) == (3, [full])
        assert full.outbox.qsize() == 2

    @pytest.mark.parametrize("kind", ["unfiltered", "filtered", "resuming"])
    def test_returns_every_client_too_slow(self, kind: str) -> None:
        clients = [connection(outbox_size=1) for _ in range(3)]
        for client in clients:
            client.offer("x")
            if kind == "filtered":
                client.event_filters = ["compute.*"]
            elif kind == "resuming":
                client.resume = ResumeState(bound=0)
        events = turn(1)

        delivered, slow = broadcast.fan_out(
            clients, events, texts_of(events), no_writer
        )

        assert (delivered, list(slow)) == (0, clients)

    def test_returns_a_resuming_client_over_its_hold_bound(self) -> None:
        paused, filtered = connection(), connection()
        paused.resume = ResumeState(bound=1)
        filtered.event_filters = ["compute.*"]
        events = turn(2)

        delivered, slow = broadcast.fan_out(
            [paused, filtered], events, texts_of(events), no_writer
        )

        assert (delivered, list(slow)) == (2, [paused])

    def test_a_resuming_client_within_its_bound_holds_the_events(self) -> None:
        paused = connection()
        paused.resume = ResumeState(bound=5)
        events = turn(2)

        delivered, slow = broadcast.fan_out(
            [paused], events, texts_of(events), no_writer
        )

        assert (delivered, list(slow)) == (0, [])
        assert len(paused.resume.held) == 2

    def test_a_connection_without_a_writer_gets_one_started(self) -> None:
        started: List[WebSocketConnection] = []
        client = connection()
        client.writer = None
        events = turn(1)

        broadcast.fan_out([client], events, texts_of(events), started.append)

        assert started == [client]


class TestIntake:
    def test_a_queue_with_room_takes_the_event_and_drops_nothing(self) -> None:
        queue: "asyncio.Queue[EventMessage]" = asyncio.Queue(maxsize=2)
        first = event()

        assert intake.put_dropping_oldest(queue, first) is False
        assert queue.get_nowait() is first

    def test_a_full_queue_drops_the_oldest_and_says_so(self) -> None:
        queue: "asyncio.Queue[EventMessage]" = asyncio.Queue(maxsize=2)
        old, middle, new = event("a"), event("b"), event("c")
        intake.put_dropping_oldest(queue, old)
        intake.put_dropping_oldest(queue, middle)

        assert intake.put_dropping_oldest(queue, new) is True
        assert [queue.get_nowait(), queue.get_nowait()] == [middle, new]

    def test_a_notification_becomes_an_openstack_event(self) -> None:
        made = intake.notification_event(
            "baremetal.node.update.end",
            {"ironic_object.data": {"name": "node7", "uuid": "u7"}},
            event_id="id-1",
            timestamp="2026-11-23T13:00:00.000000Z",
            position="5-0",
        )
        assert (made.source, made.node_name, made.id, made.position) == (
            "openstack",
            "node7",
            "id-1",
            "5-0",
        )
        assert made.data["resource_id"] == "u7"

    def test_a_payload_that_is_no_object_raises(self) -> None:
        with pytest.raises(Exception):
            intake.notification_event(
                "image.image.update", "not an object"  # type: ignore[arg-type]
            )

    def test_the_heartbeat_is_upstreams(self) -> None:
        made = intake.heartbeat()
        assert (made.event_type, made.source, made.data) == (
            "heartbeat",
            "osism",
            {"message": "ping"},
        )


class TestWriteLoop:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "error, level, message",
        [
            (
                WebSocketDisconnect(),
                logging.INFO,
                "WebSocket went away while sending; removing it",
            ),
            (
                OSError("broken pipe"),
                logging.ERROR,
                "Error sending message to WebSocket: broken pipe; removing it",
            ),
        ],
        ids=["went-away", "error"],
    )
    async def test_returns_when_sending_fails_and_logs_why(
        self,
        caplog: pytest.LogCaptureFixture,
        error: Exception,
        level: int,
        message: str,
    ) -> None:
        caplog.set_level(logging.INFO, logger="osism.websocket")
        websocket = MagicMock()
        websocket.send_text = AsyncMock(side_effect=error)
        client = WebSocketConnection(websocket, outbox_size=10)
        client.offer("x")

        await asyncio.wait_for(writer.write_loop(client, 256, 262144), 5.0)

        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
            (level, message)
        ]


class TestResume:
    @pytest.mark.asyncio
    async def test_returns_queued_counted_and_the_events_replayed(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            client = manager.connections[websocket]
            source = Source(manager, Replay(entries(2, 3), True, event_id(1)))

            done = await resume.resume(
                client,
                event_id(1),
                make_reply,
                source=source,
                limit=10,
                hold_bound=10,
                is_current=lambda: True,
                send=lambda text: manager.send_to(websocket, text),
            )
            await settled(manager, websocket)

            assert done == resume.Resumed(True, True, 2)
            assert ids(received(websocket)) == ["reply", 2, 3]
            # The manager keeps the counters: the part wrote none.
            assert (manager.resumes, manager.replayed_events) == (0, 0)

    @pytest.mark.asyncio
    async def test_a_client_gone_while_the_log_is_read_is_not_counted(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            client = manager.connections[websocket]
            sent: List[str] = []

            done = await resume.resume(
                client,
                event_id(1),
                make_reply,
                source=Source(manager, Replay(entries(2), True, None)),
                limit=10,
                hold_bound=10,
                is_current=lambda: False,
                send=lambda text: sent.append(text) is None,
            )

            assert done == resume.Resumed(False, False, 0)
            assert sent == []

    @pytest.mark.asyncio
    async def test_a_reply_that_cannot_be_queued_is_counted_but_not_queued(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            client = manager.connections[websocket]

            done = await resume.resume(
                client,
                event_id(1),
                make_reply,
                source=Source(manager, Replay(entries(2, 3, 4), True, None)),
                limit=10,
                hold_bound=10,
                is_current=lambda: True,
                send=lambda text: False,
            )

            assert done == resume.Resumed(False, True, 3)
            for _ in range(5):
                await asyncio.sleep(0)
            # No replay follows a reply that was not queued.
            assert client.outbox.empty()
            assert received(websocket) == []

    @pytest.mark.asyncio
    async def test_reads_the_source_for_at_most_the_limit_given(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        asked: List[int] = []

        def source(last_event_id: str, limit: int) -> Replay:
            asked.append(limit)
            return Replay(entries(2, 3, 4), True, None)

        async with running() as manager:
            websocket = await connected(manager, fake_websocket)
            done = await resume.resume(
                manager.connections[websocket],
                event_id(1),
                make_reply,
                source=source,
                limit=2,
                hold_bound=10,
                is_current=lambda: True,
                send=lambda text: manager.send_to(websocket, text),
            )
            await settled(manager, websocket)

            assert asked == [2]
            assert done.replayed == 2
            assert ids(received(websocket)) == ["reply", 3, 4]


class TestManagerLogs:
    @pytest.mark.asyncio
    async def test_a_queued_event_without_node_is_logged_with_its_resource(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="osism.websocket")
        async with running() as manager:
            manager.add_notification(
                "baremetal.node.update.end", {"ironic_object.data": {"uuid": "u7"}}
            )

            assert [r.getMessage() for r in caplog.records][-1] == (
                "Added baremetal event to WebSocket queue: "
                "baremetal.node.update.end for resource u7"
            )


class TestTurnByBytes:
    @pytest.mark.asyncio
    async def test_a_turn_ends_once_its_events_reach_the_byte_budget(self) -> None:
        from tests.unit.services.test_websocket_manager import fresh_manager
        from tests.unit.test_ws_protocol import extension_websocket

        small = EventMessage("compute.instance.update", "openstack", {"p": "s"}, "n")
        big = EventMessage(
            "compute.instance.update", "openstack", {"p": "b" * 900}, "n"
        )
        sizes = [text_size(framed(e.to_json())) for e in (small, big)]
        assert sizes[1] >= 2 * sizes[0]
        sent = [small, big, small, small, small, small]
        # The budget is half the byte bound: exactly the first four events.
        budget = 3 * sizes[0] + sizes[1]
        async with fresh_manager(outbox_size=1000, outbox_bytes=2 * budget) as manager:
            manager.WRITE_MANY = 1
            websocket = extension_websocket()
            await manager.connect(websocket)
            for e in sent:
                manager.enqueue(e)
            await async_wait_until(lambda: len(websocket.frames) == 6)

            assert [len(texts) for texts in websocket.messages] == [4, 2]


class TestManagerLimits:
    @pytest.mark.asyncio
    async def test_replay_limit_given_to_the_manager_beats_the_setting(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "REPLAY_LIMIT", 100)
        async with running(replay_limit=2) as manager:
            websocket = await connected(manager, fake_websocket)
            manager.replay_source = Source(
                manager, Replay(entries(2, 3, 4, 5), True, None)
            )

            assert await manager.resume(websocket, event_id(1), make_reply)
            await settled(manager, websocket)

            assert ids(received(websocket)) == ["reply", 4, 5]
            assert (manager.resumes, manager.replayed_events) == (1, 2)

    @pytest.mark.asyncio
    async def test_resume_buffer_size_given_to_the_manager_beats_the_setting(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "RESUME_BUFFER_SIZE", 100)
        async with running(resume_buffer_size=1) as manager:
            websocket = await connected(manager, fake_websocket)

            def meanwhile() -> None:
                for number in (5, 6):
                    live(manager, entry(number))

            manager.replay_source = Source(
                manager, Replay(entries(2), True, None), meanwhile
            )

            assert not await manager.resume(websocket, event_id(1), make_reply)
            assert websocket not in manager.connections
            assert manager.slow_disconnects == 1

    @pytest.mark.asyncio
    async def test_outbox_limits_left_out_are_the_settings_at_connect(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with running() as manager:
            monkeypatch.setattr(settings, "OUTBOX_SIZE", 7)
            monkeypatch.setattr(settings, "OUTBOX_BYTES", 7000)
            websocket = await connected(manager, fake_websocket)
            outbox = manager.connections[websocket].outbox

            assert (outbox.maxsize, outbox.max_bytes) == (7, 7000)
