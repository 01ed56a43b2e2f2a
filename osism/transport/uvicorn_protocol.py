"""uvicorn's sans-I/O WebSocket protocol with one ASGI extension for fan-out.

``osism api`` serves with this protocol
(``--ws osism.transport.uvicorn_protocol:FanoutProtocol``).
It is uvicorn's ``websockets-sansio`` implementation unchanged, plus the
extension ``osism.websocket.send_texts`` in the connection's scope: a
``websocket.send`` message carrying ``"osism.texts": [str, ...]`` instead of
``text`` sends each string as its own text frame (a ``Bundle`` of
osism.transport.frames as the frames it carries), all in one transport write.
The frames on the wire are exactly those of one ``send_text`` per string; the
saving is the per-message work of the ASGI send path (one await, one state
check, one write for many frames). A FramedText brings its frame along, built
once for every connection it is sent to. With permessage-deflate negotiated each
frame goes through websockets' compressor as before.

The extension's entry also offers ``write_now(texts) -> bool``: the same
frames written at once, without an await, when the connection is open and
its transport takes data without waiting; False (nothing written) otherwise,
and the app sends them the ASGI way. The broadcaster uses it for a client
whose writer is idle, so that an event costs such a client no task wake-up.

An app checks ``EXTENSION in scope["extensions"]`` before using it; under
any other server it sends one message per frame.
"""

from typing import Any, List, Sequence

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.http11 import Request
from websockets.protocol import State

from osism.transport.frames import Bundle, FramedText, text_frame_parts, texts_of

EXTENSION = "osism.websocket.send_texts"
TEXTS = "osism.texts"


def sends_texts(websocket: Any) -> bool:
    """The server offers ``osism.websocket.send_texts`` on this connection
    (``websocket``: anything with an ASGI ``scope``)."""
    scope = getattr(websocket, "scope", None)
    if not isinstance(scope, dict):
        return False
    extensions = scope.get("extensions")
    return isinstance(extensions, dict) and EXTENSION in extensions


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol plus ``osism.websocket.send_texts``."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The app's task is created above but has not run: it sees the key.
        self.scope["extensions"][EXTENSION] = {"write_now": self.write_now}

    def write_now(self, texts: Sequence[Any]) -> bool:
        """Write ``texts`` as frames now if the connection is open, accepted,
        without deflate and its transport is not full; False otherwise."""
        if (
            not self.writable.is_set()
            or self.disconnected
            or not self.handshake_complete
            or self.initial_response is not None
            or self.close_sent
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(_frames(texts))
        return True

    async def send(self, message: Any) -> None:
        texts = message.get(TEXTS)
        if texts is None or message["type"] != "websocket.send":
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.initial_response is not None:
            raise RuntimeError("osism.texts sent before the WebSocket was accepted")
        if self.close_sent or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        if self.conn.extensions:
            # permessage-deflate: websockets compresses frame by frame.
            for item in texts:
                for text in texts_of(item):
                    self.conn.send_text(text.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
            return
        self.transport.write(_frames(texts))


def _frames(texts: Sequence[Any]) -> bytes:
    """The text frames of ``texts`` (str, FramedText or Bundle), joined."""
    parts: List[bytes] = []
    for text in texts:
        kind = type(text)
        if kind is FramedText or kind is Bundle:
            parts.append(text.frame)
        else:
            text_frame_parts(text, parts)
    return b"".join(parts)
