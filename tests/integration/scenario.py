"""Conversations with a live WebSocket service, written the way they happen.

A test connects users, says what each must receive (``expect``), what it sends
when a message arrives (``then_send``), and runs several users at once
(``run_users``). Every wait has a deadline (``within``, in seconds, scaled by
OSISM_TEST_TIMEOUT_FACTOR: deadlines.py); a failure says which user waited for
what and what it got instead.

    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters(service_filters=["baremetal"])
        await publish(redis, "baremetal.node.power_set.end", ironic("node-1"))
        await operator.expect(event("baremetal.node.power_set.end", node="node-1"))
"""

import asyncio
import contextlib
import json
import socket
import time
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Collection,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
)

import redis.asyncio
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.integration.deadlines import deadline

CHANNEL = "osism:events"
HEARTBEAT = {"event_type": "heartbeat", "source": "osism", "data": {"message": "ping"}}
EVENT_KEYS = {"id", "timestamp", "event_type", "source", "node_name", "data"}

Message = Dict[str, Any]


class ScenarioError(AssertionError):
    """A user did not get what the conversation says it gets."""


def matches(value: Any, pattern: Any) -> bool:
    """Whether ``value`` has everything ``pattern`` asks for.

    A mapping matches a mapping holding (at least) its keys with matching
    values; a type matches its instances; a callable is a predicate; anything
    else must be equal.
    """
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and matches(value[key], expected)
            for key, expected in pattern.items()
        )
    if isinstance(pattern, type):
        return isinstance(value, pattern)
    if callable(pattern):
        return bool(pattern(value))
    return bool(value == pattern)


def is_heartbeat(message: Any) -> bool:
    return matches(message, HEARTBEAT)


_ANY = object()


def event(event_type: str, node: Any = _ANY, **data: Any) -> Dict[str, Any]:
    """What a client receives for an OpenStack notification.

    ``node`` is the expected node_name (leave it out to accept any);
    ``data`` are entries the event's data must hold.
    """
    pattern: Dict[str, Any] = {"event_type": event_type, "source": "openstack"}
    if node is not _ANY:
        pattern["node_name"] = node
    if data:
        pattern["data"] = data
    return pattern


def filter_update(**filters: List[str]) -> Dict[str, Any]:
    """The acknowledgement of a set_filters message."""
    return {"type": "filter_update", "status": "success", **filters}


def error_reply(contains: str = "") -> Dict[str, Any]:
    return {
        "type": "error",
        "error": lambda text: isinstance(text, str) and contains in text,
    }


def ironic(node: str, uuid: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """A baremetal (Ironic) notification payload about ``node``."""
    data = {"name": node, "uuid": uuid or f"uuid-{node}", "power_state": "power on"}
    return {"ironic_object.data": data, **extra}


def nova(host: str, uuid: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """A compute (Nova) notification payload about an instance on ``host``."""
    data = {"host": host, "uuid": uuid or f"instance-on-{host}", "state": "active"}
    return {"nova_object.data": data, **extra}


async def publish(
    client: redis.asyncio.Redis, event_type: str, payload: Mapping[str, Any]
) -> int:
    """PUBLISH an event on Redis exactly as the listener does; the receiver count."""
    message = json.dumps({"event_type": event_type, "payload": payload})
    receivers: int = await client.publish(CHANNEL, message)
    return receivers


class User:
    """One WebSocket client in a conversation."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ws = ws
        self.received: List[Any] = []

    def __repr__(self) -> str:
        return f"<User {self.name}>"

    async def send(self, message: Union[Mapping[str, Any], str, bytes]) -> None:
        """Send a message: a mapping as JSON text, str or bytes as they are."""
        if isinstance(message, Mapping):
            await self.ws.send(json.dumps(message))
        else:
            await self.ws.send(message)

    async def next_message(self, within: float = 5.0) -> Any:
        """The next message, decoded from JSON (heartbeats included)."""
        return await self._next_message(deadline(within))

    async def next_message_by(self, until: float) -> Any:
        """The next message, before ``time.monotonic()`` reaches ``until``
        (a loop's own deadline, already scaled with ``deadline()``)."""
        return await self._next_message(max(0.0, until - time.monotonic()))

    async def expect_by(self, match: Mapping[str, Any], until: float) -> Message:
        """``expect``, before ``time.monotonic()`` reaches ``until``."""
        return await self._expect(match, max(0.0, until - time.monotonic()))

    async def _next_message(self, within: float) -> Any:
        try:
            async with asyncio.timeout(within):
                raw = await self.ws.recv()
        except TimeoutError:
            raise ScenarioError(
                f"{self.name}: no message within {within} s; "
                f"last received: {self._recent()}"
            ) from None
        except ConnectionClosed as exc:
            raise ScenarioError(
                f"{self.name}: connection closed ({exc}) while waiting; "
                f"last received: {self._recent()}"
            ) from None
        message = json.loads(raw)
        self.received.append(message)
        return message

    async def expect(
        self,
        match: Mapping[str, Any],
        within: float = 5.0,
        then_send: Optional[Mapping[str, Any]] = None,
        skip_heartbeats: bool = True,
        ignore: Optional[Mapping[str, Any]] = None,
    ) -> Message:
        """The next message (heartbeats aside) must match, within ``within`` s.

        ``then_send`` is sent as soon as it has arrived; messages matching
        ``ignore`` are passed over.
        """
        return await self._expect(
            match, deadline(within), then_send, skip_heartbeats, ignore
        )

    async def _expect(
        self,
        match: Mapping[str, Any],
        within: float,
        then_send: Optional[Mapping[str, Any]] = None,
        skip_heartbeats: bool = True,
        ignore: Optional[Mapping[str, Any]] = None,
    ) -> Message:
        until = time.monotonic() + within
        while True:
            message = await self._next_message(max(0.0, until - time.monotonic()))
            if skip_heartbeats and is_heartbeat(message) and not is_heartbeat(match):
                continue
            if ignore is not None and matches(message, ignore):
                continue
            if not matches(message, match):
                raise ScenarioError(
                    f"{self.name}: expected a message like {_show(match)}, "
                    f"got {_show(message)}"
                )
            if then_send is not None:
                await self.send(then_send)
            result: Message = message
            return result

    async def expect_each(
        self, matches_in_order: Sequence[Mapping[str, Any]], within: float = 10.0
    ) -> List[Message]:
        """These messages, in this order, nothing else between them."""
        until = time.monotonic() + deadline(within)
        received = []
        for index, match in enumerate(matches_in_order):
            remaining = until - time.monotonic()
            try:
                received.append(await self._expect(match, max(0.0, remaining)))
            except ScenarioError as exc:
                raise ScenarioError(
                    f"{exc} (message {index + 1} of {len(matches_in_order)})"
                ) from None
        return received

    async def set_filters(self, within: float = 5.0, **filters: List[str]) -> Message:
        """Send set_filters and expect its acknowledgement with the new filters."""
        await self.send({"action": "set_filters", **filters})
        return await self.expect(filter_update(**filters), within=within)

    async def expect_closed(
        self, code: Union[int, Collection[int]], within: float = 10.0
    ) -> ConnectionClosed:
        """The server closes the connection with a close frame carrying ``code``.

        Messages still arriving before the close frame are read and kept.
        """
        codes = {code} if isinstance(code, int) else set(code)
        within = deadline(within)
        try:
            async with asyncio.timeout(within):
                while True:
                    raw = await self.ws.recv()
                    self.received.append(json.loads(raw))
        except TimeoutError:
            raise ScenarioError(
                f"{self.name}: still open after {within} s, expected close "
                f"{sorted(codes)}; last received: {self._recent()}"
            ) from None
        except ConnectionClosed as exc:
            frame = exc.rcvd
            if frame is None or frame.code not in codes:
                raise ScenarioError(
                    f"{self.name}: expected a close frame with {sorted(codes)}, "
                    f"got {exc}"
                ) from None
            return exc

    async def close(self) -> None:
        await self.ws.close()

    def _recent(self) -> str:
        return _show(self.received[-3:]) if self.received else "nothing"


@contextlib.asynccontextmanager
async def connect(url: str, name: str = "user", **options: Any) -> AsyncIterator[User]:
    """A connected user; closed when the block ends, whatever happens."""
    ws = await ws_connect(
        url, open_timeout=deadline(10), close_timeout=deadline(5), **options
    )
    try:
        yield User(name, ws)
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def connect_many(
    url: str, count: int, prefix: str = "user", **options: Any
) -> AsyncIterator[List[User]]:
    """``count`` users connected at once; all closed when the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        users = await run_users(
            *(
                stack.enter_async_context(connect(url, f"{prefix}-{i}", **options))
                for i in range(count)
            ),
            within=30.0,
        )
        yield users


def small_window_socket(
    host: str, port: int, receive_buffer: int = 4096
) -> socket.socket:
    """A TCP connection with a tiny receive buffer (set before the handshake, so
    the window it advertises stays small): a client that stops reading this
    socket makes the server's sends back up quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    try:
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def run_users(*conversations: Awaitable[Any], within: float) -> List[Any]:
    """Run every conversation at once; the first failure cancels the others."""
    within = deadline(within)
    try:
        async with asyncio.timeout(within):
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(_run(c)) for c in conversations]
    except TimeoutError:
        raise ScenarioError(f"the conversation took longer than {within} s") from None
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        for other in failures.exceptions[1:]:
            first.add_note(f"also: {other!r}")
        raise first from None
    return [task.result() for task in tasks]


async def _run(conversation: Awaitable[Any]) -> Any:
    return await conversation


def _show(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
