"""redis_connection: settings, masked descriptions, clients, explained failures.

No test opens a connection: clients are built with ``redis.Redis`` or
``redis.sentinel.Sentinel`` patched, or inspected without being used.
"""

import logging
import ssl
from pathlib import Path
from typing import Callable, Dict
from unittest.mock import MagicMock

import pytest
import redis
import redis.sentinel

from osism.services.bridge import redis_client as redis_connection
from osism.services.bridge.redis_client import (
    RedisConfigError,
    RedisSettings,
    connection_kwargs,
    create_client,
    explain,
    needs_attention,
    parse_sentinels,
    sentinel_kwargs,
)

SECRET = "s3cr3t-p@ss"
SENTINEL_SECRET = "sentinel-pw"


@pytest.fixture
def tls_files(tmp_path: Path) -> Dict[str, str]:
    files = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN X-----\n")
        files[name] = str(path)
    return files


class TestSeedSettings:
    """REDIS_HOST/PORT/DB work exactly as before when no URL is given."""

    def test_defaults(self) -> None:
        config = RedisSettings.from_env({})
        assert (config.host, config.port, config.db) == ("redis", 6379, 0)
        assert config.password is None and config.username is None
        assert not config.tls and config.mode == "host"
        assert config.socket_timeout == 5.0

    def test_host_port_db_password_username(self) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_HOST": "cache",
                "REDIS_PORT": "6390",
                "REDIS_DB": "2",
                "REDIS_PASSWORD": SECRET,
                "REDIS_USERNAME": "osism",
            }
        )
        assert (config.host, config.port, config.db) == ("cache", 6390, 2)
        assert (config.username, config.password) == ("osism", SECRET)

    @pytest.mark.parametrize(
        "name, raw, attribute, value",
        [
            ("REDIS_PORT", "1", "port", 1),
            ("REDIS_PORT", "0", "port", 6379),
            ("REDIS_SOCKET_TIMEOUT", "0.1", "socket_timeout", 0.1),
            ("REDIS_SOCKET_TIMEOUT", "0.5", "socket_timeout", 0.5),
            ("REDIS_SOCKET_TIMEOUT", "0.05", "socket_timeout", 5.0),
        ],
        ids=["port-1", "port-0", "timeout-0.1", "timeout-0.5", "timeout-0.05"],
    )
    def test_the_lowest_port_and_socket_timeout(
        self, name: str, raw: str, attribute: str, value: float
    ) -> None:
        config = RedisSettings.from_env({name: raw})
        assert getattr(config, attribute) == value

    def test_bad_port_keeps_the_default_and_says_so(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="osism.settings")
        config = RedisSettings.from_env({"REDIS_PORT": "x"})
        assert (config.port, config.error) == (6379, None)
        assert [r.getMessage() for r in caplog.records] == [
            "REDIS_PORT='x': expected an integer port 1-65535; using the default"
        ]

    def test_parse_refuses_a_bad_port(self) -> None:
        with pytest.raises(RedisConfigError) as caught:
            RedisSettings.parse({"REDIS_PORT": "x"})
        assert str(caught.value) == ("REDIS_PORT='x': expected an integer port 1-65535")

    def test_password_is_not_in_repr(self) -> None:
        config = RedisSettings.from_env(
            {"REDIS_PASSWORD": SECRET, "REDIS_SENTINELS": "h:1", **{}}
        )
        assert SECRET not in repr(config)

    @pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
    def test_tls_on(self, value: str) -> None:
        assert RedisSettings.from_env({"REDIS_TLS": value}).tls

    def test_tls_bad_value(self) -> None:
        with pytest.raises(
            RedisConfigError, match="REDIS_TLS='maybe': expected a boolean"
        ):
            RedisSettings.parse({"REDIS_TLS": "maybe"})


class TestUrl:
    @pytest.mark.parametrize(
        "url, expected",
        [
            ("redis://cache", ("cache", 6379, 0, None, None, False)),
            ("redis://cache:6380/3", ("cache", 6380, 3, None, None, False)),
            ("redis://:pw@cache/1", ("cache", 6379, 1, None, "pw", False)),
            ("redis://app:pw@cache:7000/0", ("cache", 7000, 0, "app", "pw", False)),
            ("rediss://app:p%40ss%3A@cache", ("cache", 6379, 0, "app", "p@ss:", True)),
            ("redis://[::1]:6379/", ("::1", 6379, 0, None, None, False)),
        ],
        ids=["host", "port-db", "password", "acl-user", "tls-quoted", "ipv6"],
    )
    def test_forms(self, url: str, expected: tuple) -> None:
        config = RedisSettings.from_env({"REDIS_URL": url, "REDIS_HOST": "ignored"})
        got = (
            config.host,
            config.port,
            config.db,
            config.username,
            config.password,
            config.tls,
        )
        assert got == expected
        assert config.mode == "url"

    def test_password_from_redis_password_when_the_url_has_none(self) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_URL": "redis://cache",
                "REDIS_PASSWORD": SECRET,
                "REDIS_USERNAME": "app",
            }
        )
        assert (config.username, config.password) == ("app", SECRET)

    @pytest.mark.parametrize(
        "url, message",
        [
            (
                f"http://u:{SECRET}@cache",
                "REDIS_URL must start with redis:// or rediss:// (TLS), not 'http://'",
            ),
            (
                f"u:{SECRET}@cache",
                "REDIS_URL must start with redis:// or rediss:// (TLS), not 'u://'",
            ),
            (
                f"//u:{SECRET}@cache",
                "REDIS_URL must start with redis:// or rediss:// (TLS), not without "
                "a scheme",
            ),
            (f"redis://u:{SECRET}@cache:99999", "REDIS_URL has an invalid port"),
            (f"redis://u:{SECRET}@cache:port", "REDIS_URL has an invalid port"),
            (
                f"redis://u:{SECRET}@cache/zero",
                "REDIS_URL: the database 'zero' is not a number",
            ),
            (
                f"redis://u:{SECRET}@cache/X",
                "REDIS_URL: the database 'X' is not a number",
            ),
            (
                f"redis://u:{SECRET}@cache/-1",
                "REDIS_URL: the database '-1' is not a number",
            ),
            (f"redis://u:{SECRET}@", "REDIS_URL names no host"),
            (
                f"redis://u:{SECRET}@cache?ssl=1",
                "REDIS_URL: query parameters are not supported; use the REDIS_* "
                "settings (REDIS_TLS_CA_FILE, ...)",
            ),
        ],
        ids=[
            "other-scheme",
            "user-as-scheme",
            "no-scheme",
            "port-too-big",
            "port-not-a-number",
            "db-word",
            "db-letter",
            "db-negative",
            "no-host",
            "query",
        ],
    )
    def test_bad_urls_are_refused_without_the_secret(
        self, url: str, message: str
    ) -> None:
        with pytest.raises(RedisConfigError) as caught:
            RedisSettings.parse({"REDIS_URL": url})
        assert str(caught.value) == message
        assert SECRET not in explain(caught.value, RedisSettings())

    def test_from_env_never_raises_and_carries_the_error(
        self, redis_cls: MagicMock
    ) -> None:
        config = RedisSettings.from_env({"REDIS_URL": f"redis://u:{SECRET}@h:x"})
        assert config.error == "REDIS_URL has an invalid port"
        assert config.describe() == (
            "invalid Redis settings (REDIS_URL has an invalid port)"
        )
        with pytest.raises(RedisConfigError, match="invalid port") as caught:
            create_client(config)
        redis_cls.assert_not_called()
        assert explain(caught.value, config) == (
            "Invalid Redis settings: REDIS_URL has an invalid port"
        )
        assert RedisSettings.from_env({"REDIS_URL": "redis://h"}).error is None

    def test_url_and_sentinels_together_are_refused(self) -> None:
        with pytest.raises(RedisConfigError) as caught:
            RedisSettings.parse(
                {"REDIS_URL": "redis://cache", "REDIS_SENTINELS": "s1:26379"}
            )
        assert str(caught.value) == (
            "REDIS_URL and REDIS_SENTINELS are both set: use one of them"
        )


class TestTlsFiles:
    def test_files_with_rediss(self, tls_files: Dict[str, str]) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_URL": "rediss://cache",
                "REDIS_TLS_CA_FILE": tls_files["ca"],
                "REDIS_TLS_CERT_FILE": tls_files["cert"],
                "REDIS_TLS_KEY_FILE": tls_files["key"],
            }
        )
        assert (config.tls_ca_file, config.tls_cert_file, config.tls_key_file) == (
            tls_files["ca"],
            tls_files["cert"],
            tls_files["key"],
        )

    def test_files_without_tls_are_refused(self, tls_files: Dict[str, str]) -> None:
        with pytest.raises(RedisConfigError) as caught:
            RedisSettings.parse(
                {
                    "REDIS_URL": "redis://cache",
                    "REDIS_TLS_CA_FILE": tls_files["ca"],
                    "REDIS_TLS_CERT_FILE": tls_files["cert"],
                    "REDIS_TLS_KEY_FILE": tls_files["key"],
                }
            )
        assert str(caught.value) == (
            "REDIS_TLS_CA_FILE and REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE set "
            "but TLS is off: use a rediss:// REDIS_URL or REDIS_TLS=1"
        )

    @pytest.mark.parametrize("given", ["cert", "key"])
    def test_cert_without_key_is_refused(
        self, tls_files: Dict[str, str], given: str
    ) -> None:
        name = f"REDIS_TLS_{given.upper()}_FILE"
        with pytest.raises(RedisConfigError) as caught:
            RedisSettings.parse({"REDIS_TLS": "1", name: tls_files[given]})
        assert str(caught.value) == (
            "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both"
        )

    @pytest.mark.parametrize("name", ["CA", "CERT", "KEY"])
    def test_missing_file_is_named(
        self, tmp_path: Path, tls_files: Dict[str, str], name: str
    ) -> None:
        env = {
            "REDIS_TLS": "1",
            "REDIS_TLS_CERT_FILE": tls_files["cert"],
            "REDIS_TLS_KEY_FILE": tls_files["key"],
        }
        missing = str(tmp_path / "nope.pem")
        env[f"REDIS_TLS_{name}_FILE"] = missing
        with pytest.raises(RedisConfigError) as caught:
            RedisSettings.parse(env)
        assert str(caught.value) == f"REDIS_TLS_{name}_FILE={missing}: no such file"


class TestSentinels:
    def test_list_parsing(self) -> None:
        assert parse_sentinels(" s1:26379, s2:26380 ,,[::1]:26381,X:1,s-X:2") == (
            ("s1", 26379),
            ("s2", 26380),
            ("::1", 26381),
            ("X", 1),
            ("s-X", 2),
        )
        assert parse_sentinels("") == ()

    @pytest.mark.parametrize("item", ["s1", "s1:", "::1"])
    def test_entry_without_port_is_refused_clearly(self, item: str) -> None:
        with pytest.raises(RedisConfigError, match="has no port; write host:port"):
            parse_sentinels(f"s0:26379,{item}")

    @pytest.mark.parametrize("item", [":26379", "[]:26379"])
    def test_entry_without_host_is_refused(self, item: str) -> None:
        with pytest.raises(RedisConfigError, match="has no host"):
            parse_sentinels(item)

    @pytest.mark.parametrize("port", ["0", "65536", "x"])
    def test_bad_port(self, port: str) -> None:
        with pytest.raises(RedisConfigError) as caught:
            parse_sentinels(f"s1:{port}")
        assert str(caught.value) == (
            f"REDIS_SENTINELS: 's1:{port}': the port '{port}' is not a port number"
        )

    def test_sentinel_settings(self) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_SENTINELS": "s1:26379,s2:26379",
                "REDIS_SENTINEL_MASTER": "events",
                "REDIS_SENTINEL_PASSWORD": SENTINEL_SECRET,
                "REDIS_PASSWORD": SECRET,
                "REDIS_DB": "1",
            }
        )
        assert config.mode == "sentinel"
        assert config.sentinels == (("s1", 26379), ("s2", 26379))
        assert config.sentinel_master == "events"
        assert (config.password, config.sentinel_password, config.db) == (
            SECRET,
            SENTINEL_SECRET,
            1,
        )

    def test_master_name_defaults_to_mymaster(self) -> None:
        config = RedisSettings.from_env({"REDIS_SENTINELS": "s1:26379"})
        assert config.sentinel_master == "mymaster"


class TestDescribe:
    @pytest.mark.parametrize(
        "env, expected",
        [
            ({}, "redis:6379/0"),
            ({"REDIS_HOST": "cache", "REDIS_DB": "2"}, "cache:6379/2"),
            ({"REDIS_PASSWORD": SECRET}, "redis://:***@redis:6379/0"),
            (
                {"REDIS_URL": f"redis://user:{SECRET}@host:6379/0"},
                "redis://user:***@host:6379/0",
            ),
            ({"REDIS_URL": "redis://host"}, "redis://host:6379/0"),
            ({"REDIS_URL": "rediss://app@host:7000/1"}, "rediss://app@host:7000/1"),
            ({"REDIS_URL": "redis://[::1]"}, "redis://[::1]:6379/0"),
            (
                {"REDIS_SENTINELS": "h1:26379,h2:26379"},
                "sentinel://h1:26379,h2:26379/mymaster",
            ),
            (
                {
                    "REDIS_SENTINELS": "h1:26379",
                    "REDIS_SENTINEL_MASTER": "events",
                    "REDIS_PASSWORD": SECRET,
                    "REDIS_SENTINEL_PASSWORD": SENTINEL_SECRET,
                    "REDIS_TLS": "1",
                    "REDIS_DB": "3",
                },
                "sentinel+tls://:***@h1:26379/events?db=3",
            ),
        ],
    )
    def test_describe_never_shows_a_secret(
        self, env: Dict[str, str], expected: str
    ) -> None:
        described = RedisSettings.from_env(env).describe()
        assert described == expected
        assert SECRET not in described and SENTINEL_SECRET not in described


class TestCreateClient:
    """The keyword arguments each mode passes (nothing connects)."""

    def test_seed_style_client(self, redis_cls: MagicMock) -> None:
        config = RedisSettings.from_env({"REDIS_HOST": "cache", "REDIS_PORT": "7"})
        assert create_client(config) is redis_cls.return_value
        redis_cls.assert_called_once_with(
            host="cache",
            port=7,
            db=0,
            decode_responses=True,
            socket_connect_timeout=10.0,
            socket_timeout=5.0,
            health_check_interval=30,
            socket_keepalive=True,
        )

    def test_settings_from_the_environment(
        self, redis_cls: MagicMock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REDIS_URL", "redis://app:pw@cache:6390/4")
        monkeypatch.setenv("REDIS_SOCKET_TIMEOUT", "2.5")
        create_client(RedisSettings.from_env())
        kwargs = redis_cls.call_args.kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6390, 4)
        assert (kwargs["username"], kwargs["password"]) == ("app", "pw")
        assert kwargs["socket_timeout"] == 2.5

    def test_probe_is_quick_and_does_not_retry(self, redis_cls: MagicMock) -> None:
        create_client(RedisSettings(password=SECRET), probe=True)
        kwargs = redis_cls.call_args.kwargs
        assert kwargs["socket_connect_timeout"] == 2
        assert kwargs["socket_timeout"] == 2
        assert kwargs["retry"].get_retries() == 0
        assert kwargs["password"] == SECRET
        assert "health_check_interval" not in kwargs

    def test_tls_client(self, redis_cls: MagicMock, tls_files: Dict[str, str]) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_URL": "rediss://cache",
                "REDIS_TLS_CA_FILE": tls_files["ca"],
                "REDIS_TLS_CERT_FILE": tls_files["cert"],
                "REDIS_TLS_KEY_FILE": tls_files["key"],
            }
        )
        create_client(config)
        kwargs = redis_cls.call_args.kwargs
        assert kwargs["ssl"] is True
        assert kwargs["ssl_cert_reqs"] == "required"
        assert kwargs["ssl_ca_certs"] == tls_files["ca"]
        assert kwargs["ssl_certfile"] == tls_files["cert"]
        assert kwargs["ssl_keyfile"] == tls_files["key"]

    def test_tls_with_the_system_cas(self, redis_cls: MagicMock) -> None:
        create_client(RedisSettings.from_env({"REDIS_URL": "rediss://cache"}))
        kwargs = redis_cls.call_args.kwargs
        assert kwargs["ssl"] is True
        assert "ssl_ca_certs" not in kwargs and "ssl_certfile" not in kwargs

    def test_sentinel_client_comes_from_master_for(
        self, sentinel_cls: MagicMock, redis_cls: MagicMock
    ) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_SENTINELS": "s1:26379,s2:26380",
                "REDIS_SENTINEL_MASTER": "events",
                "REDIS_USERNAME": "app",
                "REDIS_PASSWORD": SECRET,
                "REDIS_SENTINEL_PASSWORD": SENTINEL_SECRET,
                "REDIS_DB": "2",
            }
        )
        client = create_client(config)
        redis_cls.assert_not_called()
        sentinel = sentinel_cls.return_value
        assert client is sentinel.master_for.return_value
        args, kwargs = sentinel_cls.call_args
        assert args == ([("s1", 26379), ("s2", 26380)],)
        assert kwargs == {
            "sentinel_kwargs": {
                "socket_connect_timeout": 5.0,
                "socket_timeout": 5.0,
                "socket_keepalive": True,
                "password": SENTINEL_SECRET,
            }
        }
        sentinel.master_for.assert_called_once_with(
            "events",
            db=2,
            decode_responses=True,
            socket_connect_timeout=10.0,
            socket_timeout=5.0,
            health_check_interval=30,
            socket_keepalive=True,
            username="app",
            password=SECRET,
        )

    def test_sentinel_probe_and_tls(
        self, sentinel_cls: MagicMock, tls_files: Dict[str, str]
    ) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_SENTINELS": "s1:26379",
                "REDIS_TLS": "1",
                "REDIS_TLS_CA_FILE": tls_files["ca"],
            }
        )
        create_client(config, probe=True)
        sentinel_kwargs = sentinel_cls.call_args.kwargs["sentinel_kwargs"]
        assert sentinel_kwargs["retry"].get_retries() == 0
        assert sentinel_kwargs["ssl"] is True
        assert sentinel_kwargs["ssl_ca_certs"] == tls_files["ca"]
        assert "password" not in sentinel_kwargs
        master_kwargs = sentinel_cls.return_value.master_for.call_args.kwargs
        assert master_kwargs["ssl"] is True
        assert master_kwargs["retry"].get_retries() == 0

    def test_real_sentinel_client_is_built_without_network(self) -> None:
        config = RedisSettings.from_env(
            {"REDIS_SENTINELS": "127.0.0.1:1", "REDIS_PASSWORD": SECRET}
        )
        client = create_client(config)
        try:
            pool = client.connection_pool
            assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
            assert pool.service_name == "mymaster"
            assert pool.connection_kwargs["password"] == SECRET
            assert pool.connection_kwargs["socket_timeout"] == 5.0
            assert SECRET not in repr(client)
        finally:
            client.close()


PLAIN = RedisSettings()


def ssl_error_as(link: str) -> redis.ConnectionError:
    """A connection error whose TLS failure is only its cause or its context."""
    error = redis.ConnectionError("Error connecting")
    setattr(error, link, ssl.SSLError(1, "handshake"))
    return error


class TestExplain:
    """One line each: what is wrong, no secret."""

    @pytest.fixture
    def config(self) -> RedisSettings:
        return RedisSettings.from_env(
            {"REDIS_URL": f"redis://app:{SECRET}@cache:6379/0"}
        )

    def test_wrong_password(self, config: RedisSettings) -> None:
        text = explain(
            redis.AuthenticationError(
                "invalid username-password pair or user is disabled."
            ),
            config,
        )
        assert text.startswith(
            "Redis at redis://app:***@cache:6379/0 refused the credentials "
            "(wrong password or unknown user 'app'"
        )
        assert SECRET not in text and "\n" not in text

    def test_wrong_password_without_a_user_name(self) -> None:
        assert explain(redis.AuthenticationError("WRONGPASS"), PLAIN) == (
            "Redis at redis:6379/0 refused the credentials (wrong password or "
            "unknown user; REDIS_URL/REDIS_USERNAME/REDIS_PASSWORD): WRONGPASS"
        )

    def test_a_secret_in_an_error_is_masked(self, config: RedisSettings) -> None:
        text = explain(redis.ConnectionError(f"oops {SECRET} here"), config)
        assert text == (
            "Cannot connect to Redis at redis://app:***@cache:6379/0: oops *** here"
        )

    @pytest.mark.parametrize(
        "message",
        [
            "Error 1 connecting to cache:6379. [SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed.",
            "Error 1 connecting to cache:6379. [SSL: WRONG_VERSION_NUMBER] wrong "
            "version number",
            "Error connecting to cache:6379: Certificate has expired",
        ],
        ids=["ssl-and-certificate", "ssl", "certificate"],
    )
    def test_tls_failure_by_message(self, config: RedisSettings, message: str) -> None:
        error = redis.ConnectionError(message)
        assert explain(error, config) == (
            "TLS with Redis at redis://app:***@cache:6379/0 failed (certificate, CA "
            f"or TLS setting; REDIS_TLS_*): {message}"
        )
        assert needs_attention(error) is True

    @pytest.mark.parametrize("link", ["__cause__", "__context__"])
    def test_tls_failure_by_cause_or_context(self, link: str) -> None:
        error = ssl_error_as(link)
        assert explain(error, PLAIN) == (
            "TLS with Redis at redis:6379/0 failed (certificate, CA or TLS setting; "
            "REDIS_TLS_*): Error connecting"
        )
        assert needs_attention(error) is True

    def test_a_chain_without_tls_is_not_a_tls_failure(self) -> None:
        try:
            try:
                raise OSError("Connection refused")
            except OSError:
                raise redis.ConnectionError("Error connecting")
        except redis.ConnectionError as error:
            assert explain(error, PLAIN) == (
                "Cannot connect to Redis at redis:6379/0: Error connecting"
            )
            assert needs_attention(error) is False

    def test_tls_mismatches_get_a_hint(self) -> None:
        tls = RedisSettings.from_env({"REDIS_URL": "rediss://cache"})
        plain = RedisSettings.from_env({"REDIS_URL": "redis://cache"})
        timeout = redis.TimeoutError("Timeout connecting to server")
        reset = redis.ConnectionError("Error while reading: Connection reset by peer")
        assert explain(timeout, tls) == (
            "Redis at rediss://cache:6379/0 did not answer in time: Timeout "
            "connecting to server (TLS is on: does that port speak TLS?)"
        )
        assert explain(timeout, plain) == (
            "Redis at redis://cache:6379/0 did not answer in time: Timeout "
            "connecting to server"
        )
        assert explain(reset, plain) == (
            "Cannot connect to Redis at redis://cache:6379/0: Error while reading: "
            "Connection reset by peer (if that port wants TLS: rediss:// or "
            "REDIS_TLS=1)"
        )
        assert explain(reset, tls) == (
            "Cannot connect to Redis at rediss://cache:6379/0: Error while reading: "
            "Connection reset by peer"
        )

    def test_all_sentinels_down(self) -> None:
        config = RedisSettings.from_env({"REDIS_SENTINELS": "h1:26379,h2:26379"})
        error = redis.sentinel.MasterNotFoundError(
            "No master found for 'mymaster' : <Redis h1> - ConnectionError('x')"
        )
        assert explain(error, config) == (
            "No Sentinel of sentinel://h1:26379,h2:26379/mymaster answered, so the "
            "master 'mymaster' is unknown (Sentinels down or unreachable, or "
            "REDIS_SENTINELS wrong)"
        )

    def test_sentinels_without_a_master(self) -> None:
        config = RedisSettings.from_env(
            {"REDIS_SENTINELS": "h1:26379", "REDIS_SENTINEL_MASTER": "events"}
        )
        error = redis.sentinel.MasterNotFoundError("No master found for 'events'")
        assert explain(error, config) == (
            "The Sentinels of sentinel://h1:26379/events know no healthy master "
            "'events' (a failover in progress, or REDIS_SENTINEL_MASTER wrong)"
        )

    @pytest.mark.parametrize(
        "error, expected",
        [
            (
                redis.TimeoutError("Timeout reading"),
                "Redis at redis:6379/0 did not answer in time: Timeout reading",
            ),
            (
                ConnectionRefusedError("refused"),
                "Cannot connect to Redis at redis:6379/0: refused",
            ),
            (
                redis.exceptions.NoPermissionError("NOPERM no publish"),
                "The Redis ACL user at redis:6379/0 lacks a permission: NOPERM no "
                "publish",
            ),
            (
                RedisConfigError("REDIS_URL names no host"),
                "Invalid Redis settings: REDIS_URL names no host",
            ),
            (
                ValueError("odd\nthing"),
                "Redis at redis:6379/0 failed: ValueError: odd thing",
            ),
        ],
    )
    def test_other_failures(self, error: Exception, expected: str) -> None:
        assert explain(error, PLAIN) == expected

    def test_module_constants(self) -> None:
        assert redis_connection.MASK == "***"


@pytest.mark.parametrize("kwargs_of", [connection_kwargs, sentinel_kwargs])
def test_a_probe_gives_up_after_its_first_failure(kwargs_of: Callable) -> None:
    retry = kwargs_of(RedisSettings(), True)["retry"]
    tries = []

    def connect() -> None:
        tries.append(1)
        raise redis.ConnectionError("refused")

    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(connect, lambda error: None)
    assert tries == [1]


class TestSentinelKwargs:
    """What the connections to the Sentinels themselves get."""

    @pytest.mark.parametrize(
        "probe, timeout", [(False, 3.5), (True, 2.0)], ids=["client", "probe"]
    )
    def test_timeouts_are_the_clients_or_the_probes(
        self, probe: bool, timeout: float
    ) -> None:
        config = RedisSettings.from_env(
            {"REDIS_SENTINELS": "s1:26379", "REDIS_SOCKET_TIMEOUT": "3.5"}
        )
        kwargs = sentinel_kwargs(config, probe)
        assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (
            timeout,
            timeout,
        )
        assert ("retry" in kwargs) is probe

    def test_their_own_credentials(self) -> None:
        config = RedisSettings.from_env(
            {
                "REDIS_SENTINELS": "s1:26379",
                "REDIS_USERNAME": "app",
                "REDIS_PASSWORD": SECRET,
                "REDIS_SENTINEL_USERNAME": "watcher",
                "REDIS_SENTINEL_PASSWORD": SENTINEL_SECRET,
            }
        )
        kwargs = sentinel_kwargs(config, False)
        assert (kwargs["username"], kwargs["password"]) == ("watcher", SENTINEL_SECRET)


class TestHelp:
    """``osism api --help`` and ``osism listener --help`` name the settings and
    show no secret, whatever the environment holds."""

    @pytest.mark.parametrize("command", ["api", "listener"])
    def test_help_names_the_redis_settings(
        self,
        command: str,
        capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from osism.cli.main import main

        monkeypatch.setenv("REDIS_URL", f"redis://app:{SECRET}@cache:6379/0")
        monkeypatch.setenv("REDIS_PASSWORD", SECRET)
        monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", SENTINEL_SECRET)
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for name in (
            "REDIS_URL",
            "rediss://",
            "REDIS_PASSWORD",
            "REDIS_SENTINELS",
            "REDIS_SENTINEL_MASTER",
            "REDIS_SENTINEL_PASSWORD",
            "REDIS_TLS_CA_FILE",
            "REDIS_TLS_CERT_FILE",
            "REDIS_TLS_KEY_FILE",
        ):
            assert name in out
        assert SECRET not in out and SENTINEL_SECRET not in out


class TestParse:
    def test_good_settings_are_returned(self) -> None:
        config = RedisSettings.parse({"REDIS_HOST": "cache", "REDIS_DB": "2"})
        assert (config.host, config.port, config.db, config.error) == (
            "cache",
            6379,
            2,
            None,
        )
