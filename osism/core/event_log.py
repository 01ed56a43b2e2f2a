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

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Protocol,
    Tuple,
)

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


def new_envelope(
    event_type: str, payload: Any, meta: Optional[Mapping[str, Any]] = None
) -> Envelope:
    """An event as it enters the log: its id, the time, what it is."""
    details = dict(meta or {})
    return {
        "id": event_id_for(details.get("message_id")),
        "timestamp": datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z",
        "event_type": event_type,
        "payload": payload,
        "meta": details,
    }


def page_of(entries: List[LogEntry], limit: int) -> Tuple[List[LogEntry], bool]:
    """The newest ``limit`` entries; and whether that is all of them."""
    if len(entries) <= limit:
        return entries, True
    return entries[len(entries) - limit :], False


class MemoryEventLog:
    """The embedded mode's log: the newest ``size`` events of this process.

    Positions are minted like Redis stream ids (``"<ms>-<n>"``, increasing).
    An id seen within ``dedupe_seconds`` is not appended again. ``on_append``
    is called with each new entry while the log's lock is held, so it sees
    the entries in log order (as Redis announces them on the channel).
    Thread-safe.
    """

    def __init__(
        self,
        size: int,
        dedupe_seconds: float,
        on_append: Optional[Callable[[LogEntry], None]] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.size = size
        self.dedupe_seconds = dedupe_seconds
        self.on_append = on_append
        self.duplicates = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: Deque[LogEntry] = deque(maxlen=size)
        # event id -> (position, when it is forgotten), oldest first
        self._ids: Dict[str, Tuple[str, float]] = {}
        self._last: Tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, envelope: Envelope) -> Optional[LogEntry]:
        with self._lock:
            now = self._clock()
            self._forget_ids(now)
            event_id = str(envelope.get("id"))
            known = self._ids.get(event_id)
            if known is not None:
                self.duplicates += 1
                return self._find(known[0]) or LogEntry(known[0], envelope)
            entry = LogEntry(self._mint(now), envelope)
            self._entries.append(entry)
            self._ids[event_id] = (entry.position, now + self.dedupe_seconds)
            if self.on_append is not None:
                self.on_append(entry)
            return entry

    def read_after(self, position: Optional[str], limit: int) -> List[LogEntry]:
        with self._lock:
            return self._after(position)[:limit]

    def last_position(self) -> Optional[str]:
        with self._lock:
            return self._entries[-1].position if self._entries else None

    def replay(self, last_event_id: str, limit: int) -> Replay:
        with self._lock:
            entries = list(self._entries)
            oldest = str(entries[0].event.get("id")) if entries else None
            index = next(
                (
                    i
                    for i, entry in enumerate(entries)
                    if entry.event.get("id") == last_event_id
                ),
                None,
            )
        if index is None:
            return Replay(page_of(entries, limit)[0], False, oldest)
        part, complete = page_of(entries[index + 1 :], limit)
        return Replay(part, complete, oldest)

    def _after(self, position: Optional[str]) -> List[LogEntry]:
        if position is None:
            return list(self._entries)
        key = position_key(position)
        return [e for e in self._entries if position_key(e.position) > key]

    def _find(self, position: str) -> Optional[LogEntry]:
        for entry in reversed(self._entries):
            if entry.position == position:
                return entry
        return None

    def _mint(self, now: float) -> str:
        millis = int(now * 1000)
        last_millis, sequence = self._last
        if millis > last_millis:
            self._last = (millis, 0)
        else:
            self._last = (last_millis, sequence + 1)
        return "%d-%d" % self._last

    def _forget_ids(self, now: float) -> None:
        while self._ids:
            event_id, (_, expires) = next(iter(self._ids.items()))
            if expires > now and len(self._ids) <= 2 * self.size:
                return
            del self._ids[event_id]
