"""What the event bridge reports of itself: ``EventBridge.status()``.

One frozen value, read alike by ``GET /v1/status``, ``GET /metrics`` and the
system channel, so that a renamed figure is a type error, not a quiet 0.
``as_dict`` gives the JSON of ``/v1/status``: the field names, in this order.
"""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Literal, Optional

Mode = Literal["redis", "local"]


@dataclass(frozen=True)
class BridgeStatus:
    """The bridge's state and figures at one moment (counters since start)."""

    # "redis": events go through Redis; "local": embedded, in this process.
    mode: Mode = "local"
    # Where Redis is (or is looked for), secrets masked.
    redis: str = ""
    # A Redis client answered when last tried (it may be down since).
    redis_connected: bool = False
    # The subscription to the channel is confirmed and live.
    subscribed: bool = False
    subscriber_alive: bool = False
    processor_alive: bool = False
    watching_for_redis: bool = False
    subscriber_restarts: int = 0
    # The local hand-off queue: waiting events, and its bound.
    local_queue: int = 0
    local_queue_size: int = 0
    # Events in the in-memory log (embedded mode).
    local_history: int = 0
    # Events this process put in the log.
    published: int = 0
    # Redelivered events the log recognised and did not append again.
    duplicates: int = 0
    # Events dropped at the full hand-off queue or for want of a loop.
    dropped_events: int = 0
    # The position of the last event the subscriber delivered.
    last_position: Optional[str] = None
    # Events delivered from the log after a (re)subscribe.
    caught_up: int = 0
    # Times the log no longer reached back to the last position.
    missed_warnings: int = 0

    def delivering(self) -> bool:
        """Whether events reach the manager: in Redis mode through a live
        subscription, embedded through the processor thread."""
        if self.mode == "redis":
            return self.subscribed
        return self.processor_alive

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)
