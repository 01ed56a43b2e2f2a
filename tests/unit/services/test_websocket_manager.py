"""EventMessage, per-connection filters and the WebSocketManager fan-out.

Every async test makes its own WebSocketManager inside the test (never the
module singleton), so queues and tasks belong to the test's loop. Fake
websockets come from the ``fake_websocket`` factory; the broadcaster and the
writers are always cancelled and awaited before a test ends.
"""

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
)
from unittest.mock import MagicMock

import pytest
from fastapi import WebSocketDisconnect

from osism import settings
from osism.services.fanout import connection as connection_module
from osism.core.ratelimit import RateLimitedLog
from osism.services.websocket_manager import (
    EventMessage,
    WebSocketConnection,
    WebSocketManager,
)
from tests.conftest import async_wait_until
from tests.unit.services.openstack import SERVICE_KEYS, SERVICES

LOGGER = "osism.websocket"

WebSocketFactory = Callable[[], MagicMock]


# --------------------------------------------------------------------------
# helpers


async def cancel_leftover_tasks() -> None:
    """Cancel and await every task of this loop except the test itself."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def fresh_manager(**kwargs: Any) -> AsyncIterator[WebSocketManager]:
    """A new manager on the running loop, stopped and cleaned up afterwards."""
    manager = WebSocketManager(**kwargs)
    try:
        yield manager
    finally:
        await manager.stop()
        await cancel_leftover_tasks()


@contextlib.asynccontextmanager
async def broadcasting(
    manager: WebSocketManager,
) -> AsyncIterator["asyncio.Task[None]"]:
    """Run ``manager._broadcast_events()`` as a task; cancel and await it after."""
    task = asyncio.create_task(manager._broadcast_events())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def register(
    manager: WebSocketManager,
    websocket: MagicMock,
    event_filters: Sequence[str] = (),
    node_filters: Sequence[str] = (),
    service_filters: Sequence[str] = (),
) -> WebSocketConnection:
    """Put a connection straight into ``manager.connections`` (no connect())."""
    connection = WebSocketConnection(websocket, manager.outbox_size)
    connection.event_filters = list(event_filters)
    connection.node_filters = list(node_filters)
    connection.service_filters = list(service_filters)
    manager.connections[websocket] = connection
    return connection


def make_event(
    event_type: str = "baremetal.node.power_set.end",
    node_name: Optional[str] = "node1",
    source: str = "openstack",
    data: Optional[Dict[str, Any]] = None,
) -> EventMessage:
    return EventMessage(event_type, source, data or {"n": 1}, node_name)


def sent_texts(websocket: MagicMock) -> List[str]:
    return [call.args[0] for call in websocket.send_text.await_args_list]


def stall(websocket: MagicMock) -> None:
    """Make ``send_text`` await forever, like a client that stopped reading."""
    never = asyncio.Event()

    async def send_forever(text: str) -> None:
        await never.wait()

    websocket.send_text.side_effect = send_forever


def keeps_up(websocket: MagicMock) -> None:
    """Make ``send_text`` suspend once per text, like a socket write that
    waits for the transport: a client that reads everything, but not at
    once."""

    async def send_and_yield(text: str) -> None:
        await asyncio.sleep(0)

    websocket.send_text.side_effect = send_and_yield


def log_messages(
    caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG
) -> List[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == level
    ]


@pytest.fixture
def ws_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone five hours behind UTC."""
    monkeypatch.setenv("TZ", "Etc/GMT+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def fake_broadcaster(monkeypatch: pytest.MonkeyPatch) -> List[WebSocketManager]:
    """Replace _broadcast_events by a task that only records it was started."""
    started: List[WebSocketManager] = []

    async def broadcaster(self: WebSocketManager) -> None:
        started.append(self)
        await asyncio.Event().wait()

    monkeypatch.setattr(WebSocketManager, "_broadcast_events", broadcaster)
    return started


# --------------------------------------------------------------------------
# EventMessage


class TestEventMessage:
    def test_constructor_sets_fields(self) -> None:
        event = EventMessage("compute.instance.update", "openstack", {"a": 1}, "n1")

        assert event.event_type == "compute.instance.update"
        assert event.source == "openstack"
        assert event.data == {"a": 1}
        assert event.node_name == "n1"

    def test_node_name_defaults_to_none(self) -> None:
        assert EventMessage("t", "s", {}).node_name is None

    def test_id_is_a_uuid4_string(self) -> None:
        event = EventMessage("t", "s", {})

        assert isinstance(event.id, str)
        assert uuid.UUID(event.id).version == 4
        assert str(uuid.UUID(event.id)) == event.id

    def test_two_messages_get_different_ids(self) -> None:
        assert EventMessage("t", "s", {}).id != EventMessage("t", "s", {}).id

    def test_timestamp_ends_with_z(self) -> None:
        assert EventMessage("t", "s", {}).timestamp.endswith("Z")

    def test_timestamp_is_utc_whatever_the_local_time_zone(
        self, local_time_not_utc: None
    ) -> None:
        before = datetime.now(timezone.utc).replace(tzinfo=None)
        event = EventMessage("t", "s", {})
        after = datetime.now(timezone.utc).replace(tzinfo=None)

        assert before <= datetime.fromisoformat(event.timestamp[:-1]) <= after

    def test_timestamp_prefix_is_iso8601_utc_now(self) -> None:
        before = datetime.now(timezone.utc).replace(tzinfo=None)
        event = EventMessage("t", "s", {})
        after = datetime.now(timezone.utc).replace(tzinfo=None)

        parsed = datetime.fromisoformat(event.timestamp[:-1])

        assert parsed.tzinfo is None  # no "+00:00" before the "Z"
        assert before <= parsed <= after

    def test_to_dict_has_exactly_the_wire_keys(self) -> None:
        event = EventMessage("t", "s", {"a": 1}, "n1")

        assert event.to_dict() == {
            "id": event.id,
            "timestamp": event.timestamp,
            "event_type": "t",
            "source": "s",
            "node_name": "n1",
            "data": {"a": 1},
        }

    def test_to_json_round_trips_to_dict(self) -> None:
        event = EventMessage("t", "s", {"a": [1, "x", None]}, None)

        assert json.loads(event.to_json()) == event.to_dict()


# --------------------------------------------------------------------------
# WebSocketConnection.matches_filters


def connection_with(
    event_filters: Sequence[str] = (),
    node_filters: Sequence[str] = (),
    service_filters: Sequence[str] = (),
) -> WebSocketConnection:
    connection = WebSocketConnection(MagicMock())
    connection.event_filters = list(event_filters)
    connection.node_filters = list(node_filters)
    connection.service_filters = list(service_filters)
    return connection


class TestMatchesFilters:
    @pytest.mark.parametrize(
        "event_type, node_name",
        [
            ("baremetal.node.power_set", "node1"),
            ("compute.instance.update", None),
            ("", None),
        ],
    )
    def test_no_filters_match_any_event(
        self, event_type: str, node_name: Optional[str]
    ) -> None:
        event = make_event(event_type, node_name)

        assert connection_with().matches_filters(event) is True

    @pytest.mark.parametrize(
        "event_type, expected",
        [
            ("baremetal.node.power_set", True),
            ("baremetal.node.power_set.end", False),
            ("compute.instance.update", False),
        ],
    )
    def test_event_filter_matches_exact_event_type(
        self, event_type: str, expected: bool
    ) -> None:
        connection = connection_with(event_filters=["baremetal.node.power_set"])

        assert connection.matches_filters(make_event(event_type)) is expected

    @pytest.mark.parametrize(
        "node_name, expected", [("node1", True), ("other", False), (None, False)]
    )
    def test_node_filter_matches_node_name(
        self, node_name: Optional[str], expected: bool
    ) -> None:
        connection = connection_with(node_filters=["node1"])

        assert connection.matches_filters(make_event(node_name=node_name)) is expected

    @pytest.mark.parametrize(
        "event_type, expected",
        [
            ("baremetal.node.power_set", True),
            ("baremetal", True),
            ("compute.instance.update", False),
        ],
    )
    def test_service_filter_matches_first_dot_segment(
        self, event_type: str, expected: bool
    ) -> None:
        connection = connection_with(service_filters=["baremetal"])

        assert connection.matches_filters(make_event(event_type)) is expected

    def test_empty_event_type_is_service_unknown(self) -> None:
        connection = connection_with(service_filters=["unknown"])

        assert connection.matches_filters(make_event("")) is True

    def test_combined_filters_are_and_ed(self) -> None:
        connection = connection_with(
            event_filters=["baremetal.node.power_set"], node_filters=["node1"]
        )

        event = make_event("baremetal.node.power_set", node_name="node2")

        assert connection.matches_filters(event) is False

    def test_event_matching_every_kind_of_filter_matches(self) -> None:
        connection = connection_with(
            event_filters=["baremetal.node.power_set"],
            node_filters=["node1"],
            service_filters=["baremetal"],
        )

        event = make_event("baremetal.node.power_set", node_name="node1")

        assert connection.matches_filters(event) is True

    @pytest.mark.parametrize(
        "kind, values, event",
        [
            ("event_filters", ["x.y", "a.b"], make_event("a.b")),
            ("node_filters", ["n0", "node1"], make_event(node_name="node1")),
            ("service_filters", ["compute", "baremetal"], make_event()),
        ],
    )
    def test_any_entry_of_one_kind_may_match(
        self, kind: str, values: List[str], event: EventMessage
    ) -> None:
        connection = connection_with(**{kind: values})

        assert connection.matches_filters(event) is True


# --------------------------------------------------------------------------
# WebSocketConnection outbox


class TestOutbox:
    def test_outbox_size_defaults_to_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "OUTBOX_SIZE", 7)
        connection = WebSocketConnection(MagicMock())

        assert [connection.offer(str(n)) for n in range(8)] == [True] * 7 + [False]

    def test_offer_queues_text_while_there_is_room(self) -> None:
        connection = WebSocketConnection(MagicMock(), outbox_size=2)

        assert connection.offer("a") is True
        assert connection.offer("b") is True
        assert connection.outbox.get_nowait() == "a"

    def test_offer_on_full_outbox_returns_false_and_keeps_bound(self) -> None:
        connection = WebSocketConnection(MagicMock(), outbox_size=2)
        connection.offer("a")
        connection.offer("b")

        assert connection.offer("c") is False
        assert connection.outbox.qsize() == 2

    @pytest.mark.asyncio
    async def test_connection_outbox_size_comes_from_manager(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            websocket = fake_websocket()
            stall(websocket)
            await manager.connect(websocket)
            manager.send_to(websocket, "held by the writer")
            await async_wait_until(lambda: websocket.send_text.await_count == 1)

            taken = [manager.send_to(websocket, str(n)) for n in range(4)]

            assert taken == [True, True, True, False]


# --------------------------------------------------------------------------
# WebSocketManager.connect / disconnect


class TestConnect:
    @pytest.mark.asyncio
    async def test_connect_awaits_accept(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()

            await manager.connect(websocket)

            websocket.accept.assert_awaited_once_with()

    @pytest.mark.asyncio
    async def test_connect_registers_a_connection(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()

            await manager.connect(websocket)

            connection = manager.connections[websocket]
            assert isinstance(connection, WebSocketConnection)
            assert connection.websocket is websocket

    @pytest.mark.asyncio
    async def test_first_connect_starts_the_broadcaster(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            await manager.connect(fake_websocket())

            await async_wait_until(lambda: fake_broadcaster == [manager])
            assert manager.status().broadcaster_running is True

    @pytest.mark.asyncio
    async def test_second_connect_does_not_start_another_broadcaster(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            await manager.connect(fake_websocket())
            await async_wait_until(lambda: len(fake_broadcaster) == 1)

            await manager.connect(fake_websocket())
            await asyncio.sleep(0)  # one tick: a second task would start now

            assert fake_broadcaster == [manager]

    @pytest.mark.asyncio
    async def test_connect_after_broadcaster_ended_starts_a_new_one(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        started: List[WebSocketManager] = []

        async def first_one_ends(self: WebSocketManager) -> None:
            started.append(self)
            if len(started) > 1:
                await asyncio.Event().wait()

        monkeypatch.setattr(WebSocketManager, "_broadcast_events", first_one_ends)
        async with fresh_manager() as manager:
            await manager.connect(fake_websocket())
            await async_wait_until(
                lambda: started and not manager.status().broadcaster_running
            )

            await manager.connect(fake_websocket())

            await async_wait_until(lambda: len(started) == 2)
            assert manager.status().broadcaster_running is True

    @pytest.mark.asyncio
    async def test_connect_logs_how_many_clients_are_connected(
        self,
        fake_websocket: WebSocketFactory,
        fake_broadcaster: list,
        ws_logs: pytest.LogCaptureFixture,
    ) -> None:
        async with fresh_manager() as manager:
            await manager.connect(fake_websocket())
            await manager.connect(fake_websocket())

            assert log_messages(ws_logs, logging.INFO)[-1] == (
                "WebSocket connected. Total connections: 2"
            )

    @pytest.mark.asyncio
    async def test_connect_starts_a_writer_for_the_connection(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()

            await manager.connect(websocket)

            writer = manager.connections[websocket].writer
            assert writer is not None and not writer.done()


class TestDisconnect:
    @pytest.mark.asyncio
    async def test_disconnect_removes_the_connection(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            websocket, other = fake_websocket(), fake_websocket()
            await manager.connect(websocket)
            await manager.connect(other)

            await manager.disconnect(websocket)

            assert list(manager.connections) == [other]

    @pytest.mark.asyncio
    async def test_disconnect_logs_how_many_clients_remain(
        self,
        fake_websocket: WebSocketFactory,
        fake_broadcaster: list,
        ws_logs: pytest.LogCaptureFixture,
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            await manager.connect(websocket)
            await manager.connect(fake_websocket())

            await manager.disconnect(websocket)

            assert log_messages(ws_logs, logging.INFO)[-1] == (
                "WebSocket disconnected. Total connections: 1"
            )

    @pytest.mark.asyncio
    async def test_disconnect_cancels_the_writer(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            await manager.connect(websocket)
            writer = manager.connections[websocket].writer
            assert writer is not None

            await manager.disconnect(websocket)

            await asyncio.gather(writer, return_exceptions=True)
            assert writer.cancelled()

    @pytest.mark.asyncio
    async def test_disconnect_of_a_connection_without_writer_removes_it(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            register(manager, websocket)

            await manager.disconnect(websocket)

            assert manager.connections == {}

    @pytest.mark.asyncio
    async def test_unknown_websocket_is_a_no_op(
        self, fake_websocket: WebSocketFactory, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            known = fake_websocket()
            await manager.connect(known)

            await manager.disconnect(fake_websocket())

            assert list(manager.connections) == [known]


# --------------------------------------------------------------------------
# WebSocketManager.update_filters

FILTER_KINDS = ["event_filters", "node_filters", "service_filters"]


class TestUpdateFilters:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", FILTER_KINDS)
    async def test_sets_filter_list_when_passed(
        self, fake_websocket: WebSocketFactory, kind: str
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            connection = register(manager, websocket)

            await manager.update_filters(websocket, **{kind: ["a", "b"]})

            assert getattr(connection, kind) == ["a", "b"]

    @pytest.mark.asyncio
    async def test_none_keeps_existing_lists(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            connection = register(
                manager,
                websocket,
                event_filters=["e"],
                node_filters=["n"],
                service_filters=["s"],
            )

            await manager.update_filters(websocket, node_filters=["n2"])

            assert connection.event_filters == ["e"]
            assert connection.node_filters == ["n2"]
            assert connection.service_filters == ["s"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", FILTER_KINDS)
    async def test_empty_list_clears_filter_list(
        self, fake_websocket: WebSocketFactory, kind: str
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            connection = register(manager, websocket, **{kind: ["x"]})

            await manager.update_filters(websocket, **{kind: []})

            assert getattr(connection, kind) == []

    @pytest.mark.asyncio
    async def test_unknown_websocket_is_a_no_op(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            known = fake_websocket()
            connection = register(manager, known, event_filters=["e"])

            await manager.update_filters(fake_websocket(), event_filters=["other"])

            assert connection.event_filters == ["e"]
            assert list(manager.connections) == [known]

    @pytest.mark.asyncio
    async def test_the_filters_in_force_are_logged(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            register(manager, websocket, event_filters=["e"], service_filters=["s"])

            await manager.update_filters(
                websocket, node_filters=["n"], priority_filters=["error"]
            )

            assert log_messages(ws_logs, logging.DEBUG)[-1] == (
                "Updated filters for WebSocket: events=['e'], nodes=['n'], "
                "services=['s'], priorities=['ERROR']"
            )

    @pytest.mark.asyncio
    async def test_filters_are_copied_from_the_callers_list(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            connection = register(manager, websocket)
            filters = ["node1"]

            await manager.update_filters(websocket, node_filters=filters)
            filters.append("node2")

            assert connection.node_filters == ["node1"]


# --------------------------------------------------------------------------
# WebSocketManager.add_event / send_heartbeat


class TestAddEvent:
    @pytest.mark.asyncio
    async def test_add_event_puts_the_event_on_the_queue(self) -> None:
        async with fresh_manager() as manager:
            event = make_event()

            await manager.add_event(event)

            assert manager.event_queue.qsize() == 1
            assert manager.event_queue.get_nowait() is event

    @pytest.mark.asyncio
    async def test_queue_size_defaults_to_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "EVENT_QUEUE_SIZE", 5)

        async with fresh_manager() as manager:
            for number in range(6):
                manager.enqueue(make_event(str(number)))

            assert manager.dropped_events == 1
            assert manager.status().queue_size == 5


class TestSendHeartbeat:
    @pytest.mark.asyncio
    async def test_without_connections_queues_nothing(self) -> None:
        async with fresh_manager() as manager:
            await manager.send_heartbeat()

            assert manager.event_queue.empty()

    @pytest.mark.asyncio
    async def test_with_a_connection_queues_a_ping(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            register(manager, fake_websocket())

            await manager.send_heartbeat()

            heartbeat = manager.event_queue.get_nowait()
            assert isinstance(heartbeat, EventMessage)
            assert heartbeat.event_type == "heartbeat"
            assert heartbeat.source == "osism"
            assert heartbeat.data == {"message": "ping"}
            assert manager.event_queue.empty()


# --------------------------------------------------------------------------
# WebSocketManager.broadcast_event_from_notification


def identity_cases() -> List[Any]:
    """(event type, payload key, object data, node name, resource id)."""
    cases = []
    for service, alias, key in SERVICES:
        for name in (service, alias):
            if name is None:
                continue
            if service == "baremetal":
                rows = [({"name": "node1", "uuid": "abc-123"}, "node1", "abc-123")]
            elif service == "compute":
                rows = [
                    ({"host": "h1", "name": "vm1", "uuid": "u1"}, "h1", "u1"),
                    ({"name": "vm1", "uuid": "u1"}, "vm1", "u1"),
                ]
            elif service == "network":
                rows = [
                    ({"id": "i1", "uuid": "u1", "name": "p1"}, "p1", "i1"),
                    ({"uuid": "u1", "device_id": "d1"}, "d1", "u1"),
                ]
            elif service == "volume":
                rows = [
                    ({"id": "i1", "uuid": "u1", "name": "v1"}, "v1", "i1"),
                    ({"uuid": "u1", "display_name": "dv1"}, "dv1", "u1"),
                ]
            else:
                rows = [
                    ({"id": "i1", "uuid": "u1", "name": "x1"}, "x1", "i1"),
                    ({"uuid": "u1", "name": "x1"}, "x1", "u1"),
                ]
            for number, (data, node_name, resource_id) in enumerate(rows):
                cases.append(
                    pytest.param(
                        f"{name}.thing.update",
                        key,
                        data,
                        node_name,
                        resource_id,
                        id=f"{name}-{number}",
                    )
                )
    return cases


class TestBroadcastEventFromNotification:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "event_type, key, data, node_name, resource_id", identity_cases()
    )
    async def test_identity_is_extracted_per_service(
        self,
        event_type: str,
        key: str,
        data: Dict[str, Any],
        node_name: str,
        resource_id: str,
    ) -> None:
        async with fresh_manager() as manager:
            await manager.broadcast_event_from_notification(event_type, {key: data})

            event = manager.event_queue.get_nowait()
            assert event.node_name == node_name
            assert event.data["resource_id"] == resource_id

    @pytest.mark.asyncio
    @pytest.mark.parametrize("service, key", SERVICE_KEYS)
    async def test_known_service_without_object_data_queues_event_without_identity(
        self, service: str, key: str
    ) -> None:
        async with fresh_manager() as manager:
            event_type = f"{service}.thing.update"

            await manager.broadcast_event_from_notification(event_type, {"x": 1})

            event = manager.event_queue.get_nowait()
            assert event.node_name is None
            assert event.data["resource_id"] is None
            assert event.data["service_type"] == service

    @pytest.mark.asyncio
    async def test_unknown_service_queues_event_with_first_segment_as_type(
        self,
    ) -> None:
        async with fresh_manager() as manager:
            payload = {"foo_object.data": {"name": "n", "id": "i"}}

            await manager.broadcast_event_from_notification("foo.bar", payload)

            event = manager.event_queue.get_nowait()
            assert event.data["service_type"] == "foo"
            assert event.node_name is None
            assert event.data["resource_id"] is None

    @pytest.mark.asyncio
    async def test_empty_event_type_has_service_type_unknown(self) -> None:
        async with fresh_manager() as manager:
            await manager.broadcast_event_from_notification("", {})

            event = manager.event_queue.get_nowait()
            assert event.data["service_type"] == "unknown"

    @pytest.mark.asyncio
    async def test_queued_event_is_openstack_payload_plus_identity(self) -> None:
        async with fresh_manager() as manager:
            payload = {
                "ironic_object.data": {"name": "node1", "uuid": "abc-123"},
                "extra": [1, 2],
            }

            await manager.broadcast_event_from_notification(
                "baremetal.node.power_set.end", payload
            )

            event = manager.event_queue.get_nowait()
            assert event.event_type == "baremetal.node.power_set.end"
            assert event.source == "openstack"
            assert event.data == {
                **payload,
                "service_type": "baremetal",
                "resource_id": "abc-123",
            }

    @pytest.mark.asyncio
    async def test_callers_payload_is_not_mutated(self) -> None:
        async with fresh_manager() as manager:
            payload = {"ironic_object.data": {"name": "node1", "uuid": "abc"}}
            before = json.loads(json.dumps(payload))

            await manager.broadcast_event_from_notification("baremetal.x", payload)

            assert payload == before
            assert manager.event_queue.get_nowait().data is not payload

    @pytest.mark.asyncio
    async def test_payload_that_is_a_list_is_logged_and_not_queued(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            payload: Any = ["not", "a", "dict"]

            await manager.broadcast_event_from_notification("baremetal.x", payload)

            assert manager.event_queue.empty()
            errors = log_messages(ws_logs, logging.ERROR)
            assert len(errors) == 1
            assert "baremetal.x" in errors[0]


class TestAddNotification:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("payload", [None, "text", 42, ("a", "b")])
    async def test_non_dict_payload_is_logged_not_raised(
        self, ws_logs: pytest.LogCaptureFixture, payload: Any
    ) -> None:
        async with fresh_manager() as manager:
            manager.add_notification("compute.instance.update", payload)

            assert manager.event_queue.empty()
            errors = log_messages(ws_logs, logging.ERROR)
            assert len(errors) == 1
            assert "not an object" in errors[0]

    @pytest.mark.asyncio
    async def test_payload_whose_lookup_raises_is_logged_not_raised(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        class Broken(dict):
            def get(self, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("broken payload")

        async with fresh_manager() as manager:
            manager.add_notification("baremetal.node.update", Broken())

            assert manager.event_queue.empty()
            assert "broken payload" in log_messages(ws_logs, logging.ERROR)[0]

    @pytest.mark.asyncio
    async def test_received_counts_the_notifications_queued(self) -> None:
        async with fresh_manager() as manager:
            manager.add_notification("image.image.update", {"x": 1})
            manager.add_notification("image.image.update", "not an object")
            manager.add_notification("image.image.delete", {"x": 2})

            assert manager.status().received == 2

    @pytest.mark.asyncio
    async def test_a_queued_notification_is_logged_with_its_node(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            payload = {"ironic_object.data": {"name": "node7", "uuid": "u"}}
            manager.add_notification("baremetal.node.update.end", payload)

            assert log_messages(ws_logs, logging.DEBUG)[-1] == (
                "Added baremetal event to WebSocket queue: "
                "baremetal.node.update.end for resource node7"
            )

    @pytest.mark.asyncio
    async def test_an_event_from_the_log_keeps_its_id_time_and_position(
        self,
    ) -> None:
        async with fresh_manager() as manager:
            manager.add_notification(
                "image.image.update",
                {"x": 1},
                meta={"service": "glance"},
                event_id="5c0e7d2a-0000-4000-8000-000000000001",
                timestamp="2026-11-23T13:00:00.000000Z",
                position="1700000000000-0",
            )

            event = manager.event_queue.get_nowait()
            assert event.id == "5c0e7d2a-0000-4000-8000-000000000001"
            assert event.timestamp == "2026-11-23T13:00:00.000000Z"
            assert event.position == "1700000000000-0"

    @pytest.mark.asyncio
    async def test_valid_notification_is_queued_without_awaiting(self) -> None:
        async with fresh_manager() as manager:
            manager.add_notification("image.image.update", {"x": 1})

            assert manager.event_queue.get_nowait().event_type == "image.image.update"


# --------------------------------------------------------------------------
# WebSocketManager._broadcast_events


class TestBroadcastEvents:
    @pytest.mark.asyncio
    async def test_matching_event_is_sent_once_as_json(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            register(manager, websocket, event_filters=["baremetal.node.power_set"])
            event = make_event("baremetal.node.power_set")
            await manager.add_event(event)

            async with broadcasting(manager):
                await async_wait_until(lambda: websocket.send_text.await_count == 1)

            websocket.send_text.assert_awaited_once_with(event.to_json())

    @pytest.mark.asyncio
    async def test_non_matching_connection_is_skipped_but_matching_one_receives(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            skipped, matching = fake_websocket(), fake_websocket()
            register(manager, skipped, node_filters=["other"])
            register(manager, matching, node_filters=["node1"])
            await manager.add_event(make_event(node_name="node1"))

            async with broadcasting(manager):
                await async_wait_until(lambda: matching.send_text.await_count == 1)

            skipped.send_text.assert_not_called()
            assert manager.delivered == 1

    @pytest.mark.asyncio
    async def test_websocket_disconnect_while_sending_removes_connection(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            gone, other = fake_websocket(), fake_websocket()
            gone.send_text.side_effect = WebSocketDisconnect(code=1006)
            register(manager, gone)
            register(manager, other)
            await manager.add_event(make_event())

            async with broadcasting(manager):
                await async_wait_until(lambda: gone not in manager.connections)

            assert list(manager.connections) == [other]
            assert any("went away" in m for m in log_messages(ws_logs, logging.INFO))

    @pytest.mark.asyncio
    async def test_generic_send_error_is_logged_and_removes_connection(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            broken = fake_websocket()
            broken.send_text.side_effect = RuntimeError("socket exploded")
            register(manager, broken)
            await manager.add_event(make_event())

            async with broadcasting(manager):
                await async_wait_until(lambda: broken not in manager.connections)

            errors = log_messages(ws_logs, logging.ERROR)
            assert any("socket exploded" in message for message in errors)

    @pytest.mark.asyncio
    async def test_event_without_connections_is_consumed_and_loop_continues(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            await manager.add_event(make_event("first"))

            async with broadcasting(manager) as task:
                await async_wait_until(manager.event_queue.empty)
                websocket = fake_websocket()
                register(manager, websocket)
                second = make_event("second")
                await manager.add_event(second)

                await async_wait_until(lambda: websocket.send_text.await_count == 1)
                assert not task.done()

            assert sent_texts(websocket) == [second.to_json()]
            assert manager.delivered == 1

    @pytest.mark.asyncio
    async def test_cancel_logs_and_finishes_without_exception(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            task = asyncio.create_task(manager._broadcast_events())
            try:
                await async_wait_until(
                    lambda: "Starting WebSocket event broadcaster"
                    in log_messages(ws_logs, logging.INFO)
                )
                task.cancel()

                assert await asyncio.wait_for(task, 5.0) is None
                assert not task.cancelled()
                assert "WebSocket broadcaster task cancelled" in log_messages(
                    ws_logs, logging.INFO
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    @pytest.mark.asyncio
    async def test_error_while_fanning_out_is_logged_and_loop_continues(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            register(manager, websocket)
            await manager.add_event(make_event(data={"not json": object()}))
            good = make_event("good")
            await manager.add_event(good)

            async with broadcasting(manager):
                await async_wait_until(lambda: websocket.send_text.await_count == 1)

            assert sent_texts(websocket) == [good.to_json()]
            errors = log_messages(ws_logs, logging.ERROR)
            assert errors == [
                "Error in WebSocket broadcaster: Object of type object is not "
                "JSON serializable; continuing"
            ]

    @pytest.mark.asyncio
    async def test_broadcaster_records_its_loop(self) -> None:
        async with fresh_manager() as manager:
            async with broadcasting(manager):
                await async_wait_until(lambda: manager.loop is not None)

                assert manager.loop is asyncio.get_running_loop()


# --------------------------------------------------------------------------
# fan-out: one serialisation, the same text for everyone, heartbeats


class TestFanOut:
    @pytest.mark.asyncio
    async def test_event_is_serialised_once_per_broadcast(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        serialised: List[EventMessage] = []
        original = EventMessage.to_json

        def counting_to_json(self: EventMessage) -> str:
            serialised.append(self)
            return original(self)

        monkeypatch.setattr(EventMessage, "to_json", counting_to_json)
        async with fresh_manager() as manager:
            websockets = [fake_websocket() for _ in range(3)]
            for websocket in websockets:
                register(manager, websocket)
            event = make_event()
            await manager.add_event(event)

            async with broadcasting(manager):
                await async_wait_until(
                    lambda: all(ws.send_text.await_count == 1 for ws in websockets)
                )

            assert serialised == [event]

    @pytest.mark.asyncio
    async def test_every_matching_connection_gets_the_same_text(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websockets = [fake_websocket() for _ in range(3)]
            for websocket in websockets:
                register(manager, websocket)
            await manager.add_event(make_event())

            async with broadcasting(manager):
                await async_wait_until(
                    lambda: all(ws.send_text.await_count == 1 for ws in websockets)
                )

            first, second, third = (sent_texts(ws)[0] for ws in websockets)
            assert first is second is third
            assert manager.delivered == 3

    @pytest.mark.asyncio
    async def test_delivered_counts_every_offer_of_every_event(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websockets = [fake_websocket() for _ in range(2)]
            for websocket in websockets:
                register(manager, websocket)
            for number in range(3):
                await manager.add_event(make_event(f"event.{number}"))

            async with broadcasting(manager):
                await async_wait_until(
                    lambda: all(ws.send_text.await_count == 3 for ws in websockets)
                )

            assert manager.status().delivered == 6

    @pytest.mark.asyncio
    async def test_each_fan_out_is_logged_with_its_event_type_and_clients(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            websockets = [fake_websocket() for _ in range(2)]
            for websocket in websockets:
                register(manager, websocket)
            await manager.add_event(make_event("compute.instance.update"))

            async with broadcasting(manager):
                await async_wait_until(
                    lambda: all(ws.send_text.await_count == 1 for ws in websockets)
                )

            assert (
                "Broadcasted event compute.instance.update to 2/2 connection(s)"
                in log_messages(ws_logs, logging.DEBUG)
            )

    @pytest.mark.asyncio
    async def test_heartbeat_reaches_every_connection_regardless_of_filters(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websockets = [fake_websocket() for _ in range(4)]
            register(manager, websockets[0])
            register(manager, websockets[1], event_filters=["baremetal.x"])
            register(manager, websockets[2], node_filters=["node1"])
            register(manager, websockets[3], service_filters=["compute"])

            await manager.send_heartbeat()
            async with broadcasting(manager):
                await async_wait_until(
                    lambda: all(ws.send_text.await_count == 1 for ws in websockets)
                )

            for websocket in websockets:
                assert json.loads(sent_texts(websocket)[0])["event_type"] == "heartbeat"

    @pytest.mark.asyncio
    async def test_event_named_heartbeat_from_openstack_is_still_filtered(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            filtered, open_ = fake_websocket(), fake_websocket()
            register(manager, filtered, service_filters=["compute"])
            register(manager, open_)
            await manager.add_event(make_event("heartbeat", source="openstack"))

            async with broadcasting(manager):
                await async_wait_until(lambda: open_.send_text.await_count == 1)

            filtered.send_text.assert_not_called()

    @pytest.mark.asyncio
    async def test_burst_longer_than_outbox_does_not_evict_fast_clients(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            websocket = fake_websocket()
            keeps_up(websocket)
            await manager.connect(websocket)
            events = [make_event(f"burst.{n}") for n in range(10)]
            for event in events:
                manager.enqueue(event)

            await async_wait_until(lambda: websocket.send_text.await_count == 10)

            assert sent_texts(websocket) == [event.to_json() for event in events]
            assert manager.slow_disconnects == 0
            websocket.close.assert_not_awaited()


# --------------------------------------------------------------------------
# outbox policy: a stalled client among healthy ones


async def run_with_stalled_client(
    manager: WebSocketManager,
    fake_websocket: WebSocketFactory,
    events: int = 10,
) -> Dict[str, Any]:
    """Connect a stalled client and two healthy ones, then broadcast events one
    at a time, waiting for the healthy clients to get each one."""
    stalled = fake_websocket()
    stall(stalled)
    healthy = [fake_websocket(), fake_websocket()]
    await manager.connect(stalled)
    for websocket in healthy:
        await manager.connect(websocket)

    outbox = manager.connections[stalled].outbox
    sizes: List[int] = []
    put_nowait = outbox.put_nowait

    def recording_put_nowait(item: str) -> None:
        try:
            put_nowait(item)
        finally:
            sizes.append(outbox.qsize())

    outbox.put_nowait = recording_put_nowait  # type: ignore[method-assign]

    sent: List[EventMessage] = []
    for number in range(events):
        event = make_event(f"event.{number}")
        sent.append(event)
        await manager.add_event(event)
        await async_wait_until(
            lambda: all(ws.send_text.await_count == len(sent) for ws in healthy)
        )
    await async_wait_until(lambda: stalled.close.await_count == 1)
    return {
        "stalled": stalled,
        "healthy": healthy,
        "events": sent,
        "outbox": outbox,
        "sizes": sizes,
    }


class TestOutboxPolicy:
    @pytest.mark.asyncio
    async def test_others_receive_every_event_while_one_client_is_stalled(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            run = await run_with_stalled_client(manager, fake_websocket)

            expected = [event.to_json() for event in run["events"]]
            for websocket in run["healthy"]:
                assert sent_texts(websocket) == expected
                assert websocket in manager.connections

    @pytest.mark.asyncio
    async def test_stalled_client_is_removed_when_its_outbox_overflows(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            run = await run_with_stalled_client(manager, fake_websocket)

            assert run["stalled"] not in manager.connections
            # one event in its stuck send_text, three in the outbox, the fifth
            # overflows
            assert run["stalled"].send_text.await_count == 1
            assert len(run["sizes"]) == 5

    @pytest.mark.asyncio
    async def test_stalled_client_is_closed_with_1013(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            run = await run_with_stalled_client(manager, fake_websocket)

            run["stalled"].close.assert_awaited_once()
            assert run["stalled"].close.await_args.kwargs["code"] == 1013

    @pytest.mark.asyncio
    async def test_eviction_is_counted_in_slow_disconnects(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            await run_with_stalled_client(manager, fake_websocket)

            assert manager.slow_disconnects == 1
            assert manager.status().slow_disconnects == 1

    @pytest.mark.asyncio
    async def test_each_eviction_is_counted(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=1) as manager:
            slow = [fake_websocket(), fake_websocket()]
            for websocket in slow:
                register(manager, websocket)
                manager.send_to(websocket, "fills the outbox")
                manager.send_to(websocket, "overflows it")

            assert manager.status().slow_disconnects == 2

    @pytest.mark.asyncio
    async def test_an_evicted_client_is_told_why(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            run = await run_with_stalled_client(manager, fake_websocket)

            assert run["stalled"].close.await_args.kwargs == {
                "code": 1013,
                "reason": "client too slow",
            }

    @pytest.mark.asyncio
    async def test_eviction_logs_a_warning(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            await run_with_stalled_client(manager, fake_websocket)

            warnings = log_messages(ws_logs, logging.WARNING)
            assert len(warnings) == 1
            assert "too slow" in warnings[0]
            assert "1013" in warnings[0]

    @pytest.mark.asyncio
    async def test_stalled_outbox_never_grows_beyond_its_bound(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            run = await run_with_stalled_client(manager, fake_websocket)

            assert max(run["sizes"]) == 3

    @pytest.mark.asyncio
    async def test_stalled_clients_writer_is_cancelled(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=3) as manager:
            stalled = fake_websocket()
            stall(stalled)
            await manager.connect(stalled)
            writer = manager.connections[stalled].writer
            assert writer is not None
            for number in range(5):
                await manager.add_event(make_event(f"event.{number}"))

            await async_wait_until(lambda: stalled not in manager.connections)

            await asyncio.gather(writer, return_exceptions=True)
            assert writer.cancelled()


# --------------------------------------------------------------------------
# bounded event queue


class TestEventQueueBound:
    @pytest.mark.asyncio
    async def test_enqueue_at_bound_drops_the_oldest(self) -> None:
        async with fresh_manager(queue_size=2) as manager:
            first, second, third = make_event("1"), make_event("2"), make_event("3")

            for event in (first, second, third):
                manager.enqueue(event)

            assert manager.event_queue.qsize() == 2
            assert manager.event_queue.get_nowait() is second
            assert manager.event_queue.get_nowait() is third

    @pytest.mark.asyncio
    async def test_dropped_events_are_counted(self) -> None:
        async with fresh_manager(queue_size=2) as manager:
            for number in range(5):
                await manager.add_event(make_event(str(number)))

            assert manager.dropped_events == 3
            assert manager.status().dropped_events == 3

    @pytest.mark.asyncio
    async def test_drop_is_logged_as_warning(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager(queue_size=1) as manager:
            manager.enqueue(make_event())
            manager.enqueue(make_event())

            assert log_messages(ws_logs, logging.WARNING) == [
                "Event queue full (1): dropped the oldest event, 1 dropped so far"
            ]

    @pytest.mark.asyncio
    async def test_drop_warnings_are_rate_limited(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager(queue_size=1) as manager:
            now = [100.0]
            manager._drop_log = RateLimitedLog(
                logging.getLogger(LOGGER), interval=10.0, clock=lambda: now[0]
            )
            for _ in range(6):  # one fills the queue, five are dropped
                manager.enqueue(make_event())
            now[0] += 10.0
            manager.enqueue(make_event())

            warnings = log_messages(ws_logs, logging.WARNING)
            assert warnings == [
                "Event queue full (1): dropped the oldest event, 1 dropped so far",
                "Event queue full (1): dropped the oldest event, 6 dropped so far"
                " (4 similar messages suppressed)",
            ]

    @pytest.mark.asyncio
    async def test_manager_rate_limits_drop_warnings_by_default(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager(queue_size=1) as manager:
            for _ in range(20):
                manager.enqueue(make_event())

            assert len(log_messages(ws_logs, logging.WARNING)) == 1
            assert manager.dropped_events == 19


# --------------------------------------------------------------------------
# start / stop / status


class TestStart:
    @pytest.mark.asyncio
    async def test_start_records_the_running_loop(self) -> None:
        async with fresh_manager() as manager:
            await manager.start()

            assert manager.loop is asyncio.get_running_loop()

    @pytest.mark.asyncio
    async def test_start_starts_the_broadcaster(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            await manager.start()
            websocket = fake_websocket()
            register(manager, websocket)

            await manager.add_event(make_event())

            await async_wait_until(lambda: websocket.send_text.await_count == 1)
            assert manager.status().broadcaster_running is True

    @pytest.mark.asyncio
    async def test_start_is_idempotent(self, fake_broadcaster: list) -> None:
        async with fresh_manager() as manager:
            await manager.start()
            manager.enqueue(make_event())

            await manager.start()
            await asyncio.sleep(0)  # one tick: a second task would start now

            assert fake_broadcaster == [manager]
            assert manager.status().queued_events == 1

    @pytest.mark.asyncio
    async def test_first_start_keeps_events_queued_before_it(
        self, fake_broadcaster: list
    ) -> None:
        async with fresh_manager() as manager:
            event = make_event()
            manager.enqueue(event)

            await manager.start()

            assert manager.event_queue.get_nowait() is event

    @pytest.mark.asyncio
    async def test_start_on_a_different_loop_starts_with_a_fresh_queue(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(queue_size=4) as manager:
            manager.loop = MagicMock(spec=asyncio.AbstractEventLoop)
            old_queue = manager.event_queue
            old_queue.put_nowait(make_event())
            register(manager, fake_websocket())

            await manager.start()

            assert manager.event_queue is not old_queue
            assert manager.event_queue.empty()
            assert manager.event_queue.maxsize == 4
            assert manager.connections == {}
            assert manager.loop is asyncio.get_running_loop()

    @pytest.mark.asyncio
    async def test_after_a_loop_change_slow_clients_are_still_closed(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=1) as manager:
            manager.loop = MagicMock(spec=asyncio.AbstractEventLoop)
            await manager.start()
            websocket = fake_websocket()
            register(manager, websocket)

            manager.send_to(websocket, "fills the outbox")
            manager.send_to(websocket, "overflows it")

            await async_wait_until(lambda: websocket.close.await_count == 1)
            assert websocket.close.await_args.kwargs["code"] == 1013


class TestStop:
    @pytest.mark.asyncio
    async def test_stop_cancels_the_broadcaster(self) -> None:
        async with fresh_manager() as manager:
            await manager.start()
            task = manager._broadcaster_task
            assert task is not None

            await manager.stop()

            assert task.done()
            assert manager.status().broadcaster_running is False

    @pytest.mark.asyncio
    async def test_stop_cancels_writers(self, fake_websocket: WebSocketFactory) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            await manager.connect(websocket)
            writer = manager.connections[websocket].writer
            assert writer is not None

            await manager.stop()

            await asyncio.gather(writer, return_exceptions=True)
            assert writer.cancelled()

    @pytest.mark.asyncio
    async def test_stop_closes_remaining_websockets_with_1001(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websockets = [fake_websocket(), fake_websocket()]
            for websocket in websockets:
                await manager.connect(websocket)

            await manager.stop()

            for websocket in websockets:
                websocket.close.assert_awaited_once_with(
                    code=1001, reason="server shutting down"
                )
            assert manager.connections == {}

    @pytest.mark.asyncio
    async def test_stop_continues_when_a_close_fails(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            failing, other = fake_websocket(), fake_websocket()
            failing.close.side_effect = RuntimeError("already closed")
            await manager.connect(failing)
            await manager.connect(other)

            await manager.stop()

            other.close.assert_awaited_once()
            assert manager.connections == {}

    @pytest.mark.asyncio
    async def test_a_failed_close_is_logged_with_its_code_and_error(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            failing = fake_websocket()
            failing.close.side_effect = RuntimeError("already closed")
            register(manager, failing)

            await manager.stop()

            assert "Closing WebSocket with 1001 failed: already closed" in (
                log_messages(ws_logs, logging.DEBUG)
            )

    @pytest.mark.asyncio
    async def test_stop_waits_for_closes_of_evicted_clients(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=1) as manager:
            websocket = fake_websocket()
            register(manager, websocket)
            manager.send_to(websocket, "one")
            manager.send_to(websocket, "overflow")

            await manager.stop()

            websocket.close.assert_awaited_once()
            assert websocket.close.await_args.kwargs["code"] == 1013

    @pytest.mark.asyncio
    async def test_stop_without_start_logs_and_returns(
        self, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            await manager.stop()

            assert "WebSocket manager stopped" in log_messages(ws_logs, logging.INFO)


class TestStatus:
    @pytest.mark.asyncio
    async def test_status_of_a_new_manager(self) -> None:
        async with fresh_manager(queue_size=8) as manager:
            assert manager.status().as_dict() == {
                "connections": 0,
                "broadcaster_running": False,
                "queued_events": 0,
                "queue_size": 8,
                "dropped_events": 0,
                "slow_disconnects": 0,
                "delivered": 0,
                "skipped_heartbeats": 0,
                "resumes": 0,
                "replayed_events": 0,
                "received": 0,
            }

    @pytest.mark.asyncio
    async def test_status_reports_the_counters(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(queue_size=2, outbox_size=1) as manager:
            reader, slow = fake_websocket(), fake_websocket()
            await manager.connect(reader)
            register(manager, slow)
            manager.send_to(slow, "fills the outbox")
            await manager.add_event(make_event())
            await async_wait_until(lambda: reader.send_text.await_count == 1)
            for number in range(3):  # the broadcaster is not awaited in between
                manager.enqueue(make_event(str(number)))

            status = manager.status()

            assert status.connections == 1
            assert status.broadcaster_running is True
            assert status.queued_events == 2
            assert status.dropped_events == 1
            assert status.slow_disconnects == 1
            assert status.delivered == 1


# --------------------------------------------------------------------------
# send_to, the writer, eviction


class TestSendTo:
    @pytest.mark.asyncio
    async def test_replies_are_sent_in_order(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            await manager.connect(websocket)

            assert manager.send_to(websocket, "one") is True
            assert manager.send_to(websocket, "two") is True
            assert manager.send_to(websocket, "three") is True

            await async_wait_until(lambda: websocket.send_text.await_count == 3)
            assert sent_texts(websocket) == ["one", "two", "three"]

    @pytest.mark.asyncio
    async def test_unknown_websocket_returns_false(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            assert manager.send_to(fake_websocket(), "reply") is False

    @pytest.mark.asyncio
    async def test_full_outbox_evicts_the_client(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=1) as manager:
            websocket = fake_websocket()
            register(manager, websocket)  # no writer drains its outbox
            assert manager.send_to(websocket, "one") is True

            assert manager.send_to(websocket, "two") is False

            assert websocket not in manager.connections
            assert manager.slow_disconnects == 1
            await async_wait_until(lambda: websocket.close.await_count == 1)
            assert websocket.close.await_args.kwargs["code"] == 1013


class TestWriter:
    @pytest.mark.asyncio
    async def test_send_error_removes_the_connection_and_is_logged(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            websocket.send_text.side_effect = OSError("broken pipe")
            await manager.connect(websocket)

            manager.send_to(websocket, "reply")

            await async_wait_until(lambda: websocket not in manager.connections)
            assert log_messages(ws_logs, logging.ERROR) == [
                "Error sending message to WebSocket: broken pipe; removing it"
            ]

    @pytest.mark.asyncio
    async def test_writer_ends_after_removing_the_connection(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            websocket = fake_websocket()
            websocket.send_text.side_effect = OSError("broken pipe")
            await manager.connect(websocket)
            writer = manager.connections[websocket].writer
            assert writer is not None

            manager.send_to(websocket, "reply")

            await asyncio.wait_for(writer, 5.0)
            assert not writer.cancelled()
            assert websocket not in manager.connections


class TestEvictSlow:
    @pytest.mark.asyncio
    async def test_evicting_a_connection_that_is_already_gone_does_nothing(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            connection = WebSocketConnection(fake_websocket())

            manager._evict_slow(connection)
            await manager.stop()  # awaits the closes of evicted clients

            assert manager.slow_disconnects == 0
            connection.websocket.close.assert_not_called()


# --------------------------------------------------------------------------
# heartbeats at a full queue, shutdown with clients that do not answer


class TestHeartbeatAtFullQueue:
    @pytest.mark.asyncio
    async def test_heartbeat_never_pushes_a_real_event_out(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(queue_size=2) as manager:
            register(manager, fake_websocket())
            first, second = make_event("first"), make_event("second")
            manager.enqueue(first)
            manager.enqueue(second)

            await manager.send_heartbeat()
            await manager.send_heartbeat()

            queued = [manager.event_queue.get_nowait() for _ in range(2)]
            assert queued == [first, second]
            assert manager.event_queue.empty()
            assert manager.dropped_events == 0
            assert manager.skipped_heartbeats == 2
            assert manager.status().skipped_heartbeats == 2

    @pytest.mark.asyncio
    async def test_heartbeat_takes_no_place_behind_queued_events(
        self, fake_websocket: WebSocketFactory, ws_logs: pytest.LogCaptureFixture
    ) -> None:
        async with fresh_manager(queue_size=3) as manager:
            register(manager, fake_websocket())
            event = make_event()
            manager.enqueue(event)

            await manager.send_heartbeat()
            # The queue fills up later: every place went to a real event.
            manager.enqueue(make_event("second"))
            manager.enqueue(make_event("third"))

            assert manager.event_queue.get_nowait() is event
            assert [manager.event_queue.get_nowait().event_type for _ in range(2)] == [
                "second",
                "third",
            ]
            assert manager.skipped_heartbeats == 1
            assert manager.dropped_events == 0
            assert log_messages(ws_logs, logging.DEBUG)[-1] == (
                "Heartbeat skipped: 1 events queued (1 skipped so far)"
            )

    @pytest.mark.asyncio
    async def test_heartbeat_is_queued_when_nothing_else_is(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(queue_size=1) as manager:
            register(manager, fake_websocket())

            await manager.send_heartbeat()

            assert manager.event_queue.get_nowait().event_type == "heartbeat"
            assert manager.skipped_heartbeats == 0


class TestStopClosesConcurrently:
    @pytest.mark.asyncio
    async def test_clients_are_closed_at_once_not_one_after_another(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            started: List[MagicMock] = []
            release = asyncio.Event()
            websockets = [fake_websocket() for _ in range(3)]

            def hanging_close(websocket: MagicMock) -> Callable[..., Any]:
                async def close(**kwargs: Any) -> None:
                    started.append(websocket)
                    await release.wait()

                return close

            for websocket in websockets:
                websocket.close.side_effect = hanging_close(websocket)
                register(manager, websocket)

            stopping = asyncio.create_task(manager.stop())
            await async_wait_until(lambda: len(started) == 3)

            # Every close is under way while none of them has finished.
            assert not stopping.done()
            release.set()
            await asyncio.wait_for(stopping, 5.0)
            assert manager.connections == {}

    @pytest.mark.asyncio
    async def test_stop_takes_one_close_timeout_for_many_silent_clients(
        self, fake_websocket: WebSocketFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(connection_module, "CLOSE_TIMEOUT", 0.05)
        async with fresh_manager() as manager:
            never = asyncio.Event()
            steps: List[str] = []

            async def silent_close(**kwargs: Any) -> None:
                steps.append("start")
                try:
                    await never.wait()
                except asyncio.CancelledError:
                    steps.append("given up")
                    raise

            websockets = [fake_websocket() for _ in range(4)]
            for websocket in websockets:
                websocket.close.side_effect = silent_close
                register(manager, websocket)

            await asyncio.wait_for(manager.stop(), 5.0)

            # One timeout for all of them: every close was under way before
            # the first was given up, not four timeouts in a row.
            assert steps == ["start"] * 4 + ["given up"] * 4
            for websocket in websockets:
                assert websocket.close.await_args.kwargs["code"] == 1001
