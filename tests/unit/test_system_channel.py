"""The system channel: its messages from status dicts, and the endpoint."""

import json
from typing import Any, Dict, Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from osism import system_channel
from osism.api import create_app
from osism.security import SecurityConfig
from osism.services.event_bridge import EventBridge
from osism.services.websocket_manager import WebSocketManager
from osism.system_channel import SYSTEM_PATH, SystemState, iso, redis_state

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
LIVE = {"mode": "redis", "subscribed": True, "redis": "127.0.0.1:6379/0"}


class Statuses:
    """Status dicts a test changes between snapshots."""

    def __init__(self) -> None:
        self.manager: Dict[str, Any] = {"connections": 2, "received": 0}
        self.bridge: Dict[str, Any] = dict(LIVE)

    def state(self) -> SystemState:
        return SystemState(lambda: self.manager, lambda: self.bridge)


class TestRedisState:
    @pytest.mark.parametrize(
        "bridge, expected",
        [
            ({"mode": "redis", "subscribed": True}, ("redis", True, True)),
            ({"mode": "redis", "subscribed": False}, ("redis", False, False)),
            ({"mode": "local"}, ("local", False, False)),
            ({}, ("local", False, False)),
            (
                {"mode": "redis", "subscribed": False, "redis_connected": True},
                ("redis", False, False),
            ),
            (
                {"mode": "redis", "subscribed": True, "redis_connected": False},
                ("redis", False, True),
            ),
        ],
    )
    def test_reads_whatever_keys_the_bridge_has(
        self, bridge: Dict[str, Any], expected: Any
    ) -> None:
        assert redis_state(bridge) == expected


class TestSnapshot:
    def test_a_healthy_redis_replica(self) -> None:
        statuses = Statuses()
        statuses.manager.update(delivered=7, slow_disconnects=1, dropped_events=0)
        message = statuses.state().snapshot(T0)

        assert message["type"] == "system"
        assert message["timestamp"] == "2023-11-14T22:13:20.000Z"
        assert message["state"] == "ok"
        assert message["redis"] == {
            "mode": "redis",
            "address": "127.0.0.1:6379/0",
            "connected": True,
            "since": iso(T0),
        }
        assert message["subscription"]["live"] is True
        assert message["connections"] == 2
        assert message["events_out"] == 7
        assert message["slow_clients_closed"] == 1
        assert message["warnings"] == []

    def test_an_outage_is_a_warning_with_the_time_it_began(self) -> None:
        statuses = Statuses()
        state = statuses.state()
        state.snapshot(T0)
        statuses.bridge["subscribed"] = False
        state.snapshot(T0 + 10)
        message = state.snapshot(T0 + 25)

        assert message["state"] == "degraded"
        assert message["redis"]["connected"] is False
        assert message["redis"]["since"] == iso(T0 + 10)
        [warning] = message["warnings"]
        assert warning["code"] == "redis_unreachable"
        assert warning["since"] == iso(T0 + 10)
        assert warning["message"] == (
            "Redis unreachable since 22:13:30 UTC: events are delayed"
        )

        statuses.bridge["subscribed"] = True
        back = state.snapshot(T0 + 30)
        assert back["warnings"] == [] and back["state"] == "ok"
        assert back["redis"]["since"] == iso(T0 + 30)

    def test_embedded_mode_is_no_warning(self) -> None:
        statuses = Statuses()
        statuses.bridge = {"mode": "local"}
        message = statuses.state().snapshot(T0)
        assert message["state"] == "embedded"
        assert message["warnings"] == []

    def test_missed_and_dropped_events_are_warnings(self) -> None:
        statuses = Statuses()
        statuses.bridge.update(missed=3, dropped_events=2)
        statuses.manager["dropped_events"] = 1
        message = statuses.state().snapshot(T0)
        codes = {w["code"]: w.get("count") for w in message["warnings"]}
        assert codes == {"events_missed": 3, "events_dropped": 3}
        assert message["missed"] == 3 and message["dropped_events"] == 3

    def test_rates_are_events_per_second_over_the_last_second_or_more(self) -> None:
        statuses = Statuses()
        state = statuses.state()
        state.snapshot(T0)
        statuses.manager.update(received=10, delivered=30)
        assert state.snapshot(T0 + 0.5)["events_in_per_second"] == 0.0
        statuses.manager.update(received=20, delivered=60)
        message = state.snapshot(T0 + 2)
        assert message["events_in_per_second"] == 10.0
        assert message["events_out_per_second"] == 30.0

    def test_values_of_the_wrong_type_count_as_zero(self) -> None:
        statuses = Statuses()
        statuses.manager = {"connections": "many", "delivered": True}
        message = statuses.state().snapshot(T0)
        assert message["connections"] == 0 and message["events_out"] == 0


class App:
    def __init__(self, **security: Any) -> None:
        self.manager = WebSocketManager()
        self.bridge = EventBridge(connect=False)
        self.app = create_app(
            self.manager,
            self.bridge,
            connect_redis=False,
            heartbeat_interval=0,
            security=SecurityConfig(**security),
        )


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system_channel, "SAMPLE_INTERVAL", 0.01)
    monkeypatch.setattr(system_channel, "SYSTEM_INTERVAL", 0.05)


@pytest.fixture
def client(fast: None) -> Iterator[TestClient]:
    with TestClient(App().app) as test_client:
        yield test_client


class TestEndpoint:
    def test_first_message_at_connect_then_every_interval(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(SYSTEM_PATH) as ws:
            first = ws.receive_json()
            second = ws.receive_json()
        assert first["reason"] == "connect"
        assert first["state"] == "embedded"
        assert second["reason"] == "interval"

    def test_a_change_is_pushed_at_once(self, fast: None) -> None:
        app = App()
        with TestClient(app.app) as client:
            with client.websocket_connect(SYSTEM_PATH) as ws:
                assert ws.receive_json()["reason"] == "connect"
                # A status saying Redis is gone: the next message says so.
                app.bridge.status = lambda: {  # type: ignore[method-assign]
                    "mode": "redis",
                    "subscribed": False,
                }
                for _ in range(50):
                    message = ws.receive_json()
                    if message["reason"] == "change":
                        break
        assert message["state"] == "degraded"
        assert message["warnings"][0]["code"] == "redis_unreachable"

    def test_a_client_message_gets_an_error_and_the_channel_stays(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(SYSTEM_PATH) as ws:
            ws.receive_json()
            ws.send_text('{"action": "set_filters"}')
            for _ in range(50):
                message = ws.receive_json()
                if message["type"] == "error":
                    break
            assert message == {
                "type": "error",
                "error": "the system channel takes no messages",
            }
            assert ws.receive_json()["type"] == "system"

    def test_counts_the_event_clients(self, client: TestClient) -> None:
        with client.websocket_connect("/v1/events/openstack"):
            with client.websocket_connect(SYSTEM_PATH) as ws:
                assert ws.receive_json()["connections"] == 1

    def test_same_token_rule_as_the_events_endpoint(self, fast: None) -> None:
        app = App(token="t0ken")
        with TestClient(app.app) as client:
            with pytest.raises(WebSocketDisconnect) as refused:
                with client.websocket_connect(SYSTEM_PATH) as ws:
                    ws.receive_json()
            assert refused.value.code == 1008
            with client.websocket_connect(SYSTEM_PATH + "?token=t0ken") as ws:
                assert ws.receive_json()["type"] == "system"

    def test_foreign_origin_refused(self, client: TestClient) -> None:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(
                SYSTEM_PATH, headers={"origin": "https://evil.example"}
            ) as ws:
                ws.receive_json()
        assert refused.value.code == 1008

    def test_events_info_names_the_new_endpoints(self, client: TestClient) -> None:
        info = client.get("/v1/events").json()
        assert info["system"] == SYSTEM_PATH
        assert info["page"] == "/events"
        assert info["metrics"] == "/metrics"
        assert json.dumps(client.get("/").json()) == '{"result": "ok"}'
