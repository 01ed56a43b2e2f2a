"""The broadcaster's step: offering one turn's events to every matching client.

Each event is serialised and framed once (the broadcaster does that, see
WebSocketManager._broadcast_events). A client without filters gets the
turn's events as one outbox entry shared by all such clients (a Bundle, or
the text itself when the turn has one event), so a delivery costs it no
work of its own; a filtered client gets the events that match it, bundled
likewise. A client whose outbox is full is returned for the manager to
close, a client paused for a resume holds the events one by one. The
broadcaster fans out at most batch_size events, byte_budget bytes, per turn
before the writers get one.
"""

import logging
from typing import Callable, Collection, List, Optional, Sequence, Tuple

from osism.core.event_log import position_key
from osism.core.event import EventMessage
from osism.services.fanout.connection import WebSocketConnection
from osism.services.fanout.hold import ResumeState
from osism.transport.frames import FramedText, Item, bundle_of

__all__ = ["batch_size", "byte_budget", "fan_out", "is_heartbeat"]

logger = logging.getLogger("osism.websocket")

# fan_out's answer when nobody was too slow (no list built per turn).
_NOBODY: Tuple[WebSocketConnection, ...] = ()


def batch_size(fanout_batch: int, outbox_size: int) -> int:
    """Events fanned out per turn of the loop: ``fanout_batch``, at most half
    an outbox (the first event of a turn always goes)."""
    return min(fanout_batch, outbox_size // 2)


def byte_budget(outbox_bytes: int) -> int:
    """Bytes fanned out per turn of the loop: half an outbox's byte bound
    (the first event of a turn always goes)."""
    return outbox_bytes // 2


def fan_out(
    connections: Collection[WebSocketConnection],
    events: Sequence[EventMessage],
    texts: Sequence[FramedText],
    start_writer: Callable[[WebSocketConnection], None],
) -> Tuple[int, Sequence[WebSocketConnection]]:
    """Offer ``events`` (one turn's, in order; ``texts`` their framed JSON)
    to every matching client of ``connections``.

    Returns the deliveries (one per client and event) and the clients whose
    outbox (or hold buffer, while resuming) was full: the caller closes
    those. ``start_writer`` starts a writer for a connection that has none.
    """
    heartbeats = [is_heartbeat(event) for event in events]
    # Clients per event: those without filters all get every event.
    counts = [0] * len(events)
    unfiltered = 0
    shared: Optional[Item] = None
    slow: Optional[List[WebSocketConnection]] = None
    for connection in list(connections):
        if connection.writer is None:
            # connect() starts it; a connection added otherwise gets it here.
            start_writer(connection)
        state = connection.resume
        if state is not None:
            if not _hold(connection, state, events, texts, heartbeats):
                slow = _add(slow, connection)
            continue
        if connection.filtered or connection.replayed_to is not None:
            picked = [
                i
                for i, event in enumerate(events)
                if (heartbeats[i] or connection.matches_filters(event))
                and _not_replayed(connection, event)
            ]
            if not picked:
                continue
            if not connection.offer(bundle_of([texts[i] for i in picked])):
                slow = _add(slow, connection)
                continue
            for i in picked:
                counts[i] += 1
            continue
        if shared is None:
            shared = bundle_of(texts)
        if connection.offer(shared):
            unfiltered += 1
        else:
            slow = _add(slow, connection)
    total = len(connections)
    for event, count in zip(events, counts):
        logger.debug(
            "Broadcasted event %s to %d/%d connection(s)",
            event.event_type,
            count + unfiltered,
            total,
        )
    delivered = sum(counts) + unfiltered * len(events)
    return delivered, _NOBODY if slow is None else slow


def _add(
    slow: Optional[List[WebSocketConnection]], connection: WebSocketConnection
) -> List[WebSocketConnection]:
    if slow is None:
        return [connection]
    slow.append(connection)
    return slow


def is_heartbeat(event: EventMessage) -> bool:
    """The manager's own heartbeat: it goes to every client, filters or not."""
    return event.event_type == "heartbeat" and event.source == "osism"


def _not_replayed(connection: WebSocketConnection, event: EventMessage) -> bool:
    """False for a live event the client's replay held already (at or before
    ``replayed_to``); the first event past it ends the check."""
    seam = connection.replayed_to
    if seam is None or event.position is None:
        return True
    if position_key(event.position) <= seam:
        return False
    connection.replayed_to = None
    return True


def _hold(
    connection: WebSocketConnection,
    state: ResumeState,
    events: Sequence[EventMessage],
    texts: Sequence[FramedText],
    heartbeats: List[bool],
) -> bool:
    """A client paused for a resume holds its matching events (a heartbeat
    is not needed); False when they went over its hold bound."""
    for event, text, heartbeat in zip(events, texts, heartbeats):
        if heartbeat or not connection.matches_filters(event):
            continue
        if not state.hold(event.position, text):
            return False
    return True
