"""The per-connection writer: sends what a client's outbox holds.

Each connection has one writer task (started by the WebSocketManager), so a
slow or stalled client delays nobody. A client that asked for batched frames
gets what is queued for it as one JSON array per frame. It sends through the
connection's Transport (osism.transport.seam): where the server takes many
frames in one message (``sends_many``) the queued frames go out together,
else one message per frame. When sending fails the loop returns and the
manager removes the client.
"""

import logging
from typing import List

from fastapi import WebSocketDisconnect

from osism.services.fanout.connection import WebSocketConnection
from osism.services.fanout.outbox import batch_frames
from osism.transport.frames import Bundle, Item, texts_of

__all__ = ["frames", "write_loop", "write_many"]

logger = logging.getLogger("osism.websocket")


async def write_loop(connection: WebSocketConnection, limit: int, chars: int) -> None:
    """Send the connection's outbox until sending fails (logged), then return.

    ``limit`` and ``chars`` bound one message of many frames (the manager's
    WRITE_MANY and WRITE_MANY_CHARS); a batched frame's bound is the
    connection's.
    """
    outbox = connection.outbox
    transport = connection.transport
    try:
        if transport.sends_many:
            await write_many(connection, limit, chars)
        send = transport.write
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
        logger.error("Error sending message to WebSocket: %s; removing it", exc)


async def write_many(connection: WebSocketConnection, limit: int, chars: int) -> None:
    """The writer where the transport sends many frames in one message: what
    is queued goes out together, one frame per text (or per batched array);
    a Bundle goes as the frames it carries. At most ``limit`` items or about
    ``chars`` characters a message."""
    write = connection.transport.write_many
    outbox = connection.outbox
    while True:
        first = await outbox.get()
        items: List[Item] = []
        size = _take(connection, first, items)
        # What the writer holds while the server may wait for the socket
        # is out of the outbox's count: keep it small.
        while size < chars and len(items) < limit and not outbox.empty():
            size += _take(connection, outbox.get_nowait(), items)
        await write(items)


def frames(connection: WebSocketConnection, first: Item) -> List[str]:
    """Batched frames: ``first`` and what follows it in the outbox."""
    return batch_frames(first, connection.outbox, connection.batch_chars)


def _take(connection: WebSocketConnection, item: Item, items: List[Item]) -> int:
    """Append what ``item`` is sent as to ``items``: itself, or for a client
    of batched frames the arrays of it and what follows; their characters."""
    if not connection.batch:
        items.append(item)
        # Inline, not a helper: this runs for every item the writer sends.
        return item.chars if isinstance(item, Bundle) else len(item)
    texts = frames(connection, item)
    items.extend(texts)
    return sum(map(len, texts))
