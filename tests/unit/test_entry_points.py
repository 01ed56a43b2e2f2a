"""Every way of starting a service checks the settings first: a value that
cannot be used stops it with one line on stderr and exit status 2."""

import os
import subprocess
import sys
from typing import Any, List

import pytest

from osism import config
from osism.api import routes
from osism.cli import main

BAD_PORT_LINE = (
    "osism: invalid configuration: REDIS_PORT='63x79': expected an integer "
    "port 1-65535\n"
)


@pytest.fixture
def bad_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "63x79")


@pytest.fixture(autouse=True)
def no_logging_setup(mocker: Any) -> None:
    mocker.patch("logging.basicConfig")


class TestRefusedBeforeServing:
    @pytest.mark.parametrize(
        "argv",
        [["api"], ["listener"], ["service", "api"], ["service", "listener"]],
        ids=["api", "listener", "service-api", "service-listener"],
    )
    def test_a_bad_value_exits_2_naming_it(
        self,
        bad_port: None,
        mocker: Any,
        capsys: pytest.CaptureFixture[str],
        argv: List[str],
    ) -> None:
        serve = mocker.patch("uvicorn.run")
        listen = mocker.patch("osism.services.listener.process.run")
        with pytest.raises(SystemExit) as caught:
            main.main(argv)
        assert caught.value.code == 2
        assert capsys.readouterr().err == BAD_PORT_LINE
        assert serve.call_count == listen.call_count == 0

    def test_the_app_for_plain_uvicorn_is_not_built(
        self, bad_port: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as caught:
            routes.default_app()
        assert caught.value.code == 2
        assert capsys.readouterr().err == BAD_PORT_LINE

    def test_the_listener_packages_main_exits_2(
        self, bad_port: None, mocker: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from osism.services.listener import main as listener_main

        listen = mocker.patch("osism.services.listener.process.run")
        with pytest.raises(SystemExit) as caught:
            listener_main()
        assert caught.value.code == 2
        assert capsys.readouterr().err == BAD_PORT_LINE
        assert listen.call_count == 0

    def test_osism_api_as_a_process(self) -> None:
        env = {**os.environ, "REDIS_PORT": "63x79"}
        done = subprocess.run(
            [sys.executable, "-m", "osism.cli.main", "api"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert done.stderr == BAD_PORT_LINE
        assert done.stdout == ""


class TestServiceCommand:
    """Upstream's spellings start the same services."""

    def test_service_api_serves_like_api(
        self, mocker: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("WEBSOCKET_DEFLATE", "true")
        serve = mocker.patch("uvicorn.run")
        assert main.main(["service", "api", "--port", "9001"]) == 0
        assert main.main(["api", "--port", "9001"]) == 0
        first, second = serve.call_args_list
        assert first == second
        assert first.kwargs["port"] == 9001
        assert first.kwargs["ws_per_message_deflate"] is True

    def test_service_listener_runs_the_listener_with_the_checked_settings(
        self, mocker: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("LISTENER_SERVICES", "nova")
        listen = mocker.patch("osism.services.listener.process.run", return_value=3)
        assert main.main(["service", "listener"]) == 3
        assert listen.call_args.kwargs["settings"].listener.services == ("nova",)

    def test_service_without_a_name_prints_help_and_returns_2(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main.main(["service"]) == 2
        assert "usage: osism" in capsys.readouterr().out

    def test_the_listener_packages_main_exits_with_the_listeners_status(
        self, mocker: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from osism.services.listener import main as listener_main

        monkeypatch.setenv("LISTENER_QUEUE_PREFIX", "compose")
        listen = mocker.patch("osism.services.listener.process.run", return_value=0)
        with pytest.raises(SystemExit) as caught:
            listener_main()
        assert caught.value.code == 0
        assert listen.call_args.kwargs["settings"].listener.queue_prefix == "compose"


class TestConfigCommand:
    def test_prints_every_setting_with_secrets_masked(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("REDIS_PASSWORD", "hunter2")
        monkeypatch.setenv("API_TOKEN", "t0ken")
        monkeypatch.setenv("REDIS_PORT", "6390")
        assert main.main(["config"]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert "REDIS_PORT=6390" in lines
        assert "REDIS_PASSWORD=***" in lines and "API_TOKEN=***" in lines
        assert "hunter2" not in out and "t0ken" not in out
        assert len(lines) == len(config.effective(config.load()))

    def test_check_says_ok(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main.main(["config", "--check"]) == 0
        assert capsys.readouterr().out == "configuration OK\n"

    @pytest.mark.parametrize("argv", [["config"], ["config", "--check"]])
    def test_a_bad_value_exits_2_with_its_line(
        self, bad_port: None, capsys: pytest.CaptureFixture[str], argv: List[str]
    ) -> None:
        assert main.main(argv) == 2
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", BAD_PORT_LINE)
