"""Settings from the environment: defaults, overrides, and bad values."""

import logging

import pytest

from osism import settings
from osism.settings import env_float, env_int, env_list

NAME = "OSISM_TEST_SETTING"


@pytest.fixture(autouse=True)
def _no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)


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
        monkeypatch.setenv(NAME, blank)

        assert env_int(NAME, 42) == 42
        assert errors(caplog) == []

    @pytest.mark.parametrize("raw, expected", [("7", 7), (" 8 ", 8), ("0", 0)])
    def test_value_overrides_default(
        self, monkeypatch: pytest.MonkeyPatch, raw: str, expected: int
    ) -> None:
        monkeypatch.setenv(NAME, raw)

        assert env_int(NAME, 42) == expected

    @pytest.mark.parametrize("raw", ["ten", "1.5", "1e3", "0x10"])
    def test_bad_value_is_logged_and_replaced_by_default(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        raw: str,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        monkeypatch.setenv(NAME, raw)

        assert env_int(NAME, 42) == 42
        assert errors(caplog) == [f"{NAME}={raw!r} is not an integer; using 42"]

    def test_below_minimum_is_logged_and_replaced_by_default(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        monkeypatch.setenv(NAME, "0")

        assert env_int(NAME, 42, minimum=1) == 42
        assert errors(caplog) == [f"{NAME}=0 is below 1; using 42"]

    def test_negative_is_below_the_default_minimum(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NAME, "-1")

        assert env_int(NAME, 42) == 42

    def test_minimum_itself_is_accepted(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        monkeypatch.setenv(NAME, "1")

        assert env_int(NAME, 42, minimum=1) == 1
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
        monkeypatch.setenv(NAME, blank)

        assert env_float(NAME, 2.5) == 2.5
        assert errors(caplog) == []

    @pytest.mark.parametrize(
        "raw, expected", [("0.25", 0.25), ("3", 3.0), ("1e1", 10.0), ("0", 0.0)]
    )
    def test_value_overrides_default(
        self, monkeypatch: pytest.MonkeyPatch, raw: str, expected: float
    ) -> None:
        monkeypatch.setenv(NAME, raw)

        assert env_float(NAME, 2.5) == expected

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
        monkeypatch.setenv(NAME, raw)

        assert env_float(NAME, 2.5) == 2.5
        assert errors(caplog) == [f"{NAME}={raw!r} {problem}; using 2.5"]

    def test_below_minimum_is_logged_and_replaced_by_default(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        monkeypatch.setenv(NAME, "0.05")

        assert env_float(NAME, 30.0, minimum=0.1) == 30.0
        assert errors(caplog) == [f"{NAME}=0.05 is below 0.1; using 30.0"]

    def test_negative_is_below_the_default_minimum(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(NAME, "-0.5")

        assert env_float(NAME, 2.5) == 2.5

    def test_minimum_itself_is_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(NAME, "0.1")

        assert env_float(NAME, 30.0, minimum=0.1) == 0.1


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
        monkeypatch.setenv(NAME, raw)

        assert env_list(NAME, ("default",)) == expected


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
