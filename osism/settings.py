"""Configuration from the environment, read once at import.

Every setting has a default that works on a developer's machine; a value that
cannot be parsed is reported and replaced by the default, so a typo never
stops a process from starting.
"""

import logging
import math
import os
from typing import Mapping, Optional, Tuple

logger = logging.getLogger("osism.settings")


def env_int(
    name: str, default: int, minimum: int = 0, env: Optional[Mapping[str, str]] = None
) -> int:
    """An integer from the environment (or ``env``), at least ``minimum``."""
    raw = (os.environ if env is None else env).get(name)
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
    """A finite number from the environment (or ``env``), at least ``minimum``."""
    raw = (os.environ if env is None else env).get(name)
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
    """A comma-separated list from the environment (or ``env``), blanks removed."""
    raw = (os.environ if env is None else env).get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# Bound of the manager's event queue (events waiting for the broadcaster).
EVENT_QUEUE_SIZE = env_int("EVENT_QUEUE_SIZE", 10000, minimum=1)
# Bound of each client's outbox; a client that falls this far behind is closed.
OUTBOX_SIZE = env_int("WEBSOCKET_OUTBOX_SIZE", 1000, minimum=1)
# Bound of the bridge's local queue (no Redis, or Redis down).
BRIDGE_QUEUE_SIZE = env_int("BRIDGE_QUEUE_SIZE", 10000, minimum=1)
# Seconds between heartbeats sent to every client; 0 disables them.
HEARTBEAT_INTERVAL = env_float("HEARTBEAT_INTERVAL", 30.0)
# Longest pause between two restarts of a Redis subscriber that gave up.
SUBSCRIBER_RESTART_MAX_DELAY = env_float("SUBSCRIBER_RESTART_MAX_DELAY", 30.0, 0.1)
# Name prefix of the event log in Redis: the pub/sub channel is the prefix,
# the stream "<prefix>:log", the id keys "<prefix>:id:<event id>".
EVENTS_PREFIX = os.environ.get("EVENTS_PREFIX", "").strip() or "osism:events"
# Events the log keeps (approximately: Redis trims whole blocks).
EVENT_HISTORY_SIZE = env_int("EVENT_HISTORY_SIZE", 10000, minimum=1)
# Seconds an event id is remembered, so a redelivered notification is not
# logged twice.
EVENT_DEDUPE_SECONDS = env_int("EVENT_DEDUPE_SECONDS", 3600, minimum=1)
# Most events one resuming client is replayed (more: the newest part).
REPLAY_LIMIT = env_int("REPLAY_LIMIT", 5000, minimum=1)
# Live events held for one client while its replay is sent; past it: 1013.
RESUME_BUFFER_SIZE = env_int("RESUME_BUFFER_SIZE", 10000, minimum=1)
