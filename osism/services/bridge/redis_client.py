"""Every Redis client of the service is built here, from one set of settings.

Three ways to say where Redis is (examples: docs/howto/production-redis.md):

- upstream's ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB`` (plus
  ``REDIS_USERNAME``/``REDIS_PASSWORD`` and ``REDIS_TLS=1``), which keep
  working exactly as they always did;
- ``REDIS_URL``: ``redis://[user[:password]@]host[:port][/db]``, ``rediss://``
  for TLS;
- ``REDIS_SENTINELS`` (``host:port,host:port``) with ``REDIS_SENTINEL_MASTER``:
  every client asks the Sentinels for the master on each new connection, so
  publishers and subscribers follow a failover by themselves.

TLS takes ``REDIS_TLS_CA_FILE``, ``REDIS_TLS_CERT_FILE`` and
``REDIS_TLS_KEY_FILE``. Every connection has a finite socket timeout and TCP
keepalive, so a Redis that stops answering without closing the connection
cannot block a caller for longer than ``REDIS_SOCKET_TIMEOUT``.

Secrets never leave this module in text: ``describe()`` masks them, and
``explain()`` turns a connection failure into one line without them.
"""

import ssl
from typing import Any, Dict, Optional

import redis
import redis.exceptions
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from osism.services.bridge.redis_settings import (  # noqa: F401 - the module's API
    DEFAULT_SENTINEL_MASTER,
    MASK,
    RedisConfigError,
    RedisSettings,
    parse_sentinels,
)


def create_client(config: RedisSettings, probe: bool = False) -> redis.Redis:
    """A client for ``config`` (``RedisSettings.from_env()``), not yet connected.

    ``probe``: a quick, quiet client for "does Redis answer?" checks (short
    timeouts, no retries). With Sentinels, the client asks them for the
    master whenever it opens a connection.
    """
    if config.error is not None:
        raise RedisConfigError(config.error)
    kwargs = connection_kwargs(config, probe)
    if config.sentinels:
        sentinel = redis.sentinel.Sentinel(
            list(config.sentinels), sentinel_kwargs=sentinel_kwargs(config, probe)
        )
        client: redis.Redis = sentinel.master_for(
            config.sentinel_master, db=config.db, **kwargs
        )
        return client
    return redis.Redis(host=config.host, port=config.port, db=config.db, **kwargs)


def connection_kwargs(cfg: RedisSettings, probe: bool) -> Dict[str, Any]:
    """What every connection to the Redis server itself gets (host aside)."""
    kwargs: Dict[str, Any] = {"decode_responses": True}
    if probe:
        kwargs.update(
            socket_connect_timeout=2,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
    else:
        kwargs.update(
            socket_connect_timeout=cfg.connect_timeout,
            socket_timeout=cfg.socket_timeout,
            health_check_interval=cfg.health_check_interval,
            socket_keepalive=True,
        )
    kwargs.update(_credentials(cfg.username, cfg.password))
    kwargs.update(_tls_kwargs(cfg))
    return kwargs


def sentinel_kwargs(cfg: RedisSettings, probe: bool) -> Dict[str, Any]:
    """What the connections to the Sentinels get: same timeouts and TLS, their
    own credentials (REDIS_SENTINEL_USERNAME/PASSWORD)."""
    timeout = 2.0 if probe else cfg.socket_timeout
    kwargs: Dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "socket_keepalive": True,
    }
    if probe:
        kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs.update(_credentials(cfg.sentinel_username, cfg.sentinel_password))
    kwargs.update(_tls_kwargs(cfg))
    return kwargs


def explain(exc: BaseException, config: RedisSettings) -> str:
    """One line saying what is wrong with the connection, without a secret.

    The caller adds what it does next ("events stay in this process", ...).
    """
    where = config.describe()
    text = _scrub(str(exc), config)
    if isinstance(exc, RedisConfigError):
        result = f"Invalid Redis settings: {text}"
    elif isinstance(exc, redis.sentinel.MasterNotFoundError):
        result = _explain_sentinel(text, config, where)
    elif isinstance(exc, redis.AuthenticationError):
        who = f"user {config.username!r}" if config.username else "user"
        result = (
            f"Redis at {where} refused the credentials (wrong password or "
            f"unknown {who}; REDIS_URL/REDIS_USERNAME/REDIS_PASSWORD): {text}"
        )
    elif isinstance(exc, redis.exceptions.NoPermissionError):
        result = f"The Redis ACL user at {where} lacks a permission: {text}"
    elif _is_tls_failure(exc, text):
        result = (
            f"TLS with Redis at {where} failed (certificate, CA or TLS "
            f"setting; REDIS_TLS_*): {text}"
        )
    elif isinstance(exc, redis.TimeoutError):
        result = f"Redis at {where} did not answer in time: {text}"
        if config.tls:
            result += " (TLS is on: does that port speak TLS?)"
    elif isinstance(exc, (redis.ConnectionError, OSError)):
        result = f"Cannot connect to Redis at {where}: {text}"
        if not config.tls and "reset by peer" in text:
            result += " (if that port wants TLS: rediss:// or REDIS_TLS=1)"
    else:
        result = f"Redis at {where} failed: {type(exc).__name__}: {text}"
    return " ".join(result.split())


def needs_attention(exc: BaseException) -> bool:
    """Whether an operator must look at this failure (Redis refused us, TLS
    failed, the settings cannot work, no Sentinel answers) rather than Redis
    simply not being there (yet)."""
    if isinstance(
        exc,
        (
            RedisConfigError,
            redis.AuthenticationError,
            redis.exceptions.NoPermissionError,
            redis.sentinel.MasterNotFoundError,
        ),
    ):
        return True
    return _is_tls_failure(exc, str(exc))


def _explain_sentinel(text: str, config: RedisSettings, where: str) -> str:
    master = config.sentinel_master
    if " : " in text:
        # redis-py lists the Sentinels it could not ask after " : ".
        return (
            f"No Sentinel of {where} answered, so the master {master!r} is "
            f"unknown (Sentinels down or unreachable, or REDIS_SENTINELS wrong)"
        )
    return (
        f"The Sentinels of {where} know no healthy master {master!r} (a failover "
        f"in progress, or REDIS_SENTINEL_MASTER wrong)"
    )


def _is_tls_failure(exc: BaseException, text: str) -> bool:
    seen: Optional[BaseException] = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in text or "certificate" in text.lower()


def _scrub(text: str, config: RedisSettings) -> str:
    for secret in config.secrets():
        text = text.replace(secret, MASK)
    return text


def _credentials(username: Optional[str], password: Optional[str]) -> Dict[str, str]:
    found: Dict[str, str] = {}
    if username:
        found["username"] = username
    if password:
        found["password"] = password
    return found


def _tls_kwargs(cfg: RedisSettings) -> Dict[str, Any]:
    if not cfg.tls:
        return {}
    kwargs: Dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    if cfg.tls_ca_file:
        kwargs["ssl_ca_certs"] = cfg.tls_ca_file
    if cfg.tls_cert_file:
        kwargs["ssl_certfile"] = cfg.tls_cert_file
    if cfg.tls_key_file:
        kwargs["ssl_keyfile"] = cfg.tls_key_file
    return kwargs
