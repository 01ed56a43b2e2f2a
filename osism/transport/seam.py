"""The seam between the fan-out and the server: how a client is written to.

The manager's writer sends through a ``Transport`` (after Centrifugo's
Transport: Write, WriteMany, Close) and never learns which server it runs
under. There are two implementations, both over the connection's ASGI
WebSocket:

- ``PlainTransport``: stock ASGI, one ``websocket.send`` message per text;
  it works under any server.
- ``SendManyTransport``: the ASGI extension ``osism.websocket.send_texts``,
  which a server advertises in the connection's scope: a ``websocket.send``
  message carrying ``"osism.texts": [item, ...]`` instead of ``text`` is
  sent as one text frame per string (a ``Bundle`` of osism.transport.frames
  as the frames it carries) in one write; the extension's entry may also
  offer ``write_now(items) -> bool``, the same frames written at once
  without an await, or False (nothing written) when the server cannot.

``transport_for`` picks the one the scope allows. The server side of the
extension is FanoutProtocol in osism.transport.uvicorn_protocol, the only
module that knows uvicorn's internals.
"""

from typing import Any, Awaitable, Callable, Optional, Protocol, Sequence

from osism.transport.frames import Item, texts_of

__all__ = [
    "EXTENSION",
    "TEXTS",
    "PlainTransport",
    "SendManyTransport",
    "Transport",
    "WriteNow",
    "sends_texts",
    "transport_for",
    "write_now_of",
]

EXTENSION = "osism.websocket.send_texts"
TEXTS = "osism.texts"

# Writes items now if the server can without waiting; False (nothing
# written) otherwise.
WriteNow = Callable[[Sequence[Item]], bool]


class Transport(Protocol):
    """What the writer needs of a client's connection."""

    @property
    def sends_many(self) -> bool:
        """``write_many`` is one message to the server: worth collecting
        several items for (else the writer sends text by text)."""

    @property
    def write_now(self) -> Optional[WriteNow]:
        """The server's synchronous write, or None where it has none."""

    @property
    def write(self) -> Callable[[str], Awaitable[None]]:
        """Send one text as one frame."""

    def write_many(self, items: Sequence[Item]) -> Awaitable[None]:
        """Send the frames of ``items`` (texts or Bundles), in order."""

    def close(self, code: int, reason: str) -> Awaitable[None]:
        """Close the connection with ``code`` and ``reason``."""


def _extension_entry(websocket: Any) -> Any:
    scope = getattr(websocket, "scope", None)
    extensions = scope.get("extensions") if isinstance(scope, dict) else None
    return extensions.get(EXTENSION) if isinstance(extensions, dict) else None


def sends_texts(websocket: Any) -> bool:
    """The server offers ``osism.websocket.send_texts`` on this connection
    (``websocket``: anything with an ASGI ``scope``)."""
    scope = getattr(websocket, "scope", None)
    if not isinstance(scope, dict):
        return False
    extensions = scope.get("extensions")
    return isinstance(extensions, dict) and EXTENSION in extensions


def write_now_of(websocket: Any) -> Optional[WriteNow]:
    """The server's ``write_now`` for this connection, or None under a
    server without it."""
    entry = _extension_entry(websocket)
    write_now = entry.get("write_now") if isinstance(entry, dict) else None
    return write_now if callable(write_now) else None


class PlainTransport:
    """Stock ASGI sends: one ``websocket.send`` message per text."""

    __slots__ = ("websocket",)

    sends_many = False
    write_now: Optional[WriteNow] = None

    def __init__(self, websocket: Any) -> None:
        self.websocket = websocket

    @property
    def write(self) -> Callable[[str], Awaitable[None]]:
        # The WebSocket's own bound method, looked up when the writer
        # starts: a text costs no call of ours on top.
        send_text: Callable[[str], Awaitable[None]] = self.websocket.send_text
        return send_text

    def write_many(self, items: Sequence[Item]) -> Awaitable[None]:
        return _send_each(self.websocket.send_text, items)

    def close(self, code: int, reason: str) -> Awaitable[None]:
        closing: Awaitable[None] = self.websocket.close(code=code, reason=reason)
        return closing


class SendManyTransport(PlainTransport):
    """The ``osism.websocket.send_texts`` extension: many frames in one
    ASGI message, and the server's ``write_now`` where it offers one."""

    __slots__ = ("write_now", "_send")

    sends_many = True

    def __init__(self, websocket: Any) -> None:
        super().__init__(websocket)
        self.write_now = write_now_of(websocket)
        # Looked up once: write_many is on the writer's path of every turn.
        self._send: Callable[[Any], Awaitable[None]] = websocket.send

    def write_many(self, items: Sequence[Item]) -> Awaitable[None]:
        return self._send({"type": "websocket.send", TEXTS: items})


async def _send_each(
    send: Callable[[str], Awaitable[None]], items: Sequence[Item]
) -> None:
    for item in items:
        for text in texts_of(item):
            await send(text)


def transport_for(websocket: Any) -> PlainTransport:
    """The Transport the connection's scope allows."""
    if sends_texts(websocket):
        return SendManyTransport(websocket)
    return PlainTransport(websocket)
