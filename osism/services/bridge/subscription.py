"""What the bridge's Redis subscriber remembers between messages.

``Subscription`` keeps the position of the last event it delivered, so that
after every (re)subscribe the subscriber reads the log from there
(``catch_up``) and then skips the live messages it has delivered already
(``accept``): no gap and no duplicate at the seam. It also runs the
subscriber's own health check: a PING on the subscription every
``interval`` seconds, and a connection that does not answer within
``timeout`` seconds counts as dead (``check_health`` raises).
"""

import json
import logging
import time
from typing import Any, Callable, Dict, Optional

from osism.core.event_log import Envelope, position_key
from osism.services.bridge.redis_log import RedisEventLog

logger = logging.getLogger("osism.event_bridge")

PING_TOKEN = "osism-subscriber-health"
CATCH_UP_PAGE = 1000


class DeadConnection(ConnectionError):
    """The subscription's connection did not answer our PING in time."""


class Subscription:
    """The subscriber's position in the log and its health check."""

    def __init__(
        self,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self.position: Optional[str] = None
        # Only its truth is read, so None here is False (pragma).
        self.started = False  # pragma: no mutate
        self.caught_up = 0
        self.skipped = 0
        self.missed_warnings = 0
        self._clock = clock
        self._ping_sent: Optional[float] = None
        self._last_ping = clock()

    def begin(self, log: RedisEventLog) -> None:
        """At the first subscribe: start from the log's current tail."""
        if not self.started:
            self.position = log.last_position()
            self.started = True

    def reset_health(self) -> None:
        """A new connection: nothing outstanding, next PING in ``interval``."""
        self._ping_sent = None
        self._last_ping = self._clock()

    def check_health(self, subscriber: Any) -> None:
        """PING when due; raise DeadConnection when a PING went unanswered
        (until ``reset_health``: the next connection)."""
        now = self._clock()
        if self._ping_sent is not None:
            if now - self._ping_sent > self.timeout:
                raise DeadConnection(
                    "Redis did not answer PING on the subscription within "
                    "%.1f s" % self.timeout
                )
        elif now - self._last_ping >= self.interval:
            subscriber.ping(PING_TOKEN)
            self._ping_sent = now
            self._last_ping = now

    def pong(self, message: Dict[str, Any]) -> bool:
        """Whether ``message`` answers our PING (and then none is outstanding)."""
        if is_pong(message):
            self._ping_sent = None
            return True
        return False

    def catch_up(self, log: RedisEventLog, deliver: Callable[[Envelope], None]) -> int:
        """Deliver what the log holds after ``position``, oldest first."""
        if self.position is not None and not log.covers(self.position):
            self.missed_warnings += 1
            logger.warning(
                "The event log no longer reaches back to %s, the last event "
                "this process delivered: events may have been missed (the log "
                "keeps about %d events, EVENT_HISTORY_SIZE); delivering what it "
                "holds and continuing",
                self.position,
                log.history_size,
            )
        delivered = 0
        while True:
            # An unbounded page delivers the same events; only memory differs
            # (pragma).
            entries = log.read_after(self.position, CATCH_UP_PAGE)  # pragma: no mutate
            for entry in entries:
                deliver(dict(entry.event, stream_id=entry.position))
                self.position = entry.position
                delivered += 1
            if len(entries) < CATCH_UP_PAGE:
                break
        self.caught_up += delivered
        if delivered:
            logger.info("Caught up with %d events from the event log", delivered)
        return delivered

    def accept(self, event: Dict[str, Any]) -> bool:
        """Whether a live event is new (and then it becomes the position)."""
        stream_id = event.get("stream_id")
        if not isinstance(stream_id, str):
            return True  # a plain message from an old publisher: not in the log
        try:
            key = position_key(stream_id)
        except ValueError:
            return True
        if self.position is not None and key <= position_key(self.position):
            self.skipped += 1
            logger.debug("Skipped %s: delivered already from the log", stream_id)
            return False
        self.position = stream_id
        return True


def is_pong(message: Dict[str, Any]) -> bool:
    """Whether a pub/sub message is the answer to our PING.

    redis-py 8 with ``decode_responses`` hands the answer to ``PING <token>``
    on a subscription over as if the token were a message (its first three
    characters become type, channel and data); without decoding it is a
    proper ``pong``. Both are recognised.
    """
    if message.get("type") == "pong":
        return message.get("data") in (PING_TOKEN, PING_TOKEN.encode())
    return (
        message.get("type"),
        message.get("channel"),
        message.get("data"),
    ) == tuple(PING_TOKEN[:3])


def decode(data: Any) -> Dict[str, Any]:
    """A channel message as an event; raises ValueError for anything else."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    return event
