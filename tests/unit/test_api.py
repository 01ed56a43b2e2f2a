"""The app driven through Starlette's TestClient: HTTP, WebSocket protocol, security."""

import dataclasses
import json
import logging
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, List
from unittest.mock import MagicMock

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from osism import settings

from osism.api import routes as api

from osism.api import wire as protocol
from osism.api.routes import create_app
from osism.api.session import peer, resume_reply
from osism.api.security import SecurityConfig
from osism.services.event_bridge import EventBridge
from osism.services.websocket_manager import WebSocketManager, close_quietly
from tests.conftest import wait_until

PATH = "/v1/events/openstack"
IRONIC = {"ironic_object.data": {"name": "node1", "uuid": "abc-123"}}
TOKEN = "s3cr3t-t0ken-value"
# EventMessage.to_dict(), in its order: the wire format of an event
EVENT_FIELDS = ["id", "timestamp", "event_type", "source", "node_name", "data"]
# One event per service and node, for the filter table.
FILTER_EVENTS: Dict[str, Dict[str, Any]] = {
    "baremetal.node.power_set.end": {"ironic_object.data": {"name": "node1"}},
    "compute.instance.update": {"nova_object.data": {"host": "node1"}},
    "compute.instance.delete.end": {"nova_object.data": {"host": "node2"}},
    "network.port.create.end": {"neutron_object.data": {"name": "node2"}},
    "volume.create.end": {"cinder_object.data": {"display_name": "node3"}},
}


class App:
    """A fresh app with its own manager and a bridge in local mode."""

    def __init__(self, **security: Any) -> None:
        self.manager = WebSocketManager()
        self.bridge = EventBridge(connect=False)
        self.app = create_app(
            self.manager,
            self.bridge,
            connect_redis=False,
            heartbeat_interval=security.pop("heartbeat", 0),
            security=SecurityConfig(**security),
        )


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(app.app) as test_client:
        yield test_client


def publish(client: TestClient, event_type: str, payload: Any = None, **kw: Any) -> Any:
    body = {"event_type": event_type, "payload": IRONIC if payload is None else payload}
    return client.post(PATH, json=body, **kw)


def set_filters(ws: Any, **filters: Any) -> Dict[str, Any]:
    ws.send_text(json.dumps({"action": "set_filters", **filters}))
    reply: Dict[str, Any] = json.loads(ws.receive_text())
    return reply


def assert_still_serves(client: TestClient, ws: Any) -> None:
    """The next set_filters is acknowledged and the next event arrives."""
    assert set_filters(ws, service_filters=[])["status"] == "success"
    publish(client, "baremetal.node.power_set.end")
    event = json.loads(ws.receive_text())
    assert event["event_type"] == "baremetal.node.power_set.end"


class TestHttp:
    @pytest.mark.parametrize("path", ["/", "/v1"])
    def test_health_answers_ok(self, client: TestClient, path: str) -> None:
        assert client.get(path).json() == {"result": "ok"}

    def test_the_api_documents_itself_as_osism_events(self, client: TestClient) -> None:
        assert client.get("/openapi.json").json()["info"]["title"] == "osism events"

    def test_events_info_names_the_websocket_endpoint(self, client: TestClient) -> None:
        info = client.get("/v1/events").json()
        assert info["websocket"] == PATH
        assert info["event_fields"] == EVENT_FIELDS

    def test_events_info_is_the_documented_description(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "REPLAY_LIMIT", 7)
        assert client.get("/v1/events").json() == {
            "websocket": "/v1/events/openstack",
            "publish": "POST /v1/events/openstack",
            "page": "/events",
            "system": "/v1/events/system",
            "metrics": "/metrics",
            "event_fields": EVENT_FIELDS,
            "client_messages": {
                "set_filters": {
                    "action": "set_filters",
                    "event_filters": ["<event_type>"],
                    "node_filters": ["<node name>"],
                    "service_filters": [
                        "<first segment of event_type, or service: nova, ...>"
                    ],
                    "priority_filters": ["<INFO, WARN, ERROR, ...>"],
                    "last_event_id": "<id of the last event seen: resume after it>",
                }
            },
            "resume": {
                "query": "/v1/events/openstack?last_event_id="
                "<id of the last event seen>",
                "message": "set_filters with last_event_id",
                "reply": {
                    "type": "filter_update",
                    "recovered": "true: every missed event matching the filters "
                    "follows; false: the log no longer reaches back to the id or "
                    "more than replay_limit were missed (the newest part follows)",
                    "replayed": "how many missed events follow the reply",
                    "oldest_id": "the oldest event id the log holds, or null",
                },
                "replay_limit": 7,
            },
        }

    def test_status_reports_ready_local_bridge_and_counts(
        self, client: TestClient
    ) -> None:
        status = client.get("/v1/status").json()
        assert status["ready"] is True
        assert status["bridge"]["mode"] == "local"
        assert status["websocket"]["connections"] == 0
        assert status["websocket"]["dropped_events"] == 0
        assert status["bridge"]["dropped_events"] == 0

    def test_status_has_every_key_of_the_bridge_and_the_manager_in_order(
        self, client: TestClient
    ) -> None:
        status = client.get("/v1/status").json()
        assert list(status) == ["ready", "bridge", "websocket"]
        assert list(status["bridge"]) == [
            "mode",
            "redis",
            "redis_connected",
            "subscribed",
            "subscriber_alive",
            "processor_alive",
            "watching_for_redis",
            "subscriber_restarts",
            "local_queue",
            "local_queue_size",
            "local_history",
            "published",
            "duplicates",
            "dropped_events",
            "last_position",
            "caught_up",
            "missed_warnings",
        ]
        assert list(status["websocket"]) == [
            "connections",
            "broadcaster_running",
            "queued_events",
            "queue_size",
            "dropped_events",
            "slow_disconnects",
            "delivered",
            "skipped_heartbeats",
            "resumes",
            "replayed_events",
            "received",
        ]

    def test_publish_is_accepted(self, client: TestClient) -> None:
        response = publish(client, "baremetal.node.power_set.end")
        assert response.status_code == 202
        assert response.json() == {
            "result": "accepted",
            "event_type": "baremetal.node.power_set.end",
        }

    @pytest.mark.parametrize(
        "body",
        [
            {"payload": {}},
            {"event_type": "", "payload": {}},
            {"event_type": "a.b", "payload": [1, 2]},
            {"event_type": "a.b"},
        ],
        ids=["no-event-type", "empty-event-type", "payload-list", "no-payload"],
    )
    def test_invalid_publish_is_422(self, client: TestClient, body: Any) -> None:
        assert client.post(PATH, json=body).status_code == 422

    def test_publish_the_bridge_cannot_take_is_503(
        self, app: App, client: TestClient
    ) -> None:
        app.bridge.add_event = lambda *args: False  # type: ignore[method-assign]
        response = publish(client, "a.b")
        assert response.status_code == 503
        assert response.json()["result"] == "dropped"

    def test_a_dropped_publish_says_so(self, app: App, client: TestClient) -> None:
        app.bridge.add_event = lambda *args: False  # type: ignore[method-assign]
        response = publish(client, "a.b")
        assert response.json() == {
            "result": "dropped",
            "error": "event could not be queued",
        }

    def test_the_time_a_publish_took_is_observed(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The clock of the publish route reads 10.0 as it hands the event
        # on and 10.3 once the bridge took it: 0.3 s.
        clock = SimpleNamespace(perf_counter=iter([10.0, 10.3]).__next__)
        monkeypatch.setattr(api, "time", clock)
        assert publish(client, "a.b").status_code == 202
        text = client.get("/metrics").text
        assert 'osism_publish_seconds_bucket{le="0.25",result="accepted"} 0.0' in text
        assert 'osism_publish_seconds_bucket{le="0.5",result="accepted"} 1.0' in text
        assert 'osism_publish_seconds_count{result="accepted"} 1.0' in text

    def test_metrics_are_served_in_the_prometheus_text_format(
        self, client: TestClient
    ) -> None:
        response = client.get("/metrics")
        assert response.status_code == 200
        # The exposition format's version is prometheus-client's.
        assert response.headers["content-type"].startswith("text/plain; version=")
        assert "# TYPE osism_websocket_connections gauge" in response.text

    def test_shutdown_stops_the_bridge_and_the_broadcaster(self, app: App) -> None:
        with TestClient(app.app) as client:
            running = client.get("/v1/status").json()
        assert running["bridge"]["processor_alive"] is True
        assert running["websocket"]["broadcaster_running"] is True
        assert app.bridge.status().processor_alive is False
        assert app.manager.status().broadcaster_running is False


class TestWebSocketProtocol:
    def test_posted_event_arrives_in_the_wire_format(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            publish(client, "baremetal.node.power_set.end")
            event = json.loads(ws.receive_text())
        assert list(event) == EVENT_FIELDS
        assert event["source"] == "openstack"
        assert event["node_name"] == "node1"
        assert event["data"] == {
            **IRONIC,
            "service_type": "baremetal",
            "resource_id": "abc-123",
        }

    def test_set_filters_is_acknowledged_with_the_filters_in_force(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            first = set_filters(ws, event_filters=["a.b"], node_filters=["n1"])
            partial = set_filters(ws, node_filters=None, service_filters=["a"])
            cleared = set_filters(ws, event_filters=[])
        assert first == {
            "type": "filter_update",
            "status": "success",
            "event_filters": ["a.b"],
            "node_filters": ["n1"],
            "service_filters": [],
            "priority_filters": [],
        }
        assert partial["node_filters"] == ["n1"]
        assert partial["service_filters"] == ["a"]
        assert cleared["event_filters"] == []
        assert cleared["node_filters"] == ["n1"]

    def test_filters_are_applied_and_anded(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            set_filters(ws, service_filters=["baremetal"], node_filters=["node1"])
            publish(
                client,
                "compute.instance.update",
                {"nova_object.data": {"host": "node1"}},
            )
            publish(
                client,
                "baremetal.node.power_set.end",
                {"ironic_object.data": {"name": "other"}},
            )
            publish(client, "baremetal.node.create.end")
            event = json.loads(ws.receive_text())
        assert event["event_type"] == "baremetal.node.create.end"
        assert event["node_name"] == "node1"

    @pytest.mark.parametrize(
        "filters, expected",
        [
            ({"event_filters": ["compute.instance.update"]}, "compute.instance.update"),
            ({"node_filters": ["node9", "node3"]}, "volume.create.end"),
            ({"service_filters": ["image", "network"]}, "network.port.create.end"),
            (
                {"event_filters": ["compute.instance.delete.end"], "node_filters": []},
                "compute.instance.delete.end",
            ),
            (
                {"node_filters": ["node2"], "service_filters": ["network"]},
                "network.port.create.end",
            ),
            (
                {
                    "event_filters": list(FILTER_EVENTS),
                    "node_filters": ["node1"],
                    "service_filters": ["compute"],
                },
                "compute.instance.update",
            ),
        ],
        ids=["event", "node", "service", "event-nodes-cleared", "node+svc", "all"],
    )
    def test_only_the_event_every_filter_kind_admits_arrives(
        self, client: TestClient, filters: Dict[str, Any], expected: str
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            assert set_filters(ws, **filters)["status"] == "success"
            # The others go first: had any of them got through, it would be
            # received before the expected one.
            for event_type, payload in FILTER_EVENTS.items():
                if event_type != expected:
                    publish(client, event_type, payload)
            publish(client, expected, FILTER_EVENTS[expected])
            assert json.loads(ws.receive_text())["event_type"] == expected

    def test_status_counts_the_open_connections(
        self, app: App, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH), client.websocket_connect(PATH):
            status = client.get("/v1/status").json()
        assert status["websocket"]["connections"] == 2

    @pytest.mark.parametrize(
        "text, error",
        [
            ("not json", "message is not valid JSON"),
            ("[1, 2]", "message must be a JSON object"),
            ('{"action": "dance"}', "unknown action 'dance'; expected 'set_filters'"),
            ("{}", "unknown action None; expected 'set_filters'"),
            (
                '{"action": "set_filters", "node_filters": "node1"}',
                "node_filters must be a list of strings or null",
            ),
            (
                '{"action": "set_filters", "event_filters": [1]}',
                "event_filters must be a list of strings or null",
            ),
            (
                '{"action": "set_filters", "event_filter": []}',
                "unknown field 'event_filter'",
            ),
        ],
    )
    def test_bad_message_gets_an_error_and_the_connection_keeps_serving(
        self, client: TestClient, text: str, error: str
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            ws.send_text(text)
            assert json.loads(ws.receive_text()) == {"type": "error", "error": error}
            assert_still_serves(client, ws)

    def test_a_rejected_message_is_logged_at_debug_with_its_reason(
        self, client: TestClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="osism.api.routes")
        with client.websocket_connect(PATH) as ws:
            ws.send_text("not json")
            ws.receive_text()
        assert "Rejected client message: message is not valid JSON" in [
            record.getMessage() for record in caplog.records
        ]

    def test_binary_frame_gets_an_error_and_the_connection_keeps_serving(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            ws.send_bytes(b"\x00\x01")
            reply = json.loads(ws.receive_text())
            assert_still_serves(client, ws)
        assert reply == {
            "type": "error",
            "error": "binary frames are not supported; send JSON text",
        }

    @pytest.mark.parametrize(
        "limit, value, message, error",
        [
            (
                "MAX_FILTER_ENTRIES",
                2,
                {"event_filters": ["a", "b", "c"]},
                "event_filters has 3 entries, limit 2",
            ),
            (
                "MAX_FILTER_LENGTH",
                3,
                {"node_filters": ["abcd"]},
                "node_filters entry of 4 characters, limit 3",
            ),
            (
                "MAX_MESSAGE_BYTES",
                69,
                {"node_filters": ["x" * 23]},
                "message too large: 70 bytes, limit 69",
            ),
        ],
        ids=["entries", "entry-length", "message-bytes"],
    )
    def test_one_past_each_message_limit_is_an_error_and_the_connection_keeps_serving(
        self,
        client: TestClient,
        monkeypatch: pytest.MonkeyPatch,
        limit: str,
        value: int,
        message: Dict[str, Any],
        error: str,
    ) -> None:
        monkeypatch.setattr(protocol, limit, value)
        with client.websocket_connect(PATH) as ws:
            assert set_filters(ws, **message) == {"type": "error", "error": error}
            assert_still_serves(client, ws)

    def test_a_client_too_slow_for_its_replies_is_closed_1013(
        self, app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(app.manager, "send_to", lambda websocket, text: False)
        with client.websocket_connect(PATH) as ws:
            ws.send_text(json.dumps({"action": "set_filters"}))
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
        assert (info.value.code, info.value.reason) == (1013, "client too slow")
        assert app.manager.connections == {}

    def test_a_client_too_slow_for_the_error_at_connect_is_closed_1013(
        self, app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A malformed last_event_id is answered with an error reply, which
        # this client cannot take.
        monkeypatch.setattr(app.manager, "send_to", lambda websocket, text: False)
        with client.websocket_connect(f"{PATH}?last_event_id=x") as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
        assert (info.value.code, info.value.reason) == (1013, "client too slow")

    def test_a_client_asking_for_batches_gets_json_arrays(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(f"{PATH}?batch=1") as ws:
            publish(client, "baremetal.node.power_set.end")
            frame = json.loads(ws.receive_text())
        assert [event["event_type"] for event in frame] == [
            "baremetal.node.power_set.end"
        ]

    def test_ten_and_more_clients_all_receive_an_event(
        self, client: TestClient
    ) -> None:
        sockets: List[Any] = []
        try:
            for _ in range(12):
                sockets.append(client.websocket_connect(PATH).__enter__())
            publish(client, "baremetal.node.power_set.end")
            events = [json.loads(ws.receive_text()) for ws in sockets]
        finally:
            for ws in sockets:
                ws.__exit__(None, None, None)
        assert len({event["id"] for event in events}) == 1
        assert len(events) == 12

    def test_disconnect_removes_the_connection(
        self, app: App, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH):
            wait_until(lambda: len(app.manager.connections) == 1)
        wait_until(
            lambda: client.get("/v1/status").json()["websocket"]["connections"] == 0
        )

    def test_wrong_path_is_refused(self, client: TestClient) -> None:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/v1/events/nova") as ws:
                ws.receive_text()

    def test_heartbeats_arrive(self) -> None:
        app = App(heartbeat=0.05)
        with TestClient(app.app) as client, client.websocket_connect(PATH) as ws:
            set_filters(ws, event_filters=["nothing.matches"])
            heartbeat = json.loads(ws.receive_text())
        assert heartbeat["event_type"] == "heartbeat"
        assert heartbeat["source"] == "osism"
        assert heartbeat["data"] == {"message": "ping"}


class TestSecurity:
    def refused(
        self, client: TestClient, path: str = PATH, **kw: Any
    ) -> WebSocketDisconnect:
        with pytest.raises(WebSocketDisconnect) as info:
            with client.websocket_connect(path, **kw) as ws:
                ws.receive_text()
        return info.value

    def test_foreign_origin_is_refused_before_accept(
        self, app: App, client: TestClient
    ) -> None:
        headers = {"origin": "https://evil.example"}
        with pytest.raises(WebSocketDisconnect) as info:
            with client.websocket_connect(PATH, headers=headers):
                pytest.fail("the handshake was accepted")
        assert info.value.code == 1008
        assert app.manager.connections == {}

    @pytest.mark.parametrize(
        "origin, allowed",
        [
            (None, ()),
            ("http://testserver", ()),
            ("https://ui.example", ("https://ui.example",)),
            ("https://any.example", ("*",)),
        ],
        ids=["no-origin", "same-origin", "allowlisted", "wildcard"],
    )
    def test_allowed_origins_connect(self, origin: Any, allowed: Any) -> None:
        headers = {"origin": origin} if origin else {}
        app = App(allowed_origins=allowed)
        with TestClient(app.app) as client:
            with client.websocket_connect(PATH, headers=headers) as ws:
                assert set_filters(ws)["status"] == "success"

    @pytest.mark.parametrize("query", ["", "?token=wrong"], ids=["missing", "wrong"])
    def test_websocket_without_the_token_is_closed_1008(self, query: str) -> None:
        with TestClient(App(token=TOKEN).app) as client:
            error = self.refused(client, PATH + query)
        assert error.code == 1008
        assert error.reason == "missing or invalid token"

    def test_refused_token_gets_the_close_before_any_event(self) -> None:
        bearer = {"authorization": f"Bearer {TOKEN}"}
        with TestClient(App(token=TOKEN).app) as client:
            with client.websocket_connect(PATH, headers=bearer) as allowed:
                with client.websocket_connect(PATH + "?token=wrong") as refused:
                    publish(client, "baremetal.node.power_set.end", headers=bearer)
                    assert json.loads(allowed.receive_text())["source"] == "openstack"
                    with pytest.raises(WebSocketDisconnect) as info:
                        refused.receive_text()
        assert info.value.code == 1008

    @pytest.mark.parametrize("how", ["query", "header"])
    def test_websocket_with_the_token_is_served(self, how: str) -> None:
        path = PATH + (f"?token={TOKEN}" if how == "query" else "")
        headers = {"authorization": f"Bearer {TOKEN}"} if how == "header" else {}
        with TestClient(App(token=TOKEN).app) as client:
            with client.websocket_connect(path, headers=headers) as ws:
                assert set_filters(ws)["status"] == "success"

    @pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + TOKEN])
    def test_publish_without_the_token_is_401(self, header: Any) -> None:
        headers = {"authorization": header} if header else {}
        with TestClient(App(token=TOKEN).app) as client:
            response = publish(client, "a.b", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    def test_a_refused_publish_is_told_why_and_logged_with_its_peer(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="osism.api.routes")
        with TestClient(App(token=TOKEN).app) as client:
            response = publish(client, "a.b")
        assert response.json() == {"detail": "missing or invalid token"}
        assert [
            record.getMessage()
            for record in caplog.records
            if record.getMessage().startswith("Refused")
        ] == ["Refused publish from testclient:50000: missing or invalid token"]

    def test_publish_with_the_token_is_accepted(self) -> None:
        with TestClient(App(token=TOKEN).app) as client:
            headers = {"authorization": f"Bearer {TOKEN}"}
            assert publish(client, "a.b", headers=headers).status_code == 202

    def test_one_connection_past_the_limit_is_closed_1013(self) -> None:
        with TestClient(App(max_connections=2).app) as client:
            with client.websocket_connect(PATH), client.websocket_connect(PATH):
                error = self.refused(client)
        assert error.code == 1013
        assert error.reason == "too many connections"

    def test_publish_one_byte_past_the_limit_is_413(self) -> None:
        body = json.dumps({"event_type": "a.b", "payload": {}}).encode()
        with TestClient(App(max_publish_bytes=len(body)).app) as client:
            headers = {"content-type": "application/json"}
            assert client.post(PATH, content=body, headers=headers).status_code == 202
            response = client.post(PATH, content=body + b" ", headers=headers)
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]

    @pytest.mark.parametrize(
        "config, query, headers, held, line",
        [
            (
                {},
                "",
                {"origin": "https://evil.example"},
                0,
                "origin 'https://evil.example' is not this site nor in "
                "ALLOWED_ORIGINS",
            ),
            ({"token": TOKEN}, "?token=wrong", {}, 0, "missing or invalid token"),
            (
                {"max_connections": 1},
                "",
                {},
                1,
                "1 connections, the limit (MAX_CONNECTIONS)",
            ),
        ],
        ids=["origin", "token", "connections"],
    )
    def test_a_refused_websocket_is_logged_with_its_peer_and_why(
        self,
        caplog: pytest.LogCaptureFixture,
        config: Dict[str, Any],
        query: str,
        headers: Dict[str, str],
        held: int,
        line: str,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="osism.api.routes")
        with TestClient(App(**config).app) as client:
            open_ones = [client.websocket_connect(PATH) for _ in range(held)]
            for ws in open_ones:
                ws.__enter__()
            try:
                self.refused(client, PATH + query, headers=headers)
            finally:
                for ws in open_ones:
                    ws.__exit__(None, None, None)
        refusals = [
            record.getMessage()
            for record in caplog.records
            if record.getMessage().startswith("Refused WebSocket")
        ]
        assert refusals == [f"Refused WebSocket from testclient:50000: {line}"]

    def test_no_token_configured_warns_once_at_startup(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="osism.api.routes")
        with TestClient(App().app):
            pass
        warnings = [r for r in caplog.records if "API_TOKEN is not set" in r.message]
        assert len(warnings) == 1
        assert warnings[0].getMessage() == (
            "API_TOKEN is not set: anyone who can reach this port can watch "
            "events and publish them"
        )

    def test_the_token_never_reaches_the_logs(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        with TestClient(App(token=TOKEN).app) as client:
            with client.websocket_connect(f"{PATH}?token={TOKEN}") as ws:
                set_filters(ws)
            publish(client, "a.b", headers={"authorization": f"Bearer {TOKEN}"})
            self.refused(client, PATH + "?token=wrong-" + TOKEN)
            publish(client, "a.b", headers={"authorization": f"Bearer x{TOKEN}"})
        text = "\n".join(record.getMessage() for record in caplog.records)
        assert "Refused" in text
        assert TOKEN not in text


class TestSystemChannel:
    def test_a_client_the_channel_cannot_serve_is_closed_1000_bye(
        self, app: App, client: TestClient
    ) -> None:
        def broken() -> Any:
            raise RuntimeError("no status")

        app.bridge.status = broken  # type: ignore[method-assign]
        with client.websocket_connect("/v1/events/system") as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
        assert (info.value.code, info.value.reason) == (1000, "bye")


def bridge_reporting(bridge: EventBridge, **changes: Any) -> EventBridge:
    """``bridge`` with its status saying ``changes`` (a Redis link in a unit test)."""
    real = bridge.status
    bridge.status = lambda: dataclasses.replace(  # type: ignore[method-assign]
        real(), **changes
    )
    return bridge


class TestLifespanRedis:
    @pytest.fixture(autouse=True)
    def no_redis_answers(self, mocker: Any) -> None:
        """The watcher's probe finds no Redis, without a network."""
        mocker.patch("osism.services.bridge.link._redis_answers", return_value=False)

    @pytest.mark.parametrize(
        "connect_redis, mode, watching",
        [(True, "local", True), (False, "local", False), (True, "redis", False)],
        ids=["wanted", "not-wanted", "on-redis-already"],
    )
    def test_serves_at_once_and_looks_for_redis_in_the_background_when_wanted(
        self, connect_redis: bool, mode: str, watching: bool
    ) -> None:
        bridge = bridge_reporting(
            EventBridge(connect=False), mode=mode, subscribed=True
        )
        app = create_app(
            WebSocketManager(),
            bridge,
            connect_redis=connect_redis,
            heartbeat_interval=0,
            security=SecurityConfig(),
        )
        with TestClient(app) as client:
            status = client.get("/v1/status").json()
        assert status["ready"] is True
        assert status["bridge"]["watching_for_redis"] is watching
        # The watcher ends with the app.
        assert bridge.status().watching_for_redis is False

    @pytest.mark.parametrize(
        "connect_redis, started",
        [
            (
                True,
                "osism API started; event bridge in local mode, looking for "
                "Redis at redis.invalid:6390/0",
            ),
            (False, "osism API started; event bridge in local mode"),
        ],
        ids=["looking-for-redis", "local-only"],
    )
    def test_start_and_stop_are_logged_with_the_mode_and_where_redis_is_sought(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        connect_redis: bool,
        started: str,
    ) -> None:
        for name in (
            "REDIS_URL",
            "REDIS_SENTINELS",
            "REDIS_DB",
            "REDIS_TLS",
            "REDIS_USERNAME",
            "REDIS_PASSWORD",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("REDIS_HOST", "redis.invalid")
        monkeypatch.setenv("REDIS_PORT", "6390")
        caplog.set_level(logging.INFO, logger="osism.api.routes")
        app = create_app(
            WebSocketManager(),
            EventBridge(connect=False),
            connect_redis=connect_redis,
            heartbeat_interval=0,
            security=SecurityConfig(token=TOKEN),
        )
        with TestClient(app):
            pass
        assert [
            record.getMessage()
            for record in caplog.records
            if record.getMessage().startswith("osism API")
        ] == [started, "osism API stopped"]

    @pytest.mark.parametrize(
        "mode, subscribed, processor, ready",
        [
            ("redis", False, True, False),
            ("redis", True, True, True),
            ("redis", True, False, True),
            ("local", False, True, True),
            ("local", False, False, False),
        ],
        ids=[
            "redis-not-subscribed",
            "redis-subscribed",
            "redis-needs-no-processor",
            "embedded",
            "embedded-without-processor",
        ],
    )
    def test_ready_needs_a_subscription_in_redis_mode_and_a_processor_embedded(
        self, mode: str, subscribed: bool, processor: bool, ready: bool
    ) -> None:
        bridge = bridge_reporting(
            EventBridge(connect=False),
            mode=mode,
            subscribed=subscribed,
            processor_alive=processor,
        )
        app = create_app(
            WebSocketManager(),
            bridge,
            connect_redis=False,
            heartbeat_interval=0,
            security=SecurityConfig(),
        )
        with TestClient(app) as client:
            status = client.get("/v1/status").json()
        assert status["ready"] is ready
        assert status["bridge"]["mode"] == mode


class TestHandlerEdges:
    def test_a_disconnect_while_handling_a_message_removes_the_connection(
        self, app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def gone(*args: Any) -> str:
            raise WebSocketDisconnect(1001)

        monkeypatch.setattr(api, "handle_client_message", gone)
        with client.websocket_connect(PATH) as ws:
            wait_until(lambda: len(app.manager.connections) == 1)
            ws.send_text("{}")
            wait_until(lambda: app.manager.connections == {})

    @pytest.mark.asyncio
    async def test_filters_for_a_connection_already_gone_get_an_error(
        self, fake_websocket: Callable[[], MagicMock]
    ) -> None:
        message = {"type": "websocket.receive", "text": '{"action": "set_filters"}'}
        reply = await api.handle_client_message(
            WebSocketManager(), fake_websocket(), message
        )
        assert json.loads(reply) == {"type": "error", "error": "connection is closing"}

    def test_a_resume_reply_for_a_connection_gone_has_the_resume_keys_only(
        self, fake_websocket: Callable[[], MagicMock]
    ) -> None:
        keys = {"recovered": False, "replayed": 0, "oldest_id": None}
        reply = resume_reply(WebSocketManager(), fake_websocket())(keys)
        assert json.loads(reply) == {
            "type": "filter_update",
            "status": "success",
            **keys,
        }

    @pytest.mark.asyncio
    async def test_closing_a_closed_websocket_is_quiet(
        self, fake_websocket: Callable[[], MagicMock], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="osism.websocket")
        websocket = fake_websocket()
        websocket.close.side_effect = RuntimeError("already closed")
        await close_quietly(websocket, 1013, "client too slow")
        assert "Closing WebSocket with 1013 failed: already closed" in caplog.text


class TestPeer:
    @pytest.mark.parametrize(
        "client, expected",
        [
            (SimpleNamespace(host="10.0.0.7", port=51234), "10.0.0.7:51234"),
            (None, "unknown peer"),
        ],
        ids=["address", "no-address"],
    )
    def test_names_the_client_address_or_says_it_is_unknown(
        self, client: Any, expected: str
    ) -> None:
        assert peer(SimpleNamespace(client=client)) == expected


class TestPackageFace:
    def test_osism_api_app_is_the_app_uvicorn_serves(self) -> None:
        import osism.api
        from osism.api import routes

        assert osism.api.app is routes.app

    def test_an_unknown_name_is_an_attribute_error(self) -> None:
        import osism.api

        with pytest.raises(AttributeError, match="no_such_name"):
            getattr(osism.api, "no_such_name")
