"""The per-connection writer: sends what a client's outbox holds.

Each connection has one writer task (started by the WebSocketManager), so a
slow or stalled client delays nobody. A client that asked for batched frames
gets what is queued for it as one JSON array per frame. Under a server that
offers ``osism.websocket.send_texts`` the queued frames go out in one ASGI
message. When sending fails the connection is removed from the manager.
"""

import logging
from typing import TYPE_CHECKING

from fastapi import WebSocketDisconnect

from osism.services.connection import WebSocketConnection
from osism.services.outbox import Outbox, batch_frame
from osism.ws_protocol import TEXTS, sends_texts

if TYPE_CHECKING:  # pragma: no cover - import for type hints only
    from osism.services.websocket_manager import WebSocketManager

logger = logging.getLogger("osism.websocket")


async def write_loop(
    manager: "WebSocketManager", connection: WebSocketConnection
) -> None:
    """Send the connection's outbox until it fails, then remove the client.

    The limits (WRITE_MANY, WRITE_MANY_CHARS, BATCH_FRAME_CHARS) are read
    from the manager, so that they can be set per manager.
    """
    websocket = connection.websocket
    outbox = connection.outbox
    send = websocket.send_text
    try:
        if sends_texts(websocket):
            await write_many(manager, connection)
        while True:
            text = await outbox.get()
            if connection.batch:
                await send(frame(manager, text, outbox))
                while not outbox.empty():
                    await send(frame(manager, outbox.get_nowait(), outbox))
                continue
            await send(text)
            # Send what else is queued without a get() coroutine per item.
            while not outbox.empty():
                await send(outbox.get_nowait())
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
    batched array), in one write."""
    send = connection.websocket.send
    outbox = connection.outbox
    limit, chars = manager.WRITE_MANY, manager.WRITE_MANY_CHARS
    batch = connection.batch
    while True:
        first = await outbox.get()
        text = frame(manager, first, outbox) if batch else first
        texts = [text]
        # What the writer holds while the server may wait for the socket
        # is out of the outbox's count: keep it small.
        size = len(text)
        while size < chars and len(texts) < limit and not outbox.empty():
            text = outbox.get_nowait()
            if batch:
                text = frame(manager, text, outbox)
            texts.append(text)
            size += len(text)
        await send({"type": "websocket.send", TEXTS: texts})


def frame(manager: "WebSocketManager", first: str, outbox: Outbox) -> str:
    """One batched frame: ``first`` and what follows it in the outbox."""
    return batch_frame(first, outbox, manager.BATCH_FRAME_CHARS)
