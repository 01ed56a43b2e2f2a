"""The one place where the bridge's threads meet the asyncio loop.

The subscriber and the processor run in threads; the WebSocket manager's
queue belongs to the loop its broadcaster runs on. Every event a thread has
for the manager goes through ``deliver_to_loop``, and nothing else in the
bridge touches a loop (the API's calls into the bridge go the other way,
through ``asyncio.to_thread``).
"""

import asyncio
import logging
from concurrent.futures import Future
from enum import Enum, auto
from typing import Any, Coroutine, Optional

logger = logging.getLogger("osism.event_bridge")


class Handoff(Enum):
    """What became of an event ``deliver_to_loop`` was given."""

    SUBMITTED = auto()  # on the manager's running loop, not awaited
    RUN = auto()  # run to completion on a private loop
    NO_LOOP = auto()  # the manager's loop is stopped or closed: dropped


def manager_loop(manager: Any) -> Optional[asyncio.AbstractEventLoop]:
    """The loop ``manager`` recorded for its broadcaster; None when it has
    none (a manager that never started, or one that is not ours)."""
    loop = getattr(manager, "loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def deliver_to_loop(manager: Any, coroutine: "Coroutine[Any, Any, Any]") -> Handoff:
    """Run ``coroutine`` (a call of ``manager``'s) where it belongs: the
    single place where the bridge's threads meet the asyncio loop.

    - The manager's loop runs: submit it there
      (``asyncio.run_coroutine_threadsafe``) and return at once, so that a
      slow loop never stalls the calling thread; a failure is logged when
      it happens.
    - The manager has no loop (no broadcaster yet, so its queue has no
      waiters): run it to completion on a private loop, as upstream osism.
      This blocks the calling thread until it is done.
    - The manager's loop is stopped or closed (the API is shutting down):
      close the coroutine unrun; the caller counts the drop.

    Meant for threads other than the loop's: from the loop's own thread a
    submit still works, but a private loop could not run there.
    """
    loop = manager_loop(manager)
    if loop is None:
        private = asyncio.new_event_loop()
        try:
            private.run_until_complete(coroutine)
        finally:
            private.close()
        return Handoff.RUN
    if not loop.is_running():  # stopped, or closed
        coroutine.close()
        return Handoff.NO_LOOP
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    future.add_done_callback(_log_failure)
    return Handoff.SUBMITTED


def _log_failure(future: "Future[Any]") -> None:
    """The done-callback of a submitted coroutine: its error, if any."""
    if not future.cancelled() and future.exception() is not None:
        logger.error("Error processing event via bridge: %s", future.exception())
