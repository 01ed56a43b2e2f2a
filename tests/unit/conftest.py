"""Fixtures shared by the unit tests."""

from typing import Callable
from unittest.mock import AsyncMock, MagicMock

import pytest


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
