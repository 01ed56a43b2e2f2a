"""The osism command line."""

import io
import json
import socket
import urllib.error
from typing import Any, List
from unittest.mock import MagicMock

import pytest

from osism import __version__
from osism import config
from osism.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestHelp:
    def test_help_names_every_command(self, capsys: pytest.CaptureFixture) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main.main(["--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0
        for command in ("api", "listener", "publish"):
            assert command in out

    @pytest.mark.parametrize(
        "command, options",
        [
            ("api", ["--host", "--port", "--workers"]),
            ("publish", ["--payload", "--url"]),
        ],
    )
    def test_command_help_names_its_options(
        self, capsys: pytest.CaptureFixture, command: str, options: List[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main.main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0
        for option in options:
            assert option in out

    def test_version_prints_the_version(self, capsys: pytest.CaptureFixture) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main.main(["--version"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.strip() == __version__

    def test_no_command_prints_help_and_returns_2(
        self, capsys: pytest.CaptureFixture
    ) -> None:
        assert main.main([]) == 2
        assert "usage: osism" in capsys.readouterr().out


class TestApi:
    def test_api_runs_uvicorn_with_the_ws_settings(
        self, mocker: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("WEBSOCKET_MAX_FRAME_BYTES", "4096")
        monkeypatch.setenv("WEBSOCKET_DEFLATE", "1")
        monkeypatch.setenv("WEBSOCKET_PING_INTERVAL", "0")
        monkeypatch.delenv("WEBSOCKET_PING_TIMEOUT", raising=False)
        for name in ("UVICORN_WS", "UVICORN_LOOP", "UVICORN_HTTP"):
            monkeypatch.delenv(name, raising=False)
        run = mocker.patch("uvicorn.run")
        mocker.patch("logging.basicConfig")
        args = ["api", "--host", "127.0.0.1", "--port", "9001", "--workers", "2"]
        assert main.main(args) == 0
        run.assert_called_once_with(
            "osism.api:app",
            host="127.0.0.1",
            port=9001,
            workers=2,
            log_level="info",
            ws="osism.transport.uvicorn_protocol:FanoutProtocol",
            loop="uvloop",
            http="httptools",
            ws_max_size=4096,
            ws_per_message_deflate=True,
            ws_ping_interval=None,
            ws_ping_timeout=20.0,
        )

    def test_api_defaults(self, mocker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in (
            "WEBSOCKET_MAX_FRAME_BYTES",
            "WEBSOCKET_DEFLATE",
            "WEBSOCKET_PING_INTERVAL",
            "WEBSOCKET_PING_TIMEOUT",
            "UVICORN_WS",
            "UVICORN_LOOP",
            "UVICORN_HTTP",
        ):
            monkeypatch.delenv(name, raising=False)
        run = mocker.patch("uvicorn.run")
        mocker.patch("logging.basicConfig")
        assert main.main(["--log-level", "debug", "api"]) == 0
        run.assert_called_once_with(
            "osism.api:app",
            host="0.0.0.0",
            port=8000,
            workers=1,
            log_level="debug",
            ws="osism.transport.uvicorn_protocol:FanoutProtocol",
            loop="uvloop",
            http="httptools",
            ws_max_size=1 << 20,
            ws_per_message_deflate=False,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
        )


class TestListenerCommand:
    def test_listener_command_runs_the_listener(self, mocker: Any) -> None:
        run = mocker.patch("osism.services.listener.process.run", return_value=0)
        mocker.patch("logging.basicConfig")
        assert main.main(["listener"]) == 0
        # The listener runs with the settings checked before it started.
        assert run.call_args.kwargs["settings"] == config.load()


class TestPublish:
    @pytest.fixture(autouse=True)
    def quiet_logging(self, mocker: Any) -> None:
        mocker.patch("logging.basicConfig")

    @pytest.mark.parametrize(
        "payload, message",
        [
            ("{not json", "--payload is not valid JSON"),
            ("[1]", "--payload must be a JSON object"),
        ],
    )
    def test_bad_payload_exits_2_with_a_clear_message(
        self, capsys: pytest.CaptureFixture, payload: str, message: str
    ) -> None:
        assert main.main(["publish", "a.b", "--payload", payload]) == 2
        assert message in capsys.readouterr().err

    def test_unreachable_api_exits_1(self, capsys: pytest.CaptureFixture) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        assert main.main(["publish", "a.b", "--url", url]) == 1
        assert f"cannot reach {url}/v1/events/openstack" in capsys.readouterr().err

    def test_timeout_exits_1(self, mocker: Any, capsys: pytest.CaptureFixture) -> None:
        mocker.patch("urllib.request.urlopen", side_effect=TimeoutError("timed out"))
        assert main.main(["publish", "a.b"]) == 1
        assert "cannot reach http://127.0.0.1:8000/v1/events/openstack: timed out" in (
            capsys.readouterr().err
        )

    def test_http_error_exits_1_with_the_status(
        self, mocker: Any, capsys: pytest.CaptureFixture
    ) -> None:
        error = urllib.error.HTTPError(
            "http://x/v1/events/openstack", 401, "no", {}, io.BytesIO(b"denied")
        )
        mocker.patch("urllib.request.urlopen", side_effect=error)
        assert main.main(["publish", "a.b"]) == 1
        assert "answered 401: denied" in capsys.readouterr().err

    def test_success_posts_the_event_and_says_so(
        self, mocker: Any, capsys: pytest.CaptureFixture
    ) -> None:
        response = MagicMock()
        response.__enter__.return_value.read.return_value = b'{"result": "accepted"}'
        urlopen = mocker.patch("urllib.request.urlopen", return_value=response)
        code = main.main(
            ["publish", "baremetal.x", "--payload", '{"a": 1}', "--url", "http://h/"]
        )
        assert code == 0
        assert capsys.readouterr().out == "published baremetal.x: accepted\n"
        request = urlopen.call_args.args[0]
        assert request.full_url == "http://h/v1/events/openstack"
        assert json.loads(request.data) == {
            "event_type": "baremetal.x",
            "payload": {"a": 1},
        }

    def test_an_empty_answer_is_reported_as_ok(
        self, mocker: Any, capsys: pytest.CaptureFixture
    ) -> None:
        response = MagicMock()
        response.__enter__.return_value.read.return_value = b""
        mocker.patch("urllib.request.urlopen", return_value=response)
        assert main.main(["publish", "a.b"]) == 0
        assert capsys.readouterr().out == "published a.b: ok\n"
