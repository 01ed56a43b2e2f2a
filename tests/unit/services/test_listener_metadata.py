"""The listener delivers every notification, wrapped where needed, with its
metadata, and binds nova's legacy topic as well as its versioned one."""

import json
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from kombu import Connection

from osism.services.listener.consumer import (
    DEFAULT_TOPICS,
    Binding,
    ListenerConfig,
    Notification,
    NotificationListener,
    describe,
    parse_notification,
)
from tests.unit.services.test_listener import Waits

pytestmark = pytest.mark.usefixtures("bounded_stop_event")


def envelope(message: Dict[str, Any]) -> bytes:
    return json.dumps(
        {"oslo.version": "2.0", "oslo.message": json.dumps(message)}
    ).encode()


class Bridge:
    def __init__(self) -> None:
        self.events: List[Tuple[str, Any, Optional[Dict[str, Any]]]] = []

    def connect(self) -> bool:
        return True

    def start_forwarding(self) -> None:
        pass

    def add_event(
        self, event_type: str, payload: Any, meta: Optional[Dict[str, Any]] = None
    ) -> bool:
        self.events.append((event_type, payload, meta))
        return True

    def shutdown(self) -> None:
        pass


class Message:
    def __init__(self, body: Any, exchange: str, routing_key: str) -> None:
        self.body = body
        self.delivery_info: Optional[Dict[str, Any]] = {
            "exchange": exchange,
            "routing_key": routing_key,
        }
        self.outcome: Optional[str] = None

    def ack(self) -> None:
        self.outcome = "ack"

    def requeue(self) -> None:
        self.outcome = "requeue"

    def reject(self, requeue: bool = False) -> None:
        self.outcome = "reject"


def listener_for(*services: str) -> Tuple[NotificationListener, Bridge]:
    config = ListenerConfig.from_env(
        {"LISTENER_SERVICES": ",".join(services), "RABBITMQ_URL": "memory://"}
    )
    bridge = Bridge()
    listener = NotificationListener(
        Connection(config.url), bridge, config, wait=Waits()
    )
    return listener, bridge


GLANCE_ERROR = {
    "message_id": "ca3ab343-ac33-4b68-be9b-f77c6519a9d5",
    "publisher_id": "image.localhost",
    "event_type": "image.upload",
    "priority": "ERROR",
    "payload": "Image storage media is full",
    "timestamp": "2015-09-01 09:51:12.447306",
}


class TestWrapping:
    @pytest.mark.parametrize(
        "payload", ["Image storage media is full", [1, 2], 42, None, True]
    )
    def test_a_payload_that_is_not_an_object_is_wrapped(self, payload: Any) -> None:
        body = json.dumps({"event_type": "image.upload", "payload": payload})
        assert parse_notification(body).payload == {"payload": payload}

    def test_a_missing_payload_is_wrapped_as_null(self) -> None:
        assert parse_notification(b'{"event_type": "a.b"}').payload == {"payload": None}

    def test_an_object_payload_is_not_wrapped(self) -> None:
        body = json.dumps({"event_type": "a.b", "payload": {"payload": 1}})
        assert parse_notification(body).payload == {"payload": 1}

    def test_glance_string_error_reaches_the_bridge_and_is_acked(self) -> None:
        listener, bridge = listener_for("glance")
        message = Message(envelope(GLANCE_ERROR), "glance", "notifications.error")

        listener.on_message(message)

        assert message.outcome == "ack"
        assert bridge.events == [
            (
                "image.upload",
                {"payload": "Image storage media is full"},
                {
                    "service": "glance",
                    "priority": "ERROR",
                    "message_id": "ca3ab343-ac33-4b68-be9b-f77c6519a9d5",
                    "publisher_id": "image.localhost",
                    "emitted_at": "2015-09-01T09:51:12.447306Z",
                },
            )
        ]


class TestMetadata:
    def test_every_field_of_an_oslo_message(self) -> None:
        notification = parse_notification(envelope(GLANCE_ERROR), "glance")
        assert notification == Notification(
            "image.upload",
            {"payload": "Image storage media is full"},
            publisher_id="image.localhost",
            message_id="ca3ab343-ac33-4b68-be9b-f77c6519a9d5",
            priority="ERROR",
            timestamp="2015-09-01T09:51:12.447306Z",
            service="glance",
        )

    @pytest.mark.parametrize(
        "timestamp, expected",
        [
            ("2024-01-01 12:00:00.123456", "2024-01-01T12:00:00.123456Z"),
            ("2024-01-01 12:00:00", "2024-01-01T12:00:00Z"),
            ("2024-01-01T12:00:00Z", "2024-01-01T12:00:00Z"),
            ("2024-01-01T14:00:00+02:00", "2024-01-01T12:00:00Z"),
            ("yesterday", None),
            ("", None),
            (1700000000, None),
            (None, None),
        ],
    )
    def test_the_timestamp_becomes_iso_8601_utc(
        self, timestamp: Any, expected: Optional[str]
    ) -> None:
        body = {"event_type": "a.b", "payload": {}, "timestamp": timestamp}
        assert parse_notification(body).timestamp == expected

    @pytest.mark.parametrize(
        "timestamp", ["2024-01-01T21:00:00+09:00", "2024-01-01 12:00:00"]
    )
    def test_the_timestamp_is_utc_whatever_the_hosts_time_zone(
        self, timestamp: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TZ", "JST-9")  # POSIX: UTC+9, no tz database needed
        time.tzset()
        try:
            notification = parse_notification(
                {"event_type": "a.b", "timestamp": timestamp}
            )
        finally:
            monkeypatch.undo()
            time.tzset()
        assert notification.timestamp == "2024-01-01T12:00:00Z"

    def test_a_timestamp_that_is_not_iso_8601_is_dropped_and_traced(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, "osism.listener"):
            parse_notification({"event_type": "a.b", "timestamp": "yesterday"})
        assert [r.getMessage() for r in caplog.records] == [
            "Ignoring a timestamp that is not ISO 8601: 'yesterday'"
        ]

    @pytest.mark.parametrize(
        "priority, expected", [("info", "INFO"), ("WARN", "WARN"), (3, None)]
    )
    def test_the_priority_in_upper_case(
        self, priority: Any, expected: Optional[str]
    ) -> None:
        body = {"event_type": "a.b", "payload": {}, "priority": priority}
        assert parse_notification(body).priority == expected

    def test_meta_holds_only_what_is_known(self) -> None:
        notification = parse_notification({"event_type": "a.b", "payload": {}})
        assert notification.meta() == {}

    def test_the_binding_names_the_service_before_the_publisher_id(self) -> None:
        listener, bridge = listener_for("nova", "ironic")
        body = envelope(
            {
                "event_type": "volume.usage",
                "publisher_id": "volume.cmp1",
                "payload": {},
            }
        )
        listener.on_message(Message(body, "nova", "notifications.info"))
        assert bridge.events[0][2] == {"service": "nova", "publisher_id": "volume.cmp1"}

    def test_an_unbound_exchange_leaves_it_to_the_publisher_id(self) -> None:
        listener, bridge = listener_for("nova")
        body = envelope(
            {
                "event_type": "baremetal.node.update.end",
                "publisher_id": "ironic-api.h2",
                "payload": {},
            }
        )
        listener.on_message(Message(body, "elsewhere", "notifications.info"))
        assert bridge.events[0][2]["service"] == "ironic"

    def test_a_custom_exchange_keeps_its_service(self) -> None:
        config = ListenerConfig.from_env(
            {"LISTENER_SERVICES": "nova", "LISTENER_NOVA_EXCHANGE": "openstack"}
        )
        bridge = Bridge()
        listener = NotificationListener(
            Connection("memory://"), bridge, config, wait=Waits()
        )
        body = envelope({"event_type": "instance.update", "payload": {}})
        listener.on_message(Message(body, "openstack", "versioned_notifications.info"))
        assert bridge.events[0][2] == {"service": "nova"}


class TestNovaTopics:
    def test_nova_binds_its_versioned_and_its_legacy_topic(self) -> None:
        assert DEFAULT_TOPICS["nova"] == ("versioned_notifications", "notifications")
        config = ListenerConfig.from_env({"LISTENER_SERVICES": "nova"})
        assert config.bindings == (
            Binding(
                "nova",
                "nova",
                ("versioned_notifications.*", "notifications.*"),
                "osism-events-nova",
            ),
        )

    def test_the_routing_keys_can_still_be_replaced(self) -> None:
        config = ListenerConfig.from_env(
            {
                "LISTENER_SERVICES": "nova",
                "LISTENER_NOVA_ROUTING_KEYS": "versioned_notifications.error",
            }
        )
        assert config.bindings[0].routing_keys == ("versioned_notifications.error",)

    def test_one_queue_bound_with_both_keys(self) -> None:
        listener, _ = listener_for("nova")
        (queue,) = listener.queues
        assert {b.routing_key for b in queue.bindings} == {
            "versioned_notifications.*",
            "notifications.*",
        }
        assert {b.exchange.name for b in queue.bindings} == {"nova"}

    def test_describe_names_both_topics(self) -> None:
        text = describe({"LISTENER_SERVICES": "nova"})
        assert (
            "Bindings with the current environment:\n"
            "broker: amqp://guest:**@localhost:5672//\n"
            "missing exchanges are declared topic, transient\n"
            "  nova: exchange nova, routing keys versioned_notifications.*, "
            "notifications.*\n"
            "    -> queue osism-events-nova\n\n"
            "Environment (defaults in brackets):\n"
        ) in text
        assert '{"payload": <value>}' in text
