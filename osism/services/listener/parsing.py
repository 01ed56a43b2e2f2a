"""What arrives from RabbitMQ: an OpenStack notification, parsed.

Every notification is delivered whatever its payload: a payload that is not
a JSON object (Glance's error notifications carry a plain string) is
delivered as ``{"payload": <the value>}``. Its metadata travels with it (see
``Notification.meta``): the service it arrived from (the binding's, i.e. the
exchange's; else derived from ``publisher_id``), ``priority``,
``message_id``, ``publisher_id`` and ``emitted_at`` (oslo's timestamp,
``2024-01-01 12:00:00.123456`` in UTC, as ISO 8601 with "Z").
"""

import json
import logging
from typing import Any, Dict, Mapping, NamedTuple, Optional, Union

from osism.core.metadata import iso_utc
from osism.core.notifications import service_of

logger = logging.getLogger("osism.listener")

# What service_of gets as the event type when the event type named no
# service: only the publisher is left to go by.
NO_EVENT_TYPE = ""  # pragma: no mutate

Body = Union[bytes, str, Mapping[str, Any]]


class MalformedNotification(ValueError):
    """A message that is not an OpenStack notification."""


class Notification(NamedTuple):
    """A notification as oslo.messaging sent it; ``payload`` always an object
    (a value that is none is wrapped as ``{"payload": value}``)."""

    event_type: str
    payload: Dict[str, Any]
    publisher_id: Optional[str] = None
    message_id: Optional[str] = None
    priority: Optional[str] = None
    timestamp: Optional[str] = None
    service: Optional[str] = None

    def meta(self) -> Dict[str, str]:
        """The metadata for the bridge (notifications.META_FIELDS), the keys
        with a value only."""
        found = {
            "service": self.service,
            "priority": self.priority,
            "message_id": self.message_id,
            "publisher_id": self.publisher_id,
            "emitted_at": self.timestamp,
        }
        return {key: value for key, value in found.items() if value is not None}


def parse_notification(body: Body, service: Optional[str] = None) -> Notification:
    """The notification in a message body, oslo envelope or plain.

    ``service``: the one whose binding it arrived on; None derives it from
    the ``publisher_id``. A payload that is not an object (or is missing) is
    wrapped as ``{"payload": value}``. Raises MalformedNotification when the
    body is not JSON, not an object, has an ``oslo.message`` that is not a
    JSON object in a string, or has no ``event_type`` string.
    """
    message = _json_object(body, "message body")
    if "oslo.message" in message:
        inner = message["oslo.message"]
        if not isinstance(inner, str):
            raise MalformedNotification("oslo.message is not a string")
        message = _json_object(inner, "oslo.message")
    event_type = message.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedNotification("no event_type")
    payload = message.get("payload")
    if not isinstance(payload, dict):
        payload = {"payload": payload}
    publisher_id = _optional_str(message.get("publisher_id"))
    priority = _optional_str(message.get("priority"))
    return Notification(
        event_type,
        payload,
        publisher_id,
        _optional_str(message.get("message_id")),
        priority.upper() if priority else None,
        _timestamp(message.get("timestamp")),
        service or service_of(NO_EVENT_TYPE, publisher_id),
    )


def _timestamp(value: Any) -> Optional[str]:
    """oslo's ``str(utcnow())`` as ISO 8601 with "Z"; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return iso_utc(value)
    except ValueError:
        logger.debug("Ignoring a timestamp that is not ISO 8601: %r", value)
        return None


def _json_object(body: Body, what: str) -> Dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    try:
        text = body.decode() if isinstance(body, bytes) else body  # UTF-8
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedNotification(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what} is not a JSON object")
    return value


def _optional_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None
