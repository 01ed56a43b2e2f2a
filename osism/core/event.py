"""One event as it is sent to WebSocket clients, and the time format it carries."""

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, Optional

import orjson


class EventMessage:
    """One event as it is sent to WebSocket clients."""

    def __init__(
        self,
        event_type: str,
        source: str,
        data: Dict[str, Any],
        node_name: Optional[str] = None,
        *,
        event_id: Optional[str] = None,
        timestamp: Optional[str] = None,
        position: Optional[str] = None,
    ) -> None:
        # The id and time given when the event entered the log; a fresh UUID4
        # and now for an event that never did (a heartbeat, a plain publish).
        self.id = event_id or str(uuid.uuid4())
        self.timestamp = timestamp or utc_timestamp()
        # Where the event stands in the log; None when it is not in one.
        self.position = position
        self.event_type = event_type
        self.source = source
        self.data = data
        self.node_name = node_name

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "event_type": self.event_type,
            "source": self.source,
            "node_name": self.node_name,
            "data": self.data,
        }

    def to_json(self) -> str:
        data = self.to_dict()
        try:
            raw = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            # What orjson refuses (an integer beyond 64 bits: JSONEncodeError,
            # a TypeError) json still writes.
            return json.dumps(data)
        if b"null" in raw and orjson.loads(raw) != data:
            # orjson writes NaN and Infinity as null; json keeps what it did.
            return json.dumps(data)
        return raw.decode()


def utc_timestamp() -> str:
    """Now, as the wire carries it: ISO 8601 in UTC with a trailing "Z"."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"
