"""Fixtures of the service tests: Redis client classes replaced by mocks, a
busy port, a free one."""

import socket
from typing import Any, Iterator
from unittest.mock import MagicMock

import pytest


@pytest.fixture
def redis_cls(mocker: Any) -> MagicMock:
    cls: MagicMock = mocker.patch("osism.services.redis_connection.redis.Redis")
    return cls


@pytest.fixture
def sentinel_cls(mocker: Any) -> MagicMock:
    cls: MagicMock = mocker.patch(
        "osism.services.redis_connection.redis.sentinel.Sentinel"
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
