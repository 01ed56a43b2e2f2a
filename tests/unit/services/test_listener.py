"""The listener: parsing, acknowledgement, configuration, lifecycle, CLI.

No network and no threads: messages are fakes handed to ``on_message``, the
consumer loop runs on kombu's in-process ``memory://`` transport, and the
thread ``run`` would start is replaced by one that runs its target inline.
"""

import functools
import json
import logging
import signal
import threading
import types
import urllib.request
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from unittest.mock import MagicMock

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection, Consumer
from kombu.utils import functional as kombu_functional

from osism.cli import main as cli
from osism.core import backoff
from osism.services.listener import consumer as listener_module
from osism.services.listener import handover as listener_handover
from osism.services.listener import process as listener_process
from osism.services.listener.consumer import (
    DEFAULT_TOPICS,
    REQUEUE_MAX_DELAY,
    REQUEUE_MIN_DELAY,
    RESTART_MIN_DELAY,
    SERVICES,
    Binding,
    ListenerConfig,
    MalformedNotification,
    Notification,
    NotificationListener,
    _StopRequested,
    parse_notification,
)
from osism.services.listener.process import install_signal_handlers

pytestmark = pytest.mark.usefixtures("bounded_stop_event")

LOGGER = "osism.listener"


@pytest.fixture(autouse=True)
def highest_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every back-off draws its highest delay, the step itself, so that a test
    reads the steps; the tests named ..._draw... draw other delays."""
    monkeypatch.setattr(backoff, "source", lambda: 1.0)


def draw(monkeypatch: pytest.MonkeyPatch, *values: float) -> None:
    """Every back-off draws ``values`` in turn (then the test fails)."""
    monkeypatch.setattr(backoff, "source", iter(values).__next__)


IRONIC_PAYLOAD = {
    "ironic_object.name": "NodeSetPowerStatePayload",
    "ironic_object.data": {"name": "node-1", "uuid": "1be26c0b"},
}


def envelope(message: Any) -> bytes:
    """A body as oslo.messaging sends it: the message JSON inside JSON."""
    inner = message if isinstance(message, str) else json.dumps(message)
    return json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()


class FakeBridge:
    """Answers add_event with the next of ``answers`` (True once they run out)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.events: List[Tuple[str, Any]] = []
        self.metas: List[Optional[Dict[str, Any]]] = []
        self.calls: List[str] = []

    def use_redis(self) -> bool:
        self.calls.append("use_redis")
        return True

    def add_event(
        self, event_type: str, payload: Any, meta: Optional[Dict[str, Any]] = None
    ) -> bool:
        self.events.append((event_type, payload))
        self.metas.append(meta)
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    def shutdown(self) -> None:
        self.calls.append("shutdown")


class FakeMessage:
    """A received message that records what was done with it."""

    def __init__(
        self, body: Any, routing_key: str = "ironic_versioned_notifications.info"
    ) -> None:
        self.body = body
        self.delivery_info: Optional[Dict[str, Any]] = {
            "exchange": "ironic",
            "routing_key": routing_key,
        }
        self.outcome: Optional[str] = None

    def ack(self) -> None:
        self._settle("ack")

    def requeue(self) -> None:
        self._settle("requeue")

    def reject(self, requeue: bool = False) -> None:
        self._settle("reject+requeue" if requeue else "reject")

    def _settle(self, outcome: str) -> None:
        assert self.outcome is None, f"settled twice: {self.outcome}, {outcome}"
        self.outcome = outcome


def ironic_only(name: str = "ironic", queue: str = "q") -> ListenerConfig:
    return ListenerConfig(
        url="memory://localhost/",
        bindings=(
            Binding("ironic", name, ("ironic_versioned_notifications.*",), queue),
        ),
    )


class Waits(List[float]):
    """Stands in for the listener's pause: records each delay instead of
    waiting; answers True (stopped) from pause ``stop_at`` on, else False.
    A listener that keeps pausing fails the test instead of spinning."""

    LIMIT = 100

    def __init__(self, stop_at: int = 0) -> None:
        super().__init__()
        self.stop_at = stop_at

    def __call__(self, delay: float) -> bool:
        self.append(delay)
        if len(self) > self.LIMIT:
            pytest.fail(f"the listener paused more than {self.LIMIT} times")
        return 0 < self.stop_at <= len(self)


def make_listener(
    bridge: FakeBridge, config: Optional[ListenerConfig] = None
) -> Tuple[NotificationListener, Waits]:
    waits = Waits()
    config = config or ironic_only()
    listener = NotificationListener(Connection(config.url), bridge, config, wait=waits)
    return listener, waits


class TestParseNotification:
    NOTIFICATION = {
        "event_type": "baremetal.node.power_set.end",
        "payload": IRONIC_PAYLOAD,
        "priority": "INFO",
        "publisher_id": "ironic-conductor.host-1",
        "message_id": "6f1a0e58",
    }

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(envelope(NOTIFICATION), id="oslo-envelope-bytes"),
            pytest.param(envelope(NOTIFICATION).decode(), id="oslo-envelope-str"),
            pytest.param(json.dumps(NOTIFICATION).encode(), id="plain-bytes"),
            pytest.param(json.dumps(NOTIFICATION), id="plain-str"),
            pytest.param(NOTIFICATION, id="already-decoded-mapping"),
            pytest.param(
                {"oslo.version": "2.0", "oslo.message": json.dumps(NOTIFICATION)},
                id="decoded-envelope",
            ),
        ],
    )
    def test_takes_event_type_payload_and_ids_from_every_form(self, body: Any) -> None:
        assert parse_notification(body) == Notification(
            "baremetal.node.power_set.end",
            IRONIC_PAYLOAD,
            "ironic-conductor.host-1",
            "6f1a0e58",
            priority="INFO",
            service="ironic",
        )

    def test_ids_that_are_missing_or_not_strings_are_none(self) -> None:
        body = {"event_type": "compute.instance.update", "payload": {}}
        assert parse_notification(dict(body, message_id=7)) == Notification(
            "compute.instance.update", {}, None, None
        )

    def test_an_empty_payload_object_is_a_notification(self) -> None:
        assert parse_notification(b'{"event_type": "a.b", "payload": {}}').payload == {}

    # The reason is the end of the operator's warning: matched in full (a
    # reason "... not JSON: <the parser's error>" up to the colon).
    @pytest.mark.parametrize(
        "body, reason",
        [
            pytest.param(b"not json", "^message body is not JSON: ", id="not-json"),
            pytest.param(b"", "^message body is not JSON: ", id="empty-body"),
            pytest.param(b"\xff\xfe{}", "^message body is not JSON: ", id="not-utf8"),
            pytest.param(
                '{"event_type": "a.b"}'.encode("utf-16"),
                "^message body is not JSON: ",
                id="utf-16",
            ),
            pytest.param(
                b"[1, 2]", "^message body is not a JSON object$", id="json-array"
            ),
            pytest.param(
                b'"text"', "^message body is not a JSON object$", id="json-string"
            ),
            pytest.param(
                json.dumps({"oslo.message": {"event_type": "a"}}),
                r"^oslo\.message is not a string$",
                id="oslo-message-object",
            ),
            pytest.param(
                json.dumps({"oslo.message": None}),
                r"^oslo\.message is not a string$",
                id="oslo-message-null",
            ),
            pytest.param(
                envelope("{broken"),
                r"^oslo\.message is not JSON: ",
                id="oslo-bad-json",
            ),
            pytest.param(
                envelope("[1]"),
                r"^oslo\.message is not a JSON object$",
                id="oslo-message-array",
            ),
            pytest.param(b'{"payload": {}}', "^no event_type$", id="no-event-type"),
            pytest.param(
                b'{"event_type": "", "payload": {}}',
                "^no event_type$",
                id="empty-type",
            ),
            pytest.param(
                b'{"event_type": 5, "payload": {}}',
                "^no event_type$",
                id="type-number",
            ),
            pytest.param(
                envelope({"payload": {}}), "^no event_type$", id="oslo-no-event-type"
            ),
        ],
    )
    def test_rejects_what_is_not_a_notification(self, body: Any, reason: str) -> None:
        with pytest.raises(MalformedNotification, match=reason):
            parse_notification(body)

    def test_a_publisher_id_that_names_no_service_leaves_it_unknown(self) -> None:
        body = {"event_type": "a.b", "payload": {}, "publisher_id": "host-7.x"}
        assert parse_notification(body).meta() == {"publisher_id": "host-7.x"}

    def test_malformed_is_a_value_error(self) -> None:
        assert issubclass(MalformedNotification, ValueError)


A_B = b'{"event_type": "a.b", "payload": {}}'


class TestAcknowledgement:
    """Acked only once the bridge took the event; until then the message waits."""

    def test_a_notification_the_bridge_took_is_acked(self) -> None:
        bridge = FakeBridge(True)
        listener, waits = make_listener(bridge)
        message = FakeMessage(
            envelope({"event_type": "baremetal.node.power_set.end", "payload": {}})
        )
        listener.on_message(message)
        assert bridge.events == [("baremetal.node.power_set.end", {})]
        assert message.outcome == "ack"
        assert (listener.acknowledged, listener.retried, waits) == (1, 0, [])

    def test_every_acknowledgement_is_traced_at_debug_level(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # --log-level debug follows each message through the listener
        listener, _ = make_listener(FakeBridge())
        body = envelope({"event_type": "a.b", "payload": {}, "message_id": "m-1"})
        with caplog.at_level(logging.DEBUG, LOGGER):
            listener.on_message(FakeMessage(body, routing_key="notifications.info"))
        assert [r.getMessage() for r in caplog.records] == [
            "Acknowledged a.b from notifications.info (message m-1)"
        ]

    def test_the_notification_ids_reach_the_bridge_as_metadata(self) -> None:
        bridge = FakeBridge()
        listener, _ = make_listener(bridge)
        message_id = str(uuid.uuid4())
        listener.on_message(
            FakeMessage(
                envelope(
                    {
                        "event_type": "a.b",
                        "payload": {},
                        "message_id": message_id,
                        "publisher_id": "nova-compute.host1",
                    }
                )
            )
        )
        listener.on_message(FakeMessage(A_B))
        # The service is the binding's (the exchange it arrived on).
        assert bridge.metas == [
            {
                "service": "ironic",
                "message_id": message_id,
                "publisher_id": "nova-compute.host1",
            },
            {"service": "ironic"},
        ]

    def test_one_the_bridge_does_not_take_waits_unacked_until_it_does(self) -> None:
        bridge = FakeBridge(False, False, True)
        listener, waits = make_listener(bridge)
        message = FakeMessage(A_B)
        listener.on_message(message)
        # Offered three times, never requeued (FakeMessage fails a second
        # settlement), acked once the bridge took it.
        assert len(bridge.events) == 3
        assert message.outcome == "ack"
        assert waits == [REQUEUE_MIN_DELAY, 2 * REQUEUE_MIN_DELAY]
        assert (listener.acknowledged, listener.retried) == (1, 2)

    def test_a_bridge_that_raises_counts_as_not_taken(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, waits = make_listener(FakeBridge(RuntimeError("boom"), True))
        message = FakeMessage(A_B)
        with caplog.at_level(logging.ERROR, LOGGER):
            listener.on_message(message)
        assert message.outcome == "ack"
        assert waits == [REQUEUE_MIN_DELAY]
        assert "Bridge failed on a.b: boom" in caplog.text

    def test_retries_back_off_doubling_up_to_a_cap_in_short_slices(self) -> None:
        listener, waits = make_listener(FakeBridge(*[False] * 8, True))
        listener.on_message(FakeMessage(A_B))
        delays = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, REQUEUE_MAX_DELAY, REQUEUE_MAX_DELAY]
        assert sum(waits) == pytest.approx(sum(delays))
        assert max(waits) == listener_module.HEARTBEAT_SLICE
        assert listener.retried == 8

    def test_each_retry_waits_a_draw_below_its_step(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        listener, waits = make_listener(FakeBridge(False, False, False, True))
        draw(monkeypatch, 0.5, 0.25, 0.75)
        listener.on_message(FakeMessage(A_B))
        # steps 0.1, 0.2, 0.4 s
        assert waits == pytest.approx([0.05, 0.05, 0.3])

    def test_every_message_starts_with_the_shortest_delay(self) -> None:
        listener, waits = make_listener(FakeBridge(False, True, False, True))
        for _ in range(2):
            listener.on_message(FakeMessage(A_B))
        assert waits == [REQUEUE_MIN_DELAY, REQUEUE_MIN_DELAY]

    def test_waiting_keeps_the_broker_connection_alive(self) -> None:
        listener, waits = make_listener(FakeBridge(*[False] * 5, True))
        connection = MagicMock()
        listener.on_consume_ready(connection, MagicMock(), [])
        listener.on_message(FakeMessage(A_B))
        # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s, in slices of at most a second.
        assert len(waits) == 6
        assert connection.heartbeat_check.call_count == 6

    def test_no_heartbeat_is_sent_before_consuming(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge(False, True))
        with caplog.at_level(logging.DEBUG, LOGGER):
            listener.on_message(FakeMessage(A_B))
        assert not [r for r in caplog.records if "Heartbeat" in r.getMessage()]

    def test_a_heartbeat_check_that_raises_is_ignored_but_traced(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge(False, True))
        connection = MagicMock()
        connection.heartbeat_check.side_effect = ConnectionError("missed")
        listener.on_consume_ready(connection, MagicMock(), [])
        message = FakeMessage(A_B)
        with caplog.at_level(logging.DEBUG, LOGGER):
            listener.on_message(message)
        assert message.outcome == "ack"
        traced = [
            (r.levelno, r.getMessage())
            for r in caplog.records
            if r.getMessage().startswith("Heartbeat")
        ]
        assert traced == [(logging.DEBUG, "Heartbeat check while waiting: missed")]

    def test_the_retry_warning_is_rate_limited_and_the_recovery_logged(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        now = [1000.0]
        clock = types.SimpleNamespace(monotonic=lambda: now[0])
        monkeypatch.setattr(listener_handover, "time", clock)

        waits = Waits()

        def wait(delay: float) -> bool:
            now[0] += delay
            return waits(delay)

        config = ironic_only()
        bridge = FakeBridge(False, False, False, True)
        listener = NotificationListener(
            Connection(config.url), bridge, config, wait=wait
        )
        with caplog.at_level(logging.INFO, LOGGER):
            listener.on_message(FakeMessage(A_B))
        assert [r.getMessage() for r in caplog.records] == [
            "The bridge did not take a.b from ironic_versioned_notifications.info "
            "(is Redis down?); keeping it unacknowledged, RabbitMQ holds the rest; "
            "trying again in 0.1 s (1 retries so far)",
            # refused at 0 s, then waited 0.1 + 0.2 + 0.4 s
            "The bridge takes events again after 0.7 s; consuming",
        ]
        assert listener.retried == 3

    def test_a_stop_while_waiting_leaves_the_message_unacked(self) -> None:
        config = ironic_only()
        bridge = FakeBridge(False)
        listener = NotificationListener(Connection(config.url), bridge, config)
        listener.stop()
        message = FakeMessage(A_B)
        # The default pause waits on the stop event, so it returns at once;
        # RabbitMQ redelivers the unacked message once the connection closes.
        listener.on_message(message)
        assert (message.outcome, listener.acknowledged) == (None, 0)
        assert len(bridge.events) == 1

    def test_a_stop_during_the_pause_ends_the_wait(self) -> None:
        config = ironic_only()
        bridge = FakeBridge(*[False] * 10)
        waits = Waits(stop_at=2)
        listener = NotificationListener(
            Connection(config.url), bridge, config, wait=waits
        )
        message = FakeMessage(A_B)
        listener.on_message(message)
        assert message.outcome is None
        assert (len(bridge.events), len(waits)) == (2, 2)


class TestMalformedMessages:
    @pytest.mark.parametrize(
        "body",
        [b"{not json", b'{"payload": {}}', b'{"event_type": 5, "payload": []}'],
    )
    def test_are_rejected_without_requeue_and_never_reach_the_bridge(
        self, body: bytes
    ) -> None:
        bridge = FakeBridge()
        listener, waits = make_listener(bridge)
        message = FakeMessage(body)
        listener.on_message(message)
        assert message.outcome == "reject"
        assert bridge.events == []
        assert (listener.rejected, waits) == (1, [])

    def test_are_counted(self) -> None:
        listener, _ = make_listener(FakeBridge())
        for body in (b"[]", A_B, b"{"):
            listener.on_message(FakeMessage(body))
        assert (listener.rejected, listener.acknowledged) == (2, 1)

    def test_are_logged_with_exchange_and_routing_key(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge())
        with caplog.at_level(logging.DEBUG, LOGGER):
            listener.on_message(FakeMessage(b"garbage", routing_key="rk.error"))
        warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
        text = warning.getMessage()
        assert "exchange ironic, routing key rk.error" in text
        assert "not JSON" in text
        assert "Malformed message from rk.error: b'garbage'" in caplog.text

    def test_a_message_without_delivery_info_is_still_handled(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge())
        message = FakeMessage(b"[]")
        message.delivery_info = None
        with caplog.at_level(logging.WARNING, LOGGER):
            listener.on_message(message)
        assert message.outcome == "reject"
        assert "exchange ?, routing key ?" in caplog.text

    def test_the_consumer_keeps_going_after_a_bad_message(self) -> None:
        bridge = FakeBridge()
        listener, _ = make_listener(bridge)
        messages = [
            FakeMessage(b'{"event_type": "first", "payload": {}}'),
            FakeMessage(b"\x00garbage"),
            FakeMessage(envelope({"event_type": "second", "payload": {"k": 1}})),
        ]
        for message in messages:
            listener.on_message(message)
        assert [m.outcome for m in messages] == ["ack", "reject", "ack"]
        assert bridge.events == [("first", {}), ("second", {"k": 1})]


@pytest.fixture
def names() -> Iterator[Callable[[str], str]]:
    """Unique names on kombu's in-process broker; its state is dropped after."""
    token = uuid.uuid4().hex[:8]
    yield lambda name: f"{name}-{token}"
    from kombu.transport import memory

    memory.Transport.global_state.clear()


class TestConsumingOnABroker:
    """The consumer loop on kombu's in-process memory transport."""

    def publish(self, exchange: str, key: str, *bodies: Any) -> None:
        with Connection("memory://localhost/") as conn:
            producer = conn.Producer()
            for body in bodies:
                if isinstance(body, bytes):
                    producer.publish(
                        body, exchange=exchange, routing_key=key, content_type="x/raw"
                    )
                else:
                    producer.publish(
                        body, exchange=exchange, routing_key=key, serializer="json"
                    )

    def test_consumes_bad_and_good_messages_in_order_acking_the_good_ones(
        self, names: Callable[[str], str]
    ) -> None:
        bridge = FakeBridge()
        config = ironic_only(names("ironic"), names("q"))
        listener, _ = make_listener(bridge, config)
        with Connection(config.url) as conn:
            listener.declare_exchanges(conn)
            listener.queues[0](conn.default_channel).declare()
        key = "ironic_versioned_notifications.info"
        self.publish(
            names("ironic"),
            key,
            b"garbage",
            {"oslo.version": "2.0", "oslo.message": json.dumps({"event_type": "a"})},
            {
                "oslo.version": "2.0",
                "oslo.message": json.dumps(
                    {
                        "event_type": "baremetal.node.create.end",
                        "payload": IRONIC_PAYLOAD,
                    }
                ),
            },
        )
        self.publish(names("ironic"), "other_topic.info", {"event_type": "x"})
        for _ in listener.consume(limit=3, timeout=5):
            pass
        # A notification without a payload is delivered, wrapped.
        assert bridge.events == [
            ("a", {"payload": None}),
            ("baremetal.node.create.end", IRONIC_PAYLOAD),
        ]
        assert (listener.acknowledged, listener.rejected) == (2, 1)
        with Connection(config.url) as conn:
            remaining = conn.default_channel.queue_declare(names("q"), passive=True)
        assert remaining.message_count == 0

    def test_declares_a_missing_exchange_as_a_transient_topic_exchange(
        self, names: Callable[[str], str], caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge(), ironic_only(names("ironic")))
        with caplog.at_level(logging.INFO, LOGGER):
            with Connection("memory://localhost/") as conn:
                listener.declare_exchanges(conn)
                exchanges = conn.default_channel.state.exchanges
        assert exchanges[names("ironic")]["type"] == "topic"
        assert exchanges[names("ironic")]["durable"] is False
        assert exchanges[names("ironic")]["auto_delete"] is False
        assert [r.getMessage() for r in caplog.records] == [
            f"Declared missing exchange {names('ironic')} (topic, transient)"
        ]

    def test_declares_a_missing_exchange_durable_when_configured(
        self, names: Callable[[str], str], caplog: pytest.LogCaptureFixture
    ) -> None:
        config = ListenerConfig(
            url="memory://localhost/",
            bindings=ironic_only(names("ironic")).bindings,
            exchange_durable=True,
        )
        listener, _ = make_listener(FakeBridge(), config)
        with caplog.at_level(logging.INFO, LOGGER):
            with Connection("memory://localhost/") as conn:
                listener.declare_exchanges(conn)
                exchanges = conn.default_channel.state.exchanges
        assert exchanges[names("ironic")]["durable"] is True
        assert [r.getMessage() for r in caplog.records] == [
            f"Declared missing exchange {names('ironic')} (topic, durable)"
        ]

    def test_an_existing_exchange_is_skipped_and_the_next_still_declared(
        self, names: Callable[[str], str]
    ) -> None:
        config = ListenerConfig(
            url="memory://localhost/",
            bindings=(
                Binding("nova", names("nova"), ("n.*",), names("q1")),
                Binding("ironic", names("ironic"), ("i.*",), names("q2")),
            ),
        )
        listener, _ = make_listener(FakeBridge(), config)
        with Connection("memory://localhost/") as conn:
            conn.default_channel.exchange_declare(names("nova"), type="topic")
            listener.declare_exchanges(conn)
            exchanges = conn.default_channel.state.exchanges
        assert exchanges[names("ironic")]["type"] == "topic"

    def test_declaring_leaves_no_channel_open(
        self, names: Callable[[str], str]
    ) -> None:
        config = ListenerConfig(
            url="memory://localhost/",
            bindings=(
                Binding("nova", names("nova"), ("n.*",), names("q1")),
                Binding("ironic", names("ironic"), ("i.*",), names("q2")),
            ),
        )
        listener, _ = make_listener(FakeBridge(), config)
        with Connection("memory://localhost/") as conn:
            conn.default_channel.exchange_declare(names("nova"), type="topic")
            before = len(conn.transport.channels)
            listener.declare_exchanges(conn)
            assert len(conn.transport.channels) == before

    def test_uses_an_existing_exchange_as_it_is(
        self, names: Callable[[str], str], caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge(), ironic_only(names("ironic")))
        with Connection("memory://localhost/") as conn:
            conn.default_channel.exchange_declare(
                names("ironic"), type="topic", durable=True
            )
            with caplog.at_level(logging.INFO, LOGGER):
                listener.declare_exchanges(conn)
            exchanges = conn.default_channel.state.exchanges
        assert exchanges[names("ironic")]["durable"] is True
        assert "Declared missing exchange" not in caplog.text

    def test_logs_what_it_consumes_once_ready(
        self, names: Callable[[str], str], caplog: pytest.LogCaptureFixture
    ) -> None:
        config = ListenerConfig(
            url="memory://localhost/",
            bindings=(Binding("ironic", names("ironic"), ("a.info", "a.error"), "q"),),
        )
        listener, _ = make_listener(FakeBridge(), config)
        listener.stop()
        with caplog.at_level(logging.INFO, LOGGER):
            for _ in listener.consume(limit=1, timeout=1):
                pass  # pragma: no cover - stopped before the first event
        assert "Connected to RabbitMQ at memory://" in caplog.text
        assert (
            f"Consuming ironic from exchange {names('ironic')} "
            "(a.info, a.error) on queue q"
        ) in caplog.text

    def test_asks_the_broker_for_the_configured_prefetch(
        self, names: Callable[[str], str]
    ) -> None:
        config = ListenerConfig(
            url="memory://localhost/",
            bindings=ironic_only(names("ironic"), names("q")).bindings,
            prefetch_count=7,
        )
        listener, _ = make_listener(FakeBridge(), config)
        with Connection(config.url) as conn:
            listener.declare_exchanges(conn)
            channel = conn.channel()
            listener.get_consumers(functools.partial(Consumer, channel), channel)
            assert channel.qos.prefetch_count == 7


class TestExchangeDeclarationErrors:
    def test_an_error_other_than_not_found_is_raised_for_a_reconnect(self) -> None:
        listener, _ = make_listener(FakeBridge())
        conn = MagicMock()
        conn.channel_errors = (AccessRefused,)
        channel = conn.channel.return_value
        channel.exchange_declare.side_effect = AccessRefused("no", reply_code=403)
        with pytest.raises(AccessRefused):
            listener.declare_exchanges(conn)
        # Only the passive assertion was tried, and its channel was closed.
        channel.exchange_declare.assert_called_once_with(
            exchange="ironic", type="topic", passive=True
        )
        channel.close.assert_called_once_with()

    def test_a_channel_error_without_a_reply_code_is_raised_as_it_is(self) -> None:
        class Closed(Exception):
            pass

        listener, _ = make_listener(FakeBridge())
        conn = MagicMock()
        conn.channel_errors = (Closed,)
        conn.channel.return_value.exchange_declare.side_effect = Closed("closed")
        with pytest.raises(Closed):
            listener.declare_exchanges(conn)

    def test_a_channel_that_fails_to_close_is_only_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        listener, _ = make_listener(FakeBridge())
        conn = MagicMock()
        conn.channel.return_value.close.side_effect = OSError("gone")
        with caplog.at_level(logging.DEBUG, LOGGER):
            listener.declare_exchanges(conn)
        assert "Closing a channel failed: gone" in caplog.text


# Nothing listens on port 1 of the loopback: every connect is refused at once.
REFUSED = "amqp://u:secret@127.0.0.1:1//"


class TestReconnecting:
    def test_retries_the_broker_with_a_capped_back_off_and_a_stop_check(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = ListenerConfig(
            url=REFUSED, bindings=ironic_only().bindings, reconnect_max_delay=7.0
        )
        waits = Waits(stop_at=5)
        listener = NotificationListener(
            Connection(config.url), FakeBridge(), config, wait=waits
        )
        kombu_sleeps: List[float] = []
        monkeypatch.setattr(kombu_functional, "sleep", kombu_sleeps.append)
        with caplog.at_level(logging.WARNING, LOGGER):
            with pytest.raises(_StopRequested):
                with listener.establish_connection():
                    pytest.fail("connected to a port nobody listens on")
        # Every wait is ours, which a stop ends; kombu's own (a sleep that
        # no stop interrupts) are all skipped.
        assert waits == [RESTART_MIN_DELAY, 2.0, 4.0, 7.0, 7.0]
        assert kombu_sleeps == []
        said = "Cannot reach RabbitMQ at amqp://u:**@127.0.0.1:1//: "
        lines = [r.getMessage() for r in caplog.records]
        assert all(line.startswith(said) for line in lines)
        assert all("Connection refused" in line for line in lines)
        assert [line.rsplit("; ", 1)[1] for line in lines] == [
            "retrying in 1.0 s",
            "retrying in 2.0 s",
            "retrying in 4.0 s",
            "retrying in 7.0 s",
            "retrying in 7.0 s",
        ]
        assert listener.metrics.ready is False

    def test_each_retry_waits_a_draw_below_its_step(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = ListenerConfig(url=REFUSED, reconnect_max_delay=7.0)
        waits = Waits(stop_at=4)
        listener = NotificationListener(
            Connection(config.url), FakeBridge(), config, wait=waits
        )
        draw(monkeypatch, 0.5, 0.25, 0.0, 0.5)
        with pytest.raises(_StopRequested):
            with listener.establish_connection():
                pass
        # steps 1, 2, 4, 7 s
        assert waits == [0.5, 0.5, 0.0, 3.5]

    def test_failover_urls_are_tried_in_turn_and_a_round_backs_off(self) -> None:
        others = ";amqp://u:secret@127.0.0.1:2//;amqp://u:secret@127.0.0.1:3//"
        config = ListenerConfig(url=REFUSED + others, reconnect_max_delay=7.0)
        waits = Waits(stop_at=6)
        listener = NotificationListener(
            Connection(config.url), FakeBridge(), config, wait=waits
        )
        with pytest.raises(_StopRequested):
            with listener.establish_connection():
                pass
        # three URLs: two at once, then the back-off's step
        assert waits == [0.0, 0.0, RESTART_MIN_DELAY, 0.0, 0.0, 2.0]

    def test_a_stop_before_a_retry_ends_the_retries_without_a_wait(self) -> None:
        config = ListenerConfig(url=REFUSED)
        waits = Waits()
        listener = NotificationListener(
            Connection(config.url), FakeBridge(), config, wait=waits
        )
        listener.stop()
        with pytest.raises(_StopRequested):
            with listener.establish_connection():
                pass
        assert waits == []

    def test_a_broker_that_answers_is_used_and_its_exchanges_declared(self) -> None:
        config = ListenerConfig(
            url="amqp://u:secret@broker:5672//", bindings=ironic_only().bindings
        )
        listener, waits = make_listener(FakeBridge(), config)
        conn = MagicMock()
        conn.__enter__.return_value = conn
        conn.channel_errors = (AccessRefused,)
        listener.create_connection = lambda: conn  # type: ignore[method-assign]
        with listener.establish_connection() as established:
            assert established is conn
        conn.ensure_connection.assert_called_once()
        assert conn.channel.called  # the exchanges were asserted
        assert waits == []

    def test_the_connection_carries_the_heartbeat(self) -> None:
        config = ListenerConfig(url="amqp://broker//", heartbeat=15.0)
        listener, _ = make_listener(FakeBridge(), config)
        assert listener.create_connection().heartbeat == 15.0
        config = ListenerConfig(url="amqp://broker//", heartbeat=0)
        listener, _ = make_listener(FakeBridge(), config)
        assert not listener.create_connection().heartbeat

    def test_a_connection_error_is_logged_with_the_masked_url_and_delay(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        config = ListenerConfig(url="amqp://u:secret@broker:5672//")
        listener, _ = make_listener(FakeBridge(), config)
        with caplog.at_level(logging.WARNING, LOGGER):
            listener.on_connection_error(ConnectionRefusedError("refused"), 3.0)
        assert "amqp://u:**@broker:5672//" in caplog.text
        assert "refused; retrying in 3.0 s" in caplog.text
        assert "secret" not in caplog.text

    def test_retrying_ends_once_a_stop_was_requested(self) -> None:
        listener, _ = make_listener(FakeBridge())
        listener._raise_if_stopping()
        listener.stop()
        with pytest.raises(_StopRequested):
            listener._raise_if_stopping()


class TestServe:
    def test_a_stop_during_connection_retries_ends_serving(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        listener, waits = make_listener(FakeBridge())

        def run() -> None:
            raise _StopRequested()

        monkeypatch.setattr(listener, "run", run)
        with caplog.at_level(logging.INFO, LOGGER):
            listener.serve()
        assert waits == []
        assert "Listener stopped: 0 acknowledged, 0 rejected, 0 retries" in (
            caplog.text
        )

    def test_an_unexpected_error_restarts_consuming_with_back_off(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = ListenerConfig(reconnect_max_delay=3.0)
        listener, waits = make_listener(FakeBridge(), config)
        runs = []

        def run() -> None:
            runs.append(1)
            if len(runs) < 4:
                raise RuntimeError("bug")
            listener.stop()

        monkeypatch.setattr(listener, "run", run)
        with caplog.at_level(logging.ERROR, LOGGER):
            listener.serve()
        assert len(runs) == 4
        assert waits == [RESTART_MIN_DELAY, 2.0, 3.0]
        assert "Listener failed; restarting in 1.0 s" in caplog.text

    def test_each_restart_waits_a_draw_below_its_step(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = ListenerConfig(reconnect_max_delay=3.0)
        listener, waits = make_listener(FakeBridge(), config)
        runs = []

        def run() -> None:
            runs.append(1)
            if len(runs) < 4:
                raise RuntimeError("bug")
            listener.stop()

        monkeypatch.setattr(listener, "run", run)
        draw(monkeypatch, 0.25, 0.5, 0.5)
        with caplog.at_level(logging.ERROR, LOGGER):
            listener.serve()
        # steps 1, 2, 3 s
        assert waits == [0.25, 1.0, 1.5]
        assert [r.getMessage() for r in caplog.records] == [
            "Listener failed; restarting in 0.2 s",
            "Listener failed; restarting in 1.0 s",
            "Listener failed; restarting in 1.5 s",
        ]

    def test_a_stop_while_waiting_to_restart_ends_serving(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = ironic_only()
        listener = NotificationListener(
            Connection(config.url), FakeBridge(), config, wait=Waits(stop_at=1)
        )
        runs = []

        def run() -> None:
            runs.append(1)
            raise RuntimeError("bug")

        monkeypatch.setattr(listener, "run", run)
        with caplog.at_level(logging.INFO, LOGGER):
            listener.serve()
        assert runs == [1]
        assert "Listener stopped: 0 acknowledged" in caplog.text

    def test_a_failure_after_a_stop_ends_serving_without_the_restart_delay(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # the listener's own wait: on the stop event, set, so it returns at once
        config = ironic_only()
        listener = NotificationListener(Connection(config.url), FakeBridge(), config)
        runs = []

        def run() -> None:
            runs.append(1)
            listener.stop()
            raise RuntimeError("bug")

        monkeypatch.setattr(listener, "run", run)
        with caplog.at_level(logging.INFO, LOGGER):
            listener.serve()
        assert runs == [1]
        assert "Listener stopped: 0 acknowledged" in caplog.text

    def test_serving_a_stopped_listener_does_nothing(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        listener, _ = make_listener(FakeBridge())
        run = MagicMock()
        monkeypatch.setattr(listener, "run", run)
        listener.stop()
        listener.serve()
        run.assert_not_called()
        assert listener.wait_stopped(0) is True


class TestBindingConfiguration:
    def test_defaults_bind_six_services_to_their_exchanges(self) -> None:
        config = ListenerConfig.from_env({})
        assert config.url == "amqp://guest:guest@localhost:5672//"
        assert [b.service for b in config.bindings] == list(SERVICES)
        assert list(SERVICES) == [
            "ironic",
            "nova",
            "neutron",
            "cinder",
            "glance",
            "keystone",
        ]
        assert {b.service: b.exchange for b in config.bindings} == {
            s: s for s in SERVICES
        }
        assert {b.service: b.routing_keys for b in config.bindings} == {
            "ironic": ("ironic_versioned_notifications.*",),
            "nova": ("versioned_notifications.*", "notifications.*"),
            "neutron": ("notifications.*",),
            "cinder": ("notifications.*",),
            "glance": ("notifications.*",),
            "keystone": ("notifications.*",),
        }
        assert [b.queue for b in config.bindings] == [
            f"osism-events-{s}" for s in SERVICES
        ]
        assert config.exchange_durable is False
        assert (config.prefetch_count, config.heartbeat) == (100, 30.0)
        assert config.reconnect_max_delay == 30.0

    def test_every_default_service_has_a_default_topic(self) -> None:
        assert set(DEFAULT_TOPICS) == set(SERVICES)

    def test_routing_keys_exchanges_and_queues_come_from_the_environment(
        self,
    ) -> None:
        config = ListenerConfig.from_env(
            {
                "RABBITMQ_URL": "amqp://osism:pw@rabbit:5672/openstack",
                "LISTENER_IRONIC_ROUTING_KEYS": " ironic_versioned_notifications.info,"
                " ironic_versioned_notifications.error ,",
                "LISTENER_NOVA_EXCHANGE": "nova-cell1",
                "LISTENER_QUEUE_PREFIX": "test",
            }
        )
        by_service = {b.service: b for b in config.bindings}
        assert config.url == "amqp://osism:pw@rabbit:5672/openstack"
        assert by_service["ironic"].routing_keys == (
            "ironic_versioned_notifications.info",
            "ironic_versioned_notifications.error",
        )
        assert by_service["nova"].exchange == "nova-cell1"
        assert by_service["nova"].queue == "test-nova"

    def test_the_listener_binds_one_durable_queue_per_service(self) -> None:
        config = ListenerConfig.from_env(
            {"LISTENER_IRONIC_ROUTING_KEYS": "a.info,a.error"}
        )
        listener, _ = make_listener(FakeBridge(), config)
        assert [q.name for q in listener.queues] == [b.queue for b in config.bindings]
        ironic = listener.queues[0]
        assert (ironic.durable, ironic.auto_delete, ironic.exclusive) == (
            True,
            False,
            False,
        )
        assert {(b.exchange.name, b.routing_key) for b in ironic.bindings} == {
            ("ironic", "a.info"),
            ("ironic", "a.error"),
        }
        exchange = listener.exchanges["ironic"]
        assert (exchange.type, exchange.durable, exchange.no_declare) == (
            "topic",
            False,
            True,
        )

    def test_services_can_be_chosen_deduplicated_and_case_folded(self) -> None:
        config = ListenerConfig.from_env({"LISTENER_SERVICES": "Nova, ironic,nova"})
        assert [b.service for b in config.bindings] == ["nova", "ironic"]

    def test_an_unknown_service_is_bound_with_fallback_defaults_and_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, LOGGER):
            config = ListenerConfig.from_env(
                {
                    "LISTENER_SERVICES": "octavia-api",
                    "LISTENER_OCTAVIA_API_EXCHANGE": "o",
                }
            )
        assert config.bindings == (
            Binding(
                "octavia-api", "o", ("notifications.*",), "osism-events-octavia-api"
            ),
        )
        assert "LISTENER_SERVICES names 'octavia-api'" in caplog.text

    def test_the_warning_names_the_known_services_and_the_defaults_used(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, LOGGER):
            ListenerConfig.from_env({"LISTENER_SERVICES": "octavia"})
        assert [r.getMessage() for r in caplog.records] == [
            "LISTENER_SERVICES names 'octavia', not one of ironic, nova, neutron, "
            "cinder, glance, keystone; binding it with the defaults "
            "notifications.* on exchange octavia"
        ]

    @pytest.mark.parametrize(
        "env",
        [
            {"LISTENER_SERVICES": " , "},
            {"LISTENER_IRONIC_ROUTING_KEYS": ""},
            {"RABBITMQ_URL": "  ", "LISTENER_QUEUE_PREFIX": ""},
        ],
    )
    def test_blank_values_mean_the_default(self, env: Dict[str, str]) -> None:
        assert ListenerConfig.from_env(env) == ListenerConfig.from_env({})

    @pytest.mark.parametrize(
        "raw, expected",
        [
            ("1", True),
            ("true", True),
            ("YES", True),
            (" on ", True),
            ("0", False),
            ("False", False),
            ("no", False),
            ("OFF", False),
        ],
    )
    def test_exchange_durability_is_a_flag(
        self, raw: str, expected: bool, caplog: pytest.LogCaptureFixture
    ) -> None:
        env = {"LISTENER_EXCHANGE_DURABLE": raw}
        with caplog.at_level(logging.ERROR, LOGGER):
            assert ListenerConfig.from_env(env).exchange_durable is expected
        assert caplog.records == []

    def test_a_flag_that_is_not_a_boolean_is_reported_and_defaulted(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, LOGGER):
            config = ListenerConfig.from_env({"LISTENER_EXCHANGE_DURABLE": "maybe"})
        assert config.exchange_durable is False
        assert [r.getMessage() for r in caplog.records] == [
            "LISTENER_EXCHANGE_DURABLE='maybe': expected a boolean: 1/0, "
            "true/false, yes/no, on/off; using the default"
        ]

    def test_numbers_come_from_the_environment(self) -> None:
        config = ListenerConfig.from_env(
            {
                "LISTENER_PREFETCH": "10",
                "LISTENER_HEARTBEAT": "0",
                "LISTENER_RECONNECT_MAX_DELAY": "2.5",
            }
        )
        assert (config.prefetch_count, config.heartbeat) == (10, 0.0)
        assert config.reconnect_max_delay == 2.5

    @pytest.mark.parametrize("raw, expected", [("1", 1.0), ("0.9", 30.0)])
    def test_the_reconnect_delay_is_at_least_a_second(
        self, raw: str, expected: float
    ) -> None:
        env = {"LISTENER_RECONNECT_MAX_DELAY": raw}
        assert ListenerConfig.from_env(env).reconnect_max_delay == expected

    @pytest.mark.parametrize(
        "raw, problem",
        [
            ("many", "LISTENER_PREFETCH='many': expected an integer >= 1"),
            ("0", "LISTENER_PREFETCH='0': expected an integer >= 1"),
        ],
    )
    def test_a_bad_number_is_reported_and_defaulted(
        self, raw: str, problem: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, LOGGER):
            config = ListenerConfig.from_env({"LISTENER_PREFETCH": raw})
        assert config.prefetch_count == 100
        assert problem in caplog.text

    def test_reads_the_process_environment_by_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("LISTENER_QUEUE_PREFIX", "from-env")
        assert ListenerConfig.from_env().bindings[0].queue == "from-env-ironic"

    def test_describe_names_broker_exchanges_keys_and_queues_password_masked(
        self,
    ) -> None:
        text = ListenerConfig.from_env(
            {"RABBITMQ_URL": "amqp://osism:secret@rabbit:5672//"}
        ).describe()
        assert "broker: amqp://osism:**@rabbit:5672//" in text
        assert "secret" not in text
        assert "declared topic, transient" in text
        assert (
            "ironic: exchange ironic, routing keys ironic_versioned_notifications.*\n"
            "    -> queue osism-events-ironic"
        ) in text
        durable = ListenerConfig.from_env({"LISTENER_EXCHANGE_DURABLE": "1"})
        assert "declared topic, durable" in durable.describe()


class TestSignalHandling:
    @pytest.fixture
    def restore_signals(self) -> Iterator[None]:
        saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        yield
        for signum, handler in saved.items():
            signal.signal(signum, handler)

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_a_signal_sets_the_stop_flag(
        self,
        signum: signal.Signals,
        restore_signals: None,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        listener, _ = make_listener(FakeBridge())
        install_signal_handlers(listener)
        with caplog.at_level(logging.INFO, LOGGER):
            signal.raise_signal(signum)
        assert listener.should_stop is True
        assert listener.wait_stopped(0) is True
        assert f"Received {signum.name}, stopping" in caplog.text

    def test_returns_the_handlers_it_replaced(self, restore_signals: None) -> None:
        def before(signum: int, frame: Any) -> None:
            pass  # pragma: no cover - replaced before any signal

        signal.signal(signal.SIGTERM, before)
        listener, _ = make_listener(FakeBridge())
        previous = install_signal_handlers(listener)
        assert previous[signal.SIGTERM] is before
        assert set(previous) == {signal.SIGTERM, signal.SIGINT}


class InlineThread:
    """Stands in for threading.Thread: start() runs the target at once.

    A run that keeps polling it fails instead of hanging."""

    alive_after_run = False
    alive_answers: List[bool] = []
    MAX_POLLS = 100

    def __init__(self, target: Callable[[], None], name: str, daemon: bool) -> None:
        self.target = target
        self.name = name
        self.daemon = daemon
        self.joined: List[float] = []
        self.ran = False
        self.polls = 0

    def start(self) -> None:
        self.target()
        self.ran = True

    def is_alive(self) -> bool:
        self.polls += 1
        assert self.polls <= self.MAX_POLLS, "still polling the consumer thread"
        if self.alive_answers:
            return self.alive_answers.pop(0)
        return self.alive_after_run or not self.ran

    def join(self, timeout: float) -> None:
        self.joined.append(timeout)


class TestRun:
    @pytest.fixture
    def threads(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[List[InlineThread]]:
        started: List[InlineThread] = []

        def make(target: Callable[[], None], name: str, daemon: bool) -> InlineThread:
            thread = InlineThread(target, name, daemon)
            started.append(thread)
            return thread

        fake_threading = types.SimpleNamespace(Thread=make, Event=threading.Event)
        monkeypatch.setattr(listener_process, "threading", fake_threading)
        monkeypatch.setattr(listener_process, "POLL_INTERVAL", 0.001)
        saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        yield started
        for signum, handler in saved.items():
            signal.signal(signum, handler)

    def serve_as(
        self, monkeypatch: pytest.MonkeyPatch, behaviour: Callable[[Any], None]
    ) -> List[Any]:
        served: List[Any] = []

        def serve(self: NotificationListener) -> None:
            served.append(self)
            behaviour(self)

        monkeypatch.setattr(NotificationListener, "serve", serve)
        return served

    def test_a_requested_stop_exits_zero_after_shutdown(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        bridge = FakeBridge()

        def signalled(listener: NotificationListener) -> None:
            assert bridge.calls == ["use_redis"]
            signal.raise_signal(signal.SIGTERM)

        served = self.serve_as(monkeypatch, signalled)
        before = signal.getsignal(signal.SIGTERM)
        with caplog.at_level(logging.INFO, LOGGER):
            assert listener_process.run(ironic_only(), bridge) == 0
        assert bridge.calls == ["use_redis", "shutdown"]
        assert served[0].bridge is bridge
        assert threads[0].daemon is True and threads[0].name == "osism-listener"
        assert threads[0].joined == [listener_process.JOIN_TIMEOUT]
        assert signal.getsignal(signal.SIGTERM) is before
        assert "Listener exiting" in caplog.text
        assert "Redis does not answer" not in caplog.text

    def test_the_start_is_logged_with_the_bindings(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.serve_as(monkeypatch, lambda listener: listener.stop())
        with caplog.at_level(logging.INFO, LOGGER):
            listener_process.run(ironic_only(queue="ironic-q"), FakeBridge())
        starting = caplog.records[0].getMessage()
        assert starting.startswith("Listener starting\nbroker: memory://")
        assert starting.endswith("-> queue ironic-q")

    def test_the_listener_uses_the_configured_broker(
        self, threads: List[InlineThread], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        served = self.serve_as(monkeypatch, lambda listener: listener.stop())
        listener_process.run(ironic_only(), FakeBridge())
        assert served[0].connection.as_uri() == "memory://:**@localhost//"

    def test_the_listeners_metrics_are_served_while_it_runs(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        free_port: int,
    ) -> None:
        monkeypatch.setenv("LISTENER_METRICS_PORT", str(free_port))
        monkeypatch.setenv("LISTENER_METRICS_HOST", "127.0.0.1")
        scraped: List[bytes] = []

        def scrape(listener: NotificationListener) -> None:
            url = f"http://127.0.0.1:{free_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                scraped.append(response.read())
            listener.stop()

        self.serve_as(monkeypatch, scrape)
        assert listener_process.run(ironic_only(), FakeBridge()) == 0
        assert b'osism_listener_messages_consumed_total{service="ironic"} 0.0' in (
            scraped[0]
        )

    def test_a_signal_while_connecting_to_redis_stops_cleanly(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        class SignalledWhileConnecting(FakeBridge):
            def use_redis(self) -> bool:
                super().use_redis()
                signal.raise_signal(signal.SIGTERM)
                return False

        def consume(listener: NotificationListener) -> None:
            pytest.fail("consuming after a stop")

        monkeypatch.setattr(NotificationListener, "run", consume)
        bridge = SignalledWhileConnecting()
        # serve() is the real one: asked to stop already, it consumes nothing.
        with caplog.at_level(logging.WARNING, LOGGER):
            assert listener_process.run(ironic_only(), bridge) == 0
        assert bridge.calls == ["use_redis", "shutdown"]
        assert bridge.events == []
        assert [r.getMessage() for r in caplog.records] == [
            "Redis does not answer yet; notifications wait in RabbitMQ until it does"
        ]

    def test_a_consumer_that_ends_on_its_own_exits_one(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.serve_as(monkeypatch, lambda listener: None)
        bridge = FakeBridge()
        with caplog.at_level(logging.ERROR, LOGGER):
            assert listener_process.run(ironic_only(), bridge) == 1
        assert "Listener ended without being asked to" in caplog.text
        assert bridge.calls[-1] == "shutdown"

    def test_run_polls_until_the_consumer_thread_ends(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.setattr(InlineThread, "alive_answers", [True, True, False])
        self.serve_as(monkeypatch, lambda listener: None)
        with caplog.at_level(logging.ERROR, LOGGER):
            assert listener_process.run(ironic_only(), FakeBridge()) == 1
        assert "Listener ended without being asked to" in caplog.text

    def test_a_consumer_that_does_not_stop_in_time_exits_one(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        InlineThread.alive_after_run = True
        try:
            self.serve_as(monkeypatch, lambda listener: listener.stop())
            bridge = FakeBridge()
            with caplog.at_level(logging.ERROR, LOGGER):
                assert listener_process.run(ironic_only(), bridge) == 1
        finally:
            InlineThread.alive_after_run = False
        assert "Listener did not stop within 10 s" in caplog.text
        assert bridge.calls[-1] == "shutdown"

    def test_the_bridge_shuts_down_even_when_serving_raises(
        self, threads: List[InlineThread], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def explode(listener: NotificationListener) -> None:
            raise RuntimeError("boom")

        self.serve_as(monkeypatch, explode)
        bridge = FakeBridge()
        with pytest.raises(RuntimeError):
            listener_process.run(ironic_only(), bridge)
        assert bridge.calls[-1] == "shutdown"

    @pytest.mark.parametrize(
        "configured, expected", [(logging.NOTSET, logging.INFO), (5, 5)]
    )
    def test_amqp_heartbeat_chatter_is_kept_out_of_debug_unless_configured(
        self,
        threads: List[InlineThread],
        monkeypatch: pytest.MonkeyPatch,
        configured: int,
        expected: int,
    ) -> None:
        amqp_logger = logging.getLogger("amqp")
        monkeypatch.setattr(amqp_logger, "level", configured)
        self.serve_as(monkeypatch, lambda listener: listener.stop())
        assert listener_process.run(ironic_only(), FakeBridge()) == 0
        assert amqp_logger.level == expected

    def test_defaults_to_the_environment_and_the_process_bridge(
        self, threads: List[InlineThread], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from osism.services import event_bridge

        bridge = FakeBridge()
        monkeypatch.setattr(event_bridge, "event_bridge", bridge)
        monkeypatch.setenv("LISTENER_SERVICES", "glance")
        served = self.serve_as(monkeypatch, lambda listener: listener.stop())
        assert listener_process.run() == 0
        assert served[0].bridge is bridge
        assert [b.service for b in served[0].config.bindings] == ["glance"]


class TestCommandLine:
    def test_help_says_what_it_binds_to(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("RABBITMQ_URL", "amqp://osism:secret@rabbit:5672//")
        monkeypatch.setenv("LISTENER_NOVA_ROUTING_KEYS", "versioned_notifications.info")
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["listener", "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "broker: amqp://osism:**@rabbit:5672//" in out
        assert "secret" not in out
        for service in SERVICES:
            assert f"{service}: exchange {service}, routing keys" in out
        assert "routing keys versioned_notifications.info" in out
        assert "ironic_versioned_notifications.*" in out
        for variable in (
            "RABBITMQ_URL",
            "LISTENER_SERVICES",
            "LISTENER_<SERVICE>_EXCHANGE",
            "LISTENER_<SERVICE>_ROUTING_KEYS",
            "LISTENER_QUEUE_PREFIX",
            "LISTENER_EXCHANGE_DURABLE",
        ):
            assert variable in out
        assert "amqp://guest:**@localhost:5672//" in out

    def test_the_top_level_help_lists_the_command(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        assert "listener" in capsys.readouterr().out

    def test_the_command_runs_the_listener(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: List[Any] = []

        def run(settings: Any) -> int:
            calls.append(settings.listener.queue_prefix)
            return 0

        monkeypatch.setenv("LISTENER_QUEUE_PREFIX", "checked")
        monkeypatch.setattr(listener_process, "run", run)
        assert cli.main(["listener"]) == 0
        assert calls == ["checked"]


class TestRedisIsTheBuffer:
    """The listener with a real EventBridge on fakeredis (no network, no
    threads): while Redis is down a message waits unacknowledged; once Redis
    is back it is logged and acked; a redelivery is logged once."""

    @pytest.fixture
    def server(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        import fakeredis

        from osism.services.bridge import redis_client as redis_connection

        server = fakeredis.FakeServer()

        def client(**kwargs: Any) -> Any:
            return fakeredis.FakeRedis(server=server, decode_responses=True)

        monkeypatch.setattr(redis_connection.redis, "Redis", client)
        return server

    def test_a_message_waits_for_redis_then_is_logged_once_per_message_id(
        self, server: Any
    ) -> None:
        import fakeredis

        from osism.services.event_bridge import EventBridge

        server.connected = False
        bridge = EventBridge(connect=False)
        assert bridge.use_redis() is False
        waits = Waits()

        def wait(delay: float) -> bool:
            stopped = waits(delay)
            if len(waits) == 3:
                server.connected = True  # Redis is back
            return stopped

        config = ironic_only()
        listener = NotificationListener(
            Connection(config.url), bridge, config, wait=wait
        )
        ids = [str(uuid.uuid4()) for _ in range(2)]
        bodies = [
            envelope({"event_type": f"e{i}", "payload": {}, "message_id": ids[i]})
            for i in range(2)
        ]
        first = FakeMessage(bodies[0])
        listener.on_message(first)
        assert (first.outcome, listener.retried, len(waits)) == ("ack", 3, 3)
        # The same notification again (a redelivery), then the next one.
        again, second = FakeMessage(bodies[0]), FakeMessage(bodies[1])
        listener.on_message(again)
        listener.on_message(second)
        assert [again.outcome, second.outcome] == ["ack", "ack"]

        redis = fakeredis.FakeRedis(server=server, decode_responses=True)
        logged = redis.xrange("osism:events:log")
        assert [fields["id"] for _, fields in logged] == ids
        assert [json.loads(fields["event"])["event_type"] for _, fields in logged] == [
            "e0",
            "e1",
        ]
        assert bridge.status().duplicates == 1
