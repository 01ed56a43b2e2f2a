"""FanoutProtocol: uvicorn's sans-I/O protocol plus ``osism.websocket.send_texts``,
and the manager's writer that uses it."""

import asyncio
import json
import uuid
from typing import Any, List
from unittest.mock import AsyncMock, MagicMock

import pytest
import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from uvicorn.server import ServerState
from websockets.streams import StreamReader

from osism.services.fanout.connection import WebSocketConnection, write_now_of
from osism.core.event import EventMessage
from osism.transport.frames import Bundle, framed, text_frame_parts, texts_of
from osism.transport.uvicorn_protocol import (
    EXTENSION,
    TEXTS,
    FanoutProtocol,
    sends_texts,
)
from tests.conftest import WAIT_TIMEOUT, async_wait_until
from tests.unit.services.test_fanout import events
from tests.unit.services.test_websocket_manager import fresh_manager


def parse_frames(data: bytes) -> List[Frame]:
    """Server frames (unmasked) parsed back by websockets' own parser."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
            continue
        raise AssertionError("incomplete frame")  # pragma: no cover
    return frames


class TestTextFrames:
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
    def test_frames_are_what_websockets_would_send(self, size: int) -> None:
        text = "é" * (size // 2) + "a" * (size % 2)
        parts: List[bytes] = []
        text_frame_parts(text, parts)
        expected = Frame(Opcode.TEXT, text.encode()).serialize(
            mask=False, extensions=[]
        )
        assert b"".join(parts) == expected

    def test_several_texts_parse_back_in_order(self) -> None:
        texts = ["{}", "x" * 300, '{"a": "ü"}']
        parts: List[bytes] = []
        for text in texts:
            text_frame_parts(text, parts)
        frames = parse_frames(b"".join(parts))
        assert [frame.opcode for frame in frames] == [Opcode.TEXT] * 3
        assert all(frame.fin for frame in frames)
        assert [frame.data.decode() for frame in frames] == texts


class TestFramedText:
    @pytest.mark.parametrize("size", [0, 125, 126, 70_000])
    def test_carries_the_frame_websockets_would_send(self, size: int) -> None:
        text = "ü" * size
        expected = Frame(Opcode.TEXT, text.encode()).serialize(
            mask=False, extensions=[]
        )
        assert framed(text).frame == expected

    def test_is_the_same_text(self) -> None:
        text = '{"event_type": "compute.instance.create.end"}'
        result = framed(text)
        assert isinstance(result, str)
        assert result == text
        assert json.loads(result) == json.loads(text)


def open_protocol() -> FanoutProtocol:
    """A FanoutProtocol past its handshake, writing to a fake transport."""
    protocol = FanoutProtocol.__new__(FanoutProtocol)
    protocol.transport = MagicMock()
    protocol.writable = asyncio.Event()
    protocol.writable.set()
    protocol.disconnected = False
    protocol.handshake_complete = True
    protocol.initial_response = None
    protocol.close_sent = False
    protocol.conn = MagicMock()
    protocol.conn.state = State.OPEN
    protocol.conn.extensions = []
    protocol.transport.is_closing.return_value = False
    return protocol


def written(protocol: FanoutProtocol) -> bytes:
    return b"".join(call.args[0] for call in protocol.transport.write.call_args_list)


class TestSendTexts:
    @pytest.mark.asyncio
    async def test_texts_go_out_as_frames_in_one_write(self) -> None:
        protocol = open_protocol()
        texts = ['{"n": 1}', '{"n": 2}', "[1,2]"]
        await protocol.send({"type": "websocket.send", TEXTS: texts})
        assert protocol.transport.write.call_count == 1
        assert [f.data.decode() for f in parse_frames(written(protocol))] == texts

    @pytest.mark.asyncio
    async def test_a_framed_text_goes_out_with_the_frame_it_carries(self) -> None:
        protocol = open_protocol()
        carried = framed('{"n": 1}')
        # A frame unlike the one the text would give shows which was written.
        carried.frame = Frame(Opcode.TEXT, b'{"n": 9}').serialize(
            mask=False, extensions=[]
        )
        await protocol.send({"type": "websocket.send", TEXTS: [carried, '{"n": 2}']})
        frames = parse_frames(written(protocol))
        assert [f.data.decode() for f in frames] == ['{"n": 9}', '{"n": 2}']

    @pytest.mark.asyncio
    async def test_a_bundle_goes_out_as_the_frames_of_its_texts(self) -> None:
        protocol = open_protocol()
        bundle = Bundle([framed('{"n": 1}'), framed('{"n": 2}')])
        await protocol.send({"type": "websocket.send", TEXTS: [bundle, '{"n": 3}']})
        assert protocol.transport.write.call_count == 1
        frames = parse_frames(written(protocol))
        assert [f.data.decode() for f in frames] == ['{"n": 1}', '{"n": 2}', '{"n": 3}']

    @pytest.mark.asyncio
    async def test_with_deflate_a_bundle_is_compressed_text_by_text(self) -> None:
        protocol = open_protocol()
        protocol.conn.extensions = [MagicMock()]
        protocol.conn.data_to_send.return_value = [b"z"]
        bundle = Bundle([framed("x"), framed("y")])
        await protocol.send({"type": "websocket.send", TEXTS: [bundle]})
        assert [c.args[0] for c in protocol.conn.send_text.call_args_list] == [
            b"x",
            b"y",
        ]

    @pytest.mark.asyncio
    async def test_with_deflate_a_framed_text_is_compressed_as_text(self) -> None:
        protocol = open_protocol()
        protocol.conn.extensions = [MagicMock()]
        protocol.conn.data_to_send.return_value = [b"z"]
        await protocol.send({"type": "websocket.send", TEXTS: [framed("x")]})
        assert [c.args[0] for c in protocol.conn.send_text.call_args_list] == [b"x"]

    @pytest.mark.asyncio
    async def test_with_deflate_each_text_goes_through_websockets(self) -> None:
        protocol = open_protocol()
        protocol.conn.extensions = [MagicMock()]
        protocol.conn.data_to_send.return_value = [b"a", b"b"]
        await protocol.send({"type": "websocket.send", TEXTS: ["x", "y"]})
        assert [c.args[0] for c in protocol.conn.send_text.call_args_list] == [
            b"x",
            b"y",
        ]
        protocol.transport.write.assert_called_once_with(b"ab")

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "attribute, value",
        [("disconnected", True), ("close_sent", True)],
    )
    async def test_a_closed_connection_raises_client_disconnected(
        self, attribute: str, value: Any
    ) -> None:
        protocol = open_protocol()
        setattr(protocol, attribute, value)
        with pytest.raises(ClientDisconnected):
            await protocol.send({"type": "websocket.send", TEXTS: ["x"]})
        protocol.transport.write.assert_not_called()

    @pytest.mark.asyncio
    async def test_a_closing_connection_raises_client_disconnected(self) -> None:
        protocol = open_protocol()
        protocol.conn.state = State.CLOSING
        with pytest.raises(ClientDisconnected):
            await protocol.send({"type": "websocket.send", TEXTS: ["x"]})

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "attribute, value",
        [("handshake_complete", False), ("initial_response", (403, [], b""))],
        ids=["not-accepted", "refused"],
    )
    async def test_before_accept_is_an_error(self, attribute: str, value: Any) -> None:
        protocol = open_protocol()
        setattr(protocol, attribute, value)
        with pytest.raises(
            RuntimeError,
            match="^osism.texts sent before the WebSocket was accepted$",
        ):
            await protocol.send({"type": "websocket.send", TEXTS: ["x"]})
        protocol.transport.write.assert_not_called()

    @pytest.mark.asyncio
    async def test_waits_while_the_transport_is_full(self) -> None:
        protocol = open_protocol()
        protocol.writable.clear()
        sending = asyncio.create_task(
            protocol.send({"type": "websocket.send", TEXTS: ["x"]})
        )
        await asyncio.sleep(0)
        assert not sending.done()
        protocol.writable.set()
        await asyncio.wait_for(sending, 1.0)
        assert parse_frames(written(protocol))[0].data == b"x"


class TestWriteNow:
    def test_the_scope_offers_write_now(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(
            WebSocketsSansIOProtocol, "handle_connect", lambda self, event: None
        )
        protocol = open_protocol()
        protocol.scope = {"type": "websocket", "extensions": {}}
        protocol.handle_connect(MagicMock())
        assert protocol.scope["extensions"][EXTENSION] == {
            "write_now": protocol.write_now
        }

    def test_writes_the_frames_at_once_when_open(self) -> None:
        protocol = open_protocol()
        bundle = Bundle([framed('{"n": 2}'), framed('{"n": 3}')])
        assert protocol.write_now([framed('{"n": 1}'), bundle, '{"n": 4}']) is True
        assert protocol.transport.write.call_count == 1
        assert [f.data.decode() for f in parse_frames(written(protocol))] == [
            '{"n": 1}',
            '{"n": 2}',
            '{"n": 3}',
            '{"n": 4}',
        ]

    @pytest.mark.parametrize(
        "state",
        [
            "transport full",
            "disconnected",
            "not accepted",
            "refused",
            "close sent",
            "closing",
            "deflate",
            "transport closing",
        ],
    )
    def test_writes_nothing_unless_it_can_at_once(self, state: str) -> None:
        protocol = open_protocol()
        if state == "transport full":
            protocol.writable.clear()
        elif state == "disconnected":
            protocol.disconnected = True
        elif state == "not accepted":
            protocol.handshake_complete = False
        elif state == "refused":
            protocol.initial_response = (403, [], b"")
        elif state == "close sent":
            protocol.close_sent = True
        elif state == "closing":
            protocol.conn.state = State.CLOSING
        elif state == "deflate":
            protocol.conn.extensions = [MagicMock()]
        else:
            protocol.transport.is_closing.return_value = True
        assert protocol.write_now(["x"]) is False
        protocol.transport.write.assert_not_called()


# RFC 6455 section 1.3: the client's key and the server's answer to it.
HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
ACCEPT = b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"


class Wire(asyncio.Transport):
    """A transport that keeps what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def frames(self) -> bytes:
        """What follows the handshake's response."""
        head, separator, rest = bytes(self.data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert ACCEPT in head + separator
        return rest


async def serve_one(app: Any) -> Wire:
    """Run ``app`` for one connection of uvicorn with FanoutProtocol (no
    deflate, no pings) until it returns; the bytes it wrote."""
    config = uvicorn.Config(
        app,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        lifespan="off",
        log_config=None,
    )
    config.load()
    state = ServerState()
    protocol = FanoutProtocol(config, state, {})
    wire = Wire()
    protocol.connection_made(wire)
    protocol.data_received(HANDSHAKE)
    await asyncio.wait_for(asyncio.gather(*state.tasks), WAIT_TIMEOUT)
    return wire


class TestOnUvicorn:
    """FanoutProtocol serving a connection, the bytes on the wire written out
    from RFC 6455 (FIN + text opcode 0x81, the length, the payload)."""

    @pytest.mark.asyncio
    async def test_texts_bundles_and_framed_texts_go_out_as_text_frames(
        self,
    ) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            bundle = Bundle([framed("c"), framed("d")])
            await send(
                {"type": "websocket.send", TEXTS: ["Hello", framed("ab"), bundle]}
            )

        wire = await serve_one(app)
        assert wire.frames() == b"\x81\x05Hello\x81\x02ab\x81\x01c\x81\x01d"

    @pytest.mark.asyncio
    async def test_other_messages_are_uvicorns(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "plain"})
            await send({"type": "websocket.close", "code": 1000, TEXTS: ["no"]})

        wire = await serve_one(app)
        # A text frame, then a close frame with status 1000 (0x03e8).
        assert wire.frames() == b"\x81\x05plain\x88\x02\x03\xe8"

    @pytest.mark.asyncio
    async def test_the_scope_offers_write_now_once_accepted(self) -> None:
        results: List[bool] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            write_now = scope["extensions"][EXTENSION]["write_now"]
            results.append(write_now(["early"]))
            await send({"type": "websocket.accept"})
            results.append(write_now(["Hello", framed("ab")]))

        wire = await serve_one(app)
        assert results == [False, True]
        assert wire.frames() == b"\x81\x05Hello\x81\x02ab"


def extension_websocket() -> MagicMock:
    """A fake WebSocket whose scope offers the extension; it records frames."""
    websocket = MagicMock()
    websocket.send = AsyncMock()
    websocket.scope = {"type": "websocket", "extensions": {EXTENSION: {}}}
    frames: List[str] = []
    messages: List[List[str]] = []

    async def send(message: Any) -> None:
        # The server takes nothing but a websocket.send (uvicorn raises on
        # any other type).
        if message["type"] != "websocket.send":
            raise RuntimeError(f"unexpected ASGI message {message['type']!r}")
        # A Bundle goes on the wire as the frames of the texts it carries.
        texts = [text for item in message[TEXTS] for text in texts_of(item)]
        messages.append(texts)
        frames.extend(texts)

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    websocket.send.side_effect = send
    websocket.accept.side_effect = nothing
    websocket.close.side_effect = nothing
    websocket.frames = frames
    websocket.messages = messages
    return websocket


def same_length_events(count: int) -> List[EventMessage]:
    """Events whose JSON texts all have the same length."""
    return [
        EventMessage(
            "compute.instance.update",
            "openstack",
            {"seq": number, "pad": "x" * 1000},
            "node",
            event_id=str(uuid.UUID(int=number)),
            timestamp="2026-11-23T13:00:00.000000Z",
        )
        for number in range(10, 10 + count)
    ]


class TestWriterWithTheExtension:
    def test_sends_texts_only_when_the_scope_offers_it(self) -> None:
        assert sends_texts(extension_websocket())
        plain = MagicMock()
        plain.scope = {"type": "websocket", "extensions": {}}
        assert not sends_texts(plain)
        assert not sends_texts(MagicMock())

    def test_an_object_without_a_scope_does_not_send_texts(self) -> None:
        assert sends_texts(object()) is False

    @pytest.mark.asyncio
    async def test_default_client_gets_one_frame_per_event_in_order(self) -> None:
        sent = events(50)
        async with fresh_manager(outbox_size=100) as manager:
            websocket = extension_websocket()
            await manager.connect(websocket)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: len(websocket.frames) == 50)

            assert websocket.frames == [event.to_json() for event in sent]
            # several frames per ASGI message
            assert websocket.send.await_count < 50
            websocket.send_text.assert_not_called()

    @pytest.mark.asyncio
    async def test_batch_client_gets_arrays_of_exactly_the_events(self) -> None:
        sent = events(50)
        async with fresh_manager(outbox_size=100) as manager:
            manager.BATCH_FRAME_CHARS = 2000
            websocket = extension_websocket()
            await manager.connect(websocket, batch=True)
            for event in sent:
                await manager.add_event(event)

            def received() -> List[Any]:
                return [e for frame in websocket.frames for e in json.loads(frame)]

            await async_wait_until(lambda: len(received()) == 50)
            assert received() == [event.to_dict() for event in sent]
            assert all(len(frame) <= 2000 for frame in websocket.frames)

    @pytest.mark.asyncio
    async def test_a_failing_send_removes_the_client(self) -> None:
        async with fresh_manager() as manager:
            websocket = extension_websocket()
            websocket.send.side_effect = ClientDisconnected()
            await manager.connect(websocket)
            await manager.add_event(events(1)[0])
            await async_wait_until(lambda: websocket not in manager.connections)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "bound, texts_per_message",
        [("WRITE_MANY_CHARS", 2), ("WRITE_MANY", 3)],
        ids=["ends-at-write-many-chars", "holds-at-most-write-many-frames"],
    )
    async def test_one_message_stops_at_its_bound(
        self, bound: str, texts_per_message: int
    ) -> None:
        sent = same_length_events(40)
        length = len(sent[0].to_json())
        async with fresh_manager(outbox_size=100) as manager:
            # WRITE_MANY_CHARS counts characters, WRITE_MANY frames.
            limit = texts_per_message * (length if bound == "WRITE_MANY_CHARS" else 1)
            setattr(manager, bound, limit)
            websocket = extension_websocket()
            await manager.connect(websocket)
            # Queued one text per entry before the writer runs.
            for event in sent:
                assert manager.send_to(websocket, event.to_json())
            await async_wait_until(lambda: len(websocket.frames) == 40)

            assert websocket.frames == [event.to_json() for event in sent]
            assert max(len(texts) for texts in websocket.messages) == texts_per_message

    @pytest.mark.asyncio
    async def test_a_turns_events_go_whole_in_one_message(self) -> None:
        sent = same_length_events(12)
        async with fresh_manager(outbox_size=100) as manager:
            manager.FANOUT_BATCH = 6
            manager.WRITE_MANY = 1
            websocket = extension_websocket()
            await manager.connect(websocket)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: len(websocket.frames) == 12)

            assert websocket.frames == [event.to_json() for event in sent]
            assert [len(texts) for texts in websocket.messages] == [6, 6]


def write_now_websocket(accepts: bool = True) -> MagicMock:
    """An extension_websocket whose scope also offers write_now; what it
    wrote (texts, bundles unpacked) is in ``written_now``."""
    websocket = extension_websocket()
    written_now: List[str] = []

    def write_now(items: Any) -> bool:
        if not accepts:
            return False
        written_now.extend(text for item in items for text in texts_of(item))
        return True

    websocket.scope["extensions"][EXTENSION] = {"write_now": write_now}
    websocket.written_now = written_now
    return websocket


class TestWriteNowFromTheBroadcaster:
    @pytest.mark.asyncio
    async def test_an_idle_client_gets_each_event_written_at_once(self) -> None:
        sent = events(3)
        async with fresh_manager(outbox_size=100) as manager:
            websocket = write_now_websocket()
            await manager.connect(websocket)
            outbox = manager.connections[websocket].outbox
            for event in sent:
                await async_wait_until(outbox.idle)
                await manager.add_event(event)
                await async_wait_until(lambda: websocket.written_now)
            await async_wait_until(lambda: len(websocket.written_now) == 3)

            assert websocket.written_now == [event.to_json() for event in sent]
            assert websocket.frames == []
            assert manager.status().delivered == 3

    @pytest.mark.asyncio
    async def test_what_cannot_be_written_at_once_goes_through_the_writer(
        self,
    ) -> None:
        sent = events(3)
        async with fresh_manager(outbox_size=100) as manager:
            websocket = write_now_websocket(accepts=False)
            await manager.connect(websocket)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: len(websocket.frames) == 3)

            assert websocket.frames == [event.to_json() for event in sent]

    @pytest.mark.asyncio
    async def test_an_idle_client_of_batched_frames_gets_arrays_at_once(
        self,
    ) -> None:
        sent = events(3)
        async with fresh_manager(outbox_size=100) as manager:
            websocket = write_now_websocket()
            await manager.connect(websocket, batch=True)
            outbox = manager.connections[websocket].outbox

            def arrived() -> List[Any]:
                return [e for text in websocket.written_now for e in json.loads(text)]

            for event in sent:
                await async_wait_until(outbox.idle)
                await manager.add_event(event)
                await async_wait_until(lambda: event.to_dict() in arrived())

            assert arrived() == [event.to_dict() for event in sent]
            assert websocket.frames == []

    def test_a_text_is_queued_while_the_writer_is_not_waiting(self) -> None:
        websocket = write_now_websocket()
        connection = WebSocketConnection(websocket, outbox_size=10)
        assert connection.offer("x")
        assert websocket.written_now == []
        assert connection.outbox.get_nowait() == "x"

    @pytest.mark.asyncio
    async def test_a_batched_client_gets_a_bundle_written_now_within_its_limit(
        self,
    ) -> None:
        websocket = write_now_websocket()
        connection = WebSocketConnection(
            websocket, outbox_size=10, batch=True, batch_chars=9
        )
        writer = asyncio.create_task(connection.outbox.get())
        try:
            await async_wait_until(connection.outbox.idle)
            bundle = Bundle([framed("111"), framed("222"), framed("333")])

            assert connection.offer(bundle)
            assert websocket.written_now == ["[111,222]", "[333]"]
            assert not writer.done()
        finally:
            writer.cancel()


class TestWriteNowOf:
    @pytest.mark.parametrize(
        "websocket",
        [
            object(),
            MagicMock(),
            MagicMock(scope={"type": "websocket"}),
            MagicMock(scope={"extensions": {EXTENSION: {}}}),
            MagicMock(scope={"extensions": {EXTENSION: {"write_now": "no"}}}),
        ],
        ids=[
            "no-scope",
            "scope-not-a-dict",
            "no-extensions",
            "no-entry",
            "not-callable",
        ],
    )
    def test_none_unless_the_scope_offers_a_callable(self, websocket: Any) -> None:
        assert write_now_of(websocket) is None

    def test_the_servers_callable_when_offered(self) -> None:
        websocket = write_now_websocket()
        write_now = write_now_of(websocket)
        assert write_now is not None
        assert write_now([framed("x")])
        assert websocket.written_now == ["x"]
