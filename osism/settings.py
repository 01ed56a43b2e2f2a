"""The settings as module constants: the face of ``osism.config`` that the
modules (and upstream's ``osism.settings``: ``REDIS_HOST``, ``REDIS_PORT``,
``REDIS_DB``) read as ``settings.NAME``.

Filled from one load of the model when this module is first imported.
Importing never fails: a value that cannot be used is replaced by its default
and kept in ``ERRORS`` (logged once); every process entry point checks the
environment strictly first (``require``) and refuses to start on the same
errors, with exit status 2.
"""

import logging
import math
import sys
from typing import Any, Dict, Mapping, Optional, TextIO, Tuple

from osism import config

logger = logging.getLogger("osism.settings")

CONFIG, ERRORS = config.load_lenient()
for _error in ERRORS:
    # DEBUG only: the process entry points say it, as the reason they stop.
    logger.debug("%s; using the default here (require() refuses it)", _error)

# Upstream's names: where Redis is (from REDIS_URL when that is set).
_ENDPOINT = CONFIG.redis.endpoint()
REDIS_HOST: str = _ENDPOINT["host"]
REDIS_PORT: int = _ENDPOINT["port"]
REDIS_DB: int = _ENDPOINT["db"]

# Bound of the manager's event queue (events waiting for the broadcaster).
EVENT_QUEUE_SIZE = CONFIG.fanout.event_queue_size
# Bound of each client's outbox; a client that falls this far behind is closed.
OUTBOX_SIZE = CONFIG.fanout.outbox_size
# Bound of each client's outbox in bytes (what its queued messages hold).
OUTBOX_BYTES = CONFIG.fanout.outbox_bytes
# Bound of the bridge's local queue (no Redis, or Redis down).
BRIDGE_QUEUE_SIZE = CONFIG.event_log.bridge_queue_size
# Seconds between heartbeats sent to every client; 0 disables them.
HEARTBEAT_INTERVAL = CONFIG.fanout.heartbeat_interval
# Pause between the subscriber's reconnect attempts.
SUBSCRIBER_RETRY_DELAY = CONFIG.event_log.subscriber_retry_delay
# Longest pause between two restarts of a Redis subscriber that gave up.
SUBSCRIBER_RESTART_MAX_DELAY = CONFIG.event_log.subscriber_restart_max_delay
# Name prefix of the event log in Redis: the pub/sub channel is the prefix,
# the stream "<prefix>:log", the id keys "<prefix>:id:<event id>".
EVENTS_PREFIX = CONFIG.event_log.events_prefix
# Events the log keeps (approximately: Redis trims whole blocks).
EVENT_HISTORY_SIZE = CONFIG.event_log.history_size
# Seconds an event id is remembered, so a redelivered notification is not
# logged twice.
EVENT_DEDUPE_SECONDS = CONFIG.event_log.dedupe_seconds
# Most events one resuming client is replayed (more: the newest part).
REPLAY_LIMIT = CONFIG.fanout.replay_limit
# Live events held for one client while its replay is sent; past it: 1013.
RESUME_BUFFER_SIZE = CONFIG.fanout.resume_buffer_size
# Seconds between two system channel messages when nothing changed.
SYSTEM_INTERVAL = CONFIG.fanout.system_interval

# Every setting by variable name: what env_int/env_float/env_list answer.
_BY_NAME: Dict[str, Any] = {
    str(info.validation_alias): getattr(getattr(CONFIG, group), attribute)
    for group, attribute, info in config.fields()
}


def require(stream: Optional[TextIO] = None) -> config.Settings:
    """The settings of the process environment, checked strictly: on a value
    that cannot be used, its one line on ``stream`` (stderr) and SystemExit(2).
    What every process entry point calls before it serves."""
    try:
        return config.load()
    except config.ConfigError as exc:
        print(f"osism: invalid configuration: {exc}", file=stream or sys.stderr)
        raise SystemExit(2) from None


def env_int(
    name: str, default: int, minimum: int = 0, env: Optional[Mapping[str, str]] = None
) -> int:
    """An integer setting: the model's value of ``name`` (``default`` for a
    name the model does not know), or parsed from ``env`` when given."""
    if env is None:
        return int(_BY_NAME.get(name, default))
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        logger.error("%s=%r is not an integer; using %d", name, raw, default)
        return default
    if value < minimum:
        logger.error("%s=%d is below %d; using %d", name, value, minimum, default)
        return default
    return value


def env_float(
    name: str,
    default: float,
    minimum: float = 0.0,
    env: Optional[Mapping[str, str]] = None,
) -> float:
    """A number setting: the model's value of ``name`` (``default`` for a name
    the model does not know), or parsed from ``env`` when given."""
    if env is None:
        return float(_BY_NAME.get(name, default))
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        logger.error("%s=%r is not a number; using %s", name, raw, default)
        return default
    if not math.isfinite(value):
        logger.error("%s=%r is not a finite number; using %s", name, raw, default)
        return default
    if value < minimum:
        logger.error("%s=%s is below %s; using %s", name, value, minimum, default)
        return default
    return value


def env_list(
    name: str,
    default: Tuple[str, ...] = (),
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[str, ...]:
    """A comma-separated list setting: the model's value of ``name``, or
    parsed from ``env`` when given; blanks removed."""
    if env is None:
        return tuple(_BY_NAME.get(name, default))
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())
