"""Resume: a client that names the last event it saw gets what it missed.

The order of one resume, all on the manager's loop:

1. The connection's live feed is paused: live events that match its filters
   are held in a bounded buffer (``ResumeState``); a client whose buffer
   overflows is closed with 1013 like any client too slow for its outbox.
2. The replay is fetched from the event log in a worker thread
   (the manager's ``replay_source``, blocking) and filtered with the
   connection's filters.
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

``resume`` gets what it needs as arguments (the source, the bounds, how to
queue the reply) and returns what happened (``Resumed``); the manager keeps
the counters.
"""

import asyncio
import logging
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from osism.core.event_log import LogEntry, Replay, position_key
from osism.core.event import EventMessage
from osism.core.notifications import event_fields
from osism.services.fanout.connection import WebSocketConnection
from osism.services.fanout.hold import Held, ResumeState

__all__ = [
    "Held",
    "ReplaySource",
    "ResumeState",
    "Resumed",
    "event_of",
    "resume",
    "resume_keys",
]

logger = logging.getLogger("osism.websocket")

ReplaySource = Callable[[str, int], Replay]


class Resumed(NamedTuple):
    """What one resume did."""

    # The reply was queued and the replay is on its way (False: the client
    # was gone, or closed as too slow, first).
    queued: bool
    # The client was still there when the log had been read: a resume to count.
    counted: bool
    # Events replayed to it (0 unless counted).
    replayed: int


def resume_keys(
    recovered: bool, replayed: int, oldest_id: Optional[str]
) -> Dict[str, Any]:
    """The keys a resume adds to the ``filter_update`` reply."""
    return {"recovered": recovered, "replayed": replayed, "oldest_id": oldest_id}


async def resume(
    connection: WebSocketConnection,
    last_event_id: str,
    make_reply: Callable[[Dict[str, Any]], str],
    *,
    source: Optional[ReplaySource],
    limit: int,
    hold_bound: Optional[int],
    is_current: Callable[[], bool],
    send: Callable[[str], bool],
) -> Resumed:
    """Replay what ``connection`` missed after ``last_event_id``, then go live.

    ``make_reply`` turns the resume keys into the reply text; ``source`` is
    read for at most ``limit`` events; at most ``hold_bound`` live events are
    held meanwhile (None: RESUME_BUFFER_SIZE, see ResumeState).
    ``is_current()`` says the client is still connected (it may leave while
    the log is read), ``send(text)`` queues the reply and is False when the
    client's outbox is full (it is closed then).
    """
    state = connection.resume
    if state is None:
        state = connection.resume = ResumeState(hold_bound)
    else:
        # A second resume while one is running: start the replay over; the
        # live events held so far stay held (the seam check sorts them out).
        # The old feed is suspended in an await: cancelled, it puts nothing
        # more, and it ends before the new feed (created later) first runs.
        state.cancel()
    replay = await _fetch(source, last_event_id, limit)
    if not is_current():
        return Resumed(False, False, 0)
    events = _matching_events(connection, replay.entries)
    logger.info(
        "Client resumes after %s: %d of %d events in the log replayed, recovered=%s",
        last_event_id,
        len(events),
        len(replay.entries),
        replay.recovered,
    )
    reply = make_reply(resume_keys(replay.recovered, len(events), replay.oldest_id))
    if not send(reply):
        return Resumed(False, True, len(events))
    last = replay.entries[-1].position if replay.entries else None
    state.task = asyncio.create_task(_feed(connection, state, events, last))
    return Resumed(True, True, len(events))


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
    connection: WebSocketConnection, entries: List[LogEntry]
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
    connection: WebSocketConnection,
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
