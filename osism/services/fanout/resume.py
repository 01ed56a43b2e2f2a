"""Resume: a client that names the last event it saw gets what it missed.

The order of one resume, all on the manager's loop:

1. The connection's live feed is paused: live events that match its filters
   are held in a bounded buffer (``ResumeState``); a client whose buffer
   overflows is closed with 1013 like any client too slow for its outbox.
2. The replay is fetched from the event log in a worker thread
   (``manager.replay_source``, blocking) and filtered with the connection's
   filters.
3. The reply (``recovered``, ``replayed``, ``oldest_id``) is queued.
4. A feed task puts the replayed events into the outbox, waiting for room
   (back-pressure, never an overflow), then the held live events whose position
   is after the last entry of the replay (the rest were replayed already; an
   event without a position was never in the log and is always sent). Then the
   connection is live again; live events at or before that seam that reach the
   manager only now (the replay read them from the log before the bridge
   handed them over) are skipped too, until the first one past it.

Without a replay source, or when it fails, the reply says ``recovered: false``
with no ``oldest_id`` and the connection simply continues live.
"""

import asyncio
import logging
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Tuple,
)

from osism import settings
from osism.core.event_log import LogEntry, Replay, position_key
from osism.core.event import EventMessage
from osism.core.notifications import event_fields

if TYPE_CHECKING:  # pragma: no cover - imports for the type checker only
    from osism.services.fanout.connection import WebSocketConnection
    from osism.services.websocket_manager import WebSocketManager

logger = logging.getLogger("osism.websocket")

ReplaySource = Callable[[str, int], Replay]
# (position in the log or None, the event's JSON text)
Held = Tuple[Optional[str], str]


class ResumeState:
    """A paused connection's live events, held until its replay is sent."""

    def __init__(self, bound: Optional[int] = None) -> None:
        self.bound = settings.RESUME_BUFFER_SIZE if bound is None else bound
        self.held: Deque[Held] = deque()
        self.task: Optional["asyncio.Task[None]"] = None

    def hold(self, position: Optional[str], text: str) -> bool:
        """Keep a live event for later; False when the buffer is full."""
        if len(self.held) >= self.bound:
            return False
        self.held.append((position, text))
        return True

    def cancel(self) -> None:
        task = self.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()


def resume_keys(
    recovered: bool, replayed: int, oldest_id: Optional[str]
) -> Dict[str, Any]:
    """The keys a resume adds to the ``filter_update`` reply."""
    return {"recovered": recovered, "replayed": replayed, "oldest_id": oldest_id}


async def resume(
    manager: "WebSocketManager",
    connection: "WebSocketConnection",
    last_event_id: str,
    make_reply: Callable[[Dict[str, Any]], str],
) -> bool:
    """Replay what ``connection`` missed after ``last_event_id``, then go live.

    ``make_reply`` turns the resume keys into the reply text. False when the
    connection is gone (or was closed as too slow) before its reply was queued.
    """
    state = connection.resume
    if state is None:
        state = connection.resume = ResumeState()
    else:
        # A second resume while one is running: start the replay over; the
        # live events held so far stay held (the seam check sorts them out).
        # The old feed is suspended in an await: cancelled, it puts nothing
        # more, and it ends before the new feed (created later) first runs.
        state.cancel()
    replay = await _fetch(manager.replay_source, last_event_id, settings.REPLAY_LIMIT)
    websocket = connection.websocket
    if manager.connections.get(websocket) is not connection:
        return False
    events = _matching_events(connection, replay.entries)
    manager.resumes += 1
    manager.replayed_events += len(events)
    logger.info(
        "Client resumes after %s: %d of %d events in the log replayed, recovered=%s",
        last_event_id,
        len(events),
        len(replay.entries),
        replay.recovered,
    )
    reply = make_reply(resume_keys(replay.recovered, len(events), replay.oldest_id))
    if not manager.send_to(websocket, reply):
        return False
    last = replay.entries[-1].position if replay.entries else None
    state.task = asyncio.create_task(_feed(connection, state, events, last))
    return True


async def _fetch(
    source: Optional[ReplaySource], last_event_id: str, limit: int
) -> Replay:
    if source is None:
        logger.warning(
            "A client asked to resume, but there is no event log to replay from; "
            "it gets recovered=false and continues live"
        )
        return Replay([], False, None)
    try:
        replay = await asyncio.to_thread(source, last_event_id, limit)
    except Exception as exc:
        logger.warning(
            "Reading the event log for a resuming client failed (%s); it gets "
            "recovered=false and continues live",
            exc,
        )
        return Replay([], False, None)
    if len(replay.entries) > limit:
        # The source gave more than asked for: the newest part, as promised.
        return Replay(replay.entries[-limit:], False, replay.oldest_id)
    return replay


def _matching_events(
    connection: "WebSocketConnection", entries: List[LogEntry]
) -> List["EventMessage"]:
    events = []
    for entry in entries:
        event = event_of(entry)
        if event is not None and connection.matches_filters(event):
            events.append(event)
    return events


def event_of(entry: LogEntry) -> Optional["EventMessage"]:
    """The EventMessage a log entry is sent as (None for an unusable entry).

    It has no ``position``: a replayed event goes straight to the outbox,
    and the seam is the position of the replay's last entry."""
    envelope = entry.event
    try:
        event_type = envelope.get("event_type") or ""
        data, node_name = event_fields(
            event_type, envelope["payload"], envelope.get("meta")
        )
        return EventMessage(
            event_type,
            "openstack",
            data,
            node_name,
            event_id=envelope.get("id"),
            timestamp=envelope.get("timestamp"),
        )
    except Exception as exc:
        logger.error("Skipping log entry %s in a replay: %s", entry.position, exc)
        return None


async def _feed(
    connection: "WebSocketConnection",
    state: ResumeState,
    events: List["EventMessage"],
    last: Optional[str],
) -> None:
    """Replayed events, then the held live ones after the seam, then live."""
    outbox = connection.outbox
    for event in events:
        await outbox.put(event.to_json())
    seam = None if last is None else position_key(last)
    skipped = 0
    # No await between the last check of ``held`` and going live, so no live
    # event can slip in between.
    while state.held:
        position, text = state.held.popleft()
        if seam is not None and position is not None and position_key(position) <= seam:
            skipped += 1
            continue
        await outbox.put(text)
    if connection.resume is state:
        connection.resume = None
        # Live events still on their way from the log may be in the replay.
        connection.replayed_to = seam
    logger.debug(
        "Resume done: %d replayed, %d live events already replayed skipped",
        len(events),
        skipped,
    )
