"""osism.config: one typed model of every setting, read from a mapping."""

from pathlib import Path
from typing import Dict

import pytest
from pydantic import ValidationError

from osism import config
from osism.config import ConfigError, load, load_lenient

SECRET = "s3cr3t-pw"


def error_of(env: Dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load(env)
    return str(caught.value)


class TestDefaults:
    def test_an_empty_environment_is_the_documented_defaults(self) -> None:
        settings = load({})
        assert settings == config.Settings()
        assert (settings.redis.host, settings.redis.port, settings.redis.db) == (
            "redis",
            6379,
            0,
        )
        assert settings.server.deflate is False
        assert settings.fanout.heartbeat_interval == 30.0
        assert settings.event_log.events_prefix == "osism:events"
        assert settings.listener.services == config.LISTENER_SERVICES
        assert settings.security.api_token is None

    @pytest.mark.parametrize("blank", ["", "   "])
    def test_a_blank_value_means_the_default(self, blank: str) -> None:
        env = {"REDIS_PORT": blank, "EVENTS_PREFIX": blank, "API_TOKEN": blank}
        assert load(env) == load({})

    def test_the_tree_is_frozen(self) -> None:
        settings = load({})
        with pytest.raises(ValidationError):
            settings.redis.port = 1  # type: ignore[misc]


class TestValues:
    @pytest.mark.parametrize(
        "env, group, attribute, value",
        [
            ({"REDIS_PORT": " 6390 "}, "redis", "port", 6390),
            ({"WEBSOCKET_DEFLATE": "true"}, "server", "deflate", True),
            ({"WEBSOCKET_DEFLATE": "1"}, "server", "deflate", True),
            ({"REDIS_TLS": "yes"}, "redis", "tls", True),
            ({"LISTENER_EXCHANGE_DURABLE": "on"}, "listener", "exchange_durable", True),
            ({"HEARTBEAT_INTERVAL": "0"}, "fanout", "heartbeat_interval", 0.0),
            ({"SYSTEM_INTERVAL": "0.1"}, "fanout", "system_interval", 0.1),
            (
                {"ALLOWED_ORIGINS": " a , b,,"},
                "security",
                "allowed_origins",
                ("a", "b"),
            ),
            ({"LISTENER_METRICS_PORT": "0"}, "metrics", "port", 0),
        ],
    )
    def test_a_value_is_read_with_its_type(
        self, env: Dict[str, str], group: str, attribute: str, value: object
    ) -> None:
        assert getattr(getattr(load(env), group), attribute) == value

    def test_per_service_listener_variables_are_collected(self) -> None:
        listener = load(
            {
                "LISTENER_NOVA_EXCHANGE": "nova-cell1",
                "LISTENER_OCTAVIA_API_ROUTING_KEYS": "a.*, b.*",
                "LISTENER_EXCHANGE_DURABLE": "1",
            }
        ).listener
        assert listener.exchanges == {"NOVA": "nova-cell1"}
        assert listener.routing_keys == {"OCTAVIA_API": ("a.*", "b.*")}

    def test_a_secret_is_kept_as_given_and_hidden_in_repr(self) -> None:
        settings = load({"REDIS_PASSWORD": f" {SECRET}", "API_TOKEN": SECRET})
        assert settings.redis.password is not None
        assert settings.redis.password.get_secret_value() == f" {SECRET}"
        assert SECRET not in repr(settings)

    def test_redis_url_gives_the_address_in_effect(self) -> None:
        redis = load({"REDIS_URL": f"rediss://app:{SECRET}@cache:6390/4"}).redis
        assert redis.endpoint() == {
            "host": "cache",
            "port": 6390,
            "db": 4,
            "username": "app",
            "password": SECRET,
            "tls": True,
            "from_url": True,
        }


class TestErrors:
    """One line: the variable, its value (never a secret's), what is expected."""

    @pytest.mark.parametrize(
        "env, line",
        [
            (
                {"REDIS_PORT": "63x79"},
                "REDIS_PORT='63x79': expected an integer port 1-65535",
            ),
            (
                {"REDIS_PORT": "65536"},
                "REDIS_PORT='65536': expected an integer port 1-65535",
            ),
            ({"REDIS_PORT": "0"}, "REDIS_PORT='0': expected an integer port 1-65535"),
            (
                {"EVENT_QUEUE_SIZE": "0"},
                "EVENT_QUEUE_SIZE='0': expected an integer >= 1",
            ),
            ({"REDIS_DB": "-1"}, "REDIS_DB='-1': expected an integer >= 0"),
            (
                {"HEARTBEAT_INTERVAL": "nan"},
                "HEARTBEAT_INTERVAL='nan': expected a number >= 0",
            ),
            (
                {"HEARTBEAT_INTERVAL": "soon"},
                "HEARTBEAT_INTERVAL='soon': expected a number >= 0",
            ),
            (
                {"SYSTEM_INTERVAL": "0.05"},
                "SYSTEM_INTERVAL='0.05': expected a number >= 0.1",
            ),
            (
                {"WEBSOCKET_DEFLATE": "2"},
                "WEBSOCKET_DEFLATE='2': expected a boolean: 1/0, true/false, "
                "yes/no, on/off",
            ),
            (
                {"LISTENER_METRICS_PORT": "-1"},
                "LISTENER_METRICS_PORT='-1': expected an integer port 0-65535 (0: off)",
            ),
            (
                {"REDIS_SENTINELS": "s1"},
                "REDIS_SENTINELS='s1': REDIS_SENTINELS: 's1' has no port; write "
                "host:port, e.g. sentinel-1:26379; expected host:port,host:port",
            ),
            (
                {"REDIS_URL": "redis://c", "REDIS_SENTINELS": "s1:1"},
                "REDIS_SENTINELS='s1:1': REDIS_URL and REDIS_SENTINELS are both set: "
                "use one of them; expected REDIS_URL or REDIS_SENTINELS, not both",
            ),
            (
                {"REDIS_SENTINELS": "s1:1,[]:2"},
                "REDIS_SENTINELS='s1:1,[]:2': REDIS_SENTINELS: '[]:2' has no host; "
                "expected host:port,host:port",
            ),
            (
                {"REDIS_SENTINELS": "s1:99999"},
                "REDIS_SENTINELS='s1:99999': REDIS_SENTINELS: 's1:99999': the port "
                "'99999' is not a port number; expected host:port,host:port",
            ),
            (
                {"REDIS_URL": "redis://cache/x"},
                "REDIS_URL='redis://cache/x': REDIS_URL: the database 'x' is not a "
                "number; expected redis://[user[:password]@]host[:port][/db], "
                "rediss:// for TLS",
            ),
            (
                {"REDIS_TLS_CA_FILE": "/ca"},
                "REDIS_TLS_CA_FILE='/ca': REDIS_TLS_CA_FILE set but TLS is off: use "
                "a rediss:// REDIS_URL or REDIS_TLS=1; expected REDIS_TLS=1 or a "
                "rediss:// REDIS_URL with it",
            ),
            (
                {"REDIS_TLS": "1", "REDIS_TLS_CERT_FILE": "/c"},
                "REDIS_TLS_CERT_FILE='/c': REDIS_TLS_CERT_FILE and "
                "REDIS_TLS_KEY_FILE go together: set both; expected both "
                "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE",
            ),
        ],
    )
    def test_the_line_names_variable_value_and_expectation(
        self, env: Dict[str, str], line: str
    ) -> None:
        assert error_of(env) == line

    def test_the_error_carries_its_parts(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load({"REDIS_PORT": "x"})
        error = caught.value
        assert (error.name, error.shown, error.problem) == ("REDIS_PORT", "'x'", None)
        assert error.expected == "an integer port 1-65535"

    @pytest.mark.parametrize(
        "url, shown",
        [
            (f"redis://u:{SECRET}@cache:99999", "redis://u:***@cache:99999"),
            (f"redis://:{SECRET}@cache/x", "redis://:***@cache/x"),
            (f"u:{SECRET}@cache", "***@cache"),
            (f"u:p@{SECRET}@cache", "***@cache"),
            (f"redis://u:p/{SECRET}@cache", "redis://***@cache"),
            (f"redis://u:p/{SECRET}@cache//", "redis://***@cache//"),
            (f"http://u:{SECRET}@cache", "http://u:***@cache"),
        ],
    )
    def test_a_bad_url_is_shown_without_its_password(
        self, url: str, shown: str
    ) -> None:
        line = error_of({"REDIS_URL": url})
        assert line.startswith(f"REDIS_URL={shown!r}: REDIS_URL")
        assert SECRET not in line

    def test_a_bad_tls_file_names_the_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "ca.pem"
        line = error_of({"REDIS_TLS": "1", "REDIS_TLS_CA_FILE": str(missing)})
        assert line == (
            f"REDIS_TLS_CA_FILE={str(missing)!r}: REDIS_TLS_CA_FILE={missing}: no "
            "such file; expected an existing file"
        )

    @pytest.mark.parametrize(
        "env, name",
        [
            ({"REDIS_TLS_CERT_FILE": "/c"}, "REDIS_TLS_CERT_FILE"),
            ({"REDIS_TLS": "1", "REDIS_TLS_KEY_FILE": "/k"}, "REDIS_TLS_KEY_FILE"),
        ],
    )
    def test_tls_file_rules_name_the_file_given(
        self, env: Dict[str, str], name: str
    ) -> None:
        assert error_of(env).startswith(f"{name}=")

    def test_a_secret_is_never_shown(self) -> None:
        # A password cannot be wrong by type; the masking is what is tested.
        for name in ("REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "API_TOKEN"):
            assert config.shown_value(config.field_named(name), SECRET) == "***"
        shown = config.shown_value(config.field_named("REDIS_HOST"), "cache")
        assert shown == "'cache'"


class TestLenient:
    def test_every_bad_value_gets_its_default_and_is_reported(self) -> None:
        settings, errors = load_lenient(
            {"REDIS_PORT": "x", "EVENT_QUEUE_SIZE": "0", "REPLAY_LIMIT": "7"}
        )
        assert (settings.redis.port, settings.fanout.event_queue_size) == (6379, 10000)
        assert settings.fanout.replay_limit == 7
        assert sorted(error.name for error in errors) == [
            "EVENT_QUEUE_SIZE",
            "REDIS_PORT",
        ]

    def test_good_settings_have_no_errors(self) -> None:
        assert load_lenient({"REDIS_PORT": "1"}) == (load({"REDIS_PORT": "1"}), ())

    def test_the_process_environment_by_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REPLAY_LIMIT", "9")
        assert load_lenient()[0].fanout.replay_limit == 9
        assert load().fanout.replay_limit == 9


class TestEffective:
    def test_every_variable_once_with_secrets_masked(self) -> None:
        settings = load(
            {
                "REDIS_URL": f"redis://app:{SECRET}@cache/1",
                "REDIS_PASSWORD": SECRET,
                "API_TOKEN": SECRET,
                "RABBITMQ_URL": f"amqp://osism:{SECRET}@rabbit//",
                "LISTENER_NOVA_EXCHANGE": "nova-cell1",
                "LISTENER_NOVA_ROUTING_KEYS": "a.*,b.*",
            }
        )
        rows = dict(config.effective(settings))
        assert SECRET not in repr(rows)
        assert rows["REDIS_URL"] == "redis://app:***@cache/1"
        assert rows["REDIS_PASSWORD"] == rows["API_TOKEN"] == "***"
        assert rows["RABBITMQ_URL"] == "amqp://osism:***@rabbit//"
        assert rows["LISTENER_NOVA_EXCHANGE"] == "nova-cell1"
        assert rows["LISTENER_NOVA_ROUTING_KEYS"] == "a.*,b.*"
        names = [name for name, _ in config.effective(settings)]
        assert len(names) == len(set(names))

    @pytest.mark.parametrize(
        "name, shown",
        [
            ("REDIS_SENTINEL_PASSWORD", "unset"),
            ("WEBSOCKET_DEFLATE", "0"),
            ("HEARTBEAT_INTERVAL", "30"),
            ("REDIS_SOCKET_TIMEOUT", "5"),
            ("LISTENER_SERVICES", "ironic,nova,neutron,cinder,glance,keystone"),
            ("WEBSOCKET_OUTBOX_BYTES", "4194304"),
        ],
    )
    def test_defaults_are_shown_as_they_would_be_written(
        self, name: str, shown: str
    ) -> None:
        assert dict(config.effective(load({})))[name] == shown

    def test_a_fraction_stays_a_fraction(self) -> None:
        rows = dict(config.effective(load({"SYSTEM_INTERVAL": "0.5"})))
        assert rows["SYSTEM_INTERVAL"] == "0.5"


class TestEdges:
    def test_a_list_given_as_a_tuple_is_taken_as_it_is(self) -> None:
        group = config.ListenerSettings.model_validate({"LISTENER_SERVICES": ("a",)})
        assert group.services == ("a",)

    def test_a_name_that_is_no_field_is_a_lookup_error(self) -> None:
        with pytest.raises(LookupError):
            config.field_named("LISTENER_NOVA_EXCHANGE")

    def test_a_validators_error_carries_variable_problem_expectation(self) -> None:
        invalid = config.Invalid("REDIS_URL", "why", "what")
        assert (invalid.name, invalid.problem, invalid.expected) == (
            "REDIS_URL",
            "why",
            "what",
        )
        assert str(invalid) == "why"

    def test_text_is_expected_of_a_text_setting(self) -> None:
        assert config.expected(config.field_named("UVICORN_WS")) == "text"

    def test_lenient_gives_up_on_an_error_without_a_variable_of_its_own(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        refused = ConfigError("NOT_SET", "''", "something")

        def refuse(environ: Dict[str, str]) -> config.Settings:
            raise refused

        monkeypatch.setattr(config, "load", refuse)
        assert load_lenient({"REDIS_PORT": "1"}) == (config.Settings(), (refused,))


class TestMaskUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "redis://cache:6379/0",
            "redis://app@cache",
            "cache",
            "amqp://rabbit//",
            "redis://cache/a@b",
        ],
    )
    def test_a_url_without_a_password_is_shown_as_it_is(self, url: str) -> None:
        assert config.mask_url(url) == url

    def test_a_flag_is_shown_as_one_or_zero(self) -> None:
        rows = dict(config.effective(load({"WEBSOCKET_DEFLATE": "true"})))
        assert (rows["WEBSOCKET_DEFLATE"], rows["REDIS_TLS"]) == ("1", "0")
