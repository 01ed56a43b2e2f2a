"""Redis settings from the environment: one place that knows every variable.

``RedisSettings.from_env()`` reads the seed's ``REDIS_HOST``/``REDIS_PORT``/
``REDIS_DB`` (plus ``REDIS_USERNAME``, ``REDIS_PASSWORD``, ``REDIS_TLS``), or
``REDIS_URL``, or ``REDIS_SENTINELS`` with ``REDIS_SENTINEL_MASTER``, and the
TLS files. ``describe()`` shows where Redis is with every secret masked.
Clients are built from these settings by ``redis_connection``.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

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
        db: Optional[int] = int(path) if path else 0
    except ValueError:
        db = None  # not a number
    if db is None or db < 0:
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
