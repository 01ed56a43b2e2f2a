"""Every Redis client of the service is built here, from one set of settings.

Seed-style settings (``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB``, plus
``REDIS_PASSWORD``) keep working as they always did. Every connection has a
finite socket timeout and TCP keepalive, so a Redis that stops answering
without closing the connection cannot block a caller for longer than
``REDIS_SOCKET_TIMEOUT``.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from osism import settings


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is and how to talk to it; ``from_env`` reads the environment."""

    host: str = "redis"
    port: int = 6379
    db: int = 0
    password: Optional[str] = field(default=None, repr=False)
    socket_timeout: float = 5.0
    connect_timeout: float = 10.0
    health_check_interval: int = 30

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RedisSettings":
        environ = os.environ if env is None else env
        return cls(
            host=environ.get("REDIS_HOST", "redis"),
            port=settings.env_int("REDIS_PORT", 6379, minimum=1, env=environ),
            db=settings.env_int("REDIS_DB", 0, env=environ),
            password=environ.get("REDIS_PASSWORD") or None,
            socket_timeout=settings.env_float(
                "REDIS_SOCKET_TIMEOUT", 5.0, 0.1, env=environ
            ),
        )

    def describe(self) -> str:
        """Where Redis is, for logs and /v1/status: never a secret."""
        return "%s:%d/%d" % (self.host, self.port, self.db)


def create_client(
    config: Optional[RedisSettings] = None, probe: bool = False
) -> redis.Redis:
    """A client for ``config`` (the environment by default), not yet connected.

    ``probe``: a quick, quiet client for "does Redis answer?" checks (short
    timeouts, no retries).
    """
    cfg = RedisSettings.from_env() if config is None else config
    kwargs: Dict[str, Any] = {}
    if cfg.password is not None:
        kwargs["password"] = cfg.password
    if probe:
        return redis.Redis(
            host=cfg.host,
            port=cfg.port,
            db=cfg.db,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
            **kwargs,
        )
    return redis.Redis(
        host=cfg.host,
        port=cfg.port,
        db=cfg.db,
        decode_responses=True,
        socket_connect_timeout=cfg.connect_timeout,
        socket_timeout=cfg.socket_timeout,
        health_check_interval=cfg.health_check_interval,
        socket_keepalive=True,
        **kwargs,
    )
