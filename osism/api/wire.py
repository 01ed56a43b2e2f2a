"""Messages a WebSocket client may send, and the replies it gets.

A client message is validated here, before anything reaches the manager; a
message that is not valid yields an error text for an ``{"type": "error"}``
reply and changes nothing.
"""

import json
import uuid
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError, field_validator

from osism import settings
from osism.core import filters

# Longest client message accepted, in bytes of UTF-8.
MAX_MESSAGE_BYTES = settings.CONFIG.fanout.max_message_bytes
# Most entries one filter list may hold, and the longest entry.
MAX_FILTER_ENTRIES = settings.CONFIG.fanout.max_filter_entries
MAX_FILTER_LENGTH = settings.CONFIG.fanout.max_filter_length

FILTER_KINDS = ("event_filters", "node_filters", "service_filters", "priority_filters")


class SetFilters(BaseModel):
    """``{"action": "set_filters", ...}``: a list left out or null is kept."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["set_filters"]
    event_filters: Optional[List[StrictStr]] = None
    node_filters: Optional[List[StrictStr]] = None
    service_filters: Optional[List[StrictStr]] = None
    # oslo.messaging priorities, any case; kept in upper case (INFO, ERROR, ...)
    priority_filters: Optional[List[StrictStr]] = None

    # Resume: the id of the last event the client saw (see resume_id).
    last_event_id: Optional[StrictStr] = None

    @field_validator("last_event_id")
    @classmethod
    def _a_uuid(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        event_id, error = resume_id(value)
        if error is not None:
            raise ValueError(error)
        return event_id


ParseResult = Tuple[Optional[SetFilters], Optional[str]]


def parse_client_message(text: Union[str, bytes, None]) -> ParseResult:
    """(message, None) for a valid message, (None, reason) for anything else."""
    if not isinstance(text, str):
        return None, "binary frames are not supported; send JSON text"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        return None, f"message too large: {size} bytes, limit {MAX_MESSAGE_BYTES}"
    try:
        data = json.loads(text)
    except ValueError:
        return None, "message is not valid JSON"
    except RecursionError:
        # A few KB of "[[[[..." is deeper than the decoder may recurse.
        return None, "message is nested too deeply"
    if not isinstance(data, dict):
        return None, "message must be a JSON object"
    action = data.get("action")
    if action != "set_filters":
        return None, f"unknown action {action!r}; expected 'set_filters'"
    try:
        message = SetFilters.model_validate(data)
    except ValidationError as exc:
        return None, _describe(exc)
    for kind in FILTER_KINDS:
        values = getattr(message, kind)
        if values is None:
            continue
        if len(values) > MAX_FILTER_ENTRIES:
            return None, (
                f"{kind} has {len(values)} entries, limit {MAX_FILTER_ENTRIES}"
            )
        for value in values:
            if len(value) > MAX_FILTER_LENGTH:
                return None, (
                    f"{kind} entry of {len(value)} characters, "
                    f"limit {MAX_FILTER_LENGTH}"
                )
    return _check_entries(message)


def _check_entries(message: SetFilters) -> ParseResult:
    """Event patterns and priorities are valid; priorities in upper case."""
    for entry in message.event_filters or ():
        error = filters.pattern_error(entry)
        if error is not None:
            return None, error
    if message.priority_filters is not None:
        for entry in message.priority_filters:
            error = filters.priority_error(entry)
            if error is not None:
                return None, error
        message.priority_filters = [p.strip().upper() for p in message.priority_filters]
    return message, None


LAST_EVENT_ID_ERROR = "last_event_id must be the id (a UUID) of an event"


def resume_id(value: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(id, None) for a UUID in canonical form, (None, None) for no value,
    (None, reason) for anything else. The reason never repeats the value."""
    if value is None or value == "":
        return None, None
    if len(value) > 64:
        return None, LAST_EVENT_ID_ERROR
    try:
        return str(uuid.UUID(value)), None
    except ValueError:
        return None, LAST_EVENT_ID_ERROR


def error_reply(reason: str) -> str:
    return json.dumps({"type": "error", "error": reason})


def filter_reply(filters: Dict[str, Any]) -> str:
    reply: Dict[str, Any] = {"type": "filter_update", "status": "success"}
    reply.update(filters)
    return json.dumps(reply)


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    # The top-level field; none when the message itself is not an object.
    field = str(error["loc"][0]) if error["loc"] else "message"
    if error["type"] == "extra_forbidden":
        return f"unknown field {field!r}"
    if field in FILTER_KINDS:
        return f"{field} must be a list of strings or null"
    if field == "last_event_id":
        return LAST_EVENT_ID_ERROR
    return f"{field}: {error['msg']}"
