"""How events come into the WebSocketManager: its bounded event queue.

Events are queued for the broadcaster (websocket_manager.py); at the bound
the oldest is dropped (``put_dropping_oldest`` says so, the manager counts
it). OpenStack notifications are turned into EventMessages here
(``notification_event``). Both take what they work on as arguments and
return what they did; the manager owns the queue and the counters.
"""

import asyncio
from typing import Any, Dict, Optional

from osism.core.event import EventMessage
from osism.core.notifications import event_fields

__all__ = ["heartbeat", "notification_event", "put_dropping_oldest"]


def put_dropping_oldest(
    queue: "asyncio.Queue[EventMessage]", event: EventMessage
) -> bool:
    """Put ``event`` on the bounded queue; at the bound the oldest goes
    first. True when one was dropped."""
    try:
        queue.put_nowait(event)
        return False
    except asyncio.QueueFull:
        pass
    queue.get_nowait()
    queue.put_nowait(event)
    return True


def notification_event(
    event_type: str,
    payload: Dict[str, Any],
    meta: Optional[Dict[str, Any]] = None,
    event_id: Optional[str] = None,
    timestamp: Optional[str] = None,
    position: Optional[str] = None,
) -> EventMessage:
    """The EventMessage an OpenStack notification is sent as; raises when
    the payload cannot be one (see osism.core.notifications)."""
    data, node_name = event_fields(event_type, payload, meta)
    return EventMessage(
        event_type,
        "openstack",
        data,
        node_name,
        event_id=event_id,
        timestamp=timestamp,
        position=position,
    )


def heartbeat() -> EventMessage:
    """The manager's heartbeat (upstream osism's: from ``osism``, a ping)."""
    return EventMessage("heartbeat", "osism", {"message": "ping"})
