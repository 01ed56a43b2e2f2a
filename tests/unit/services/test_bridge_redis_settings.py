"""The bridge with production Redis settings: URL, Sentinel, refused connections.

Clients are built by redis_connection with ``redis.Redis`` or
``redis.sentinel.Sentinel`` patched: nothing connects, no thread starts.
"""

import logging
import threading
from typing import Any, List, Optional
from unittest.mock import MagicMock

import pytest
import redis
import redis.sentinel

from osism.services.bridge.link import _redis_answers
from osism.services.event_bridge import EventBridge
from osism.services.bridge.redis_client import needs_attention

LOGGER = "osism.event_bridge"
SECRET = "Pw-5e7d-secret"


def lines(caplog: pytest.LogCaptureFixture, level: int) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


@pytest.fixture
def caplog_bridge(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def test_url_with_password_connects_and_status_masks_it(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://osism:{SECRET}@cache:6390/1")
    bridge = EventBridge()
    kwargs = redis_cls.call_args.kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6390, 1)
    assert (kwargs["username"], kwargs["password"]) == ("osism", SECRET)
    assert bridge._redis_client is redis_cls.return_value
    assert bridge.status().redis == "redis://osism:***@cache:6390/1"
    assert lines(caplog_bridge, logging.INFO) == [
        "Connected to Redis at redis://osism:***@cache:6390/1"
    ]


def test_wrong_password_is_one_clear_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://osism:{SECRET}@cache:6390/1")
    redis_cls.return_value.ping.side_effect = redis.AuthenticationError(
        "invalid username-password pair or user is disabled."
    )
    bridge = EventBridge()
    assert bridge._redis_client is None and bridge._redis_subscriber is None
    [line] = lines(caplog_bridge, logging.ERROR)
    assert line.startswith(
        "Failed to connect to Redis: "
        "Redis at redis://osism:***@cache:6390/1 refused the credentials"
    )
    assert line.endswith("; retrying with back-off")
    assert SECRET not in caplog_bridge.text


def test_sentinel_settings_give_a_master_for_client(
    monkeypatch: pytest.MonkeyPatch, sentinel_cls: MagicMock, redis_cls: MagicMock
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379,s2:26379")
    monkeypatch.setenv("REDIS_PASSWORD", SECRET)
    bridge = EventBridge()
    master = sentinel_cls.return_value.master_for.return_value
    redis_cls.assert_not_called()
    assert bridge._redis_client is master
    assert bridge._redis_subscriber is master.pubsub.return_value
    assert bridge.status().redis == "sentinel://:***@s1:26379,s2:26379/mymaster"


def test_unreachable_sentinels_are_explained(
    monkeypatch: pytest.MonkeyPatch, sentinel_cls: MagicMock, caplog_bridge: Any
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379")
    master = sentinel_cls.return_value.master_for.return_value
    master.ping.side_effect = redis.sentinel.MasterNotFoundError(
        "No master found for 'mymaster' : <s1> - ConnectionError('refused')"
    )
    bridge = EventBridge()
    assert bridge._redis_client is None
    [line] = lines(caplog_bridge, logging.ERROR)
    assert line.startswith(
        "Failed to connect to Redis: "
        "No Sentinel of sentinel://s1:26379/mymaster answered"
    )


def test_invalid_settings_do_not_stop_the_bridge(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1")
    bridge = EventBridge()
    redis_cls.assert_not_called()
    assert bridge._redis_client is None
    [line] = lines(caplog_bridge, logging.ERROR)
    assert line.startswith(
        "Failed to connect to Redis: "
        "Invalid Redis settings: REDIS_SENTINELS: 's1' has no port"
    )
    assert bridge.status().redis == (
        "invalid Redis settings (REDIS_SENTINELS: 's1' has no port; write "
        "host:port, e.g. sentinel-1:26379)"
    )
    assert bridge.add_event("a.b", {}) is True  # held in this process


def test_watcher_probe_uses_the_same_settings_quietly(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    monkeypatch.setenv("REDIS_URL", f"rediss://:{SECRET}@cache")
    redis_cls.return_value.ping.side_effect = redis.AuthenticationError("WRONGPASS")
    assert _redis_answers() is False
    kwargs = redis_cls.call_args.kwargs
    assert kwargs["ssl"] is True and kwargs["password"] == SECRET
    assert kwargs["retry"].get_retries() == 0
    assert lines(caplog_bridge, logging.ERROR) == []
    assert lines(caplog_bridge, logging.DEBUG) == [
        "Redis does not answer yet: Redis at rediss://:***@cache:6379/0 refused the "
        "credentials (wrong password or unknown user; "
        "REDIS_URL/REDIS_USERNAME/REDIS_PASSWORD): WRONGPASS"
    ]


class _Stop(threading.Event):
    """A shutdown event whose wait() returns True (stop) after ``n`` waits."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.waits = 0

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.waits += 1
        return self.waits >= self.n


def test_watcher_says_once_why_redis_refuses(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://osism:{SECRET}@cache:6390/1")
    redis_cls.return_value.ping.side_effect = redis.AuthenticationError("WRONGPASS")
    bridge = EventBridge(connect=False)
    bridge._shutdown_event = _Stop(3)
    bridge._watch_redis()
    assert redis_cls.return_value.ping.call_count == 3
    [line] = lines(caplog_bridge, logging.ERROR)
    assert line.startswith(
        "Redis at redis://osism:***@cache:6390/1 refused the credentials"
    )
    assert line.endswith(
        "; events stay in this process (embedded mode), trying again in the "
        "background"
    )
    assert SECRET not in caplog_bridge.text


def test_watcher_says_again_when_the_reason_changes(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    redis_cls.return_value.ping.side_effect = [
        redis.AuthenticationError("WRONGPASS"),
        redis.exceptions.NoPermissionError("NOPERM ping"),
    ]
    bridge = EventBridge(connect=False)
    bridge._shutdown_event = _Stop(2)
    bridge._watch_redis()
    assert lines(caplog_bridge, logging.ERROR) == [
        "Redis at redis:6379/0 refused the credentials (wrong password or unknown "
        "user; REDIS_URL/REDIS_USERNAME/REDIS_PASSWORD): WRONGPASS; events stay in "
        "this process (embedded mode), trying again in the background",
        "The Redis ACL user at redis:6379/0 lacks a permission: NOPERM ping; events "
        "stay in this process (embedded mode), trying again in the background",
    ]


def test_watcher_stays_quiet_while_redis_is_just_not_there(
    monkeypatch: pytest.MonkeyPatch, redis_cls: MagicMock, caplog_bridge: Any
) -> None:
    redis_cls.return_value.ping.side_effect = redis.ConnectionError("refused")
    bridge = EventBridge(connect=False)
    bridge._shutdown_event = _Stop(2)
    bridge._watch_redis()
    assert lines(caplog_bridge, logging.ERROR) == []
    [info] = [line for line in lines(caplog_bridge, logging.INFO) if "No Redis" in line]
    assert info.startswith("No Redis answers at redis:6379/0")


@pytest.mark.parametrize(
    "error, attention",
    [
        (redis.AuthenticationError("WRONGPASS"), True),
        (redis.exceptions.NoPermissionError("NOPERM"), True),
        (redis.sentinel.MasterNotFoundError("No master found"), True),
        (redis.ConnectionError("[SSL: CERTIFICATE_VERIFY_FAILED] x"), True),
        (redis.ConnectionError("Connection refused"), False),
        (redis.TimeoutError("Timeout connecting to server"), False),
    ],
)
def test_needs_attention(error: Exception, attention: bool) -> None:
    assert needs_attention(error) is attention
