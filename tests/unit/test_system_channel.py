"""The system channel: its messages from the typed statuses, and the endpoint."""

import asyncio
import dataclasses
import json
import logging
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from osism.api import system_channel
from osism.api.routes import create_app
from osism.api.security import SecurityConfig
from osism.services.bridge.status import BridgeStatus
from osism.services.event_bridge import EventBridge
from osism.services.fanout.status import ManagerStatus
from osism.services.websocket_manager import WebSocketManager
from osism.api.system_channel import (
    SYSTEM_PATH,
    SystemState,
    clock,
    iso,
    redis_state,
    serve_system_client,
)
from tests.conftest import WAIT_TIMEOUT

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
LIVE = BridgeStatus(
    mode="redis", redis="127.0.0.1:6379/0", redis_connected=True, subscribed=True
)


class Statuses:
    """The statuses a test changes between snapshots."""

    def __init__(self) -> None:
        self.manager = ManagerStatus(connections=2)
        self.bridge = LIVE

    def set_manager(self, **changes: Any) -> None:
        self.manager = dataclasses.replace(self.manager, **changes)

    def set_bridge(self, **changes: Any) -> None:
        self.bridge = dataclasses.replace(self.bridge, **changes)

    def state(self) -> SystemState:
        return SystemState(lambda: self.manager, lambda: self.bridge)


class TestRedisState:
    @pytest.mark.parametrize(
        "bridge, expected",
        [
            (LIVE, ("redis", True, True)),
            (
                BridgeStatus(mode="redis", redis_connected=True),
                ("redis", False, False),
            ),
            (BridgeStatus(mode="redis", subscribed=True), ("redis", False, True)),
            (BridgeStatus(mode="local"), ("local", False, False)),
            (
                BridgeStatus(mode="local", redis_connected=True, subscribed=True),
                ("local", False, True),
            ),
        ],
        ids=["live", "not-subscribed", "no-client", "embedded", "embedded-odd"],
    )
    def test_connected_needs_redis_mode_a_client_and_a_live_subscription(
        self, bridge: BridgeStatus, expected: Any
    ) -> None:
        assert redis_state(bridge) == expected


class TestSnapshot:
    def test_a_healthy_redis_replica(self) -> None:
        statuses = Statuses()
        statuses.set_manager(delivered=7, slow_disconnects=1, dropped_events=0)
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
        statuses.set_bridge(subscribed=False)
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

        statuses.set_bridge(subscribed=True)
        back = state.snapshot(T0 + 30)
        assert back["warnings"] == [] and back["state"] == "ok"
        assert back["redis"]["since"] == iso(T0 + 30)

    def test_embedded_mode_is_no_warning(self) -> None:
        statuses = Statuses()
        statuses.bridge = BridgeStatus(mode="local")
        message = statuses.state().snapshot(T0)
        assert message["state"] == "embedded"
        assert message["warnings"] == []

    def test_missed_and_dropped_events_are_warnings(self) -> None:
        statuses = Statuses()
        statuses.set_bridge(missed_warnings=3, dropped_events=2)
        statuses.set_manager(dropped_events=1)
        message = statuses.state().snapshot(T0)
        codes = {w["code"]: w.get("count") for w in message["warnings"]}
        assert codes == {"events_missed": 3, "events_dropped": 3}
        assert message["missed"] == 3 and message["dropped_events"] == 3

    def test_rates_are_events_per_second_over_the_last_second_or_more(self) -> None:
        statuses = Statuses()
        state = statuses.state()
        state.snapshot(T0)
        statuses.set_manager(received=10, delivered=30)
        assert state.snapshot(T0 + 0.5)["events_in_per_second"] == 0.0
        statuses.set_manager(received=20, delivered=60)
        message = state.snapshot(T0 + 2)
        assert message["events_in_per_second"] == 10.0
        assert message["events_out_per_second"] == 30.0

    def test_the_whole_message(self) -> None:
        statuses = Statuses()
        statuses.set_manager(
            received=10, delivered=30, dropped_events=1, slow_disconnects=1
        )
        statuses.set_bridge(subscriber_restarts=2, dropped_events=2, missed_warnings=3)

        assert statuses.state().snapshot(T0) == {
            "type": "system",
            "timestamp": "2023-11-14T22:13:20.000Z",
            "state": "ok",
            "redis": {
                "mode": "redis",
                "address": "127.0.0.1:6379/0",
                "connected": True,
                "since": "2023-11-14T22:13:20.000Z",
            },
            "subscription": {
                "live": True,
                "since": "2023-11-14T22:13:20.000Z",
                "restarts": 2,
            },
            "connections": 2,
            "events_in": 10,
            "events_out": 30,
            "events_in_per_second": 0.0,
            "events_out_per_second": 0.0,
            "dropped_events": 3,
            "slow_clients_closed": 1,
            "missed": 3,
            "warnings": [
                {
                    "code": "events_missed",
                    "count": 3,
                    "message": "3 events may have been missed",
                },
                {
                    "code": "events_dropped",
                    "count": 3,
                    "message": "3 events dropped at a full queue",
                },
            ],
        }

    @pytest.mark.parametrize(
        "manager, bridge, path, value",
        [
            ({"received": 3}, {}, ("events_in",), 3),
            ({"delivered": 5}, {}, ("events_out",), 5),
            ({"slow_disconnects": 6}, {}, ("slow_clients_closed",), 6),
            ({"connections": 4}, {}, ("connections",), 4),
            ({}, {"missed_warnings": 8}, ("missed",), 8),
            ({}, {"subscriber_restarts": 9}, ("subscription", "restarts"), 9),
            ({}, {"redis": "cache:6390/2"}, ("redis", "address"), "cache:6390/2"),
            ({"dropped_events": 1}, {"dropped_events": 2}, ("dropped_events",), 3),
        ],
        ids=[
            "received",
            "delivered",
            "slow",
            "connections",
            "missed",
            "restarts",
            "address",
            "dropped-both",
        ],
    )
    def test_each_figure_comes_from_its_status_field(
        self,
        manager: Dict[str, Any],
        bridge: Dict[str, Any],
        path: Tuple[str, ...],
        value: Any,
    ) -> None:
        statuses = Statuses()
        statuses.set_manager(**manager)
        statuses.set_bridge(**bridge)
        found: Any = statuses.state().snapshot(T0)
        for key in path:
            found = found[key]
        assert found == value

    def test_a_live_subscription_without_a_redis_client_is_degraded(self) -> None:
        statuses = Statuses()
        statuses.set_bridge(redis_connected=False)
        message = statuses.state().snapshot(T0)
        assert message["state"] == "degraded"
        assert message["redis"]["connected"] is False
        assert message["subscription"]["live"] is True
        assert [w["code"] for w in message["warnings"]] == ["redis_unreachable"]

    def test_the_subscription_has_its_own_since(self) -> None:
        statuses = Statuses()
        statuses.set_bridge(redis_connected=False)
        state = statuses.state()
        state.snapshot(T0)
        statuses.set_bridge(subscribed=False)
        message = state.snapshot(T0 + 10)
        assert message["redis"]["since"] == "2023-11-14T22:13:20.000Z"
        assert message["subscription"] == {
            "live": False,
            "since": "2023-11-14T22:13:30.000Z",
            "restarts": 0,
        }


class TestRates:
    @pytest.mark.parametrize(
        "before, after, elapsed, rates",
        [
            ((10, 30), (15, 40), 1.0, (5.0, 10.0)),
            ((10, 30), (20, 60), 2.0, (5.0, 15.0)),
            ((10, 30), (10, 30), 2.0, (0.0, 0.0)),
            ((10, 30), (4, 3), 2.0, (0.0, 0.0)),
            ((0, 0), (1, 2), 3.0, (0.33, 0.67)),
            ((10, 30), (20, 60), 0.5, (0.0, 0.0)),
        ],
        ids=[
            "after-one-second",
            "over-two-seconds",
            "nothing-flowed",
            "counters-went-back",
            "two-decimals",
            "under-a-second-not-yet",
        ],
    )
    def test_events_per_second_since_the_last_measure(
        self,
        before: Tuple[int, int],
        after: Tuple[int, int],
        elapsed: float,
        rates: Tuple[float, float],
    ) -> None:
        statuses = Statuses()
        state = statuses.state()
        statuses.set_manager(received=before[0], delivered=before[1])
        state.snapshot(T0)
        statuses.set_manager(received=after[0], delivered=after[1])
        message = state.snapshot(T0 + elapsed)
        assert (
            message["events_in_per_second"],
            message["events_out_per_second"],
        ) == rates

    def test_each_measure_starts_where_the_last_one_ended(self) -> None:
        statuses = Statuses()
        state = statuses.state()
        state.snapshot(T0)
        figures = []
        for seconds, received in ((0.5, 10), (1.0, 10), (3.0, 50)):
            statuses.set_manager(received=received)
            figures.append(state.snapshot(T0 + seconds)["events_in_per_second"])
        # 0.5 s: too soon; 1 s: 10 events since T0; 3 s: 40 since the 1 s mark
        assert figures == [0.0, 10.0, 20.0]


@pytest.fixture
def zone_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs in India (UTC+05:30)."""
    monkeypatch.setenv("TZ", "IST-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class TestWireTime:
    @pytest.mark.parametrize(
        "timestamp, text",
        [
            (T0, "2023-11-14T22:13:20.000Z"),
            (T0 + 0.25, "2023-11-14T22:13:20.250Z"),
            (T0 + 7200, "2023-11-15T00:13:20.000Z"),
        ],
    )
    def test_iso_is_utc_with_milliseconds_and_z_in_any_zone(
        self, zone_not_utc: None, timestamp: float, text: str
    ) -> None:
        assert iso(timestamp) == text

    def test_clock_is_utc_in_any_zone(self, zone_not_utc: None) -> None:
        assert clock(T0) == "22:13:20"


class FakeTime:
    """Stands for the time module in osism.system_channel: each look at the
    monotonic clock is ``step`` seconds after the one before, the first at
    1000; the wall clock says T0."""

    def __init__(self, step: float = 1.0) -> None:
        self.step = step
        self.now = 1000.0 - step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now

    def time(self) -> float:
        return T0


class SystemClient:
    """A WebSocket as serve_system_client uses it. ``sent``: each message it
    was sent, with the fake monotonic time it was sent at; ``incoming``: what
    its ``receive`` returns; ``receiving``: receives under way."""

    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.sent: "asyncio.Queue[Tuple[float, Dict[str, Any]]]" = asyncio.Queue()
        self.incoming: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.receiving = 0

    async def receive(self) -> Dict[str, Any]:
        self.receiving += 1
        try:
            return await self.incoming.get()
        finally:
            self.receiving -= 1

    async def send_text(self, text: str) -> None:
        self.sent.put_nowait((self.clock.now, json.loads(text)))

    async def next(self) -> Tuple[float, Dict[str, Any]]:
        """The next message sent and when; fails the test after WAIT_TIMEOUT."""
        return await asyncio.wait_for(self.sent.get(), WAIT_TIMEOUT)

    def all_sent(self) -> List[Dict[str, Any]]:
        messages = []
        while not self.sent.empty():
            messages.append(self.sent.get_nowait()[1])
        return messages


class Served:
    """serve_system_client running for one SystemClient."""

    def __init__(
        self, statuses: Statuses, clock: FakeTime, interval: Optional[float]
    ) -> None:
        self.client = SystemClient(clock)
        # Receives of the client still under way when the service returned.
        self.receiving_at_return: Optional[int] = None
        self.task = asyncio.create_task(self._serve(statuses, interval))

    async def _serve(self, statuses: Statuses, interval: Optional[float]) -> None:
        await serve_system_client(
            self.client,  # type: ignore[arg-type]
            statuses.state(),
            interval=interval,
            sample=0.001,
        )
        self.receiving_at_return = self.client.receiving

    async def ended(self) -> None:
        """Wait for the service to end by itself; fail after WAIT_TIMEOUT."""
        await asyncio.wait_for(self.task, WAIT_TIMEOUT)

    async def disconnect(self) -> None:
        self.client.incoming.put_nowait({"type": "websocket.disconnect"})
        await self.ended()


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """A fake clock for osism.api.system_channel. SYSTEM_INTERVAL (5 s) is no
    interval a test gives, and SAMPLE_INTERVAL (an hour) would stall every
    test: each shows if it is used where the argument should be."""
    fake = FakeTime()
    monkeypatch.setattr(system_channel, "time", fake)
    monkeypatch.setattr(system_channel, "SYSTEM_INTERVAL", 5.0)
    monkeypatch.setattr(system_channel, "SAMPLE_INTERVAL", 3600.0)
    return fake


class TestServeSystemClient:
    @pytest.mark.asyncio
    async def test_one_message_at_connect_then_one_every_interval(
        self, fake_time: FakeTime
    ) -> None:
        served = Served(Statuses(), fake_time, 3.0)
        sent = [await served.client.next() for _ in range(3)]
        await served.disconnect()
        assert [(at, m["reason"]) for at, m in sent] == [
            (1000, "connect"),
            (1003, "interval"),
            (1006, "interval"),
        ]

    @pytest.mark.asyncio
    async def test_the_interval_is_system_interval_unless_given(
        self, fake_time: FakeTime
    ) -> None:
        served = Served(Statuses(), fake_time, None)
        sent = [await served.client.next() for _ in range(3)]
        await served.disconnect()
        assert [at for at, _ in sent] == [1000, 1005, 1010]

    @pytest.mark.asyncio
    async def test_a_change_is_sent_at_the_next_look(self, fake_time: FakeTime) -> None:
        statuses = Statuses()
        served = Served(statuses, fake_time, 3600.0)
        await served.client.next()
        statuses.set_bridge(subscribed=False)
        _, message = await served.client.next()
        await served.disconnect()
        assert message["reason"] == "change"
        assert message["state"] == "degraded"

    @pytest.mark.asyncio
    async def test_a_new_count_of_a_warning_is_a_change(
        self, fake_time: FakeTime
    ) -> None:
        statuses = Statuses()
        statuses.set_bridge(missed_warnings=3)
        served = Served(statuses, fake_time, 3600.0)
        await served.client.next()
        statuses.set_bridge(missed_warnings=5)
        _, message = await served.client.next()
        await served.disconnect()
        assert message["reason"] == "change"
        assert message["warnings"] == [
            {
                "code": "events_missed",
                "count": 5,
                "message": "5 events may have been missed",
            }
        ]

    @pytest.mark.asyncio
    async def test_figures_that_move_wait_for_the_interval(
        self, fake_time: FakeTime
    ) -> None:
        statuses = Statuses()
        served = Served(statuses, fake_time, 3.0)
        await served.client.next()
        statuses.set_manager(received=50, connections=7)
        at, message = await served.client.next()
        await served.disconnect()
        assert (at, message["reason"]) == (1003, "interval")
        assert (message["events_in"], message["connections"]) == (50, 7)

    @pytest.mark.asyncio
    async def test_a_client_message_gets_an_error_reply(
        self, fake_time: FakeTime
    ) -> None:
        served = Served(Statuses(), fake_time, 3600.0)
        await served.client.next()
        served.client.incoming.put_nowait({"type": "websocket.receive", "text": "x"})
        _, reply = await served.client.next()
        await served.disconnect()
        assert reply == {
            "type": "error",
            "error": "the system channel takes no messages",
        }

    @pytest.mark.asyncio
    async def test_a_disconnect_ends_it_without_a_reply(
        self, fake_time: FakeTime
    ) -> None:
        served = Served(Statuses(), fake_time, 3600.0)
        await served.client.next()
        await served.disconnect()
        assert served.client.all_sent() == []
        assert served.receiving_at_return == 0

    @pytest.mark.asyncio
    @pytest.mark.parametrize("stalls_on", ["system", "error"])
    async def test_a_client_that_does_not_take_a_message_is_dropped(
        self,
        fake_time: FakeTime,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        stalls_on: str,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="osism.system")
        monkeypatch.setattr(system_channel, "SEND_TIMEOUT", 0.01)
        served = Served(Statuses(), fake_time, 3600.0)
        taken = served.client.send_text

        async def send_text(text: str) -> None:
            if json.loads(text)["type"] == stalls_on:
                await asyncio.Event().wait()
            await taken(text)

        served.client.send_text = send_text  # type: ignore[method-assign]
        served.client.incoming.put_nowait({"type": "websocket.receive", "text": "x"})
        await served.ended()
        assert [r.getMessage() for r in caplog.records] == [
            "System channel client too slow; closing it"
        ]

    @pytest.mark.asyncio
    async def test_a_client_gone_away_ends_it_quietly(
        self, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="osism.system")
        served = Served(Statuses(), fake_time, 1.0)
        taken = served.client.send_text

        async def send_text(text: str) -> None:
            if json.loads(text)["reason"] != "connect":
                raise RuntimeError("gone")
            await taken(text)

        served.client.send_text = send_text  # type: ignore[method-assign]
        await served.ended()
        assert served.task.result() is None
        # the receive it had under way is over when it returns
        assert served.receiving_at_return == 0
        assert [r.getMessage() for r in caplog.records] == [
            "System channel client went away: gone"
        ]


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


def receive_within(
    ws: WebSocketTestSession, timeout: float = WAIT_TIMEOUT
) -> Dict[str, Any]:
    """The next message the client gets; the test fails after ``timeout``
    seconds without one (leaving the endpoint closes the receive)."""
    received: List[Any] = []

    def receive() -> None:
        try:
            received.append(ws.receive_json())
        except BaseException as error:  # raised in the test's thread below
            received.append(error)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    thread.join(timeout)
    if not received:
        pytest.fail(f"no message within {timeout} s")
    if isinstance(received[0], BaseException):
        raise received[0]
    return received[0]


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

    def test_a_change_is_pushed_at_once_not_at_the_next_interval(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # An interval of an hour: within the wait only the change can bring
        # a message.
        monkeypatch.setattr(system_channel, "SAMPLE_INTERVAL", 0.01)
        monkeypatch.setattr(system_channel, "SYSTEM_INTERVAL", 3600.0)
        app = App()
        with TestClient(app.app) as client:
            with client.websocket_connect(SYSTEM_PATH) as ws:
                assert receive_within(ws)["reason"] == "connect"
                # A status saying Redis is gone: the next message says so.
                app.bridge.status = lambda: BridgeStatus(  # type: ignore[method-assign]
                    mode="redis", redis_connected=True
                )
                message = receive_within(ws)
        assert message["reason"] == "change"
        assert message["state"] == "degraded"
        assert [w["code"] for w in message["warnings"]] == ["redis_unreachable"]

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
