"""What the WebSocket manager reports of itself: ``WebSocketManager.status()``.

One frozen value, read alike by ``GET /v1/status``, ``GET /metrics`` and the
system channel, so that a renamed figure is a type error, not a quiet 0.
``as_dict`` gives the JSON of ``/v1/status``: the field names, in this order.
"""

from dataclasses import asdict, dataclass
from typing import Any, Dict


@dataclass(frozen=True)
class ManagerStatus:
    """The manager's figures at one moment (counters since it was built)."""

    # Event clients connected now.
    connections: int = 0
    broadcaster_running: bool = False
    # Events waiting for the broadcaster, and the queue's bound.
    queued_events: int = 0
    queue_size: int = 0
    # Events dropped at the full queue (the oldest goes).
    dropped_events: int = 0
    # Clients closed with 1013 because their outbox overflowed.
    slow_disconnects: int = 0
    # Events handed to clients (one per client and event).
    delivered: int = 0
    skipped_heartbeats: int = 0
    # Resume requests answered, and the events they sent.
    resumes: int = 0
    replayed_events: int = 0
    # Events the manager took from the bridge.
    received: int = 0

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)
