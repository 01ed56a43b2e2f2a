"""The servers the tests start survive a port taken under their feet.

``free_port()`` hands on a port nobody listened on a moment ago; another
process may bind it before the server does. A server's first start then tries
again on new ports; a later start (a restart, to cause an outage) keeps its
port or fails.
"""

import socket
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.integration.servers import (
    LOOPBACK,
    ApiServer,
    RedisServer,
    ServerError,
    find_redis_server,
)

pytestmark = pytest.mark.integration


def taken(port: int) -> socket.socket:
    """A socket listening on ``port``, as another process's would be."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((LOOPBACK, port))
    holder.listen()
    return holder


@pytest.fixture
def redis_binary() -> str:
    return find_redis_server()


@pytest.fixture
def redis(tmp_path: Path, redis_binary: str) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path)
    yield server
    server.stop()


@pytest.mark.timeout(30)
def test_a_redis_whose_port_was_taken_starts_on_another(redis: RedisServer) -> None:
    first = redis.port
    with taken(first):
        redis.start()
        assert redis.port != first
        assert redis.ping()
        # A restart keeps the port it has now.
        redis.stop()
        redis.start()
    assert redis.ping()


@pytest.mark.timeout(30)
def test_a_restart_keeps_its_port_or_fails(redis: RedisServer) -> None:
    redis.start()
    port = redis.port
    redis.stop()
    with taken(port):
        with pytest.raises(ServerError, match="exited while starting"):
            redis.start()
    assert redis.port == port


@pytest.mark.timeout(60)
def test_an_api_whose_port_was_taken_starts_on_another(tmp_path: Path) -> None:
    api = ApiServer(tmp_path)
    first = api.port
    try:
        with taken(first):
            api.start(subscribed=False)
            assert api.port != first
            status = httpx.get(f"{api.http_url}/v1/status", timeout=5.0).json()
        assert status["ready"] is True
    finally:
        api.stop()
