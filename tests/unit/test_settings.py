"""osism.settings: the constants from the model, require(), and the env_*
helpers (a given mapping parsed leniently, else the model's value)."""

import importlib
import io
import logging
import sys
from typing import Any

import pytest

import osism
from osism import settings
from osism.settings import env_float, env_int, env_list

NAME = "OSISM_TEST_SETTING"


def errors(caplog: pytest.LogCaptureFixture) -> list:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "osism.settings" and r.levelno == logging.ERROR
    ]


class TestEnvInt:
    def test_unset_gives_default(self) -> None:
        assert env_int(NAME, 42) == 42

    @pytest.mark.parametrize("blank", ["", "   "])
    def test_blank_gives_default_without_an_error(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        blank: str,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: blank}

        assert env_int(NAME, 42, env=env) == 42
        assert errors(caplog) == []

    @pytest.mark.parametrize("raw, expected", [("7", 7), (" 8 ", 8), ("0", 0)])
    def test_value_overrides_default(
        self, monkeypatch: pytest.MonkeyPatch, raw: str, expected: int
    ) -> None:
        env = {NAME: raw}

        assert env_int(NAME, 42, env=env) == expected

    @pytest.mark.parametrize("raw", ["ten", "1.5", "1e3", "0x10"])
    def test_bad_value_is_logged_and_replaced_by_default(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        raw: str,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: raw}

        assert env_int(NAME, 42, env=env) == 42
        assert errors(caplog) == [f"{NAME}={raw!r} is not an integer; using 42"]

    def test_below_minimum_is_logged_and_replaced_by_default(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: "0"}

        assert env_int(NAME, 42, minimum=1, env=env) == 42
        assert errors(caplog) == [f"{NAME}=0 is below 1; using 42"]

    def test_negative_is_below_the_default_minimum(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = {NAME: "-1"}

        assert env_int(NAME, 42, env=env) == 42

    def test_minimum_itself_is_accepted(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: "1"}

        assert env_int(NAME, 42, minimum=1, env=env) == 1
        assert errors(caplog) == []


class TestEnvFloat:
    def test_unset_gives_default(self) -> None:
        assert env_float(NAME, 2.5) == 2.5

    @pytest.mark.parametrize("blank", ["", "  "])
    def test_blank_gives_default_without_an_error(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        blank: str,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: blank}

        assert env_float(NAME, 2.5, env=env) == 2.5
        assert errors(caplog) == []

    @pytest.mark.parametrize(
        "raw, expected", [("0.25", 0.25), ("3", 3.0), ("1e1", 10.0), ("0", 0.0)]
    )
    def test_value_overrides_default(
        self, monkeypatch: pytest.MonkeyPatch, raw: str, expected: float
    ) -> None:
        env = {NAME: raw}

        assert env_float(NAME, 2.5, env=env) == expected

    @pytest.mark.parametrize(
        "raw, problem",
        [
            ("fast", "is not a number"),
            ("1,5", "is not a number"),
            ("1.2.3", "is not a number"),
            ("nan", "is not a finite number"),
            ("inf", "is not a finite number"),
            ("-inf", "is not a finite number"),
        ],
    )
    def test_bad_value_is_logged_and_replaced_by_default(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        raw: str,
        problem: str,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: raw}

        assert env_float(NAME, 2.5, env=env) == 2.5
        assert errors(caplog) == [f"{NAME}={raw!r} {problem}; using 2.5"]

    def test_below_minimum_is_logged_and_replaced_by_default(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        env = {NAME: "0.05"}

        assert env_float(NAME, 30.0, minimum=0.1, env=env) == 30.0
        assert errors(caplog) == [f"{NAME}=0.05 is below 0.1; using 30.0"]

    def test_negative_is_below_the_default_minimum(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = {NAME: "-0.5"}

        assert env_float(NAME, 2.5, env=env) == 2.5

    def test_minimum_itself_is_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        env = {NAME: "0.1"}

        assert env_float(NAME, 30.0, minimum=0.1, env=env) == 0.1


class TestEnvList:
    def test_unset_gives_default(self) -> None:
        assert env_list(NAME, ("a",)) == ("a",)

    def test_unset_without_default_gives_empty(self) -> None:
        assert env_list(NAME) == ()

    @pytest.mark.parametrize(
        "raw, expected",
        [
            ("a", ("a",)),
            ("a,b", ("a", "b")),
            (" a , b ,, c ,", ("a", "b", "c")),
            ("", ()),
            (" , ,", ()),
        ],
    )
    def test_comma_separated_with_blanks_removed(
        self, monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple
    ) -> None:
        env = {NAME: raw}

        assert env_list(NAME, ("default",), env=env) == expected


class TestDefaults:
    @pytest.mark.parametrize(
        "setting, minimum",
        [
            ("EVENT_QUEUE_SIZE", 1),
            ("OUTBOX_SIZE", 1),
            ("BRIDGE_QUEUE_SIZE", 1),
            ("HEARTBEAT_INTERVAL", 0),
            ("SUBSCRIBER_RESTART_MAX_DELAY", 0.1),
        ],
    )
    def test_bounds_are_at_least_their_minimum(
        self, setting: str, minimum: float
    ) -> None:
        assert getattr(settings, setting) >= minimum


class TestExplicitEnvironment:
    """The helpers read a given mapping instead of os.environ when asked to."""

    def test_helpers_read_the_given_mapping(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NAME, "1")
        env = {NAME: "7"}
        assert env_int(NAME, 0, env=env) == 7
        assert env_float(NAME, 0.0, env=env) == 7.0
        assert env_list(NAME, env={NAME: "a, b"}) == ("a", "b")
        assert env_int(NAME, 3, env={}) == 3


class TestModelValues:
    """Without a mapping, the helpers answer the model's value of the name."""

    @pytest.mark.parametrize(
        "helper, name, constant",
        [
            (env_float, "SUBSCRIBER_RETRY_DELAY", "SUBSCRIBER_RETRY_DELAY"),
            (env_float, "SYSTEM_INTERVAL", "SYSTEM_INTERVAL"),
            (env_int, "REPLAY_LIMIT", "REPLAY_LIMIT"),
        ],
    )
    def test_a_known_name_gives_the_models_value(
        self, helper: Any, name: str, constant: str
    ) -> None:
        assert helper(name, -1) == getattr(settings, constant)

    def test_a_list_gives_the_models_value(self) -> None:
        assert env_list("LISTENER_SERVICES") == settings.CONFIG.listener.services

    def test_an_unknown_name_gives_the_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NAME, "7")
        assert (env_int(NAME, 3), env_float(NAME, 2.5), env_list(NAME)) == (
            3,
            2.5,
            (),
        )


class TestUpstreamNames:
    def test_redis_host_port_db_are_the_address_in_effect(self) -> None:
        endpoint = settings.CONFIG.redis.endpoint()
        assert (settings.REDIS_HOST, settings.REDIS_PORT, settings.REDIS_DB) == (
            endpoint["host"],
            endpoint["port"],
            endpoint["db"],
        )

    @pytest.mark.parametrize(
        "constant, group, attribute",
        [
            ("EVENT_QUEUE_SIZE", "fanout", "event_queue_size"),
            ("OUTBOX_SIZE", "fanout", "outbox_size"),
            ("OUTBOX_BYTES", "fanout", "outbox_bytes"),
            ("REPLAY_LIMIT", "fanout", "replay_limit"),
            ("RESUME_BUFFER_SIZE", "fanout", "resume_buffer_size"),
            ("HEARTBEAT_INTERVAL", "fanout", "heartbeat_interval"),
            ("EVENTS_PREFIX", "event_log", "events_prefix"),
            ("EVENT_HISTORY_SIZE", "event_log", "history_size"),
            ("EVENT_DEDUPE_SECONDS", "event_log", "dedupe_seconds"),
            ("BRIDGE_QUEUE_SIZE", "event_log", "bridge_queue_size"),
        ],
    )
    def test_constants_come_from_the_one_load(
        self, constant: str, group: str, attribute: str
    ) -> None:
        assert getattr(settings, constant) == getattr(
            getattr(settings.CONFIG, group), attribute
        )


class TestImport:
    """Importing osism.settings never fails: a bad value gets its default and
    is kept in ERRORS (and logged); require() refuses it."""

    def fresh_import(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        # Both restored afterwards: the module every other module imported.
        monkeypatch.delitem(sys.modules, "osism.settings")
        monkeypatch.setattr(osism, "settings", settings)
        return importlib.import_module("osism.settings")

    def test_a_bad_value_is_defaulted_and_recorded(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="osism.settings")
        monkeypatch.setenv("REDIS_PORT", "63x79")
        fresh = self.fresh_import(monkeypatch)
        assert fresh.REDIS_PORT == 6379
        assert [str(e) for e in fresh.ERRORS] == [
            "REDIS_PORT='63x79': expected an integer port 1-65535"
        ]
        assert [r.getMessage() for r in caplog.records] == [
            "REDIS_PORT='63x79': expected an integer port 1-65535; using the "
            "default here (require() refuses it)"
        ]

    def test_good_values_are_taken(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REDIS_URL", "redis://cache:6390/4")
        monkeypatch.setenv("REPLAY_LIMIT", "7")
        fresh = self.fresh_import(monkeypatch)
        assert (fresh.REDIS_HOST, fresh.REDIS_PORT, fresh.REDIS_DB) == (
            "cache",
            6390,
            4,
        )
        assert fresh.REPLAY_LIMIT == 7 and fresh.ERRORS == ()


class TestRequire:
    def test_good_settings_are_returned(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REDIS_PORT", "6390")
        assert settings.require().redis.port == 6390

    def test_a_bad_value_is_one_line_and_exit_status_2(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REDIS_PORT", "63x79")
        stream = io.StringIO()
        with pytest.raises(SystemExit) as caught:
            settings.require(stream)
        assert caught.value.code == 2
        assert stream.getvalue() == (
            "osism: invalid configuration: REDIS_PORT='63x79': expected an "
            "integer port 1-65535\n"
        )


class TestEnvListMapping:
    def test_a_mapping_without_the_name_gives_the_default(self) -> None:
        assert env_list(NAME, ("a",), env={}) == ("a",)
