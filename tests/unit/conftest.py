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


# The property tests search 300 examples each in the unit suite.
settings.register_profile("default", max_examples=300)
settings.load_profile("default")

# `nox -s mutation` (mutmut) runs the selected tests once per mutant: a
# random search could kill a mutant in one run and miss it in the next, and
# hypothesis would see a test method called from several instances. This
# profile keeps the examples the same in every run, and fewer of them (the
# property tests run for every mutant of the modules they reach);
# tools/mutation.py selects it with --hypothesis-profile=mutation.
settings.register_profile(
    "mutation",
    max_examples=60,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.differing_executors],
)
