"""What a client holds while it resumes: its live events, until its replay is sent.

A leaf of the fan-out: the connection carries a ``ResumeState`` while it
resumes (osism.services.fanout.resume starts and ends it), and the
broadcaster holds the client's live events in it meanwhile.
"""

import asyncio
from collections import deque
from typing import Deque, Optional, Tuple

from osism import settings

__all__ = ["Held", "ResumeState"]

# (position in the log or None, the event's JSON text)
Held = Tuple[Optional[str], str]


class ResumeState:
    """A paused connection's live events, held until its replay is sent.

    ``bound``: the most events held (the manager passes its
    RESUME_BUFFER_SIZE; the setting when left out).
    """

    def __init__(self, bound: Optional[int] = None) -> None:
        self.bound = settings.RESUME_BUFFER_SIZE if bound is None else bound
        self.held: Deque[Held] = deque()
        self.task: Optional["asyncio.Task[None]"] = None

    def hold(self, position: Optional[str], text: str) -> bool:
        """Keep a live event for later; False when the buffer is full."""
        if len(self.held) >= self.bound:
            return False
        self.held.append((position, text))
        return True

    def cancel(self) -> None:
        task = self.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
