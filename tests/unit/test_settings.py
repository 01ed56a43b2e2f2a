"""osism.settings: the constants from the model, and require()."""

import importlib
import io
import logging
import sys
from typing import Any

import pytest

import osism
from osism import settings


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
