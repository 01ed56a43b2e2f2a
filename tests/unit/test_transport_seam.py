"""The seam between the fan-out and the server (osism.transport.seam), and
FanoutProtocol's contract with uvicorn's private protocol it extends."""

import asyncio
import logging
import subprocess
import sys
from typing import Any, Dict, List, Type
from unittest.mock import AsyncMock, MagicMock

import pytest
import uvicorn
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from uvicorn.server import ServerState

from osism.core.event import EventMessage
from osism.services.websocket_manager import WebSocketManager
from osism.transport import uvicorn_protocol
from osism.transport.frames import Bundle, framed
from osism.transport.seam import (
    EXTENSION,
    TEXTS,
    PlainTransport,
    SendManyTransport,
    transport_for,
)
from osism.transport.uvicorn_protocol import RELIES_ON, FanoutProtocol, missing_names
from tests.conftest import WAIT_TIMEOUT, async_wait_until
from tests.unit.test_ws_protocol import HANDSHAKE, Wire, parse_frames

LOGGER = "osism.transport"


def asgi_websocket(extensions: Dict[str, Any]) -> MagicMock:
    """A fake ASGI WebSocket whose scope has ``extensions``."""
    websocket = MagicMock()
    websocket.scope = {"type": "websocket", "extensions": extensions}
    websocket.send = AsyncMock()
    websocket.send_text = AsyncMock()
    websocket.close = AsyncMock()
    return websocket


class TestTransportFor:
    @pytest.mark.parametrize(
        "extensions, kind",
        [({}, PlainTransport), ({EXTENSION: {}}, SendManyTransport)],
        ids=["stock", "send-many"],
    )
    def test_the_scope_decides(self, extensions: Dict[str, Any], kind: Type) -> None:
        assert type(transport_for(asgi_websocket(extensions))) is kind

    def test_a_websocket_without_a_scope_gets_stock_sends(self) -> None:
        transport = transport_for(object())
        assert type(transport) is PlainTransport
        assert transport.sends_many is False
        assert transport.write_now is None


class TestPlainTransport:
    @pytest.mark.asyncio
    async def test_write_is_one_send_text(self) -> None:
        websocket = asgi_websocket({})
        await PlainTransport(websocket).write("x")
        assert [c.args for c in websocket.send_text.await_args_list] == [("x",)]

    @pytest.mark.asyncio
    async def test_write_many_sends_text_by_text_in_order(self) -> None:
        websocket = asgi_websocket({})
        bundle = Bundle([framed("b"), framed("c")])
        await PlainTransport(websocket).write_many(["a", bundle, framed("d")])
        sent = [c.args[0] for c in websocket.send_text.await_args_list]
        assert sent == ["a", "b", "c", "d"]
        websocket.send.assert_not_called()

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "kind, extensions",
        [(PlainTransport, {}), (SendManyTransport, {EXTENSION: {}})],
        ids=["stock", "send-many"],
    )
    async def test_close_closes_the_websocket_with_code_and_reason(
        self, kind: Type, extensions: Dict[str, Any]
    ) -> None:
        websocket = asgi_websocket(extensions)
        await kind(websocket).close(1013, "client too slow")
        websocket.close.assert_awaited_once_with(code=1013, reason="client too slow")

    @pytest.mark.asyncio
    async def test_the_send_many_transport_writes_one_text_as_send_text(
        self,
    ) -> None:
        websocket = asgi_websocket({EXTENSION: {}})
        await SendManyTransport(websocket).write("x")
        assert [c.args for c in websocket.send_text.await_args_list] == [("x",)]

    def test_does_not_send_many_nor_write_now(self) -> None:
        transport = PlainTransport(asgi_websocket({}))
        assert (transport.sends_many, transport.write_now) == (False, None)


class TestSendManyTransport:
    @pytest.mark.asyncio
    async def test_write_many_is_one_asgi_message(self) -> None:
        websocket = asgi_websocket({EXTENSION: {}})
        items = ["a", Bundle([framed("b"), framed("c")])]
        await SendManyTransport(websocket).write_many(items)
        websocket.send.assert_awaited_once_with(
            {"type": "websocket.send", TEXTS: items}
        )

    def test_sends_many(self) -> None:
        assert SendManyTransport(asgi_websocket({EXTENSION: {}})).sends_many is True

    def test_write_now_is_the_servers(self) -> None:
        def write_now(items: Any) -> bool:
            return True

        transport = SendManyTransport(
            asgi_websocket({EXTENSION: {"write_now": write_now}})
        )
        assert transport.write_now is write_now

    def test_no_write_now_where_the_server_offers_none(self) -> None:
        assert SendManyTransport(asgi_websocket({EXTENSION: {}})).write_now is None


class TestImports:
    def test_the_manager_imports_nothing_private_of_uvicorn(self) -> None:
        code = (
            "import osism.services.websocket_manager, sys; "
            "print([m for m in sys.modules if m.startswith('uvicorn.protocols')])"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert result.stdout.strip() == "[]"


def app_that_accepts() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    return app


def protocol_of(kind: Type, app: Any, state: ServerState) -> Any:
    config = uvicorn.Config(
        app,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        lifespan="off",
        log_config=None,
    )
    config.load()
    return kind(config, state, {})


class TestUvicornContract:
    @pytest.mark.asyncio
    async def test_uvicorns_protocol_has_everything_fanout_protocol_reads(
        self,
    ) -> None:
        state = ServerState()
        protocol = protocol_of(WebSocketsSansIOProtocol, app_that_accepts(), state)
        protocol.connection_made(Wire())
        protocol.data_received(HANDSHAKE)
        try:
            assert missing_names(protocol) == []
        finally:
            await asyncio.wait_for(asyncio.gather(*state.tasks), WAIT_TIMEOUT)

    def test_missing_names_finds_a_missing_attribute_of_an_attribute(self) -> None:
        protocol = MagicMock(spec=["conn", "send"])
        protocol.conn = MagicMock(spec=["state"])
        names = ("send", "scope", "conn.state", "conn.extensions")
        assert missing_names(protocol, names) == ["scope", "conn.extensions"]

    def test_the_list_names_what_write_now_and_send_read(self) -> None:
        assert {"writable", "conn.state", "conn.extensions", "transport.write"} <= set(
            RELIES_ON
        )


class _WithoutState:
    """A websockets connection as a later release might have it: everything
    but ``state`` and ``extensions`` (for uvicorn and for us; websockets
    itself still has them)."""

    def __init__(self, conn: Any) -> None:
        object.__setattr__(self, "_conn", conn)

    def __getattr__(self, name: str) -> Any:
        if name in ("state", "extensions"):
            raise AttributeError(name)
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)


def later_uvicorn() -> Type[FanoutProtocol]:
    """A FanoutProtocol on a uvicorn whose connection has no ``state``
    (a new class each time: the check runs once per class)."""

    class LaterUvicorn(FanoutProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.conn = _WithoutState(self.conn)

    return LaterUvicorn


def events(count: int) -> List[EventMessage]:
    return [
        EventMessage("compute.instance.update", "openstack", {"n": n}, "node")
        for n in range(count)
    ]


async def serve_manager(
    kind: Type, manager: WebSocketManager, sent: List[EventMessage]
) -> Dict[str, Any]:
    """One client on ``kind`` served by ``manager``: it gets ``sent``; what
    the wire carried after the handshake and the scope the app saw."""
    wire = Wire()
    seen: Dict[str, Any] = {}

    def frames() -> List[str]:
        return [frame.data.decode() for frame in parse_frames(wire.frames())]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["extensions"] = dict(scope["extensions"])
        websocket = WebSocket(scope, receive, send)
        await manager.connect(websocket)
        for event in sent:
            await manager.add_event(event)
        await async_wait_until(lambda: len(frames()) == len(sent))
        await manager.disconnect(websocket)

    state = ServerState()
    protocol = protocol_of(kind, app, state)
    protocol.connection_made(wire)
    protocol.data_received(HANDSHAKE)
    await asyncio.wait_for(asyncio.gather(*state.tasks), WAIT_TIMEOUT)
    seen["frames"] = frames()
    return seen


class TestWhenUvicornChanged:
    @pytest.mark.asyncio
    async def test_clients_get_their_events_through_stock_sends(self) -> None:
        sent = events(5)
        manager = WebSocketManager()
        try:
            seen = await serve_manager(later_uvicorn(), manager, sent)
        finally:
            await manager.stop()

        assert seen["frames"] == [event.to_json() for event in sent]
        assert EXTENSION not in seen["extensions"]

    @pytest.mark.asyncio
    async def test_one_warning_names_what_is_missing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger=LOGGER)
        kind = later_uvicorn()
        manager = WebSocketManager()
        try:
            for _ in range(2):
                await serve_manager(kind, manager, events(1))
        finally:
            await manager.stop()

        warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert warnings == [
            "uvicorn's WebSocket protocol lacks conn.state, conn.extensions, "
            "which the "
            "osism.websocket.send_texts extension needs (a uvicorn newer than "
            "this code knows?); serving every WebSocket client through stock "
            "ASGI sends instead"
        ]

    @pytest.mark.asyncio
    async def test_with_everything_there_the_extension_is_offered_silently(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger=LOGGER)
        sent = events(3)

        class Current(FanoutProtocol):
            pass

        manager = WebSocketManager()
        try:
            seen = await serve_manager(Current, manager, sent)
        finally:
            await manager.stop()

        assert seen["frames"] == [event.to_json() for event in sent]
        assert EXTENSION in seen["extensions"]
        assert [r for r in caplog.records if r.name == LOGGER] == []

    @pytest.mark.asyncio
    async def test_a_refused_handshake_is_not_taken_for_a_changed_uvicorn(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger=LOGGER)

        class Fresh(FanoutProtocol):
            pass

        protocol = protocol_of(Fresh, app_that_accepts(), ServerState())
        wire = Wire()
        protocol.connection_made(wire)
        # No Sec-WebSocket-Key: websockets answers 400 and no app runs.
        protocol.data_received(HANDSHAKE.replace(b"Sec-WebSocket-Key", b"X-Key"))

        assert bytes(wire.data).startswith(b"HTTP/1.1 400 ")
        assert [r for r in caplog.records if r.name == LOGGER] == []


class TestHandleConnect:
    def test_without_close_sent_it_warns_and_offers_nothing(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An accepted handshake on a uvicorn without ``close_sent``: the
        check, not the refusal test, decides."""
        caplog.set_level(logging.WARNING, logger=LOGGER)
        monkeypatch.setattr(
            WebSocketsSansIOProtocol, "handle_connect", lambda self, event: None
        )

        class NoCloseSent(FanoutProtocol):
            pass

        protocol = NoCloseSent.__new__(NoCloseSent)
        protocol.scope = {"type": "websocket", "extensions": {}}
        protocol.handle_connect(MagicMock())

        assert protocol.scope["extensions"] == {}
        warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert len(warnings) == 1
        assert warnings[0].startswith("uvicorn's WebSocket protocol lacks writable, ")
        assert "close_sent" in warnings[0]


def test_the_module_logs_as_osism_transport() -> None:
    assert uvicorn_protocol.logger.name == LOGGER
