"""Fixtures of the service tests: Redis client classes replaced by mocks."""

from typing import Any
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
