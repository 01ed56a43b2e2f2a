"""The Redis settings a bridge connects with, from the settings model.

``RedisSettings.from_env()`` reads upstream's ``REDIS_HOST``/``REDIS_PORT``/
``REDIS_DB`` (plus ``REDIS_USERNAME``, ``REDIS_PASSWORD``, ``REDIS_TLS``), or
``REDIS_URL``, or ``REDIS_SENTINELS`` with ``REDIS_SENTINEL_MASTER``, and the
TLS files, through ``osism.config`` (the variables and their checks are
defined there), from the environment as it is at that moment: a bridge
constructed after a test sets REDIS_HOST sees it. ``describe()`` shows where
Redis is with every secret masked. Clients are built from these settings by
``redis_client``.
"""

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from osism import config
from osism.config import DEFAULT_SENTINEL_MASTER, MASK  # noqa: F401 - the API

Address = Tuple[str, int]

logger = logging.getLogger("osism.settings")


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

        A value of the wrong type (REDIS_PORT=x) is logged and gets its
        default, as upstream's bridge always did. Settings that cannot work
        together (a malformed REDIS_URL, a Sentinel without a port, a TLS file
        that is missing) come back with ``error`` saying why: ``describe()``
        shows it and ``create_client`` raises RedisConfigError, which the
        caller logs like any failed connection. (The process entry points
        refuse both before they start.)
        """
        settings, errors = config.load_lenient(env)
        for error in errors:
            if error.name.startswith("REDIS_") and error.problem:
                return cls(error=error.problem)
        for error in errors:
            if error.name.startswith("REDIS_"):
                logger.error("%s; using the default", error)
        return cls.of(settings.redis)

    @classmethod
    def parse(cls, env: Optional[Mapping[str, str]] = None) -> "RedisSettings":
        """Like ``from_env``, but raises RedisConfigError for any Redis value
        that cannot be used."""
        settings, errors = config.load_lenient(env)
        for error in errors:
            if error.name.startswith("REDIS_"):
                raise RedisConfigError(error.problem or str(error))
        return cls.of(settings.redis)

    @classmethod
    def of(cls, group: config.RedisSettings) -> "RedisSettings":
        """The settings of the model's (valid) Redis group."""
        endpoint = group.endpoint()
        password = group.sentinel_password
        sentinel_password = (
            password.get_secret_value() if password is not None else None
        )
        return cls(
            host=endpoint["host"],
            port=endpoint["port"],
            db=endpoint["db"],
            password=endpoint["password"],
            username=endpoint["username"],
            tls=endpoint["tls"],
            from_url=endpoint["from_url"],
            socket_timeout=group.socket_timeout,
            tls_ca_file=group.tls_ca_file,
            tls_cert_file=group.tls_cert_file,
            tls_key_file=group.tls_key_file,
            sentinels=group.sentinel_addresses(),
            sentinel_master=group.sentinel_master,
            sentinel_username=group.sentinel_username,
            sentinel_password=sentinel_password,
        )

    @property
    def mode(self) -> str:
        """``sentinel``, ``url`` or ``host`` (REDIS_HOST/PORT/DB)."""
        if self.sentinels:
            return "sentinel"
        return "url" if self.from_url else "host"

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
    try:
        return config.parse_sentinels(raw)
    except config.Invalid as exc:
        raise RedisConfigError(exc.problem) from None


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
