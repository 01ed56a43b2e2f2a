"""One factor for every deadline of the integration tests.

The deadlines are written for an idle 2-core machine. A slower or busier one
sets ``OSISM_TEST_TIMEOUT_FACTOR`` (default 1; e.g. 2 doubles them all) instead
of editing numbers, the way the websockets project's suite scales its own
with ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``. Everything the tests wait for goes
through ``deadline()``: server starts and stops, a client's ``expect``
(scenario.py), the waits for a condition (``wait_until`` and
``async_wait_until`` here, which the integration tests use instead of
tests.conftest's), and each test's pytest-timeout (scaled in conftest.py).
"""

import os
from typing import Awaitable, Callable, Union

from tests import conftest
from tests.conftest import WAIT_TIMEOUT

FACTOR_VARIABLE = "OSISM_TEST_TIMEOUT_FACTOR"


def timeout_factor() -> float:
    """``$OSISM_TEST_TIMEOUT_FACTOR`` as a positive number (1 when unset)."""
    raw = os.environ.get(FACTOR_VARIABLE, "").strip() or "1"
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{FACTOR_VARIABLE}={raw!r} is not a number") from None
    if not factor > 0:
        raise ValueError(f"{FACTOR_VARIABLE}={raw!r} must be above 0")
    return factor


def deadline(seconds: float) -> float:
    """``seconds`` scaled by the environment's timeout factor."""
    return seconds * timeout_factor()


def wait_until(
    predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT, interval: float = 0.01
) -> None:
    """tests.conftest.wait_until with its ``timeout`` scaled."""
    conftest.wait_until(predicate, deadline(timeout), interval)


async def async_wait_until(
    predicate: Union[Callable[[], bool], Callable[[], Awaitable[bool]]],
    timeout: float = WAIT_TIMEOUT,
    interval: float = 0.005,
) -> None:
    """tests.conftest.async_wait_until with its ``timeout`` scaled."""
    await conftest.async_wait_until(predicate, deadline(timeout), interval)
