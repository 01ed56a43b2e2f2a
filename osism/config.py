"""Every setting of the service, in one typed model read from the environment.

``load()`` reads the environment once into a frozen ``Settings`` tree, or
raises ``ConfigError``: one line naming the variable, its value (a secret's
value never) and what is expected, e.g. ``REDIS_PORT='63x79': expected an
integer port 1-65535``. Every process entry point (``osism api``,
``osism listener``, the app under plain uvicorn) calls it before it serves
and stops with exit status 2 on that line.

``load_lenient()`` is what an import uses (``osism.settings``): a bad value
is replaced by its default and the error is returned, so importing the
package never fails; the entry points refuse to start on the same errors.

This is the only module that reads ``os.environ``.
"""

import os
import re
from typing import Annotated, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

MASK = "***"
DEFAULT_SENTINEL_MASTER = "mymaster"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@localhost:5672//"
LISTENER_SERVICES: Tuple[str, ...] = (
    "ironic",
    "nova",
    "neutron",
    "cinder",
    "glance",
    "keystone",
)
URL_FORM = "redis://[user[:password]@]host[:port][/db], rediss:// for TLS"
BOOLEAN = "a boolean: 1/0, true/false, yes/no, on/off"

Address = Tuple[str, int]


class ConfigError(ValueError):
    """A setting that cannot be used; ``str()`` is one line naming the
    variable, its value (masked for a secret) and what is expected."""

    def __init__(
        self, name: str, shown: str, expected: str, problem: Optional[str] = None
    ) -> None:
        self.name = name
        self.shown = shown
        self.expected = expected
        self.problem = problem
        text = f"{name}={shown}: "
        if problem:
            text += f"{problem}; "
        super().__init__(f"{text}expected {expected}")


class Invalid(ValueError):
    """Raised by a validator: which variable is wrong and why (never its
    value: the caller shows that, masked where needed)."""

    def __init__(self, name: str, problem: str, expected: str = "") -> None:
        super().__init__(problem)
        self.name = name
        self.problem = problem
        self.expected = expected


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaList = Annotated[Tuple[str, ...], BeforeValidator(_comma_list)]


def var(
    name: str,
    default: Any,
    description: str,
    expected: str = "",
    **constraints: Any,
) -> Any:
    """A field read from the variable ``name``; ``expected`` is what an error
    and the documentation say a value must be (derived from the type when
    not given)."""
    extra: Dict[str, Any] = {"expected": expected} if expected else {}
    return Field(
        default,
        validation_alias=name,
        description=description,
        json_schema_extra=extra,
        **constraints,
    )


class Group(BaseModel):
    """A frozen group of settings; unknown variables are not its business."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ServerSettings(Group):
    """How ``osism api`` (and plain uvicorn) serves the app."""

    uvicorn_ws: str = var(
        "UVICORN_WS",
        "osism.transport.uvicorn_protocol:FanoutProtocol",
        "uvicorn's WebSocket implementation for `osism api` (the name uvicorn's "
        "CLI reads); the default sends one frame to many clients at once",
    )
    uvicorn_loop: str = var(
        "UVICORN_LOOP", "uvloop", "uvicorn's event loop for `osism api`"
    )
    uvicorn_http: str = var(
        "UVICORN_HTTP", "httptools", "uvicorn's HTTP implementation for `osism api`"
    )
    max_frame_bytes: int = var(
        "WEBSOCKET_MAX_FRAME_BYTES",
        1 << 20,
        "largest WebSocket frame uvicorn accepts (larger: close 1009)",
        ge=1,
    )
    deflate: bool = var(
        "WEBSOCKET_DEFLATE",
        False,
        "accept permessage-deflate (see [fan-out performance]"
        "(../explanation/performance.md))",
    )
    ping_interval: float = var(
        "WEBSOCKET_PING_INTERVAL",
        20.0,
        "seconds between uvicorn's protocol-level pings; `0` disables them",
        ge=0,
        allow_inf_nan=False,
    )
    ping_timeout: float = var(
        "WEBSOCKET_PING_TIMEOUT",
        20.0,
        "seconds to wait for the pong; `0` disables the timeout",
        ge=0,
        allow_inf_nan=False,
    )


class FanoutSettings(Group):
    """The WebSocket side: queues, outboxes, heartbeats, resume, filters."""

    event_queue_size: int = var(
        "EVENT_QUEUE_SIZE",
        10000,
        "events waiting for the broadcaster; at the bound the oldest is dropped "
        "and counted",
        ge=1,
    )
    outbox_size: int = var(
        "WEBSOCKET_OUTBOX_SIZE",
        1000,
        "events waiting for one client; a client this far behind is closed "
        "with 1013",
        ge=1,
    )
    outbox_bytes: int = var(
        "WEBSOCKET_OUTBOX_BYTES",
        4 << 20,
        "bytes those events may hold (4 MiB); a client over it is closed with "
        "1013 too, so one stalled client pins at most this much",
        ge=1,
    )
    heartbeat_interval: float = var(
        "HEARTBEAT_INTERVAL",
        30.0,
        "seconds between heartbeats; `0` disables them",
        ge=0,
        allow_inf_nan=False,
    )
    replay_limit: int = var(
        "REPLAY_LIMIT",
        5000,
        "most events replayed to one resuming client (more: the newest part, "
        "`recovered: false`)",
        ge=1,
    )
    resume_buffer_size: int = var(
        "RESUME_BUFFER_SIZE",
        10000,
        "live events held for one client while its replay is sent; beyond: "
        "closed with 1013",
        ge=1,
    )
    max_message_bytes: int = var(
        "WEBSOCKET_MAX_MESSAGE_BYTES",
        65536,
        "largest client message handled (larger: error reply)",
        ge=1,
    )
    max_filter_entries: int = var(
        "MAX_FILTER_ENTRIES", 100, "entries per filter list", ge=1
    )
    max_filter_length: int = var(
        "MAX_FILTER_LENGTH", 256, "characters per filter entry", ge=1
    )
    system_interval: float = var(
        "SYSTEM_INTERVAL",
        5.0,
        "seconds between two system channel messages when nothing changed",
        ge=0.1,
        allow_inf_nan=False,
    )


class EventLogSettings(Group):
    """The event log in Redis (and its stand-in without Redis), the bridge."""

    events_prefix: str = var(
        "EVENTS_PREFIX",
        "osism:events",
        "channel `<prefix>`, log `<prefix>:log`, id keys `<prefix>:id:<id>`; "
        "give two deployments sharing a Redis different prefixes",
    )
    history_size: int = var(
        "EVENT_HISTORY_SIZE",
        10000,
        "events the log keeps (Redis and embedded mode)",
        ge=1,
    )
    dedupe_seconds: int = var(
        "EVENT_DEDUPE_SECONDS",
        3600,
        "how long an event id is remembered, so a redelivery is logged once",
        ge=1,
    )
    bridge_queue_size: int = var(
        "BRIDGE_QUEUE_SIZE",
        10000,
        "embedded mode: events waiting to be handed to the manager; oldest "
        "dropped and counted (they stay in the history)",
        ge=1,
    )
    subscriber_retry_delay: float = var(
        "SUBSCRIBER_RETRY_DELAY",
        5.0,
        "seconds between the subscriber's five reconnect attempts (each wait "
        "drawn between half of it and all of it)",
        ge=0,
        allow_inf_nan=False,
    )
    subscriber_restart_max_delay: float = var(
        "SUBSCRIBER_RESTART_MAX_DELAY",
        30.0,
        "cap of the back-off (1 s doubling, each wait drawn below its step) "
        "between restarts of a subscriber that gave up (Redis is probed each "
        "second meanwhile: it restarts within about a second of Redis answering)",
        ge=0.1,
        allow_inf_nan=False,
    )


class RedisSettings(Group):
    """Where Redis is: host/port/db, or a URL, or Sentinels; TLS; secrets."""

    host: str = var(
        "REDIS_HOST",
        "redis",
        "Redis host; unreachable when `osism api` starts means embedded mode "
        "(in-process bridge, looking for Redis in the background)",
    )
    port: int = var(
        "REDIS_PORT", 6379, "Redis port", "an integer port 1-65535", ge=1, le=65535
    )
    db: int = var(
        "REDIS_DB",
        0,
        "Redis database (does not separate pub/sub channels: use `EVENTS_PREFIX`)",
        ge=0,
    )
    username: Optional[str] = var(
        "REDIS_USERNAME",
        None,
        "ACL user (also fills in a `REDIS_URL` without one); see "
        "[production Redis](../howto/production-redis.md)",
    )
    password: Optional[SecretStr] = var(
        "REDIS_PASSWORD",
        None,
        "password (also fills in a `REDIS_URL` without one)",
        "a password",
    )
    url: Optional[SecretStr] = var(
        "REDIS_URL",
        None,
        "replaces `REDIS_HOST`/`PORT`/`DB`",
        URL_FORM,
    )
    tls: bool = var("REDIS_TLS", False, "TLS with `REDIS_HOST`/`PORT` or the Sentinels")
    tls_ca_file: Optional[str] = var(
        "REDIS_TLS_CA_FILE",
        None,
        "CA to verify the server (default: the system's)",
        "an existing file, with TLS on",
    )
    tls_cert_file: Optional[str] = var(
        "REDIS_TLS_CERT_FILE",
        None,
        "client certificate (with `REDIS_TLS_KEY_FILE`)",
        "an existing file, with TLS on",
    )
    tls_key_file: Optional[str] = var(
        "REDIS_TLS_KEY_FILE",
        None,
        "client key (with `REDIS_TLS_CERT_FILE`)",
        "an existing file, with TLS on",
    )
    sentinels: str = var(
        "REDIS_SENTINELS",
        "",
        "ask these Sentinels for the master",
        "host:port,host:port",
    )
    sentinel_master: str = var(
        "REDIS_SENTINEL_MASTER",
        DEFAULT_SENTINEL_MASTER,
        "the Sentinels' name of the master",
    )
    sentinel_username: Optional[str] = var(
        "REDIS_SENTINEL_USERNAME",
        None,
        "user of the Sentinels themselves, if they need one",
    )
    sentinel_password: Optional[SecretStr] = var(
        "REDIS_SENTINEL_PASSWORD",
        None,
        "password of the Sentinels themselves, if they need one",
        "a password",
    )
    socket_timeout: float = var(
        "REDIS_SOCKET_TIMEOUT",
        5.0,
        "seconds any Redis call may block; every connection also has TCP keepalive",
        ge=0.1,
        allow_inf_nan=False,
    )

    @model_validator(mode="after")
    def _usable(self) -> "RedisSettings":
        addresses = self.sentinel_addresses()
        if self.url is not None and addresses:
            raise Invalid(
                "REDIS_SENTINELS",
                "REDIS_URL and REDIS_SENTINELS are both set: use one of them",
                "REDIS_URL or REDIS_SENTINELS, not both",
            )
        self.endpoint()
        check_tls_files(self.tls_in_effect(), self.tls_files())
        return self

    def sentinel_addresses(self) -> Tuple[Address, ...]:
        return parse_sentinels(self.sentinels)

    def endpoint(self) -> Dict[str, Any]:
        """host, port, db, username, password, tls and from_url in effect."""
        password = self.password.get_secret_value() if self.password else None
        found: Dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": password,
            "tls": self.tls,
            "from_url": False,
        }
        if self.url is not None:
            found.update(parse_url(self.url.get_secret_value(), found))
        return found

    def tls_in_effect(self) -> bool:
        return bool(self.endpoint()["tls"])

    def tls_files(self) -> Dict[str, Optional[str]]:
        return {
            "REDIS_TLS_CA_FILE": self.tls_ca_file,
            "REDIS_TLS_CERT_FILE": self.tls_cert_file,
            "REDIS_TLS_KEY_FILE": self.tls_key_file,
        }


class ListenerSettings(Group):
    """The listener's broker, bindings and pacing."""

    rabbitmq_url: str = var(
        "RABBITMQ_URL", DEFAULT_RABBITMQ_URL, "the listener's broker", "an AMQP URL"
    )
    services: CommaList = var(
        "LISTENER_SERVICES",
        LISTENER_SERVICES,
        "services the listener binds",
        "comma-separated service names",
    )
    queue_prefix: str = var(
        "LISTENER_QUEUE_PREFIX", "osism-events", "durable queues `<prefix>-<service>`"
    )
    exchange_durable: bool = var(
        "LISTENER_EXCHANGE_DURABLE",
        False,
        "`1` when OpenStack runs with `amqp_durable_queues`",
    )
    prefetch: int = var("LISTENER_PREFETCH", 100, "AMQP prefetch count", ge=1)
    heartbeat: float = var(
        "LISTENER_HEARTBEAT",
        30.0,
        "AMQP heartbeat seconds; `0` disables it",
        ge=0,
        allow_inf_nan=False,
    )
    reconnect_max_delay: float = var(
        "LISTENER_RECONNECT_MAX_DELAY",
        30.0,
        "cap of the reconnect and restart back-off (1 s doubling, each wait "
        "drawn below its step)",
        ge=1,
        allow_inf_nan=False,
    )
    # LISTENER_<SERVICE>_EXCHANGE / _ROUTING_KEYS, by <SERVICE> (upper case).
    exchanges: Dict[str, str] = Field(default_factory=dict)
    routing_keys: Dict[str, CommaList] = Field(default_factory=dict)


class MetricsSettings(Group):
    """The listener's own HTTP server for /metrics and /ready."""

    port: int = var(
        "LISTENER_METRICS_PORT",
        0,
        "port of the listener's `/metrics` and `/ready`; `0`: off",
        "an integer port 0-65535 (0: off)",
        ge=0,
        le=65535,
    )
    host: str = var(
        "LISTENER_METRICS_HOST", "0.0.0.0", "address of the listener's metrics server"
    )


class SecuritySettings(Group):
    """Who may connect and publish, and how much."""

    api_token: Optional[SecretStr] = var(
        "API_TOKEN",
        None,
        "shared token for the WebSocket and the publish endpoint (see "
        "[security](../explanation/security.md))",
        "a token",
    )
    allowed_origins: CommaList = var(
        "ALLOWED_ORIGINS",
        (),
        "extra browser origins allowed to open the WebSocket; `*` allows any",
        "comma-separated origins",
    )
    max_connections: int = var(
        "MAX_CONNECTIONS",
        1000,
        "WebSocket clients per process; one more is closed with 1013",
        ge=1,
    )
    max_publish_bytes: int = var(
        "MAX_PUBLISH_BYTES", 1 << 20, "largest `POST` body (larger: 413)", ge=1
    )


GROUPS: Dict[str, type[Group]] = {
    "server": ServerSettings,
    "fanout": FanoutSettings,
    "event_log": EventLogSettings,
    "redis": RedisSettings,
    "listener": ListenerSettings,
    "metrics": MetricsSettings,
    "security": SecuritySettings,
}

# Variables named after a listener service, documented as patterns.
PATTERN_VARIABLES: Tuple[Tuple[str, str, str, str], ...] = (
    (
        "LISTENER_<SERVICE>_EXCHANGE",
        "the service name",
        "text",
        "exchange of one service",
    ),
    (
        "LISTENER_<SERVICE>_ROUTING_KEYS",
        "`<topic>.*`",
        "comma-separated routing keys",
        "routing keys of one service",
    ),
)
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//[^:@/?#]*):[^@/?#]*@")
_PER_SERVICE = re.compile(r"^LISTENER_([A-Z0-9_]+?)_(EXCHANGE|ROUTING_KEYS)$")


class Settings(BaseSettings):
    """The whole configuration: one frozen group per part of the service.

    It reads no source by itself: ``load`` gives it the environment, so
    ``Settings()`` is the defaults.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    fanout: FanoutSettings = Field(default_factory=FanoutSettings)
    event_log: EventLogSettings = Field(default_factory=EventLogSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    listener: ListenerSettings = Field(default_factory=ListenerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> Tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def fields() -> List[Tuple[str, str, Any]]:
    """(group, attribute, FieldInfo) of every variable, in model order."""
    found = []
    for group, model in GROUPS.items():
        for attribute, info in model.model_fields.items():
            if isinstance(info.validation_alias, str):
                found.append((group, attribute, info))
    return found


def is_secret(info: Any) -> bool:
    return "SecretStr" in str(info.annotation)


def expected(info: Any) -> str:
    """What a value of this field must be, in words."""
    extra = info.json_schema_extra or {}
    if extra.get("expected"):
        return str(extra["expected"])
    bounds = {type(m).__name__: m for m in info.metadata}
    annotation = info.annotation
    if annotation is bool:
        return BOOLEAN
    kind = {int: "an integer", float: "a number"}.get(annotation)
    if kind is None:
        return "text"
    if "Ge" in bounds:
        return f"{kind} >= {getattr(bounds['Ge'], 'ge')}"
    return kind  # pragma: no cover - every number has a lower bound


def environment(environ: Mapping[str, str]) -> Dict[str, Dict[str, Any]]:
    """The variables of ``environ`` the model knows, by group; a blank value
    (spaces only, too) is no value: the default applies. Values are stripped,
    secrets are taken as they are."""
    values: Dict[str, Dict[str, Any]] = {group: {} for group in GROUPS}
    for group, _, info in fields():
        name = info.validation_alias
        raw = environ.get(name)
        if raw is None or not raw.strip():
            continue
        values[group][name] = raw if is_secret(info) else raw.strip()
    exchanges: Dict[str, str] = {}
    routing_keys: Dict[str, str] = {}
    for name, raw in environ.items():
        match = _PER_SERVICE.match(name)
        if match is None or not raw.strip():
            continue
        target = exchanges if match.group(2) == "EXCHANGE" else routing_keys
        target[match.group(1)] = raw.strip()
    values["listener"]["exchanges"] = exchanges
    values["listener"]["routing_keys"] = routing_keys
    return values


def load(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """The settings in ``environ`` (the process environment by default);
    ConfigError for the first value that cannot be used."""
    source = os.environ if environ is None else environ
    # Each group's variables as the init source of pydantic-settings.
    values: Dict[str, Any] = environment(source)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise describe_error(exc, source) from None


def load_lenient(
    environ: Optional[Mapping[str, str]] = None,
) -> Tuple[Settings, Tuple[ConfigError, ...]]:
    """Like ``load``, but every value that cannot be used is left out (its
    default applies) and reported in the errors returned."""
    source = dict(os.environ if environ is None else environ)
    errors: List[ConfigError] = []
    # Each round leaves one variable out, so there are at most this many.
    for _ in range(len(source) + 1):
        try:
            return load(source), tuple(errors)
        except ConfigError as exc:
            errors.append(exc)
            if source.pop(exc.name, None) is None:
                # Not a variable of its own: nothing left out would help.
                break
    return Settings(), tuple(errors)


def describe_error(exc: ValidationError, environ: Mapping[str, str]) -> ConfigError:
    """The first error of ``exc`` as a ConfigError about one variable."""
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    loc = [str(part) for part in error["loc"]]
    if isinstance(cause, Invalid):
        name, problem = cause.name, cause.problem
        info = field_named(name)
        wanted = cause.expected or expected(info)
    else:
        # (group, variable): pydantic names a field by its alias.
        _, name = loc
        info = field_named(name)
        wanted = expected(info)
        problem = None
    # Every error is about a value the environment holds.
    return ConfigError(name, shown_value(info, environ[name]), wanted, problem)


def field_named(name: str) -> Any:
    """The field read from the variable ``name``; LookupError if none is."""
    for _, _, info in fields():
        if info.validation_alias == name:
            return info
    raise LookupError(name)


def shown_value(info: Any, raw: str) -> str:
    """How a value of the field ``info`` appears in an error: a secret is
    masked, a URL shows no password."""
    if info.validation_alias == "REDIS_URL":
        return repr(mask_url(raw))
    if is_secret(info):
        return MASK
    return repr(raw)


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ***."""
    masked = _USERINFO.sub(rf"\1:{MASK}@", url)
    if masked != url:
        return masked
    # Not a URL the pattern understands (a password with a "/" or an "@"):
    # hide all of user:password, up to the last "@".
    scheme, sep, rest = url.partition("//")
    if not sep:
        scheme, rest = "", url
    userinfo, _, host = rest.rpartition("@")
    if ":" not in userinfo:
        return url
    return f"{scheme}{sep}{MASK}@{host}"


def parse_sentinels(raw: str) -> Tuple[Address, ...]:
    """``"h1:26379,h2:26379"`` -> ``(("h1", 26379), ("h2", 26379))``."""
    addresses = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, colon, port = item.rpartition(":")
        if not colon or not port or host.endswith(":"):
            raise Invalid(
                "REDIS_SENTINELS",
                f"REDIS_SENTINELS: {item!r} has no port; write host:port, "
                "e.g. sentinel-1:26379",
                "host:port,host:port",
            )
        if not host.strip("[]"):
            raise Invalid(
                "REDIS_SENTINELS",
                f"REDIS_SENTINELS: {item!r} has no host",
                "host:port,host:port",
            )
        addresses.append((host.strip("[]"), _port(port, f"REDIS_SENTINELS: {item!r}")))
    return tuple(addresses)


def parse_url(url: str, common: Mapping[str, Any]) -> Dict[str, Any]:
    """Host, port, db, credentials and TLS from REDIS_URL; errors never echo it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Invalid("REDIS_URL", "REDIS_URL has an invalid port") from None
    if parts.scheme not in ("redis", "rediss"):
        raise Invalid(
            "REDIS_URL",
            "REDIS_URL must start with redis:// or rediss:// (TLS), not %s"
            % (repr(parts.scheme + "://") if parts.scheme else "without a scheme"),
        )
    if not parts.hostname:
        raise Invalid("REDIS_URL", "REDIS_URL names no host")
    if parts.query or parts.fragment:
        raise Invalid(
            "REDIS_URL",
            "REDIS_URL: query parameters are not supported; use the REDIS_* "
            "settings (REDIS_TLS_CA_FILE, ...)",
        )
    path = parts.path.strip("/")
    try:
        db: Optional[int] = int(path) if path else 0
    except ValueError:
        db = None  # not a number
    if db is None or db < 0:
        raise Invalid("REDIS_URL", f"REDIS_URL: the database {path!r} is not a number")
    return {
        "host": parts.hostname,
        "port": 6379 if port is None else port,
        "db": db,
        "username": unquote(parts.username) if parts.username else common["username"],
        "password": unquote(parts.password) if parts.password else common["password"],
        "tls": parts.scheme == "rediss" or common["tls"],
        "from_url": True,
    }


def check_tls_files(tls: bool, files: Mapping[str, Optional[str]]) -> None:
    """TLS files need TLS on, a certificate needs its key, and each must exist."""
    given = [name for name, path in files.items() if path]
    if given and not tls:
        raise Invalid(
            given[0],
            "%s set but TLS is off: use a rediss:// REDIS_URL or REDIS_TLS=1"
            % " and ".join(given),
            "REDIS_TLS=1 or a rediss:// REDIS_URL with it",
        )
    if bool(files["REDIS_TLS_CERT_FILE"]) != bool(files["REDIS_TLS_KEY_FILE"]):
        name = given[0]
        raise Invalid(
            name,
            "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both",
            "both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE",
        )
    for name in given:
        path = files[name]
        if path and not os.path.isfile(path):
            raise Invalid(name, f"{name}={path}: no such file", "an existing file")


def _port(raw: str, what: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise Invalid(
            "REDIS_SENTINELS",
            f"{what}: the port {raw!r} is not a port number",
            "host:port,host:port",
        )
    return port


def effective(settings: Settings) -> List[Tuple[str, str]]:
    """(variable, value as shown) of every setting in effect, secrets masked,
    for ``osism config``."""
    rows: List[Tuple[str, str]] = []
    for group, attribute, info in fields():
        value = getattr(getattr(settings, group), attribute)
        rows.append((str(info.validation_alias), show(info, value)))
    listener = settings.listener
    for key, exchange in sorted(listener.exchanges.items()):
        rows.append((f"LISTENER_{key}_EXCHANGE", exchange))
    for key, keys in sorted(listener.routing_keys.items()):
        rows.append((f"LISTENER_{key}_ROUTING_KEYS", ",".join(keys)))
    return rows


def show(info: Any, value: Any) -> str:
    """A value as ``osism config`` and the documentation show it."""
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        if info.validation_alias == "REDIS_URL":
            return mask_url(value.get_secret_value())
        return MASK
    if info.validation_alias == "RABBITMQ_URL":
        return mask_url(str(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
