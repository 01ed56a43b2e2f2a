"""A client's outbox: texts waiting for its writer, bounded in count and in bytes."""

import asyncio
from collections import deque
from sys import getsizeof
from typing import Deque, List, Optional

from osism.transport.frames import Bundle, Item, texts_of

__all__ = ["Outbox", "batch_frames", "messages_in", "text_size"]


def text_size(item: Item) -> int:
    """Bytes of memory a queued entry holds: a text's UTF-8 length (for
    ASCII) plus the string's header, and what a FramedText's frame or a
    Bundle holds besides (their ``size``)."""
    if type(item) is str:
        return getsizeof(item)
    size: int = getattr(item, "size")
    return size


def messages_in(item: Item) -> int:
    """How many messages an entry is: a bundle's texts, or one."""
    return len(item.texts) if type(item) is Bundle else 1


class Outbox:
    """A queue of messages for one client, bounded in count and in bytes.

    An entry is a text or a Bundle of event texts (osism.transport.frames);
    the count bound is on messages, a bundle counting as many as it carries.
    Producers: the broadcaster (``put_nowait``, which raises
    asyncio.QueueFull when the entry would take the queue over ``maxsize``
    messages or ``max_bytes`` bytes; an empty outbox takes any entry, so
    that an event larger than the bound still reaches a client that keeps
    up) and a resume (``put``, which waits until the text fits). The one
    consumer is the connection's writer (``get``, ``get_nowait``,
    ``peek``). ``bytes`` is what it holds now.

    Not an asyncio.Queue: a delivery costs one put and one get, and the
    queue's join/task_done bookkeeping and waiter lists cost more than the
    rest of the outbox's work.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.bytes = 0
        # Messages held (a bundle counts its texts).
        self.count = 0
        self._items: Deque[Item] = deque()
        # The writer, waiting in get() for a text.
        self._getter: "Optional[asyncio.Future[None]]" = None
        # Callers of put() waiting for space, oldest first.
        self._putters: "Deque[asyncio.Future[None]]" = deque()

    def qsize(self) -> int:
        """Messages held (a bundle counts its texts)."""
        return self.count

    def empty(self) -> bool:
        return not self._items

    def idle(self) -> bool:
        """Empty, and the writer waits in get() for an entry (not woken yet)."""
        getter = self._getter
        return getter is not None and not getter.done() and not self._items

    def peek(self) -> Item:
        """The text get_nowait would return, left in place."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items[0]

    def put_nowait(self, item: Item) -> None:
        size = text_size(item)
        count = self.count
        held = self.bytes
        if count and (
            count + messages_in(item) > self.maxsize or held + size > self.max_bytes
        ):
            raise asyncio.QueueFull
        self._items.append(item)
        self.count = count + messages_in(item)
        self.bytes = held + size
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    async def put(self, item: Item) -> None:
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

    def get_nowait(self) -> Item:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        self.count -= messages_in(item)
        self.bytes -= text_size(item)
        putters = self._putters
        if putters:
            waiter = putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        return item

    async def get(self) -> Item:
        """The oldest entry, once there is one."""
        while not self._items:
            # put_nowait wakes it (a getter left behind by a cancelled get()
            # is done, and put_nowait passes it by).
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter
        return self.get_nowait()


def batch_frames(first: Item, outbox: Outbox, limit: int) -> List[str]:
    """The texts of ``first`` and of the entries that follow it in the
    outbox, as JSON arrays of at most ``limit`` characters each: ``first``
    split where it must be (a text longer than the limit goes alone in its
    array), then whole entries while the last array has room for them."""
    frames: List[str] = []
    parts: List[str] = []
    # "[" + the texts joined by "," + "]": one more than the texts and commas
    size = 1
    for text in texts_of(first):
        if parts and size + len(text) + 1 > limit:
            frames.append("[" + ",".join(parts) + "]")
            parts, size = [], 1
        parts.append(text)
        size += len(text) + 1
    while not outbox.empty():
        following = texts_of(outbox.peek())
        size += sum(map(len, following)) + len(following)
        if size > limit:
            break
        outbox.get_nowait()
        parts.extend(following)
    frames.append("[" + ",".join(parts) + "]")
    return frames
