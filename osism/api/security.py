"""Who may connect and publish, and how much they may send.

- Origin check on the WebSocket handshake (cross-site WebSocket hijacking).
- Optional shared token for the WebSocket and the publish endpoint, compared
  in constant time and never logged.
- Limits on connections per process and on the size of a publish request.
"""

import hmac
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Mapping, MutableMapping, Optional
from typing import Tuple
from urllib.parse import urlsplit

from osism import config

logger = logging.getLogger("osism.api.security")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)

# The limits when MAX_CONNECTIONS / MAX_PUBLISH_BYTES set none.
DEFAULT_MAX_CONNECTIONS: int = config.SecuritySettings().max_connections
DEFAULT_MAX_PUBLISH_BYTES: int = config.SecuritySettings().max_publish_bytes


@dataclass(frozen=True)
class SecurityConfig:
    """What the API enforces; ``of`` takes it from the settings model,
    ``from_env`` from the environment as it is now."""

    token: Optional[str] = field(default=None, repr=False)
    allowed_origins: Tuple[str, ...] = ()
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_publish_bytes: int = DEFAULT_MAX_PUBLISH_BYTES

    @classmethod
    def of(cls, group: config.SecuritySettings) -> "SecurityConfig":
        token = group.api_token
        return cls(
            token=token.get_secret_value() if token is not None else None,
            allowed_origins=group.allowed_origins,
            max_connections=group.max_connections,
            max_publish_bytes=group.max_publish_bytes,
        )

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "SecurityConfig":
        """From ``env`` (the environment by default); a value that cannot be
        used gets its default (the entry points refuse it before they start)."""
        return cls.of(config.load_lenient(env)[0].security)

    def origin_allowed(self, origin: Optional[str], host: Optional[str]) -> bool:
        """No Origin (scripts), the same origin, or one on the allowlist."""
        if origin is None:
            return True
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        return host is not None and urlsplit(origin).netloc.lower() == host.lower()

    def token_accepted(self, presented: Optional[str]) -> bool:
        """True when no token is configured or ``presented`` equals it."""
        if self.token is None:
            return True
        if presented is None:
            return False
        return hmac.compare_digest(self.token.encode(), presented.encode())


def presented_token(
    headers: Mapping[str, str], query: Mapping[str, str]
) -> Optional[str]:
    """The token a client sent: ``Authorization: Bearer …`` or ``?token=…``."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query.get("token") or None


class RedactTokens(logging.Filter):
    """Rewrites ``token=…`` in a log line (uvicorn logs request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_TEXT.sub(r"\1***", message)
        if redacted == message:
            return True
        # Keep the arguments where redacting them is enough: uvicorn's access
        # formatter unpacks them and fails on a record without them.
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_TEXT.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
            if record.getMessage() == redacted:
                return True
        record.msg, record.args = redacted, ()
        return True


def install_log_redaction() -> None:
    """Redact tokens in the lines of the loggers that print request paths."""
    for name in ("uvicorn.error", "uvicorn.access", "osism"):
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(RedactTokens())


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: Dict[bytes, bytes] = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False  # pragma: no mutate

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = b'{"detail": "request body too large: limit %d bytes"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
