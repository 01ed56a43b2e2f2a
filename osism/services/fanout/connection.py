"""A connected WebSocket client: its compiled filters, its outbox, its transport.

The filter lists are compiled when assigned (osism.core.filters), so the check
each event goes through stays cheap; the outbox is bounded in count and in
bytes (outbox.py); the client is written to through a Transport
(osism.transport.seam), whatever the server.
"""

import asyncio
import logging
from typing import Awaitable, List, Optional, Protocol, Tuple

from fastapi import WebSocket

from osism import settings
from osism.core import filters
from osism.core.event import EventMessage
from osism.services.fanout.hold import ResumeState
from osism.services.fanout.outbox import Outbox, batch_frames
from osism.transport.frames import Item
from osism.transport.seam import Transport, transport_for, write_now_of

__all__ = [
    "CLOSE_TIMEOUT",
    "WebSocketConnection",
    "close_quietly",
    "write_now_of",
]

logger = logging.getLogger("osism.websocket")


class WebSocketConnection:
    """A connected client: its filters, its bounded outbox and its writer.

    ``batch``: the client asked for batched frames (``?batch=1``), each at
    most ``batch_chars`` characters of JSON. Without ``outbox_size`` or
    ``outbox_bytes`` the settings bound the outbox.
    """

    # No filters until __init__ sets them: each setter refreshes ``_active``
    # from all four lists while __init__ assigns them one after the other.
    _event_filters: List[str] = []
    _node_filters: List[str] = []
    _service_filters: List[str] = []
    _priority_filters: List[str] = []

    def __init__(
        self,
        websocket: WebSocket,
        outbox_size: Optional[int] = None,
        outbox_bytes: Optional[int] = None,
        batch: bool = False,
        batch_chars: int = 65536,
    ) -> None:
        self.websocket = websocket
        self.event_filters = []
        self.node_filters = []
        self.service_filters = []
        self.priority_filters = []
        size = settings.OUTBOX_SIZE if outbox_size is None else outbox_size
        max_bytes = settings.OUTBOX_BYTES if outbox_bytes is None else outbox_bytes
        self.outbox = Outbox(size, max_bytes)
        self.batch = batch
        # Longest batched frame, in characters of JSON (see outbox.batch_frames).
        self.batch_chars = batch_chars
        # How the writer sends (osism.transport.seam), and the server's
        # write_now (osism.transport.uvicorn_protocol) or None.
        self.transport: Transport = transport_for(websocket)
        self.write_now = self.transport.write_now
        self.writer: Optional["asyncio.Task[None]"] = None
        # Set while the client resumes: its live events are held meanwhile.
        self.resume: Optional[ResumeState] = None
        # After a resume, the log position its replay ended at, until a live
        # event past it arrives: an event the replay read from the log may
        # reach the manager only after the client went live.
        self.replayed_to: Optional[Tuple[int, int]] = None

    # The filter lists are replaced, never mutated in place: assigning one
    # compiles it (osism.core.filters), so that the check per event stays cheap.
    @property
    def event_filters(self) -> List[str]:
        return self._event_filters

    @event_filters.setter
    def event_filters(self, values: List[str]) -> None:
        self._event_filters = values
        exact, self._event_regex = filters.compile_events(values)
        # None: no event filter at all (checked first, on every event)
        self._event_exact = exact if values else None
        self._refresh_active()

    @property
    def node_filters(self) -> List[str]:
        return self._node_filters

    @node_filters.setter
    def node_filters(self, values: List[str]) -> None:
        self._node_filters = values
        self._nodes = frozenset(values)
        self._refresh_active()

    @property
    def service_filters(self) -> List[str]:
        return self._service_filters

    @service_filters.setter
    def service_filters(self, values: List[str]) -> None:
        self._service_filters = values
        self._segments, self._services = filters.compile_services(values)
        self._refresh_active()

    @property
    def priority_filters(self) -> List[str]:
        return self._priority_filters

    @priority_filters.setter
    def priority_filters(self, values: List[str]) -> None:
        self._priority_filters = values
        self._priorities = filters.compile_priorities(values)
        self._refresh_active()

    def _refresh_active(self) -> None:
        self._active = bool(
            self._event_filters
            or self._node_filters
            or self._service_filters
            or self._priority_filters
        )

    @property
    def filtered(self) -> bool:
        """Any filter is set (else every event matches)."""
        return self._active

    def matches_filters(self, event: EventMessage) -> bool:
        """Filters of different kinds are AND-ed; within a kind any entry may match."""
        if not self._active:
            return True
        exact = self._event_exact
        if exact is not None and event.event_type not in exact:
            regex = self._event_regex
            if regex is None or regex.fullmatch(event.event_type) is None:
                return False
        if self._node_filters and (
            event.node_name is None or event.node_name not in self._nodes
        ):
            return False
        if self._service_filters:
            event_type = event.event_type
            segment = event_type.partition(".")[0] if event_type else "unknown"
            if segment not in self._segments and (
                filters.emitting_service(segment, event.data) not in self._services
            ):
                return False
        if self._priority_filters:
            if filters.priority_of(event.data) not in self._priorities:
                return False
        return True

    def offer(self, text: Item) -> bool:
        """Queue a text (or a Bundle) for the writer; False when the outbox is
        full (by count or by bytes). ``await connection.outbox.put(text)``
        waits for space. When the writer is idle and the server can write at
        once (``write_now``), the text goes out now instead, without waking
        the writer."""
        write_now = self.write_now
        if write_now is not None and self.outbox.idle():
            texts = (
                batch_frames(text, self.outbox, self.batch_chars)
                if self.batch
                else (text,)
            )
            if write_now(texts):
                return True
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True


# Seconds a close may take before it is given up (a client that does not
# answer its close frame).
CLOSE_TIMEOUT = 5.0


class Closable(Protocol):
    """A WebSocket, or a Transport: anything that closes with a code and reason."""

    def close(self, code: int, reason: str) -> Awaitable[None]:
        """Close with ``code`` and ``reason``."""


async def close_quietly(websocket: Closable, code: int, reason: str) -> None:
    """Close, giving up after CLOSE_TIMEOUT; a socket that is gone already is
    no error."""
    try:
        await asyncio.wait_for(websocket.close(code=code, reason=reason), CLOSE_TIMEOUT)
    except Exception as exc:
        logger.debug("Closing WebSocket with %d failed: %s", code, exc)
