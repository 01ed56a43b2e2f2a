"""The event log in Redis: a capped stream, announced on the pub/sub channel.

Names, all from one prefix (``EVENTS_PREFIX``, default ``osism:events``):

- ``<prefix>``: the pub/sub channel every API process subscribes to,
- ``<prefix>:log``: the stream, capped at about ``EVENT_HISTORY_SIZE`` entries,
  each ``{"id": <event id>, "event": <envelope JSON>}``,
- ``<prefix>:id:<event id>``: the event's stream id, for ``EVENT_DEDUPE_SECONDS``.

``append`` runs one Lua script, so the append and the announcement are one
atomic step: an event is on the channel only if it is in the log, and the
channel carries the events in log order. A known id appends and announces
nothing: a redelivered notification is logged once.
"""

import json
import logging
from typing import Any, Callable, Iterable, List, Optional

import redis

from osism import settings
from osism.core.event_log import Envelope, LogEntry, Replay, position_key
from osism.services.bridge.counter import Counter

logger = logging.getLogger("osism.event_log")

# KEYS: stream, id key, channel. ARGV: event id, envelope JSON, max length, ttl.
# Returns {stream id, 1 when appended / 0 when known, the logged envelope JSON,
# subscribers reached}.
APPEND_SCRIPT = """
local known = redis.call('GET', KEYS[2])
if known then
  local found = redis.call('XRANGE', KEYS[1], known, known)
  local event = ''
  if found[1] then
    local fields = found[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'event' then event = fields[i + 1] end
    end
  end
  return {known, 0, event, 0}
end
local position = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
  'id', ARGV[1], 'event', ARGV[2])
redis.call('SET', KEYS[2], position, 'EX', ARGV[4])
local message = '{"stream_id":"' .. position .. '",' .. string.sub(ARGV[2], 2)
local receivers = redis.call('PUBLISH', KEYS[3], message)
return {position, 1, ARGV[2], receivers}
"""

SCAN_PAGE = 1000


class RedisEventLog:
    """The log in Redis, through ``client``: one that decodes responses, as
    redis_connection builds them (``decode_responses=True``).

    Every method raises ``redis.RedisError`` when Redis does not answer
    within the client's socket timeout.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: Optional[str] = None,
        history_size: Optional[int] = None,
    ) -> None:
        self.client = client
        self.prefix = settings.EVENTS_PREFIX if prefix is None else prefix
        self.channel = self.prefix
        self.stream = f"{self.prefix}:log"
        self.history_size = (
            settings.EVENT_HISTORY_SIZE if history_size is None else history_size
        )
        self.dedupe_seconds = settings.EVENT_DEDUPE_SECONDS
        self.receivers = 0
        # Publishers in several threads append at once.
        self._duplicates = Counter()
        self._script = client.register_script(APPEND_SCRIPT)

    @property
    def duplicates(self) -> int:
        """Appends of a known id: redelivered events logged once."""
        return self._duplicates.value

    def id_key(self, event_id: str) -> str:
        return f"{self.prefix}:id:{event_id}"

    def append(self, envelope: Envelope) -> Optional[LogEntry]:
        """Append and announce ``envelope``; for a known id, the logged entry."""
        event_id = str(envelope["id"])
        text = json.dumps(envelope)  # an object: the script splices stream_id in
        position, appended, logged, receivers = self._script(
            keys=[self.stream, self.id_key(event_id), self.channel],
            args=[event_id, text, self.history_size, self.dedupe_seconds],
        )
        self.receivers = receivers  # none for a known id: nothing was announced
        if appended == 1:
            return LogEntry(position, envelope)
        self._duplicates.add()
        logger.debug("Event %s is in the log already at %s", event_id, position)
        return LogEntry(position, json.loads(logged) if logged else envelope)

    def read_after(self, position: Optional[str], limit: int) -> List[LogEntry]:
        start = "-" if position is None else f"({position}"
        return _entries(_rows(self.client.xrange(self.stream, start, count=limit)))

    def last_position(self) -> Optional[str]:
        newest = self._first(self.client.xrevrange)
        return None if newest is None else newest[0]

    def covers(self, position: str) -> bool:
        """Whether the log surely still holds every entry after ``position``.

        Trimming takes the oldest entries first: while the oldest one is not
        newer than ``position``, nothing after it is gone. Otherwise entries
        after it may be gone (trimmed, or lost by a Redis that restarted
        empty).
        """
        oldest = self._first(self.client.xrange)
        return oldest is None or position_key(oldest[0]) <= position_key(position)

    def replay(self, last_event_id: str, limit: int) -> Replay:
        """What a client that saw ``last_event_id`` missed: the events after
        it (recovered), or the newest ``limit`` when the log no longer reaches
        back to it or more than ``limit`` follow it (not recovered)."""
        oldest = self._first(self.client.xrange)
        oldest_id = None if oldest is None else oldest[1].get("id")
        position = self._position_of(last_event_id)
        if position is None:
            return Replay(self._newest(limit), False, oldest_id)
        # Reading more than limit + 1 (or without a bound) only reads more;
        # whether more follow is the same (pragma).
        after = self.read_after(position, limit + 1)  # pragma: no mutate
        if len(after) <= limit:
            return Replay(after, True, oldest_id)
        return Replay(self._newest(limit), False, oldest_id)

    def _first(self, read: Callable[..., Any]) -> Optional[Any]:
        """The first row ``read`` (xrange: the oldest, xrevrange: the newest)
        gives, ``(position, fields)``; None while the stream is empty."""
        # Only rows[0] is used, so a larger count (or none) only reads more
        # (pragma).
        rows = _rows(read(self.stream, count=1))  # pragma: no mutate
        return rows[0] if rows else None

    def _position_of(self, event_id: str) -> Optional[str]:
        """The stream id of ``event_id`` while the log still holds it."""
        # Without the id key the scan below finds the same position, only
        # slower (pragma).
        known: Any = self.client.get(self.id_key(event_id))  # pragma: no mutate
        if known is not None:
            if _rows(self.client.xrange(self.stream, known, known)):
                return known
            return None  # trimmed: the entries after it may be gone too
        start = "-"
        while True:
            # A scan in one page finds the same row (pragma).
            rows = _rows(
                self.client.xrange(
                    self.stream, start, count=SCAN_PAGE  # pragma: no mutate
                )
            )
            for row_id, fields in rows:
                if fields.get("id") == event_id:
                    return row_id
            if len(rows) < SCAN_PAGE:
                return None
            start = f"({rows[-1][0]}"

    def _newest(self, limit: int) -> List[LogEntry]:
        if limit < 1:
            return []
        rows = _rows(self.client.xrevrange(self.stream, count=limit))
        return _entries(reversed(rows))


def _rows(reply: Any) -> List[Any]:
    """A range reply as a list of ``(position, fields)`` rows."""
    return list(reply)


def _entries(rows: Iterable[Any]) -> List[LogEntry]:
    """Stream rows as log entries, oldest first as given; bad rows skipped."""
    return [entry for entry in map(_entry, rows) if entry is not None]


def _entry(row: Any) -> Optional[LogEntry]:
    row_id, fields = row
    try:
        event = json.loads(fields.get("event"))
    except (TypeError, ValueError):
        logger.warning("Entry %s of the event log is not JSON; skipped", row_id)
        return None
    if not isinstance(event, dict):
        return None
    return LogEntry(row_id, event)
