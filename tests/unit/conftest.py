"""Fixtures shared by the unit tests."""

from typing import Callable
from unittest.mock import AsyncMock, MagicMock

import pytest
from hypothesis import HealthCheck, settings


def make_fake_websocket() -> MagicMock:
    """A stand-in for a FastAPI WebSocket: awaitable accept, send_text, close."""
    websocket = MagicMock()
    websocket.accept = AsyncMock()
    websocket.send_text = AsyncMock()
    websocket.close = AsyncMock()
    return websocket


@pytest.fixture
def fake_websocket() -> Callable[[], MagicMock]:
    """A factory of fake WebSockets; call it once per client."""
    return make_fake_websocket


# `nox -s mutation` (mutmut) runs the unit suite many times in one process:
# hypothesis would then see a test method called from several instances, and
# a random search could kill a mutant in one run and miss it in the next. The
# profile keeps the examples the same in every run; tools/mutation.py selects
# it with --hypothesis-profile=mutation.
settings.register_profile(
    "mutation",
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.differing_executors],
)
