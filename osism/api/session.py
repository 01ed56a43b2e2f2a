"""One WebSocket client's session on the events endpoint: who is admitted,
what a client message does, and the replies it gets."""

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional

from fastapi import WebSocket

from osism.api.wire import error_reply, filter_reply, parse_client_message
from osism.api.security import SecurityConfig, presented_token
from osism.services.fanout.connection import WebSocketConnection
from osism.services.websocket_manager import WebSocketManager

logger = logging.getLogger("osism.api.routes")

# The filter kinds a filter_update reply names, in this order.
FILTER_REPLY_KINDS = (
    "event_filters",
    "node_filters",
    "service_filters",
    "priority_filters",
)


async def admit(
    websocket: WebSocket, manager: WebSocketManager, cfg: SecurityConfig
) -> bool:
    """Refuse a foreign origin (before accept), a bad token or one too many."""
    # Starlette's header lookup ignores case.
    origin = websocket.headers.get("origin")  # pragma: no mutate
    host = websocket.headers.get("host")  # pragma: no mutate
    if not cfg.origin_allowed(origin, host):
        logger.warning(
            "Refused WebSocket from %s: origin %r is not this site nor in "
            "ALLOWED_ORIGINS",
            peer(websocket),
            origin,
        )
        await websocket.close(code=1008)
        return False
    token = presented_token(websocket.headers, websocket.query_params)
    if not cfg.token_accepted(token):
        logger.warning(
            "Refused WebSocket from %s: missing or invalid token", peer(websocket)
        )
        await websocket.accept()
        await websocket.close(code=1008, reason="missing or invalid token")
        return False
    if len(manager.connections) >= cfg.max_connections:
        logger.warning(
            "Refused WebSocket from %s: %d connections, the limit (MAX_CONNECTIONS)",
            peer(websocket),
            cfg.max_connections,
        )
        await websocket.accept()
        await websocket.close(code=1013, reason="too many connections")
        return False
    return True


def wants_batches(query: Mapping[str, str]) -> bool:
    """``?batch=1`` (or ``true``/``yes``): the client takes batched frames, a
    JSON array of messages per frame; anything else is one message per frame."""
    value = query.get("batch")
    return value is not None and value.strip().lower() in ("1", "true", "yes")


def peer(connection: Any) -> str:
    client = connection.client
    return f"{client.host}:{client.port}" if client else "unknown peer"


async def handle_client_message(
    manager: WebSocketManager, websocket: WebSocket, message: Mapping[str, Any]
) -> Optional[str]:
    """The reply to a client message; None when it was queued already (a
    resume queues its reply itself, before the replayed events)."""
    # A binary frame carries "bytes" and no text: parse_client_message
    # answers that only JSON text is taken.
    parsed, error = parse_client_message(message.get("text"))
    if parsed is None:
        logger.debug("Rejected client message: %s", error)
        return error_reply(str(error))
    await manager.update_filters(
        websocket,
        event_filters=parsed.event_filters,
        node_filters=parsed.node_filters,
        service_filters=parsed.service_filters,
        priority_filters=parsed.priority_filters,
    )
    connection = manager.connections.get(websocket)
    if connection is None:
        return error_reply("connection is closing")
    if parsed.last_event_id is not None:
        await manager.resume(
            websocket, parsed.last_event_id, resume_reply(manager, websocket)
        )
        return None
    return filter_reply(filters_in_force(connection))


def resume_reply(
    manager: WebSocketManager, websocket: WebSocket
) -> Callable[[Dict[str, Any]], str]:
    """The filter_update reply of a resume: the filters in force plus its keys."""

    def reply(resume_keys: Dict[str, Any]) -> str:
        connection = manager.connections.get(websocket)
        filters = {} if connection is None else filters_in_force(connection)
        return filter_reply({**filters, **resume_keys})

    return reply


def filters_in_force(connection: WebSocketConnection) -> Dict[str, List[str]]:
    """The filter lists of a connection, as the filter_update reply names them."""
    return {kind: list(getattr(connection, kind)) for kind in FILTER_REPLY_KINDS}
