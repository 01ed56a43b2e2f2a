"""Helpers shared by every test: waiting for a condition with a deadline."""

import asyncio
import os
import time
from typing import Awaitable, Callable, Union

import pytest

Predicate = Callable[[], bool]

# How long a wait gives its condition unless the test says otherwise.
# tools/mutation.py sets OSISM_TEST_WAIT=3: a mutant that breaks delivery
# fails such a wait, and each one costs the full deadline.
WAIT_TIMEOUT = float(os.environ.get("OSISM_TEST_WAIT") or 5.0)


def wait_until(
    predicate: Predicate, timeout: float = WAIT_TIMEOUT, interval: float = 0.01
) -> None:
    """Return once ``predicate()`` is true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate!r}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Union[Predicate, Callable[[], Awaitable[bool]]],
    timeout: float = WAIT_TIMEOUT,
    interval: float = 0.005,
) -> None:
    """Like :func:`wait_until`, yielding to the event loop between checks."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate!r}")
        await asyncio.sleep(interval)
