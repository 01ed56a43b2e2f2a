"""Resume through the app (TestClient): the query parameter and the message field.

The app runs with a local bridge; its manager's replay source is a fake log
(a list of entries), set once the app has started.
"""

import json
import logging
import uuid
from typing import Any, Dict, Iterator, List, Optional

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from osism import settings
from osism.api.wire import LAST_EVENT_ID_ERROR
from osism.core.event_log import LogEntry, Replay
from tests.conftest import wait_until
from tests.unit.test_api import IRONIC, PATH, App, publish, set_filters

NOVA = {"nova_object.data": {"host": "host1"}}


def event_id(number: int) -> str:
    return str(uuid.UUID(int=number))


def logged(number: int, event_type: str = "baremetal.node.power_set.end") -> LogEntry:
    payload = NOVA if event_type.startswith("compute") else IRONIC
    return LogEntry(
        f"{number}-0",
        {
            "id": event_id(number),
            "timestamp": "2026-11-23T13:00:00.000000Z",
            "event_type": event_type,
            "payload": payload,
            "meta": {},
        },
    )


class FakeLog:
    """Replays the entries after the id asked for; all of them for an unknown id."""

    def __init__(self, entries: List[LogEntry]) -> None:
        self.entries = entries

    def replay(self, last_event_id: str, limit: int) -> Replay:
        known = [entry.event["id"] for entry in self.entries]
        oldest = known[0] if known else None
        if last_event_id in known:
            after = self.entries[known.index(last_event_id) + 1 :]
            return Replay(after[-limit:], len(after) <= limit, oldest)
        return Replay(self.entries[-limit:], False, oldest)


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def log() -> FakeLog:
    return FakeLog([logged(1), logged(2, "compute.instance.update"), logged(3)])


@pytest.fixture
def client(app: App, log: FakeLog) -> Iterator[TestClient]:
    with TestClient(app.app) as test_client:
        app.manager.replay_source = log.replay
        yield test_client


def receive(ws: Any) -> Dict[str, Any]:
    message: Dict[str, Any] = json.loads(ws.receive_text())
    return message


def event_number(message: Dict[str, Any]) -> int:
    return uuid.UUID(message["id"]).int


def assert_serves_live_only(client: TestClient, ws: Any) -> None:
    """No resume was started: the next set_filters gets a plain reply and the
    next event is a live one, not one of the log's."""
    assert set(set_filters(ws)) == {
        "type",
        "status",
        "event_filters",
        "node_filters",
        "service_filters",
        "priority_filters",
    }
    publish(client, "baremetal.node.power_set.end")
    assert receive(ws)["id"] not in {event_id(n) for n in range(4)}


def resume_reply(
    recovered: bool, replayed: int, oldest_id: Optional[str], **filters: Any
) -> Dict[str, Any]:
    return {
        "type": "filter_update",
        "status": "success",
        "event_filters": filters.get("event_filters", []),
        "node_filters": filters.get("node_filters", []),
        "service_filters": filters.get("service_filters", []),
        "priority_filters": filters.get("priority_filters", []),
        "recovered": recovered,
        "replayed": replayed,
        "oldest_id": oldest_id,
    }


class TestResumeAtConnect:
    def test_reply_comes_unasked_then_the_missed_events_then_live(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(f"{PATH}?last_event_id={event_id(1)}") as ws:
            reply = receive(ws)
            replayed = [event_number(receive(ws)) for _ in range(2)]
            publish(client, "baremetal.node.power_set.end")
            live = receive(ws)

        assert reply == resume_reply(True, 2, event_id(1))
        assert replayed == [2, 3]
        assert live["node_name"] == "node1"
        assert live["id"] not in {event_id(n) for n in range(4)}

    def test_more_missed_than_the_replay_limit_are_the_newest_not_recovered(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "REPLAY_LIMIT", 1)
        with client.websocket_connect(f"{PATH}?last_event_id={event_id(1)}") as ws:
            reply = receive(ws)
            replayed = event_number(receive(ws))

        assert reply == resume_reply(False, 1, event_id(1))
        assert replayed == 3

    def test_an_id_the_log_no_longer_holds_is_not_recovered(
        self, client: TestClient
    ) -> None:
        unknown = str(uuid.uuid4())
        with client.websocket_connect(f"{PATH}?last_event_id={unknown}") as ws:
            reply = receive(ws)
            replayed = [event_number(receive(ws)) for _ in range(3)]

        assert reply == resume_reply(False, 3, event_id(1))
        assert replayed == [1, 2, 3]

    def test_the_id_is_taken_in_any_uuid_spelling(self, client: TestClient) -> None:
        spelled = event_id(2).upper()
        with client.websocket_connect(f"{PATH}?last_event_id={spelled}") as ws:
            reply = receive(ws)
            assert event_number(receive(ws)) == 3

        assert reply["replayed"] == 1

    def test_a_bad_id_gets_an_error_and_the_connection_serves_live(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(f"{PATH}?last_event_id=not-a-uuid") as ws:
            assert receive(ws) == {"type": "error", "error": LAST_EVENT_ID_ERROR}
            assert_serves_live_only(client, ws)

    def test_an_empty_id_is_a_plain_connect(self, client: TestClient) -> None:
        with client.websocket_connect(f"{PATH}?last_event_id=") as ws:
            publish(client, "baremetal.node.power_set.end")
            first = receive(ws)
        assert first["event_type"] == "baremetal.node.power_set.end"

    def test_without_an_event_log_recovered_is_false_and_live_continues(
        self, app: App, client: TestClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="osism.websocket")
        app.manager.replay_source = None
        with client.websocket_connect(f"{PATH}?last_event_id={event_id(1)}") as ws:
            reply = receive(ws)
            publish(client, "baremetal.node.power_set.end")
            live = receive(ws)

        assert reply == resume_reply(False, 0, None)
        assert live["event_type"] == "baremetal.node.power_set.end"
        assert "no event log to replay from" in caplog.text

    def test_the_query_value_never_reaches_the_logs(
        self, client: TestClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        secret = "s3cr3t-looking-value-0123456789"
        with client.websocket_connect(f"{PATH}?last_event_id={secret}") as ws:
            assert receive(ws)["type"] == "error"
        assert secret not in "\n".join(r.getMessage() for r in caplog.records)


class TestResumeInSetFilters:
    def test_filters_apply_to_the_replay_and_the_reply_has_both(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            ws.send_text(
                json.dumps(
                    {
                        "action": "set_filters",
                        "service_filters": ["compute"],
                        "last_event_id": event_id(1),
                    }
                )
            )
            reply = receive(ws)
            replayed = receive(ws)
            publish(client, "compute.instance.update", NOVA)
            live = receive(ws)

        assert reply == resume_reply(True, 1, event_id(1), service_filters=["compute"])
        assert event_number(replayed) == 2
        assert live["event_type"] == "compute.instance.update"
        assert live["id"] != event_id(2)

    def test_a_bad_id_in_the_message_changes_nothing(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            ws.send_text(
                json.dumps(
                    {
                        "action": "set_filters",
                        "service_filters": ["compute"],
                        "last_event_id": 42,
                    }
                )
            )
            assert receive(ws) == {"type": "error", "error": LAST_EVENT_ID_ERROR}
            assert_serves_live_only(client, ws)


class TestEventsInfo:
    def test_describes_resume(self, client: TestClient) -> None:
        info = client.get("/v1/events").json()

        assert "last_event_id" in info["client_messages"]["set_filters"]
        resume = info["resume"]
        assert resume["query"].startswith(f"{PATH}?last_event_id=")
        assert set(resume["reply"]) == {"type", "recovered", "replayed", "oldest_id"}
        assert resume["replay_limit"] == settings.REPLAY_LIMIT


class TestTooSlowToResume:
    def test_a_client_closed_during_its_resume_at_connect_gets_1013(
        self, app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def evicted(*args: Any) -> bool:
            return False

        monkeypatch.setattr(app.manager, "resume", evicted)
        with client.websocket_connect(f"{PATH}?last_event_id={event_id(1)}") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
        assert closed.value.code == 1013
        wait_until(lambda: app.manager.connections == {})


class TestResumeFromTheBridge:
    def test_a_resuming_client_is_replayed_what_the_bridge_logged(self) -> None:
        app = App()
        with TestClient(app.app) as client:
            with client.websocket_connect(PATH) as ws:
                publish(client, "baremetal.node.power_set.end")
                publish(client, "baremetal.node.create.end")
                first, second = receive(ws), receive(ws)
            resume = f"{PATH}?last_event_id={first['id']}"
            with client.websocket_connect(resume) as ws:
                reply = receive(ws)
                replayed = receive(ws)

        assert (reply["recovered"], reply["replayed"]) == (True, 1)
        assert replayed == second
