"""The WEBSOCKET_* settings and uvicorn's choices, for ``osism api`` and for
plain ``uvicorn osism.api:app``."""

import asyncio
from typing import Any, Dict, List

import pytest
import uvicorn

from osism import server_settings
from osism.server_settings import (
    ServerSettings,
    apply_to_server,
    server_choices,
    websocket_options,
)


class FakeLifespan:
    """Stands for uvicorn's LifespanOn: it holds the server's config."""

    def __init__(self, config: Any) -> None:
        self.config = config

    async def receive(self) -> Dict[str, Any]:
        return {"type": "lifespan.startup"}


def set_ws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKET_MAX_FRAME_BYTES", "4096")
    monkeypatch.setenv("WEBSOCKET_DEFLATE", "0")
    monkeypatch.setenv("WEBSOCKET_PING_INTERVAL", "7")
    monkeypatch.setenv("WEBSOCKET_PING_TIMEOUT", "0")


class TestChoices:
    def test_defaults_are_the_measured_ones(self) -> None:
        assert server_choices({}) == {
            "ws": server_settings.DEFAULT_WS,
            "loop": server_settings.DEFAULT_LOOP,
            "http": server_settings.DEFAULT_HTTP,
        }

    def test_uvicorn_environment_names_override(self) -> None:
        env = {
            "UVICORN_WS": "wsproto",
            "UVICORN_LOOP": "asyncio",
            "UVICORN_HTTP": "h11",
        }
        assert server_choices(env) == {
            "ws": "wsproto",
            "loop": "asyncio",
            "http": "h11",
        }

    def test_websocket_options_from_the_environment(self) -> None:
        env = {
            "WEBSOCKET_MAX_FRAME_BYTES": "4096",
            "WEBSOCKET_DEFLATE": "1",
            "WEBSOCKET_PING_INTERVAL": "0",
        }
        assert websocket_options(env) == {
            "ws_max_size": 4096,
            "ws_per_message_deflate": True,
            "ws_ping_interval": None,
            "ws_ping_timeout": 20.0,
        }


class TestApplyToServer:
    def test_sets_the_options_on_uvicorns_config(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        set_ws_env(monkeypatch)
        # uvicorn's own defaults: 16 MiB, deflate on, ping 20/20
        config = uvicorn.Config("osism.api:app")
        assert config.ws_per_message_deflate is True

        assert apply_to_server(FakeLifespan(config).receive) is True

        assert config.ws_max_size == 4096
        assert config.ws_per_message_deflate is False
        assert config.ws_ping_interval == 7.0
        assert config.ws_ping_timeout is None

    def test_finds_the_config_through_wrappers_of_receive(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        set_ws_env(monkeypatch)
        config = uvicorn.Config("osism.api:app")
        receive = FakeLifespan(config).receive

        async def wrapped_receive() -> Dict[str, Any]:
            return await receive()

        async def wrapped_twice() -> Dict[str, Any]:
            return await wrapped_receive()

        assert apply_to_server(wrapped_twice) is True
        assert config.ws_max_size == 4096

    def test_another_server_is_left_alone(self) -> None:
        other = FakeLifespan(config={"ws_max_size": 1})
        assert apply_to_server(other.receive) is False
        assert other.config == {"ws_max_size": 1}

    def test_a_plain_function_is_no_uvicorn(self) -> None:
        async def receive() -> Dict[str, Any]:
            return {}

        assert apply_to_server(receive) is False


class TestMiddleware:
    def test_applies_at_lifespan_and_passes_every_scope_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        set_ws_env(monkeypatch)
        seen: List[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["type"])

        async def send(message: Any) -> None:
            pass

        config = uvicorn.Config("osism.api:app")
        middleware = ServerSettings(app)
        lifespan = FakeLifespan(config)
        asyncio.run(middleware({"type": "lifespan"}, lifespan.receive, send))
        assert config.ws_max_size == 4096

        config.ws_max_size = 1
        asyncio.run(middleware({"type": "websocket"}, lifespan.receive, send))
        assert config.ws_max_size == 1
        assert seen == ["lifespan", "websocket"]
