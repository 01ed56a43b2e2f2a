"""The WEBSOCKET_* settings and uvicorn's choices, for ``osism api`` and for
plain ``uvicorn osism.api:app``."""

import asyncio
import functools
import logging
import sys
from typing import Any, Awaitable, Callable, Dict, List

import pytest
import uvicorn

from osism.config import ConfigError
from osism.transport import server_settings
from osism.transport.server_settings import (
    ServerSettings,
    apply_to_server,
    find_config,
    server_choices,
    websocket_options,
)

Receive = Callable[[], Awaitable[Dict[str, Any]]]


class FakeLifespan:
    """Stands for uvicorn's LifespanOn: it holds the server's config."""

    def __init__(self, config: Any) -> None:
        self.config = config

    async def receive(self) -> Dict[str, Any]:
        return {"type": "lifespan.startup"}


def wrapped(receive: Receive, times: int) -> Receive:
    """``receive`` inside ``times`` closures, as frameworks wrap it."""
    for _ in range(times):
        receive = _closure_over(receive)
    return receive


def _closure_over(inner: Receive) -> Receive:
    async def wrapper() -> Dict[str, Any]:
        return await inner()

    return wrapper


def messages(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "osism.api.routes"]


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


class TestWebsocketOptions:
    def test_defaults(self) -> None:
        assert websocket_options({}) == {
            "ws_max_size": 1048576,
            "ws_per_message_deflate": False,
            "ws_ping_interval": 20.0,
            "ws_ping_timeout": 20.0,
        }

    def test_a_frame_limit_of_one_byte_is_accepted(self) -> None:
        assert websocket_options({"WEBSOCKET_MAX_FRAME_BYTES": "1"})["ws_max_size"] == 1

    @pytest.mark.parametrize(
        "raw, deflate",
        [("0", False), ("1", True), ("true", True), ("yes", True), ("off", False)],
    )
    def test_deflate_is_a_boolean_like_every_other_flag(
        self, raw: str, deflate: bool
    ) -> None:
        options = websocket_options({"WEBSOCKET_DEFLATE": raw})
        assert options["ws_per_message_deflate"] is deflate

    @pytest.mark.parametrize("raw", ["2", "maybe"])
    def test_a_deflate_value_that_is_no_boolean_is_refused_naming_it(
        self, raw: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            websocket_options({"WEBSOCKET_DEFLATE": raw})
        assert str(caught.value) == (
            f"WEBSOCKET_DEFLATE={raw!r}: expected a boolean: 1/0, true/false, "
            "yes/no, on/off"
        )

    def test_every_option_reads_the_given_mapping_not_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        set_ws_env(monkeypatch)
        env = {
            "WEBSOCKET_MAX_FRAME_BYTES": "100",
            "WEBSOCKET_DEFLATE": "1",
            "WEBSOCKET_PING_INTERVAL": "3",
            "WEBSOCKET_PING_TIMEOUT": "5",
        }
        assert websocket_options(env) == {
            "ws_max_size": 100,
            "ws_per_message_deflate": True,
            "ws_ping_interval": 3.0,
            "ws_ping_timeout": 5.0,
        }


class TestFindConfig:
    @pytest.mark.parametrize("times", [0, 1, 2, 3, 4])
    def test_finds_the_config_up_to_four_wrappers_deep(self, times: int) -> None:
        config = uvicorn.Config("osism.api:app")
        receive = wrapped(FakeLifespan(config).receive, times)
        assert find_config(receive, uvicorn.Config) is config

    def test_stops_after_four_wrappers(self) -> None:
        config = uvicorn.Config("osism.api:app")
        receive = wrapped(FakeLifespan(config).receive, 5)
        assert find_config(receive, uvicorn.Config) is None

    def test_the_depth_can_be_given(self) -> None:
        config = uvicorn.Config("osism.api:app")
        receive = wrapped(FakeLifespan(config).receive, 2)
        assert find_config(receive, uvicorn.Config, depth=1) is None
        assert find_config(receive, uvicorn.Config, depth=2) is config

    @pytest.mark.parametrize(
        "receive",
        [object(), functools.partial(print), 42],
        ids=["object", "partial", "number"],
    )
    def test_none_for_what_is_neither_bound_nor_a_closure(self, receive: Any) -> None:
        assert find_config(receive, uvicorn.Config) is None

    def test_looks_past_an_empty_closure_cell(self) -> None:
        config = uvicorn.Config("osism.api:app")
        inner = FakeLifespan(config).receive

        def wrap() -> Receive:
            a_later = None

            async def wrapper() -> Dict[str, Any]:
                assert a_later is None  # noqa: F821 (deleted below on purpose)
                return await inner()

            del a_later  # its cell is empty from now on
            return wrapper

        receive = wrap()
        # Cells are ordered by name: the empty one comes first.
        assert receive.__code__.co_freevars == ("a_later", "inner")
        with pytest.raises(ValueError):
            assert receive.__closure__ is not None
            receive.__closure__[0].cell_contents
        assert find_config(receive, uvicorn.Config) is config

    def test_a_captured_value_that_is_not_callable_is_no_wrapper(self) -> None:
        class Holder:
            config = uvicorn.Config("osism.api:app")

        class Value:
            __self__ = Holder()

        value = Value()

        async def receive() -> Dict[str, Any]:
            return {"value": value}

        assert find_config(receive, uvicorn.Config) is None


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

    @pytest.mark.parametrize("deflate, shown", [("0", "off"), ("1", "on")])
    def test_logs_the_settings_it_applied(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        deflate: str,
        shown: str,
    ) -> None:
        caplog.set_level(logging.INFO, logger="osism.api.routes")
        set_ws_env(monkeypatch)
        monkeypatch.setenv("WEBSOCKET_DEFLATE", deflate)
        monkeypatch.setenv("WEBSOCKET_PING_TIMEOUT", "9")
        config = uvicorn.Config("osism.api:app")

        assert apply_to_server(FakeLifespan(config).receive) is True
        assert messages(caplog) == [
            f"WebSocket settings of the server: max frame 4096 bytes, deflate {shown}, "
            "ping every 7.0 s, timeout 9.0 s"
        ]

    def test_says_when_the_server_is_not_uvicorn(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="osism.api.routes")
        assert apply_to_server(FakeLifespan(config={}).receive) is False
        assert messages(caplog) == [
            "Not served by uvicorn: the server's own WebSocket settings apply, "
            "not WEBSOCKET_MAX_FRAME_BYTES/DEFLATE/PING_*"
        ]

    def test_without_uvicorn_installed_nothing_is_applied(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        set_ws_env(monkeypatch)
        config = uvicorn.Config("osism.api:app")
        monkeypatch.setitem(sys.modules, "uvicorn", None)

        assert apply_to_server(FakeLifespan(config).receive) is False
        assert config.ws_max_size == 16 * 1024 * 1024

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
