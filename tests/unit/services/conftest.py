"""Fixtures of the service tests: Redis client classes replaced by mocks, a
busy port, a free one, the listener's stop event bounded."""

import socket
import threading
import types
from typing import Any, Iterator, Optional
from unittest.mock import MagicMock

import pytest


@pytest.fixture
def redis_cls(mocker: Any) -> MagicMock:
    cls: MagicMock = mocker.patch("osism.services.bridge.redis_client.redis.Redis")
    return cls


@pytest.fixture
def sentinel_cls(mocker: Any) -> MagicMock:
    cls: MagicMock = mocker.patch(
        "osism.services.bridge.redis_client.redis.sentinel.Sentinel"
    )
    return cls


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port that another socket listens on: binding it fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BoundedEvent(threading.Event):
    """The listener's stop event in its unit tests, where no wait on it is
    long: one that would block more than 0.1 s, or without a bound, fails
    the test at once instead of hanging."""

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self.is_set():
            return True
        if timeout is None or timeout > 0.1:
            pytest.fail(f"waiting {timeout} s for the listener to stop")
        return super().wait(timeout)


@pytest.fixture
def bounded_stop_event(monkeypatch: pytest.MonkeyPatch) -> None:
    from osism.services.listener import consumer as listener

    monkeypatch.setattr(
        listener, "threading", types.SimpleNamespace(Event=BoundedEvent)
    )
