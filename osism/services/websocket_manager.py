"""Fan-out of events to WebSocket clients, each with its own filters.

One broadcaster task takes events from a bounded queue, serialises each event
once (orjson) and offers the text to every matching connection's outbox,
bounded in count and in bytes. Each connection has its own writer task, so a
slow or stalled client delays nobody; a client over either bound is closed
with code 1013 and counted. A client that asked for batched frames gets what
is queued for it as one JSON array per frame instead of one frame per message.

The event itself is in osism.core.event, the parts below this face in
osism.services.fanout: a client's filters, outbox and transport in
connection.py (importable from here as well), the writer in writer.py, the
fan-out step in broadcast.py, resume in resume.py, how events are turned
into queued EventMessages in intake.py. Those take what they work on as
arguments and return what they did; the counters and the registry of
connections are the manager's, and nothing below imports this module.
"""

import asyncio
import logging
from typing import Any, Callable, Dict, List, Optional, Set

from fastapi import WebSocket, WebSocketDisconnect

from osism import settings
from osism.core.event import EventMessage, utc_timestamp
from osism.services.fanout import broadcast as fanout
from osism.services.fanout import intake
from osism.services.fanout import resume as replay
from osism.services.fanout.connection import WebSocketConnection, close_quietly
from osism.services.fanout.outbox import Outbox, text_size
from osism.services.fanout.status import ManagerStatus
from osism.core.ratelimit import RateLimitedLog
from osism.services.fanout.writer import write_loop
from osism.transport.frames import framed

__all__ = [
    "CLOSE_TRY_AGAIN_LATER",
    "EventMessage",
    "Outbox",
    "WebSocketConnection",
    "WebSocketDisconnect",
    "WebSocketManager",
    "close_quietly",
    "text_size",
    "utc_timestamp",
    "websocket_manager",
]

logger = logging.getLogger("osism.websocket")

CLOSE_TRY_AGAIN_LATER = 1013
# Seconds between two warnings about events dropped at the full queue.
DROP_LOG_INTERVAL = 10.0


class WebSocketManager:
    """Registry of connections plus the broadcaster that feeds them.

    Events come in through add_event, add_notification (and upstream
    osism's broadcast_event_from_notification) and send_heartbeat onto the
    bounded ``event_queue``. A limit left as None is the setting's, read
    when it is used (``outbox_size``, ``outbox_bytes``: WEBSOCKET_OUTBOX_*;
    ``replay_limit``: REPLAY_LIMIT; ``resume_buffer_size``:
    RESUME_BUFFER_SIZE).
    """

    # Most events fanned out before the writers get a turn (see broadcast.py).
    FANOUT_BATCH = 16

    # Most frames a writer (writer.py) hands to the server in one ASGI
    # message, and the characters after which it stops adding more.
    WRITE_MANY = 256
    WRITE_MANY_CHARS = 262144
    # Longest batched frame, in characters of JSON (each connection takes it
    # at connect); a single message longer than this still goes, alone in
    # its array.
    BATCH_FRAME_CHARS = 65536

    def __init__(
        self,
        queue_size: Optional[int] = None,
        outbox_size: Optional[int] = None,
        outbox_bytes: Optional[int] = None,
        replay_limit: Optional[int] = None,
        resume_buffer_size: Optional[int] = None,
    ) -> None:
        self.connections: Dict[WebSocket, WebSocketConnection] = {}
        size = settings.EVENT_QUEUE_SIZE if queue_size is None else queue_size
        self.event_queue: "asyncio.Queue[EventMessage]" = asyncio.Queue(maxsize=size)
        self.outbox_size = outbox_size
        self.outbox_bytes = outbox_bytes
        self.replay_limit = replay_limit
        self.resume_buffer_size = resume_buffer_size
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.dropped_events = 0
        self.slow_disconnects = 0
        self.delivered = 0
        self.skipped_heartbeats = 0
        self.resumes = 0
        self.replayed_events = 0
        # The event log a resuming client is replayed from (the API sets it
        # to the bridge's replay); blocking, so it is called in a thread.
        self.replay_source: Optional[replay.ReplaySource] = None
        self.received = 0
        self._broadcaster_task: Optional["asyncio.Task[None]"] = None
        self._closing: Set["asyncio.Task[None]"] = set()
        self._drop_log = RateLimitedLog(logger, interval=DROP_LOG_INTERVAL)

    async def start(self) -> None:
        """Bind to the running loop and start the broadcaster (idempotent)."""
        loop = asyncio.get_running_loop()
        if self.loop is not None and self.loop is not loop:
            # A queue belongs to the loop that first waits on it: a manager that
            # moves to a new loop (a restarted app) starts with fresh state.
            self.event_queue = asyncio.Queue(maxsize=self.event_queue.maxsize)
            self.connections.clear()
            self._closing = set()
            self._broadcaster_task = None
        self.loop = loop
        self._ensure_broadcaster()

    async def stop(self) -> None:
        """Stop the broadcaster and every writer; close remaining clients."""
        task, self._broadcaster_task = self._broadcaster_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        closes = []
        for websocket in list(self.connections):
            connection = self.connections.pop(websocket)
            self._stop_writer(connection)
            closes.append(
                close_quietly(connection.transport, 1001, "server shutting down")
            )
        # All at once: a client that does not answer its close costs 5 s, not
        # 5 s for each such client.
        await asyncio.gather(*closes)
        # Closes of evicted clients (close_quietly never raises).
        await asyncio.gather(*self._closing)
        logger.info("WebSocket manager stopped")

    async def connect(self, websocket: WebSocket, batch: bool = False) -> None:
        await websocket.accept()
        connection = WebSocketConnection(
            websocket,
            self._outbox_size(),
            self._outbox_bytes(),
            batch=batch,
            batch_chars=self.BATCH_FRAME_CHARS,
        )
        self.connections[websocket] = connection
        self._start_writer(connection)
        self._ensure_broadcaster()
        logger.info("WebSocket connected. Total connections: %d", len(self.connections))

    async def disconnect(self, websocket: WebSocket) -> None:
        connection = self.connections.pop(websocket, None)
        if connection is not None:
            self._stop_writer(connection)
            logger.info(
                "WebSocket disconnected. Total connections: %d", len(self.connections)
            )

    async def update_filters(
        self,
        websocket: WebSocket,
        event_filters: Optional[List[str]] = None,
        node_filters: Optional[List[str]] = None,
        service_filters: Optional[List[str]] = None,
        priority_filters: Optional[List[str]] = None,
    ) -> None:
        """Replace the lists given; a list left as None keeps its value."""
        connection = self.connections.get(websocket)
        if connection is None:
            return
        if event_filters is not None:
            connection.event_filters = list(event_filters)
        if node_filters is not None:
            connection.node_filters = list(node_filters)
        if service_filters is not None:
            connection.service_filters = list(service_filters)
        if priority_filters is not None:
            connection.priority_filters = [p.upper() for p in priority_filters]
        logger.debug(
            "Updated filters for WebSocket: events=%s, nodes=%s, services=%s, "
            "priorities=%s",
            connection.event_filters,
            connection.node_filters,
            connection.service_filters,
            connection.priority_filters,
        )

    async def resume(
        self,
        websocket: WebSocket,
        last_event_id: str,
        make_reply: Callable[[Dict[str, Any]], str],
    ) -> bool:
        """Replay what a client missed after ``last_event_id``, then go live.

        ``make_reply`` gets the resume keys (recovered, replayed, oldest_id)
        and returns the reply, which is queued before the replayed events (see
        osism.services.fanout.resume). False when the client is gone or was closed.
        """
        connection = self.connections.get(websocket)
        if connection is None:
            return False
        resumed = await replay.resume(
            connection,
            last_event_id,
            make_reply,
            source=self.replay_source,
            limit=_or_setting(self.replay_limit, settings.REPLAY_LIMIT),
            hold_bound=self.resume_buffer_size,
            is_current=lambda: self.connections.get(websocket) is connection,
            send=lambda text: self.send_to(websocket, text),
        )
        if resumed.counted:
            self.resumes += 1
            self.replayed_events += resumed.replayed
        return resumed.queued

    def send_to(self, websocket: WebSocket, text: str) -> bool:
        """Queue a reply for one client, in order with its events."""
        connection = self.connections.get(websocket)
        if connection is None:
            return False
        if not connection.offer(text):
            self._evict_slow(connection)
            return False
        return True

    def status(self) -> ManagerStatus:
        """The manager's figures now (``/v1/status``, ``/metrics``, system channel)."""
        task = self._broadcaster_task
        return ManagerStatus(
            connections=len(self.connections),
            broadcaster_running=task is not None and not task.done(),
            queued_events=self.event_queue.qsize(),
            queue_size=self.event_queue.maxsize,
            dropped_events=self.dropped_events,
            slow_disconnects=self.slow_disconnects,
            delivered=self.delivered,
            skipped_heartbeats=self.skipped_heartbeats,
            resumes=self.resumes,
            replayed_events=self.replayed_events,
            received=self.received,
        )

    async def add_event(self, event: EventMessage) -> None:
        self.enqueue(event)

    def enqueue(self, event: EventMessage) -> None:
        """Put an event on the bounded queue; at the bound the oldest is dropped."""
        if not intake.put_dropping_oldest(self.event_queue, event):
            return
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
            event = intake.notification_event(
                event_type, payload, meta, event_id, timestamp, position
            )
            self.enqueue(event)
            self.received += 1
            logger.debug(
                "Added %s event to WebSocket queue: %s for resource %s",
                event.data["service_type"],
                event_type,
                event.node_name or event.data["resource_id"],
            )
        except Exception as exc:
            logger.error(
                "Error creating event from notification: %s; %r is not queued",
                exc,
                event_type,
            )

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
        await self.add_event(intake.heartbeat())

    async def _broadcast_events(self) -> None:
        self.loop = asyncio.get_running_loop()
        logger.info("Starting WebSocket event broadcaster")
        queue = self.event_queue
        batch = fanout.batch_size(self.FANOUT_BATCH, self._outbox_size())
        budget = fanout.byte_budget(self._outbox_bytes())
        while True:
            try:
                event = await queue.get()
                if not self.connections:
                    continue
                # Events that are already queued go out in the same turn, so
                # each writer wakes once per turn rather than once per event;
                # a turn is at most half an outbox, in count and in bytes, so
                # that a client that keeps up never overflows during a burst.
                # Each event is serialised and framed once, for all clients.
                events = [event]
                texts = [framed(event.to_json())]
                spent = text_size(texts[0])
                for _ in range(batch - 1):
                    if queue.empty() or spent >= budget:
                        break
                    event = queue.get_nowait()
                    events.append(event)
                    texts.append(framed(event.to_json()))
                    spent += text_size(texts[-1])
                delivered, slow = fanout.fan_out(
                    self.connections.values(), events, texts, self._start_writer
                )
                self.delivered += delivered
                for connection in slow:
                    self._evict_slow(connection)
                # get() does not suspend while events are queued: yield so the
                # writers drain their outboxes, or a burst longer than an outbox
                # would evict clients that are keeping up.
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                logger.info("WebSocket broadcaster task cancelled")
                return
            except Exception as exc:
                logger.exception("Error in WebSocket broadcaster: %s; continuing", exc)

    def _ensure_broadcaster(self) -> None:
        task = self._broadcaster_task
        if task is None or task.done():
            self._broadcaster_task = asyncio.create_task(self._broadcast_events())

    def _start_writer(self, connection: WebSocketConnection) -> None:
        if connection.writer is None or connection.writer.done():
            connection.writer = asyncio.create_task(self._write(connection))

    def _stop_writer(self, connection: WebSocketConnection) -> None:
        if connection.resume is not None:
            connection.resume.cancel()
        writer = connection.writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()

    async def _write(self, connection: WebSocketConnection) -> None:
        await write_loop(connection, self.WRITE_MANY, self.WRITE_MANY_CHARS)
        await self.disconnect(connection.websocket)

    def _outbox_size(self) -> int:
        return _or_setting(self.outbox_size, settings.OUTBOX_SIZE)

    def _outbox_bytes(self) -> int:
        return _or_setting(self.outbox_bytes, settings.OUTBOX_BYTES)

    def _evict_slow(self, connection: WebSocketConnection) -> None:
        websocket = connection.websocket
        if self.connections.pop(websocket, None) is None:
            return
        self._stop_writer(connection)
        self.slow_disconnects += 1
        logger.warning(
            "WebSocket client too slow: outbox full (%d messages, %d bytes; "
            "bounds %d and %d); closing it with %d (%d slow clients closed so far)",
            connection.outbox.qsize(),
            connection.outbox.bytes,
            connection.outbox.maxsize,
            connection.outbox.max_bytes,
            CLOSE_TRY_AGAIN_LATER,
            self.slow_disconnects,
        )
        task = asyncio.create_task(
            close_quietly(
                connection.transport, CLOSE_TRY_AGAIN_LATER, "client too slow"
            )
        )
        self._closing.add(task)
        # Without the discard finished close tasks stay in _closing: only
        # memory differs.
        task.add_done_callback(self._closing.discard)  # pragma: no mutate


def _or_setting(value: Optional[int], setting: int) -> int:
    """``value``, or the setting where it was left as None."""
    return setting if value is None else value


websocket_manager = WebSocketManager()
