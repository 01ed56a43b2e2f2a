"""A client's outbox: texts waiting for its writer, bounded in count and in bytes."""

import asyncio
from sys import getsizeof

__all__ = ["Outbox", "batch_frame", "text_size"]


def text_size(text: str) -> int:
    """Bytes of memory a queued text holds (its UTF-8 length for ASCII, plus
    the string's header)."""
    return getsizeof(text)


class Outbox(asyncio.Queue[str]):
    """A queue of texts for one client, bounded in count and in bytes.

    ``put_nowait`` raises QueueFull when the text would take the queue over
    ``max_bytes`` (one text alone is always taken, so that an event larger
    than the bound still reaches a client that keeps up); ``put`` waits while
    the queue is full by either bound. ``bytes`` is what it holds now.
    ``put_nowait`` and ``get_nowait``, once per delivery each, do the work of
    asyncio.Queue's in one call instead of four (same semantics).
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        self.bytes = 0

    def full(self) -> bool:
        return super().full() or self.bytes >= self.max_bytes

    def put_nowait(self, item: str) -> None:
        size = getsizeof(item)
        queue = self._queue  # type: ignore[attr-defined]
        held = self.bytes
        if 0 < self._maxsize <= len(queue) or (  # type: ignore[attr-defined]
            held and held + size > self.max_bytes
        ):
            raise asyncio.QueueFull
        queue.append(item)
        self.bytes = held + size
        self._unfinished_tasks += 1  # type: ignore[attr-defined]
        self._finished.clear()  # type: ignore[attr-defined]
        self._wakeup_next(self._getters)  # type: ignore[attr-defined]

    def get_nowait(self) -> str:
        queue = self._queue  # type: ignore[attr-defined]
        if not queue:
            raise asyncio.QueueEmpty
        item: str = queue.popleft()
        self.bytes -= getsizeof(item)
        self._wakeup_next(self._putters)  # type: ignore[attr-defined]
        return item

    def _put(self, item: str) -> None:
        self.bytes += getsizeof(item)
        self._queue.append(item)  # type: ignore[attr-defined]

    def _get(self) -> str:
        item: str = self._queue.popleft()  # type: ignore[attr-defined]
        self.bytes -= getsizeof(item)
        return item


def batch_frame(first: str, outbox: Outbox, limit: int) -> str:
    """``first`` and what follows it in the outbox, as one JSON array of at
    most ``limit`` characters (or ``first`` alone, whatever its length)."""
    if outbox.empty():
        return "[" + first + "]"
    parts = [first]
    size = len(first)
    while not outbox.empty():
        following = outbox._queue[0]  # type: ignore[attr-defined]
        size += len(following) + 1
        if size > limit:
            break
        parts.append(outbox.get_nowait())
    return "[" + ",".join(parts) + "]"
