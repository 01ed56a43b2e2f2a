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

import sys
from typing import Optional, TextIO

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


def require(stream: Optional[TextIO] = None) -> config.Settings:
    """The settings of the process environment, checked strictly: on a value
    that cannot be used, its one line on ``stream`` (stderr) and SystemExit(2).
    What every process entry point calls before it serves."""
    try:
        return config.load()
    except config.ConfigError as exc:
        print(f"osism: invalid configuration: {exc}", file=stream or sys.stderr)
        raise SystemExit(2) from None
