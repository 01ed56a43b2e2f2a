"""A client's outbox: texts waiting for its writer, bounded in count and in bytes."""

import asyncio
from collections import deque
from sys import getsizeof
from typing import Deque, Optional

__all__ = ["Outbox", "batch_frame", "text_size"]


def text_size(text: str) -> int:
    """Bytes of memory a queued text holds (its UTF-8 length for ASCII, plus
    the string's header)."""
    return getsizeof(text)


class Outbox:
    """A queue of texts for one client, bounded in count and in bytes.

    Producers: the broadcaster (``put_nowait``, which raises
    asyncio.QueueFull when the text would take the queue over ``maxsize``
    texts (at least 1) or ``max_bytes`` bytes; one text alone is always
    taken, so that an event larger than the bound still reaches a client
    that keeps up) and a resume (``put``, which waits until the text
    fits). The one consumer is the connection's writer (``get``,
    ``get_nowait``, ``peek``). ``bytes`` is what it holds now.

    Not an asyncio.Queue: a delivery costs one put and one get, and the
    queue's join/task_done bookkeeping and waiter lists cost more than the
    rest of the outbox's work.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: Deque[str] = deque()
        # The writer, waiting in get() for a text.
        self._getter: "Optional[asyncio.Future[None]]" = None
        # Callers of put() waiting for space, oldest first.
        self._putters: "Deque[asyncio.Future[None]]" = deque()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def peek(self) -> str:
        """The text get_nowait would return, left in place."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items[0]

    def put_nowait(self, item: str) -> None:
        size = getsizeof(item)
        items = self._items
        held = self.bytes
        if len(items) >= self.maxsize or (held and held + size > self.max_bytes):
            raise asyncio.QueueFull
        items.append(item)
        self.bytes = held + size
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    async def put(self, item: str) -> None:
        """Queue ``item`` once it fits (in count and in bytes)."""
        while True:
            try:
                self.put_nowait(item)
                return
            except asyncio.QueueFull:
                waiter = asyncio.get_running_loop().create_future()
                self._putters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._putters:
                        self._putters.remove(waiter)

    def get_nowait(self) -> str:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        self.bytes -= getsizeof(item)
        putters = self._putters
        if putters:
            waiter = putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        return item

    async def get(self) -> str:
        """The oldest text, once there is one."""
        while not self._items:
            # put_nowait wakes it (a getter left behind by a cancelled get()
            # is done, and put_nowait passes it by).
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter
        return self.get_nowait()


def batch_frame(first: str, outbox: Outbox, limit: int) -> str:
    """``first`` and what follows it in the outbox, as one JSON array of at
    most ``limit`` characters (or ``first`` alone, whatever its length)."""
    if outbox.empty():
        return "[" + first + "]"
    parts = [first]
    # "[" + first + "]", then "," + each following text
    size = len(first) + 2
    while not outbox.empty():
        following = outbox.peek()
        size += len(following) + 1
        if size > limit:
            break
        parts.append(outbox.get_nowait())
    return "[" + ",".join(parts) + "]"
