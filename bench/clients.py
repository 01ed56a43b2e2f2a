"""WebSocket clients, run in processes of their own.

Each client process connects its share of the clients with the ``websockets``
library, offering permessage-deflate as browsers (and ``websockets.connect``)
do by default. The default implementation drives the library's sans-I/O
``ClientProtocol`` from a plain asyncio protocol (the same handshake, frame
parser and decompressor as ``websockets.connect``, without a future per
message), so that one client process can take more messages per second
than the server sends; ``--client-impl asyncio`` uses ``websockets.connect``.

Per client it keeps each event's sequence number and publish time as they
came, and checks them after the run (lost, duplicated, not matching its
filter; latency = receive time - publish time), so that the work per
delivery while the server is measured is a frame walk and two searches.
The parent reads two live figures from shared memory (messages received, and
the lowest sequence number every client has reached, which the full-speed
publisher uses as its window) and gets the rest through a pipe at the end.
"""

import asyncio
import gc
import json
import socket
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Dict, List, Optional, Tuple, cast

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.events import EVENT_TYPES, filters_for

# Slots of the shared array of one client process.
DELIVERED, ACKED, READY = 0, 1, 2
SHARED_SLOTS = 3

# The two fields every bench event leads its payload with; int() and float()
# take the space json.dumps (the naive server) writes after the colon.
SEQ = b'"seq":'


@dataclass
class ClientSpec:
    """One client: ``kind`` None gets every event, k gets 1/10 of them."""

    kind: Optional[int] = None
    stalled: bool = False


@dataclass
class ProcConfig:
    url: str
    specs: List[ClientSpec]
    deflate: bool = True
    impl: str = "sansio"
    set_filters: bool = True
    stalled_rcvbuf: int = 0
    connect_timeout: float = 30.0


@dataclass
class Tally:
    """What one client process saw, summed over its clients."""

    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    other: int = 0
    closed_early: Dict[int, int] = field(default_factory=dict)
    stalled_close: List[Optional[int]] = field(default_factory=list)
    stalled_bytes: List[int] = field(default_factory=list)
    deflate_negotiated: int = 0


class Client:
    """Sequence and latency bookkeeping of one connection.

    While the clients run, each read keeps its events' fields as they came
    (one bytes string per read) and only the newest sequence number is
    parsed (``last``, which the full-speed publisher's window follows);
    ``account`` checks every event after the run, outside the measured
    window, so that a client costs as little per delivery as possible.
    """

    def __init__(self, proc: "ClientProcess", spec: ClientSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.stride = 1 if spec.kind is None else len(EVENT_TYPES)
        self.offset = 0 if spec.kind is None else spec.kind
        # The newest sequence number received (live).
        self.last = self.offset - self.stride
        # Per read: (receive time, the events' fields joined by ";").
        self.reads: List[Tuple[float, bytes]] = []
        self.lost = 0
        self.duplicated = 0
        self.mismatched = 0
        self.close_code: Optional[int] = None
        self.filters_ack: Optional["asyncio.Future[None]"] = None
        self.received_bytes = 0
        self.resumed_at = 0
        self.connection: Any = None

    def on_text(self, data: bytes, now: float) -> None:
        """One text message: an event, a batched array of them, or a reply."""
        if b'"type"' in data:
            # A reply (filter_update, error), alone or inside a batch.
            self._on_other(data)
        fields: List[Any] = []
        _fields_in(data, 0, len(data), fields)
        self.on_fields(fields, now)

    @property
    def settled(self) -> bool:
        """No reply is awaited: frames without an event are heartbeats."""
        return self.filters_ack is None or self.filters_ack.done()

    def on_fields(self, fields: List[Any], now: float) -> None:
        """Events received at ``now``: each one's fields from just after
        ``"seq":`` to the comma after its ``sent`` value (``_fields_in``)."""
        if not fields or self.spec.stalled:
            return
        newest = fields[-1]
        self.last = int(newest[: newest.find(b",")])
        self.proc.shared[DELIVERED] += len(fields)
        self.reads.append((now, b";".join(fields)))

    def account(self, low: int, high: int, latencies: "array[float]") -> None:
        """Check every event received, in order (lost, duplicated, not
        matching the filter), and append the latencies of those with a
        sequence number in [low, high) to ``latencies``."""
        last = self.offset - self.stride
        for now, joined in self.reads:
            for item in joined.split(b";"):
                number, _, sent = item.partition(b",")
                seq = int(number)
                if seq != last + self.stride and not self._new(seq, last):
                    continue
                last = seq
                if low <= seq < high:
                    latencies.append(now - float(sent[sent.index(b":") + 1 :]))
        self.last = max(self.last, last)

    def _new(self, seq: int, last: int) -> bool:
        """Count one event that is not simply the next: True if it is new."""
        if seq <= last:
            self.duplicated += 1
            return False
        if (seq - self.offset) % self.stride:
            self.mismatched += 1
            return False
        self.lost += (seq - last) // self.stride - 1
        return True

    def _on_other(self, data: bytes) -> None:
        self.proc.tally.other += 1
        if b"filter_update" in data and self.filters_ack is not None:
            if not self.filters_ack.done():
                self.filters_ack.set_result(None)
        elif b'"error"' in data and self.filters_ack is not None:
            if not self.filters_ack.done():
                message = data.decode("utf-8", "replace")
                self.filters_ack.set_exception(RuntimeError(message))

    def expected_last(self, published: int) -> int:
        """The highest sequence number below ``published`` meant for this client."""
        if published <= self.offset:
            return self.offset - self.stride
        return (
            self.offset + ((published - 1 - self.offset) // self.stride) * self.stride
        )


class SansioClient(asyncio.Protocol):
    """A ``websockets`` ClientProtocol on a plain asyncio transport."""

    def __init__(self, client: Client, url: str, deflate: bool) -> None:
        loop = asyncio.get_running_loop()
        extensions = enable_client_permessage_deflate(None) if deflate else None
        self.client = client
        self.ws = ClientProtocol(parse_uri(url), extensions=extensions, max_size=None)
        self.transport: Optional[asyncio.Transport] = None
        self.opened: "asyncio.Future[None]" = loop.create_future()
        self.closed: "asyncio.Future[None]" = loop.create_future()
        self.partial: List[bytes] = []
        # Past the handshake without an extension, data frames are parsed
        # here (see _fast_receive); anything else goes through websockets.
        self.fast = False
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.fast:
            self._fast_receive(data)
            return
        self._ws_receive(data)
        ws = self.ws
        if (
            self.opened.done()
            and not self.opened.exception()
            and not ws.extensions
            and ws.state is State.OPEN
            and not ws.reader.buffer
        ):
            self.fast = True

    def _fast_receive(self, data: bytes) -> None:
        """Unmasked server frames, parsed without websockets' generators: the
        client must cost less per message than the server it measures. The
        leading run of whole, final text frames is scanned in place for the
        events' two fields (_scan_events); anything else is taken frame by
        frame (_frames), and a control frame hands the rest of the stream
        back to websockets."""
        now = time.time()
        client = self.client
        client.received_bytes += len(data)
        buf = self.buffer
        buf += data
        if not self.partial and client.settled:
            fields: List[bytearray] = []
            others: List[bytes] = []
            run = _scan_events(buf, fields, others)
            if run:
                del buf[:run]
                for other in others:
                    client.on_text(other, now)
                client.on_fields(fields, now)
        if buf:
            data = bytes(buf)
            del buf[:]
            self._frames(data, now)

    def _frames(self, data: bytes, now: float) -> None:
        """Frame by frame: fragments, replies, and the switch back to
        websockets at a control frame; an incomplete frame waits in the
        buffer."""
        client = self.client
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            opcode = first & 0x0F
            if opcode > 0x2 or second & 0x80:
                # close, ping, pong (or a masked frame): websockets' job
                self.fast = False
                rest = bytes(buf[pos:])
                del buf[:]
                client.received_bytes -= len(rest)
                self._ws_receive(rest)
                return
            length, head = second & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            stop = pos + head + length
            if stop > end:
                break
            payload = bytes(buf[pos + head : stop])
            if opcode == 0x1:  # text (binary frames are not sent to us)
                self.partial = [payload]
            else:
                self.partial.append(payload)
            if first & 0x80:  # FIN: the message is complete
                parts, self.partial = self.partial, []
                client.on_text(parts[0] if len(parts) == 1 else b"".join(parts), now)
            pos = stop
        del buf[:pos]

    def _ws_receive(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        now = time.time()
        client = self.client
        client.received_bytes += len(data)
        for event in ws.events_received():
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is Opcode.TEXT:
                    if event.fin:
                        client.on_text(event.data, now)
                    else:
                        self.partial = [event.data]
                elif opcode is Opcode.CONT:
                    self.partial.append(event.data)
                    if event.fin:
                        client.on_text(b"".join(self.partial), now)
                        self.partial = []
                elif opcode is Opcode.CLOSE and ws.close_rcvd is not None:
                    client.close_code = ws.close_rcvd.code
            elif isinstance(event, Response):
                if ws.handshake_exc is not None:
                    self._fail(ws.handshake_exc)
                elif not self.opened.done():
                    self.opened.set_result(None)
        self._flush()
        if ws.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.client.close_code is None:
            close = self.ws.close_rcvd
            self.client.close_code = close.code if close is not None else 1006
        self._fail(ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self._flush()

    def negotiated_deflate(self) -> bool:
        return any(ext.name == "permessage-deflate" for ext in self.ws.extensions)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)


def _scan_events(buf: bytearray, fields: List[Any], others: List[bytes]) -> int:
    """Scan the leading run of complete, final, unmasked text frames in
    ``buf``: append each event's fields (see ``_fields_in``) to ``fields``,
    and each frame without an event (a heartbeat) to ``others``. Returns
    the length of the run (0 if ``buf`` starts with anything else)."""
    pos, end = 0, len(buf)
    find = buf.find
    while end - pos >= 2:
        if buf[pos] != 0x81:  # FIN + text
            break
        length = buf[pos + 1]
        if length < 126:
            start = pos + 2
        elif length == 126 and end - pos >= 4:
            start = pos + 4
            length = (buf[pos + 2] << 8) | buf[pos + 3]
        else:  # 127, a masked frame (>= 128), or a header not all here
            break
        stop = start + length
        if stop > end:
            break
        i = find(SEQ, start, stop)
        if i < 0:
            others.append(bytes(buf[start:stop]))
        elif buf[start] != 0x5B:  # one event: its fields, nothing more to find
            fields.append(buf[i + 6 : find(b",", find(b",", i, stop) + 1, stop)])
        else:
            _fields_in(buf, start, stop, fields)
        pos = stop
    return pos


def _fields_in(data: Any, start: int, stop: int, fields: List[Any]) -> int:
    """Append the fields of the events in ``data[start:stop]`` (one event,
    or a batched array of them) to ``fields``: from just after ``"seq":``
    to the comma after ``sent``, which follows it at once (``5,"sent":1.5``,
    or with the spaces json.dumps writes). How many there were."""
    find = data.find
    count = 0
    i = find(SEQ, start, stop)
    while i >= 0:
        j = find(b",", find(b",", i, stop) + 1, stop)
        fields.append(data[i + 6 : j])
        count += 1
        if data[start] != 0x5B:  # not a batched array: one event
            break
        i = find(SEQ, j, stop)
    return count


class ClientProcess:
    """All the clients of one process, and the commands from the parent."""

    def __init__(self, config: ProcConfig, shared: Any, conn: Connection) -> None:
        self.config = config
        self.shared = shared
        self.conn = conn
        self.tally = Tally()
        self.clients: List[Client] = []
        self.sansio: List[SansioClient] = []
        self.tasks: List["asyncio.Task[Any]"] = []
        self.asyncio_conns: List[Any] = []
        self.resumed = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._connect_all(), self.config.connect_timeout)
        except BaseException as exc:
            self.conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        # What the clients hold from here on lives to the end of the run: the
        # collector's full passes need not walk it (shorter pauses, which
        # would show in the latency figures as the server's).
        gc.freeze()
        self.shared[READY] = 1
        self.conn.send(("ready", {"deflate_negotiated": self.tally.deflate_negotiated}))
        acker = asyncio.create_task(self._ack_loop())
        while True:
            command = await loop.run_in_executor(None, self.conn.recv)
            if command[0] != "resume":
                break
            self._resume_stalled()
        acker.cancel()
        published, low, high, drain = command[1:]
        await self._drain(published, drain)
        self.conn.send(("result", self._result(published, low, high)))

    async def _connect_all(self) -> None:
        limit = asyncio.Semaphore(50)
        specs = self.config.specs

        async def one(spec: ClientSpec) -> None:
            async with limit:
                await self._connect(spec)

        await asyncio.gather(*(one(spec) for spec in specs))

    async def _connect(self, spec: ClientSpec) -> None:
        client = Client(self, spec)
        self.clients.append(client)
        if self.config.impl == "asyncio":
            await self._connect_asyncio(client)
            return
        loop = asyncio.get_running_loop()
        uri = parse_uri(self.config.url)
        protocol = SansioClient(client, self.config.url, self.config.deflate)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if spec.stalled and self.config.stalled_rcvbuf:
            # A small receive buffer makes the stall show within seconds.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.stalled_rcvbuf
            )
        try:
            await loop.sock_connect(sock, (uri.host, uri.port))
        except BaseException:
            sock.close()
            raise
        await loop.create_connection(lambda: protocol, sock=sock)
        await protocol.opened
        self.sansio.append(protocol)
        if protocol.negotiated_deflate():
            self.tally.deflate_negotiated += 1
        await self._set_filters(client, protocol.send_text)
        if spec.stalled and protocol.transport is not None:
            protocol.transport.pause_reading()

    async def _set_filters(self, client: Client, send: Any) -> None:
        if client.spec.kind is None or not self.config.set_filters:
            return
        event_filters, service_filters = filters_for(client.spec.kind)
        client.filters_ack = asyncio.get_running_loop().create_future()
        result = send(
            json.dumps(
                {
                    "action": "set_filters",
                    "event_filters": event_filters,
                    "service_filters": service_filters,
                }
            )
        )
        if asyncio.iscoroutine(result):
            await result
        await client.filters_ack

    async def _connect_asyncio(self, client: Client) -> None:
        from websockets.asyncio.client import connect

        ws = await connect(self.config.url, max_size=None)
        self.asyncio_conns.append(ws)
        client.connection = ws
        extensions = getattr(ws.protocol, "extensions", [])
        if any(ext.name == "permessage-deflate" for ext in extensions):
            self.tally.deflate_negotiated += 1
        reader = None if client.spec.stalled else self._read_asyncio(client, ws)
        if client.spec.kind is not None and self.config.set_filters:
            # Replies arrive through the reader; a stalled client reads them here.
            if reader is None:
                await self._set_filters_stalled_asyncio(client, ws)
            else:
                self.tasks.append(asyncio.create_task(reader))
                await self._set_filters(client, ws.send)
                return
        if reader is not None:
            self.tasks.append(asyncio.create_task(reader))

    async def _set_filters_stalled_asyncio(self, client: Client, ws: Any) -> None:
        reader = asyncio.create_task(self._read_asyncio(client, ws, until_ack=True))
        await self._set_filters(client, ws.send)
        await reader

    async def _read_asyncio(
        self, client: Client, ws: Any, until_ack: bool = False
    ) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in ws:
                data = message.encode() if isinstance(message, str) else message
                client.received_bytes += len(data)
                client.on_text(data, time.time())
                ack = client.filters_ack
                if until_ack and ack is not None and ack.done():
                    return
        except ConnectionClosed:
            pass
        if client.close_code is None:
            client.close_code = ws.close_code

    async def _ack_loop(self) -> None:
        """Publish the lowest sequence number all live clients have reached."""
        live = [client for client in self.clients if not client.spec.stalled]
        while True:
            if live:
                self.shared[ACKED] = min(client.last for client in live)
            await asyncio.sleep(0.001)

    async def _drain(self, published: int, timeout: float) -> None:
        """Wait until every live client has the last event meant for it."""
        deadline = time.monotonic() + timeout
        live = [
            client
            for client in self.clients
            if not client.spec.stalled and client.close_code is None
        ]
        while time.monotonic() < deadline:
            if all(
                client.last >= client.expected_last(published)
                or client.close_code is not None
                for client in live
            ):
                break
            await asyncio.sleep(0.01)
        stalled = [client for client in self.clients if client.spec.stalled]
        if not stalled:
            return
        self._resume_stalled()
        deadline = time.monotonic() + max(timeout, 15.0)
        while time.monotonic() < deadline:
            if all(client.close_code is not None for client in stalled):
                break
            await asyncio.sleep(0.02)
        for client in stalled:
            self.tally.stalled_close.append(client.close_code)
            self.tally.stalled_bytes.append(client.received_bytes - client.resumed_at)

    def _resume_stalled(self) -> None:
        """The stalled clients read again: what the server still had queued for
        them, then (if it let them go) the close frame."""
        if self.resumed:
            return
        self.resumed = True
        for client in self.clients:
            client.resumed_at = client.received_bytes
        for protocol in self.sansio:
            if protocol.client.spec.stalled and protocol.transport is not None:
                protocol.transport.resume_reading()
        for client in self.clients:
            if client.spec.stalled and client.connection is not None:
                reader = self._read_asyncio(client, client.connection)
                self.tasks.append(asyncio.create_task(reader))

    def _result(self, published: int, low: int, high: int) -> Dict[str, Any]:
        tally = self.tally
        window = array("d")
        for client in self.clients:
            if client.spec.stalled:
                continue
            client.account(low, high, window)
            missing = max(0, (client.expected_last(published) - client.last))
            tally.lost += client.lost + missing // client.stride
            tally.duplicated += client.duplicated
            tally.mismatched += client.mismatched
            if client.close_code is not None:
                code = client.close_code
                tally.closed_early[code] = tally.closed_early.get(code, 0) + 1
        tally.delivered = int(self.shared[DELIVERED])
        return {
            "tally": tally.__dict__,
            "latencies": window.tobytes(),
            "clients": len(self.clients),
        }

    async def close(self) -> None:
        for protocol in self.sansio:
            if protocol.transport is not None:
                protocol.transport.abort()
        for ws in self.asyncio_conns:
            try:
                await asyncio.wait_for(ws.close(), 1.0)
            except Exception:
                pass
        for task in self.tasks:
            task.cancel()


def main(config: ProcConfig, shared: Any, conn: Connection) -> None:
    """Entry point of a client process."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run

    async def amain() -> None:
        proc = ClientProcess(config, shared, conn)
        try:
            await proc.run()
        finally:
            await proc.close()

    try:
        runner(amain())
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
