"""Priority filters, event type patterns and service names.

Through ``WebSocketConnection.matches_filters``, the protocol's validation,
and the app (TestClient): what a client with such filters receives.
"""

import json
from typing import Any, Dict, Iterator, List, Optional
from unittest.mock import MagicMock

import pytest
from fastapi.testclient import TestClient

from osism.api.routes import create_app
from osism.api.wire import parse_client_message
from osism.api.security import SecurityConfig
from osism.core import filters
from osism.services.event_bridge import EventBridge
from osism.core.notifications import event_fields
from osism.services.websocket_manager import (
    EventMessage,
    WebSocketConnection,
    WebSocketManager,
)

PATH = "/v1/events/openstack"


def event(
    event_type: str,
    priority: Optional[str] = None,
    service: Optional[str] = None,
    payload: Optional[Dict[str, Any]] = None,
) -> EventMessage:
    meta = {"priority": priority, "service": service}
    meta = {k: v for k, v in meta.items() if v is not None}
    data, node = event_fields(event_type, payload or {}, meta)
    return EventMessage(event_type, "openstack", data, node)


def connection(**lists: List[str]) -> WebSocketConnection:
    conn = WebSocketConnection(MagicMock())
    for kind, values in lists.items():
        setattr(conn, kind, values)
    return conn


class TestPriorityFilters:
    def test_only_the_priorities_named_pass(self) -> None:
        conn = connection(priority_filters=["ERROR", "CRITICAL"])
        assert conn.matches_filters(event("instance.create.error", "ERROR"))
        assert conn.matches_filters(event("a.b", "CRITICAL"))
        assert not conn.matches_filters(event("instance.create.end", "INFO"))

    def test_an_event_without_a_priority_does_not_pass(self) -> None:
        conn = connection(priority_filters=["INFO"])
        assert not conn.matches_filters(event("a.b"))
        assert not conn.matches_filters(EventMessage("a.b", "openstack", {}))

    def test_warn_and_warning_are_one_priority(self) -> None:
        # oslo.messaging sends WARN for notifier.warning()
        assert connection(priority_filters=["WARNING"]).matches_filters(
            event("a.b", "WARN")
        )
        assert connection(priority_filters=["WARN"]).matches_filters(
            event("a.b", "WARNING")
        )

    @pytest.mark.asyncio
    async def test_update_filters_stores_them_in_upper_case(self) -> None:
        manager = WebSocketManager()
        websocket = MagicMock()
        manager.connections[websocket] = WebSocketConnection(websocket)
        await manager.update_filters(websocket, priority_filters=["error", "Info"])
        conn = manager.connections[websocket]
        assert conn.priority_filters == ["ERROR", "INFO"]
        assert conn.matches_filters(event("a.b", "error"))
        await manager.update_filters(websocket, event_filters=["x"])
        assert conn.priority_filters == ["ERROR", "INFO"]
        await manager.update_filters(websocket, priority_filters=[])
        assert conn.matches_filters(event("x", "DEBUG"))

    def test_and_ed_with_the_other_kinds(self) -> None:
        conn = connection(priority_filters=["ERROR"], service_filters=["nova"])
        assert conn.matches_filters(event("instance.create.error", "ERROR"))
        assert not conn.matches_filters(event("image.upload", "ERROR"))
        assert not conn.matches_filters(event("instance.create.end", "INFO"))


class TestEventPatterns:
    @pytest.mark.parametrize(
        "pattern, event_type, expected",
        [
            (
                "baremetal.node.provision_set.*",
                "baremetal.node.provision_set.end",
                True,
            ),
            (
                "baremetal.node.provision_set.*",
                "baremetal.node.provision_set.x.y",
                True,
            ),
            ("baremetal.node.provision_set.*", "baremetal.node.power_set.end", False),
            ("*.error", "instance.create.error", True),
            ("*.error", "compute.instance.create.error", True),
            ("*.error", "image.upload", False),
            ("*.error", "instance.create.errors", False),
            ("compute.*", "computex.instance", False),
            ("compute.*.end", "compute.instance.create.end", True),
            ("*", "anything.at.all", True),
            ("*", "", True),
        ],
    )
    def test_star_matches_any_run_of_characters(
        self, pattern: str, event_type: str, expected: bool
    ) -> None:
        conn = connection(event_filters=[pattern])
        assert conn.matches_filters(event(event_type)) is expected

    def test_exact_entries_and_patterns_together(self) -> None:
        conn = connection(event_filters=["image.upload", "*.error", "a.*.c"])
        assert conn.matches_filters(event("image.upload"))
        assert conn.matches_filters(event("instance.create.error"))
        assert conn.matches_filters(event("a.b.c"))
        assert not conn.matches_filters(event("image.create"))

    def test_a_dot_in_an_entry_is_a_dot(self) -> None:
        assert not connection(event_filters=["a.b"]).matches_filters(event("axb"))
        assert not connection(event_filters=["a.b*"]).matches_filters(event("axb"))

    def test_patterns_are_compiled_when_set_not_per_event(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        conn = connection(event_filters=["*.end", "*.error"])

        def no_compile(*args: Any) -> Any:
            raise AssertionError("compiled per event")

        monkeypatch.setattr(filters.re, "compile", no_compile)
        for _ in range(3):
            assert conn.matches_filters(event("x.end"))
            assert not conn.matches_filters(event("x.start"))


class TestServiceFilters:
    @pytest.mark.parametrize(
        "service_filter, event_type, service, expected",
        [
            # the service's name matches every event of that service
            ("nova", "instance.update", "nova", True),
            ("nova", "compute.instance.create.end", "nova", True),
            ("nova", "service.update", None, True),
            ("nova", "baremetal.node.update.end", "ironic", False),
            ("ironic", "baremetal.node.update.end", "ironic", True),
            ("neutron", "port.create.end", "neutron", True),
            ("cinder", "snapshot.create.end", None, True),
            ("glance", "image.upload", "glance", True),
            ("keystone", "identity.project.created", "keystone", True),
            # compute answers for nova's versioned events too
            ("compute", "instance.create.end", "nova", True),
            ("compute", "service.update", "nova", True),
            ("compute", "aggregate.create.end", None, True),
            ("compute", "port.create.end", "neutron", False),
            # the seed's service types stand for their services
            ("network", "port.create.end", "neutron", True),
            ("volume", "snapshot.create.end", "cinder", True),
            ("identity", "identity.user.deleted", None, True),
            # the seed: the first segment of the event type
            ("baremetal", "baremetal.node.power_set", None, True),
            ("baremetal", "compute.instance.update", None, False),
            ("instance", "instance.update", "nova", True),
            ("foo", "foo.bar", None, True),
            ("unknown", "", None, True),
            # nova's volume.usage: its first segment is volume
            ("volume", "volume.usage", "nova", True),
        ],
    )
    def test_first_segment_or_emitting_service(
        self,
        service_filter: str,
        event_type: str,
        service: Optional[str],
        expected: bool,
    ) -> None:
        conn = connection(service_filters=[service_filter])
        assert conn.matches_filters(event(event_type, service=service)) is expected

    def test_the_emitting_service_comes_from_the_metadata(self) -> None:
        # an event type no table knows, from a service the listener knows
        conn = connection(service_filters=["neutron"])
        assert conn.matches_filters(event("policy.create.end", service="neutron"))
        assert not conn.matches_filters(event("policy.create.end"))


class TestProtocolValidation:
    def parse(self, **filters: Any) -> Any:
        return parse_client_message(json.dumps({"action": "set_filters", **filters}))

    def test_priorities_are_kept_in_upper_case(self) -> None:
        parsed, error = self.parse(priority_filters=["error", " Critical", "warning"])
        assert error is None
        assert parsed.priority_filters == ["ERROR", "CRITICAL", "WARNING"]

    def test_an_unknown_priority_gets_the_list_of_priorities(self) -> None:
        parsed, error = self.parse(priority_filters=["LOUD"])
        assert error == (
            "priority_filters entry 'LOUD' is not a notification priority; use "
            "one of AUDIT, CRITICAL, DEBUG, ERROR, INFO, SAMPLE, WARN (or WARNING)"
        )

    def test_a_bad_character_gets_the_characters_allowed(self) -> None:
        parsed, error = self.parse(event_filters=["a b.*"])
        assert error == (
            "event_filters entry 'a b.*': character ' ' is not allowed in a "
            "pattern (letters, digits, '_', '-', ':', '.' and '*')"
        )

    @pytest.mark.parametrize("entry", ["LOUD", "", "info!"])
    def test_an_unknown_priority_is_named(self, entry: str) -> None:
        parsed, error = self.parse(priority_filters=["INFO", entry])
        assert parsed is None
        assert f"priority_filters entry {entry!r}" in error
        assert "ERROR" in error

    def test_priorities_must_be_a_list_of_strings(self) -> None:
        parsed, error = self.parse(priority_filters="ERROR")
        assert parsed is None
        assert error == "priority_filters must be a list of strings or null"

    @pytest.mark.parametrize(
        "pattern, reason",
        [
            ("a..*", "empty segment"),
            ("*.", "empty segment"),
            (".*", "empty segment"),
            ("a b.*", "character ' '"),
            ("a/*", "character '/'"),
            ("a.*?", "character '?'"),
        ],
    )
    def test_a_bad_pattern_is_named(self, pattern: str, reason: str) -> None:
        parsed, error = self.parse(event_filters=["ok.*", pattern])
        assert parsed is None
        assert f"event_filters entry {pattern!r}" in error
        assert reason in error

    @pytest.mark.parametrize("pattern", ["*", "*.error", "a-b_c:d.*", "x.*.y"])
    def test_good_patterns_pass(self, pattern: str) -> None:
        parsed, error = self.parse(event_filters=[pattern])
        assert error is None and parsed.event_filters == [pattern]

    def test_exact_entries_are_taken_as_they_are(self) -> None:
        parsed, error = self.parse(event_filters=["my event", "a..b", ""])
        assert error is None and parsed.event_filters == ["my event", "a..b", ""]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(
        WebSocketManager(),
        EventBridge(connect=False),
        connect_redis=False,
        heartbeat_interval=0,
        security=SecurityConfig(),
    )
    with TestClient(app) as test_client:
        yield test_client


def post(client: TestClient, event_type: str, **meta: Any) -> None:
    body = {"event_type": event_type, "payload": {"seq": event_type}, **meta}
    response = client.post(PATH, json=body)
    assert response.status_code == 202, response.text


def set_filters(ws: Any, **lists: Any) -> Dict[str, Any]:
    ws.send_text(json.dumps({"action": "set_filters", **lists}))
    reply: Dict[str, Any] = json.loads(ws.receive_text())
    return reply


class TestThroughTheApp:
    def test_priority_filter_lets_only_errors_through(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            reply = set_filters(ws, priority_filters=["error"])
            assert reply["priority_filters"] == ["ERROR"]
            post(client, "instance.create.end", priority="INFO")
            post(client, "instance.create.error", priority="ERROR")
            post(client, "image.upload")
            post(client, "image.upload", priority="error")
            first = json.loads(ws.receive_text())
            second = json.loads(ws.receive_text())
        assert [first["event_type"], second["event_type"]] == [
            "instance.create.error",
            "image.upload",
        ]
        assert first["data"]["_osism"]["priority"] == "ERROR"
        assert second["data"]["_osism"]["priority"] == "ERROR"

    def test_service_and_pattern_filters(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            set_filters(ws, service_filters=["compute"], event_filters=["*.end"])
            post(client, "instance.create.start", service="nova")
            post(client, "port.create.end", service="neutron")
            post(client, "instance.create.end", publisher_id="nova-compute:h1")
            received = json.loads(ws.receive_text())
        assert received["event_type"] == "instance.create.end"
        assert received["data"]["_osism"]["service"] == "nova"

    @pytest.mark.parametrize(
        "lists, named",
        [
            ({"event_filters": ["a..*"]}, "event_filters entry 'a..*'"),
            ({"event_filters": ["x y*"]}, "event_filters entry 'x y*'"),
            ({"priority_filters": ["LOUD"]}, "priority_filters entry 'LOUD'"),
        ],
    )
    def test_a_bad_entry_gets_an_error_reply_and_changes_nothing(
        self, client: TestClient, lists: Dict[str, Any], named: str
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            set_filters(ws, priority_filters=["ERROR"])
            reply = set_filters(ws, **lists)
            assert reply["type"] == "error"
            assert named in reply["error"]
            # the filters in force are unchanged and the connection serves on
            post(client, "a.b", priority="INFO")
            post(client, "a.c", priority="ERROR")
            assert json.loads(ws.receive_text())["event_type"] == "a.c"
            assert set_filters(ws, priority_filters=[])["priority_filters"] == []

    def test_events_info_describes_the_new_filters(self, client: TestClient) -> None:
        info = client.get("/v1/events").json()
        assert "priority_filters" in info["client_messages"]["set_filters"]


def test_metadata_without_a_service_or_priority_string() -> None:
    data = {"_osism": {"service": None, "priority": None}}
    assert filters.emitting_service("instance", data) == "nova"
    assert filters.emitting_service("foo", data) is None
    assert filters.priority_of(data) is None
    assert filters.priority_of({"_osism": "not a dict"}) is None
