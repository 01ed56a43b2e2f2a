"""How the API is served: uvicorn's implementation choices and the WEBSOCKET_*
settings, for ``osism api`` and for plain ``uvicorn osism.api:app``.

``osism api`` passes them to ``uvicorn.run``. Under plain ``uvicorn`` the app
applies them itself: uvicorn hands the lifespan a ``receive`` bound to its
lifespan object, which holds the server's ``uvicorn.Config`` (FastAPI wraps
that ``receive`` in a closure, which ``find_config`` sees through); the WebSocket
protocol reads ``ws_max_size``, ``ws_per_message_deflate`` and the ping
settings from that config for every new connection, and the lifespan startup
completes before the server accepts any. Under another ASGI server the
server's own settings apply (logged at startup).
"""

import logging
from typing import Any, Awaitable, Callable, Dict, Mapping, MutableMapping, Optional

from osism import config

logger = logging.getLogger("osism.api.routes")

# uvicorn's choices for the API, picked from the benchmark
# (docs/explanation/performance.md); UVICORN_WS / UVICORN_LOOP / UVICORN_HTTP
# override them, as for uvicorn's CLI.
DEFAULT_WS = "osism.transport.uvicorn_protocol:FanoutProtocol"
DEFAULT_LOOP = "uvloop"
DEFAULT_HTTP = "httptools"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def server_choices(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """uvicorn's ``ws``, ``loop`` and ``http`` for the API, from ``env`` (the
    environment by default) through the settings model."""
    server = config.load(env).server
    return {
        "ws": server.uvicorn_ws,
        "loop": server.uvicorn_loop,
        "http": server.uvicorn_http,
    }


def websocket_options(env: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """uvicorn's WebSocket options from the WEBSOCKET_* settings in ``env``
    (the environment by default); ConfigError for a value that cannot be used."""
    return options_of(config.load(env).server)


def options_of(server: config.ServerSettings) -> Dict[str, Any]:
    """uvicorn's WebSocket options of the model's server group."""
    return {
        "ws_max_size": server.max_frame_bytes,
        "ws_per_message_deflate": server.deflate,
        # 0 disables them; uvicorn's word for that is None.
        "ws_ping_interval": server.ping_interval or None,
        "ws_ping_timeout": server.ping_timeout or None,
    }


def apply_to_server(receive: Any) -> bool:
    """Set the WEBSOCKET_* options on the uvicorn server running this app.

    ``receive`` is the lifespan's receive callable; False (and nothing
    changed) when it does not lead to a uvicorn config.
    """
    try:
        from uvicorn import Config
    except ImportError:  # pragma: no cover - uvicorn is a requirement
        return False
    config = find_config(receive, Config)
    if config is None:
        logger.info(
            "Not served by uvicorn: the server's own WebSocket settings apply, "
            "not WEBSOCKET_MAX_FRAME_BYTES/DEFLATE/PING_*"
        )
        return False
    options = websocket_options()
    for name, value in options.items():
        setattr(config, name, value)
    logger.info(
        "WebSocket settings of the server: max frame %d bytes, deflate %s, "
        "ping every %s s, timeout %s s",
        options["ws_max_size"],
        "on" if options["ws_per_message_deflate"] else "off",
        options["ws_ping_interval"],
        options["ws_ping_timeout"],
    )
    return True


def find_config(receive: Any, kind: type, depth: int = 4) -> Any:
    """The ``kind`` instance held by the object ``receive`` is bound to, found
    through the wrappers that frameworks put around ``receive`` (closures over
    it), at most ``depth`` wrappers deep; None if there is none."""
    config = getattr(getattr(receive, "__self__", None), "config", None)
    if isinstance(config, kind):
        return config
    if depth == 0:
        return None
    for cell in getattr(receive, "__closure__", None) or ():
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(inner) and inner is not receive:
            found = find_config(inner, kind, depth - 1)
            if found is not None:
                return found
    return None


class ServerSettings:
    """ASGI middleware: at lifespan startup, apply the WEBSOCKET_* settings to
    the server (see ``apply_to_server``); everything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            apply_to_server(receive)
        await self.app(scope, receive, send)
