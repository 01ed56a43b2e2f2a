"""The event log: every event with its id, kept so that clients can resume.

An event enters the log once, when the bridge appends it; from then on it has
its ``id`` (a UUID: the notification's own ``message_id`` where that is one,
else a new uuid4) and its ``position`` in the log. Positions are Redis stream
ids (``"<ms>-<seq>"``) in Redis mode; the in-memory twin mints ids of the same
form, so both compare with :func:`position_key`.

This module holds the types both logs share and ``MemoryEventLog``, the
embedded mode's bounded history; ``redis_log.RedisEventLog`` is the one in
Redis.
"""

import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Tuple

Envelope = Dict[str, Any]
"""An event as the bridge carries it: ``{"id", "timestamp", "event_type",
"payload", "meta"}`` (``meta``: service, message_id, publisher_id, priority,
emitted_at, each optional)."""


@dataclass(frozen=True)
class LogEntry:
    """An event in the log: where it stands and what it is."""

    position: str
    event: Envelope


class Replay(NamedTuple):
    """What a resuming client gets: the entries after its id, oldest first;
    ``recovered`` is False when the log no longer reaches back to its id (or
    the answer was cut to the replay bound); ``oldest_id`` is the oldest event
    id the log still holds (None for an empty log)."""

    entries: List[LogEntry]
    recovered: bool
    oldest_id: Optional[str]


class EventLog(Protocol):
    """What the bridge and the manager need of a log, in Redis or in memory."""

    def append(self, envelope: Envelope) -> Optional[LogEntry]:
        """Add an event (dedupe by id); its entry, or None when it failed."""

    def replay(self, last_event_id: str, limit: int) -> Replay:
        """The events after ``last_event_id``, at most the newest ``limit``."""

    def read_after(self, position: Optional[str], limit: int) -> List[LogEntry]:
        """Entries after ``position`` (None: from the oldest), oldest first."""

    def last_position(self) -> Optional[str]:
        """The position of the newest entry, None for an empty log."""


def position_key(position: str) -> Tuple[int, int]:
    """A position as a sortable pair: ``"12-3"`` -> ``(12, 3)``."""
    millis, _, sequence = position.partition("-")
    return int(millis), int(sequence or 0)


def event_id_for(message_id: Any) -> str:
    """The id an event gets: its notification's UUID ``message_id``, else new."""
    if isinstance(message_id, str):
        try:
            return str(uuid.UUID(message_id))
        except ValueError:
            pass
    return str(uuid.uuid4())
