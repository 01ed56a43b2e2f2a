"""The broadcaster's step: offering one event to every matching client.

The event is serialised once and its text offered to each matching
connection's outbox; a client whose outbox is full is evicted, a client
paused for a resume holds it. The broadcaster (WebSocketManager.
_broadcast_events) fans out at most batch_size events, byte_budget bytes,
per turn before the writers get one.
"""

import logging
from typing import TYPE_CHECKING

from osism import settings
from osism.services.event_message import EventMessage
from osism.services.outbox import text_size
from osism.ws_frames import framed

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
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


def fan_out(manager: "WebSocketManager", event: EventMessage) -> int:
    """Offer the event to every matching client; the bytes of its text."""
    # The frame is built once here rather than once per client (ws_protocol).
    text = framed(event.to_json())
    is_heartbeat = event.event_type == "heartbeat" and event.source == "osism"
    sent = 0
    for connection in list(manager.connections.values()):
        if not (is_heartbeat or connection.matches_filters(event)):
            continue
        if connection.writer is None:
            # connect() starts it; a connection added otherwise gets it here.
            manager._start_writer(connection)
        if connection.resume is not None:
            # Paused for a resume: hold it (a heartbeat is not needed).
            if not is_heartbeat and not connection.resume.hold(event.position, text):
                manager._evict_slow(connection)
            continue
        if connection.offer(text):
            sent += 1
        else:
            manager._evict_slow(connection)
    manager.delivered += sent
    logger.debug("Event %s offered to %d clients", event.event_type, sent)
    return text_size(text)
