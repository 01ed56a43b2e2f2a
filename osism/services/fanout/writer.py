"""The per-connection writer: sends what a client's outbox holds.

Each connection has one writer task (started by the WebSocketManager), so a
slow or stalled client delays nobody. A client that asked for batched frames
gets what is queued for it as one JSON array per frame. Under a server that
offers ``osism.websocket.send_texts`` the queued frames go out in one ASGI
message. When sending fails the connection is removed from the manager.
"""

import logging
from typing import TYPE_CHECKING, List

from fastapi import WebSocketDisconnect

from osism.services.fanout.connection import WebSocketConnection
from osism.services.fanout.outbox import batch_frames
from osism.transport.frames import Bundle, Item, texts_of
from osism.transport.uvicorn_protocol import TEXTS, sends_texts

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
    from osism.services.websocket_manager import WebSocketManager

logger = logging.getLogger("osism.websocket")


async def write_loop(
    manager: "WebSocketManager", connection: WebSocketConnection
) -> None:
    """Send the connection's outbox until it fails, then remove the client.

    The limits WRITE_MANY and WRITE_MANY_CHARS are read from the manager, so
    that they can be set per manager; a batched frame's from the connection.
    """
    websocket = connection.websocket
    outbox = connection.outbox
    send = websocket.send_text
    try:
        if sends_texts(websocket):
            await write_many(manager, connection)
        while True:
            item = await outbox.get()
            if connection.batch:
                for text in frames(connection, item):
                    await send(text)
                while not outbox.empty():
                    for text in frames(connection, outbox.get_nowait()):
                        await send(text)
                continue
            for text in texts_of(item):
                await send(text)
            # Send what else is queued without a get() coroutine per item.
            while not outbox.empty():
                for text in texts_of(outbox.get_nowait()):
                    await send(text)
    except WebSocketDisconnect:
        logger.info("WebSocket went away while sending; removing it")
    except Exception as exc:
        logger.error("Error sending event to WebSocket: %s; removing it", exc)
    await manager.disconnect(websocket)


async def write_many(
    manager: "WebSocketManager", connection: WebSocketConnection
) -> None:
    """The writer under a server with ``osism.websocket.send_texts``: what
    is queued goes out in one ASGI message, one frame per text (or per
    batched array), in one write; a Bundle goes as the frames it carries."""
    send = connection.websocket.send
    outbox = connection.outbox
    limit, chars = manager.WRITE_MANY, manager.WRITE_MANY_CHARS
    while True:
        first = await outbox.get()
        items: List[Item] = []
        size = _take(connection, first, items)
        # What the writer holds while the server may wait for the socket
        # is out of the outbox's count: keep it small.
        while size < chars and len(items) < limit and not outbox.empty():
            size += _take(connection, outbox.get_nowait(), items)
        await send({"type": "websocket.send", TEXTS: items})


def frames(connection: WebSocketConnection, first: Item) -> List[str]:
    """Batched frames: ``first`` and what follows it in the outbox."""
    return batch_frames(first, connection.outbox, connection.batch_chars)


def _take(connection: WebSocketConnection, item: Item, items: List[Item]) -> int:
    """Append what ``item`` is sent as to ``items``: itself, or for a client
    of batched frames the arrays of it and what follows; their characters."""
    if not connection.batch:
        items.append(item)
        return _chars(item)
    texts = frames(connection, item)
    items.extend(texts)
    return sum(map(len, texts))


def _chars(item: Item) -> int:
    return item.chars if isinstance(item, Bundle) else len(item)
