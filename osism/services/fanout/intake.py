"""How events come into the WebSocketManager: its bounded event queue.

Events are queued for the broadcaster (websocket_manager.py); at the bound
the oldest is dropped and counted. OpenStack notifications are turned into
EventMessages here, and a heartbeat is queued only when nothing else is.
"""

import asyncio
import logging
from typing import Any, Dict, Optional

from fastapi import WebSocket

from osism.services.fanout.connection import WebSocketConnection
from osism.core.event import EventMessage
from osism.core.notifications import event_fields
from osism.core.ratelimit import RateLimitedLog

logger = logging.getLogger("osism.websocket")


class EventIntake:
    """The queueing half of WebSocketManager (a mixin; the manager sets the
    attributes below in its constructor)."""

    connections: Dict[WebSocket, WebSocketConnection]
    event_queue: "asyncio.Queue[EventMessage]"
    dropped_events: int
    skipped_heartbeats: int
    received: int
    _drop_log: RateLimitedLog

    async def add_event(self, event: EventMessage) -> None:
        self.enqueue(event)

    def enqueue(self, event: EventMessage) -> None:
        """Put an event on the bounded queue; at the bound the oldest is dropped."""
        try:
            self.event_queue.put_nowait(event)
            return
        except asyncio.QueueFull:
            pass
        self.event_queue.get_nowait()
        self.event_queue.put_nowait(event)
        self.dropped_events += 1
        self._drop_log.warning(
            "Event queue full (%d): dropped the oldest event, %d dropped so far",
            self.event_queue.maxsize,
            self.dropped_events,
        )

    async def broadcast_event_from_notification(
        self, event_type: str, payload: Dict[str, Any], **logged: Any
    ) -> None:
        self.add_notification(event_type, payload, **logged)

    def add_notification(
        self,
        event_type: str,
        payload: Dict[str, Any],
        meta: Optional[Dict[str, Any]] = None,
        event_id: Optional[str] = None,
        timestamp: Optional[str] = None,
        position: Optional[str] = None,
    ) -> None:
        """Turn an OpenStack notification into an EventMessage and queue it.

        ``meta``, ``event_id``, ``timestamp`` and ``position`` come from the
        event log (see event_log.Envelope). Never raises: a payload that cannot
        be turned into an event is logged.
        """
        try:
            data, node_name = event_fields(event_type, payload, meta)
            event = EventMessage(
                event_type,
                "openstack",
                data,
                node_name,
                event_id=event_id,
                timestamp=timestamp,
                position=position,
            )
            self.enqueue(event)
            self.received += 1
            logger.debug("Queued %s for node %s", event_type, node_name)
        except Exception as exc:
            logger.error("Cannot broadcast notification %r: %s", event_type, exc)

    async def send_heartbeat(self) -> None:
        if not self.connections:
            return
        if not self.event_queue.empty():
            # Events are on their way, which says as much as a ping: a
            # heartbeat never takes a place a real event needs, so it can
            # never push one out of a full queue.
            self.skipped_heartbeats += 1
            logger.debug(
                "Heartbeat skipped: %d events queued (%d skipped so far)",
                self.event_queue.qsize(),
                self.skipped_heartbeats,
            )
            return
        heartbeat = EventMessage("heartbeat", "osism", {"message": "ping"})
        await self.add_event(heartbeat)
