"""Every Redis client of the service is built here, from one set of settings.

Three ways to say where Redis is (see the README for examples):

- seed-style ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB`` (plus
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

import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

import redis
import redis.exceptions
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from osism import settings

DEFAULT_SENTINEL_MASTER = "mymaster"
MASK = "***"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

Address = Tuple[str, int]


class RedisConfigError(ValueError):
    """The Redis settings cannot be used; the message names the setting (and
    never holds a secret)."""


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
    username: Optional[str] = None
    tls: bool = False
    tls_ca_file: Optional[str] = None
    tls_cert_file: Optional[str] = None
    tls_key_file: Optional[str] = None
    sentinels: Tuple[Address, ...] = ()
    sentinel_master: str = DEFAULT_SENTINEL_MASTER
    sentinel_username: Optional[str] = None
    sentinel_password: Optional[str] = field(default=None, repr=False)
    from_url: bool = False
    error: Optional[str] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RedisSettings":
        """The settings in ``env`` (the environment by default); never raises.

        Settings that cannot work (a malformed REDIS_URL, a Sentinel without a
        port, a TLS file that is missing) come back with ``error`` saying why:
        ``describe()`` shows it and ``create_client`` raises RedisConfigError,
        which the caller logs like any failed connection.
        """
        try:
            return cls.parse(env)
        except RedisConfigError as exc:
            return cls(error=str(exc))

    @classmethod
    def parse(cls, env: Optional[Mapping[str, str]] = None) -> "RedisSettings":
        """Like ``from_env``, but raises RedisConfigError for unusable settings."""
        environ = os.environ if env is None else env
        url = environ.get("REDIS_URL", "").strip()
        sentinels = parse_sentinels(environ.get("REDIS_SENTINELS", ""))
        if url and sentinels:
            raise RedisConfigError(
                "REDIS_URL and REDIS_SENTINELS are both set: use one of them"
            )
        common: Dict[str, Any] = dict(
            username=environ.get("REDIS_USERNAME") or None,
            password=environ.get("REDIS_PASSWORD") or None,
            socket_timeout=settings.env_float(
                "REDIS_SOCKET_TIMEOUT", 5.0, 0.1, env=environ
            ),
            tls=_env_bool("REDIS_TLS", environ),
            tls_ca_file=environ.get("REDIS_TLS_CA_FILE") or None,
            tls_cert_file=environ.get("REDIS_TLS_CERT_FILE") or None,
            tls_key_file=environ.get("REDIS_TLS_KEY_FILE") or None,
        )
        if url:
            common.update(_parse_url(url, common))
        else:
            common.update(
                host=environ.get("REDIS_HOST", "redis"),
                port=settings.env_int("REDIS_PORT", 6379, minimum=1, env=environ),
                db=settings.env_int("REDIS_DB", 0, env=environ),
            )
        if sentinels:
            common.update(
                sentinels=sentinels,
                sentinel_master=environ.get("REDIS_SENTINEL_MASTER", "").strip()
                or DEFAULT_SENTINEL_MASTER,
                sentinel_username=environ.get("REDIS_SENTINEL_USERNAME") or None,
                sentinel_password=environ.get("REDIS_SENTINEL_PASSWORD") or None,
            )
        config = cls(**common)
        config.check_tls_files()
        return config

    @property
    def mode(self) -> str:
        """``sentinel``, ``url`` or ``host`` (the seed's settings)."""
        if self.sentinels:
            return "sentinel"
        return "url" if self.from_url else "host"

    def check_tls_files(self) -> None:
        files = {
            "REDIS_TLS_CA_FILE": self.tls_ca_file,
            "REDIS_TLS_CERT_FILE": self.tls_cert_file,
            "REDIS_TLS_KEY_FILE": self.tls_key_file,
        }
        given = [name for name, path in files.items() if path]
        if given and not self.tls:
            raise RedisConfigError(
                "%s set but TLS is off: use a rediss:// REDIS_URL or REDIS_TLS=1"
                % " and ".join(given)
            )
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise RedisConfigError(
                "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both"
            )
        for name in given:
            path = files[name]
            if path and not os.path.isfile(path):
                raise RedisConfigError(f"{name}={path}: no such file")

    def describe(self) -> str:
        """Where Redis is, for logs, --help and /v1/status: never a secret."""
        if self.error is not None:
            return f"invalid Redis settings ({self.error})"
        if self.sentinels:
            scheme = "sentinel+tls" if self.tls else "sentinel"
            where = ",".join(_join(host, port) for host, port in self.sentinels)
            text = f"{scheme}://{self._userinfo()}{where}/{self.sentinel_master}"
            return text if self.db == 0 else f"{text}?db={self.db}"
        if self.mode == "host" and not (self.tls or self.password or self.username):
            return "%s:%d/%d" % (self.host, self.port, self.db)
        scheme = "rediss" if self.tls else "redis"
        where = _join(self.host, self.port)
        return f"{scheme}://{self._userinfo()}{where}/{self.db}"

    def secrets(self) -> Tuple[str, ...]:
        return tuple(s for s in (self.password, self.sentinel_password) if s)

    def _userinfo(self) -> str:
        if self.password:
            return f"{self.username or ''}:{MASK}@"
        return f"{self.username}@" if self.username else ""


def parse_sentinels(raw: str) -> Tuple[Address, ...]:
    """``"h1:26379,h2:26379"`` -> ``(("h1", 26379), ("h2", 26379))``."""
    addresses = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, colon, port = item.rpartition(":")
        if not colon or not port or host.endswith(":"):
            raise RedisConfigError(
                f"REDIS_SENTINELS: {item!r} has no port; write host:port, "
                "e.g. sentinel-1:26379"
            )
        if not host.strip("[]"):
            raise RedisConfigError(f"REDIS_SENTINELS: {item!r} has no host")
        addresses.append((host.strip("[]"), _port(port, f"REDIS_SENTINELS: {item!r}")))
    return tuple(addresses)


def create_client(
    config: Optional[RedisSettings] = None, probe: bool = False
) -> redis.Redis:
    """A client for ``config`` (the environment by default), not yet connected.

    ``probe``: a quick, quiet client for "does Redis answer?" checks (short
    timeouts, no retries). With Sentinels, the client asks them for the
    master whenever it opens a connection.
    """
    cfg = RedisSettings.from_env() if config is None else config
    if cfg.error is not None:
        raise RedisConfigError(cfg.error)
    kwargs = connection_kwargs(cfg, probe)
    if cfg.sentinels:
        sentinel = redis.sentinel.Sentinel(
            list(cfg.sentinels), sentinel_kwargs=sentinel_kwargs(cfg, probe)
        )
        client: redis.Redis = sentinel.master_for(
            cfg.sentinel_master, db=cfg.db, **kwargs
        )
        return client
    return redis.Redis(host=cfg.host, port=cfg.port, db=cfg.db, **kwargs)


def connection_kwargs(cfg: RedisSettings, probe: bool = False) -> Dict[str, Any]:
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


def sentinel_kwargs(cfg: RedisSettings, probe: bool = False) -> Dict[str, Any]:
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


def explain(exc: BaseException, config: Optional[RedisSettings] = None) -> str:
    """One line saying what is wrong with the connection, without a secret.

    The caller adds what it does next ("events stay in this process", ...).
    """
    where = config.describe() if config is not None else "Redis"
    text = _scrub(str(exc), config)
    if isinstance(exc, RedisConfigError):
        result = f"Invalid Redis settings: {text}"
    elif isinstance(exc, redis.sentinel.MasterNotFoundError):
        result = _explain_sentinel(text, config, where)
    elif isinstance(exc, redis.AuthenticationError):
        who = f"user {config.username!r}" if config and config.username else "user"
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
        if config is not None and config.tls:
            result += " (TLS is on: does that port speak TLS?)"
    elif isinstance(exc, (redis.ConnectionError, OSError)):
        result = f"Cannot connect to Redis at {where}: {text}"
        if config is not None and not config.tls and "reset by peer" in text:
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


def _explain_sentinel(text: str, config: Optional[RedisSettings], where: str) -> str:
    master = config.sentinel_master if config is not None else "the master"
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


def _scrub(text: str, config: Optional[RedisSettings]) -> str:
    for secret in config.secrets() if config is not None else ():
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


def _parse_url(url: str, common: Mapping[str, Any]) -> Dict[str, Any]:
    """Host, port, db, credentials and TLS from REDIS_URL; errors never echo it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RedisConfigError("REDIS_URL has an invalid port") from None
    if parts.scheme not in ("redis", "rediss"):
        raise RedisConfigError(
            "REDIS_URL must start with redis:// or rediss:// (TLS), not %s"
            % (repr(parts.scheme + "://") if parts.scheme else "without a scheme")
        )
    if not parts.hostname:
        raise RedisConfigError("REDIS_URL names no host")
    if parts.query or parts.fragment:
        raise RedisConfigError(
            "REDIS_URL: query parameters are not supported; use the REDIS_* "
            "settings (REDIS_TLS_CA_FILE, ...)"
        )
    path = parts.path.strip("/")
    try:
        db = int(path) if path else 0
    except ValueError:
        db = -1
    if db < 0:
        raise RedisConfigError(f"REDIS_URL: the database {path!r} is not a number")
    return {
        "host": parts.hostname,
        "port": 6379 if port is None else port,
        "db": db,
        "username": unquote(parts.username) if parts.username else common["username"],
        "password": unquote(parts.password) if parts.password else common["password"],
        "tls": parts.scheme == "rediss" or common["tls"],
        "from_url": True,
    }


def _port(raw: str, what: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise RedisConfigError(f"{what}: the port {raw!r} is not a port number")
    return port


def _env_bool(name: str, environ: Mapping[str, str]) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise RedisConfigError(f"{name}={raw!r} is neither 1/true/yes nor 0/false/no")


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
