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
from typing import Any, List, Optional, Sequence

import redis

from osism import settings
from osism.services.event_log import Envelope, LogEntry, Replay, page_of, position_key

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
    """The log in Redis, through ``client`` (built by redis_connection).

    Every method raises ``redis.RedisError`` when Redis does not answer
    within the client's socket timeout.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: Optional[str] = None,
        history_size: Optional[int] = None,
        dedupe_seconds: Optional[int] = None,
    ) -> None:
        self.client = client
        self.prefix = settings.EVENTS_PREFIX if prefix is None else prefix
        self.channel = self.prefix
        self.stream = f"{self.prefix}:log"
        self.history_size = (
            settings.EVENT_HISTORY_SIZE if history_size is None else history_size
        )
        self.dedupe_seconds = (
            settings.EVENT_DEDUPE_SECONDS if dedupe_seconds is None else dedupe_seconds
        )
        self.receivers = 0
        self.duplicates = 0
        self._script = client.register_script(APPEND_SCRIPT)

    def id_key(self, event_id: str) -> str:
        return f"{self.prefix}:id:{event_id}"

    def append(self, envelope: Envelope) -> Optional[LogEntry]:
        """Append and announce ``envelope``; for a known id, the logged entry."""
        event_id = str(envelope["id"])
        text = json.dumps(envelope)
        if not text.startswith("{") or text == "{}":
            raise ValueError("an envelope is a non-empty JSON object")
        reply = self._script(
            keys=[self.stream, self.id_key(event_id), self.channel],
            args=[event_id, text, self.history_size, self.dedupe_seconds],
        )
        position, appended, logged, receivers = (_text(item) for item in reply)
        if appended == "1":
            self.receivers = int(receivers)
            return LogEntry(position, envelope)
        self.duplicates += 1
        logger.debug("Event %s is in the log already at %s", event_id, position)
        return LogEntry(position, json.loads(logged) if logged else envelope)

    def read_after(self, position: Optional[str], limit: int) -> List[LogEntry]:
        start = "-" if position is None else f"({position}"
        rows = self._range(self.stream, start, "+", count=limit)
        return [entry for entry in map(_entry, rows) if entry is not None]

    def last_position(self) -> Optional[str]:
        rows = self._range(self.stream, "+", "-", count=1, reverse=True)
        return _text(rows[0][0]) if rows else None

    def covers(self, position: str) -> bool:
        """Whether the log surely still holds every entry after ``position``.

        Trimming takes the oldest entries first: while the oldest one is not
        newer than ``position``, nothing after it is gone. Otherwise entries
        after it may be gone (trimmed, or lost by a Redis that restarted
        empty).
        """
        rows = self._range(self.stream, "-", "+", count=1)
        return not rows or position_key(_text(rows[0][0])) <= position_key(position)

    def replay(self, last_event_id: str, limit: int) -> Replay:
        """What a client that saw ``last_event_id`` missed (decision 6)."""
        oldest = self._oldest_id()
        position = self._position_of(last_event_id)
        if position is None:
            return Replay(self._newest(limit), False, oldest)
        after = self.read_after(position, limit + 1)
        if len(after) <= limit:
            return Replay(after, True, oldest)
        return Replay(self._newest(limit), False, oldest)

    def _range(
        self, stream: str, start: str, end: str, count: int, reverse: bool = False
    ) -> List[Any]:
        """XRANGE (XREVRANGE with ``reverse``) as a list of (id, fields)."""
        if reverse:
            rows = self.client.xrevrange(stream, start, end, count=count)
        else:
            rows = self.client.xrange(stream, start, end, count=count)
        return list(rows or [])

    def _position_of(self, event_id: str) -> Optional[str]:
        """The stream id of ``event_id`` while the log still holds it."""
        known = self.client.get(self.id_key(event_id))
        if known is not None:
            position = _text(known)
            if self._range(self.stream, position, position, count=1):
                return position
            return None  # trimmed: the entries after it may be gone too
        start = "-"
        while True:
            rows = self._range(self.stream, start, "+", count=SCAN_PAGE)
            for row_id, fields in rows:
                if _text(_field(fields, "id")) == event_id:
                    return _text(row_id)
            if len(rows) < SCAN_PAGE:
                return None
            start = f"({_text(rows[-1][0])}"

    def _newest(self, limit: int) -> List[LogEntry]:
        if limit <= 0:
            return []
        rows = self._range(self.stream, "+", "-", count=limit, reverse=True)
        entries = [entry for entry in map(_entry, reversed(rows)) if entry is not None]
        return page_of(entries, limit)[0]

    def _oldest_id(self) -> Optional[str]:
        rows = self._range(self.stream, "-", "+", count=1)
        if not rows:
            return None
        return _text(_field(rows[0][1], "id")) or None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _field(fields: Any, name: str) -> Any:
    if isinstance(fields, dict):
        return fields.get(name, fields.get(name.encode()))
    if isinstance(fields, Sequence):  # a flat [name, value, ...] list
        for index in range(0, len(fields) - 1, 2):
            if _text(fields[index]) == name:
                return fields[index + 1]
    return None


def _entry(row: Any) -> Optional[LogEntry]:
    row_id, fields = row
    try:
        event = json.loads(_text(_field(fields, "event")))
    except ValueError:
        logger.warning("Entry %s of the event log is not JSON; skipped", row_id)
        return None
    if not isinstance(event, dict):
        return None
    return LogEntry(_text(row_id), event)
