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
any other server it sends one message per frame (osism.transport.seam).

This is the only module that imports uvicorn's private protocol module, and
it reads that protocol's internals (the names in ``RELIES_ON``). The first
connection of a protocol class checks they are all there: when one is
missing (a later uvicorn), one WARNING says which, the extension is not
offered, and every client is served through stock ASGI sends.
"""

import logging
from typing import Any, Dict, List, Sequence, Tuple

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.http11 import Request
from websockets.protocol import State

from osism.transport.frames import Bundle, FramedText, text_frame_parts, texts_of
from osism.transport.seam import EXTENSION, TEXTS, sends_texts

__all__ = ["EXTENSION", "RELIES_ON", "TEXTS", "FanoutProtocol", "sends_texts"]

logger = logging.getLogger("osism.transport")

# What FanoutProtocol reads of uvicorn's WebSocketsSansIOProtocol once a
# handshake was accepted (a dotted name: an attribute of that attribute: the
# websockets connection ``conn``, the asyncio ``transport``), besides the two
# methods it extends. The contract test checks these on the real class.
RELIES_ON: Tuple[str, ...] = (
    "handle_connect",
    "send",
    "scope",
    "writable",
    "disconnected",
    "handshake_complete",
    "initial_response",
    "close_sent",
    "conn.state",
    "conn.extensions",
    "conn.send_text",
    "conn.data_to_send",
    "transport.write",
    "transport.is_closing",
)

# Per protocol class, the names of RELIES_ON it lacks (checked once).
_missing: Dict[type, Tuple[str, ...]] = {}


def missing_names(protocol: Any, names: Sequence[str] = RELIES_ON) -> List[str]:
    """The names of ``names`` that ``protocol`` does not have."""
    missing = []
    for name in names:
        target = protocol
        for part in name.split("."):
            if not hasattr(target, part):
                missing.append(name)
                break
            target = getattr(target, part)
    return missing


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol plus ``osism.websocket.send_texts``."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if hasattr(self, "close_sent") and self.close_sent:
            # uvicorn refused the handshake: no app runs, there is no scope.
            return
        if not self.offers_send_texts():
            return
        # The app's task is created above but has not run: it sees the key.
        self.scope["extensions"][EXTENSION] = {"write_now": self.write_now}

    def offers_send_texts(self) -> bool:
        """This protocol class has all of RELIES_ON; the first connection
        checks, and warns once when something is missing."""
        kind = type(self)
        missing = _missing.get(kind)
        if missing is None:
            missing = _missing[kind] = tuple(missing_names(self))
            if missing:
                logger.warning(
                    "uvicorn's WebSocket protocol lacks %s, which the %s extension "
                    "needs (a uvicorn newer than this code knows?); serving every "
                    "WebSocket client through stock ASGI sends instead",
                    ", ".join(missing),
                    EXTENSION,
                )
        return not missing

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
