"""The broadcaster's step: offering one turn's events to every matching client.

Each event is serialised and framed once (the broadcaster does that, see
WebSocketManager._broadcast_events). A client without filters gets the
turn's events as one outbox entry shared by all such clients (a Bundle, or
the text itself when the turn has one event), so a delivery costs it no
work of its own; a filtered client gets the events that match it, bundled
likewise. A client whose outbox is full is evicted, a client paused for a
resume holds the events one by one. The broadcaster fans out at most
batch_size events, byte_budget bytes, per turn before the writers get one.
"""

import logging
from typing import TYPE_CHECKING, List, Optional, Sequence

from osism import settings
from osism.core.event_log import position_key
from osism.core.event import EventMessage
from osism.transport.frames import FramedText, Item, bundle_of

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
    from osism.services.fanout.connection import WebSocketConnection
    from osism.services.fanout.resume import ResumeState
    from osism.services.websocket_manager import WebSocketManager

logger = logging.getLogger("osism.websocket")


def batch_size(manager: "WebSocketManager") -> int:
    """Events fanned out per turn of the loop: FANOUT_BATCH, at most half
    an outbox (the first event of a turn always goes)."""
    size = settings.OUTBOX_SIZE if manager.outbox_size is None else manager.outbox_size
    return min(manager.FANOUT_BATCH, size // 2)


def byte_budget(manager: "WebSocketManager") -> int:
    """Bytes fanned out per turn of the loop: half an outbox's byte bound
    (the first event of a turn always goes)."""
    size = (
        settings.OUTBOX_BYTES if manager.outbox_bytes is None else manager.outbox_bytes
    )
    return size // 2


def fan_out(
    manager: "WebSocketManager",
    events: Sequence[EventMessage],
    texts: Sequence[FramedText],
) -> None:
    """Offer ``events`` (one turn's, in order; ``texts`` their framed JSON)
    to every matching client."""
    heartbeats = [is_heartbeat(event) for event in events]
    # Clients per event: those without filters all get every event.
    counts = [0] * len(events)
    unfiltered = 0
    shared: Optional[Item] = None
    for connection in list(manager.connections.values()):
        if connection.writer is None:
            # connect() starts it; a connection added otherwise gets it here.
            manager._start_writer(connection)
        state = connection.resume
        if state is not None:
            _hold(manager, connection, state, events, texts, heartbeats)
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
                manager._evict_slow(connection)
                continue
            for i in picked:
                counts[i] += 1
            continue
        if shared is None:
            shared = bundle_of(texts)
        if connection.offer(shared):
            unfiltered += 1
        else:
            manager._evict_slow(connection)
    manager.delivered += sum(counts) + unfiltered * len(events)
    for event, count in zip(events, counts):
        logger.debug(
            "Event %s offered to %d clients", event.event_type, count + unfiltered
        )


def is_heartbeat(event: EventMessage) -> bool:
    """The manager's own heartbeat: it goes to every client, filters or not."""
    return event.event_type == "heartbeat" and event.source == "osism"


def _not_replayed(connection: "WebSocketConnection", event: EventMessage) -> bool:
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
    manager: "WebSocketManager",
    connection: "WebSocketConnection",
    state: "ResumeState",
    events: Sequence[EventMessage],
    texts: Sequence[FramedText],
    heartbeats: List[bool],
) -> None:
    """A client paused for a resume holds its matching events (a heartbeat
    is not needed); one over its hold bound is evicted."""
    for event, text, heartbeat in zip(events, texts, heartbeats):
        if heartbeat or not connection.matches_filters(event):
            continue
        if not state.hold(event.position, text):
            manager._evict_slow(connection)
            return
