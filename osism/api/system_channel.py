"""The system channel ``/v1/events/system``: the service's own state, pushed.

A client gets one ``{"type": "system", ...}`` message at connect, another
whenever the state changes (Redis lost or back, the subscription live or not,
a new warning) and one every ``SYSTEM_INTERVAL`` seconds with fresh figures.

Everything is read from ``manager.status()`` (a ``ManagerStatus``) and
``bridge.status()`` (a ``BridgeStatus``): typed, so that a renamed figure is
a type error rather than a quiet 0 in the message.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, MutableMapping, Optional, Tuple

from fastapi import WebSocket

from osism import settings
from osism.services.bridge.status import BridgeStatus
from osism.services.fanout.status import ManagerStatus

logger = logging.getLogger("osism.system")

SYSTEM_PATH = "/v1/events/system"
# Seconds between two pushes when nothing changed.
SYSTEM_INTERVAL = settings.SYSTEM_INTERVAL
# Seconds between two looks at the state (a change is pushed within this).
SAMPLE_INTERVAL = 0.5
# A send that takes longer than this ends the connection.
SEND_TIMEOUT = 5.0

ManagerSource = Callable[[], ManagerStatus]
BridgeSource = Callable[[], BridgeStatus]


def iso(timestamp: float) -> str:
    """A wall-clock time as the wire carries it: ISO 8601 UTC with "Z"."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def clock(timestamp: float) -> str:
    """``12:03:14`` (UTC), for the warning texts."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%H:%M:%S")


def redis_state(bridge: BridgeStatus) -> Tuple[str, bool, bool]:
    """(mode, connected, subscription live) from a bridge status."""
    live = bridge.subscribed
    # Connected: a client and a live subscription, which is what tells that
    # Redis answers now (the client stays until a reconnect fails).
    connected = bridge.mode == "redis" and bridge.redis_connected and live
    return bridge.mode, connected, live


@dataclass
class _Since:
    """A value and the wall-clock time it took that value."""

    value: Any = None
    since: float = field(default_factory=time.time)

    def update(self, value: Any, now: float) -> None:
        if value != self.value:
            self.value, self.since = value, now


class SystemState:
    """Samples the statuses; tracks since when, and how fast events flow.

    One per app; shared by every system client, so "since" is the same for
    all of them whenever they connected.
    """

    def __init__(self, manager: ManagerSource, bridge: BridgeSource) -> None:
        self._manager = manager
        self._bridge = bridge
        self._connected = _Since()
        self._live = _Since()
        self._last: Optional[Tuple[float, int, int]] = None
        self._rates = (0.0, 0.0)

    def snapshot(self, now: Optional[float] = None) -> Dict[str, Any]:
        """The message a client gets now (without ``reason``)."""
        now = time.time() if now is None else now
        manager = self._manager()
        bridge = self._bridge()
        mode, connected, live = redis_state(bridge)
        self._connected.update(connected, now)
        self._live.update(live, now)
        events_in = manager.received
        events_out = manager.delivered
        self._update_rates(now, events_in, events_out)
        dropped = manager.dropped_events + bridge.dropped_events
        missed = bridge.missed_warnings
        warnings = self._warnings(mode, connected, missed, dropped)
        return {
            "type": "system",
            "timestamp": iso(now),
            "state": _overall(mode, connected, live),
            "redis": {
                "mode": mode,
                "address": bridge.redis,
                "connected": connected,
                "since": iso(self._connected.since),
            },
            "subscription": {
                "live": live,
                "since": iso(self._live.since),
                "restarts": bridge.subscriber_restarts,
            },
            "connections": manager.connections,
            "events_in": events_in,
            "events_out": events_out,
            "events_in_per_second": round(self._rates[0], 2),
            "events_out_per_second": round(self._rates[1], 2),
            "dropped_events": dropped,
            "slow_clients_closed": manager.slow_disconnects,
            "missed": missed,
            "warnings": warnings,
        }

    def _update_rates(self, now: float, events_in: int, events_out: int) -> None:
        last = self._last
        if last is None:
            self._last = (now, events_in, events_out)
            return
        elapsed = now - last[0]
        if elapsed >= 1.0:
            self._rates = (
                max(0, events_in - last[1]) / elapsed,
                max(0, events_out - last[2]) / elapsed,
            )
            self._last = (now, events_in, events_out)

    def _warnings(
        self, mode: str, connected: bool, missed: int, dropped: int
    ) -> List[Dict[str, Any]]:
        warnings: List[Dict[str, Any]] = []
        # A dead subscription is this warning too: Redis counts as connected
        # only while the subscription is live (redis_state).
        if mode == "redis" and not connected:
            since = self._connected.since
            warnings.append(
                {
                    "code": "redis_unreachable",
                    "since": iso(since),
                    "message": f"Redis unreachable since {clock(since)} UTC: "
                    "events are delayed",
                }
            )
        if missed:
            warnings.append(
                {
                    "code": "events_missed",
                    "count": missed,
                    "message": f"{missed} events may have been missed",
                }
            )
        if dropped:
            warnings.append(
                {
                    "code": "events_dropped",
                    "count": dropped,
                    "message": f"{dropped} events dropped at a full queue",
                }
            )
        return warnings


def _overall(mode: str, connected: bool, live: bool) -> str:
    if mode != "redis":
        return "embedded"
    return "ok" if connected and live else "degraded"


def _essence(message: Mapping[str, Any]) -> Tuple[Any, ...]:
    """What makes a change worth pushing at once (not the moving figures)."""
    return (
        message["state"],
        message["redis"]["connected"],
        message["subscription"]["live"],
        json.dumps(
            [(w["code"], w.get("count")) for w in message["warnings"]],
        ),
    )


async def serve_system_client(
    websocket: WebSocket,
    state: SystemState,
    interval: Optional[float] = None,
    sample: Optional[float] = None,
) -> None:
    """Push the state to an accepted client until it goes away.

    The channel takes no client messages: each is answered with an error
    reply, and the connection stays open.
    """
    interval = SYSTEM_INTERVAL if interval is None else interval
    sample = SAMPLE_INTERVAL if sample is None else sample
    receiver: "asyncio.Task[MutableMapping[str, Any]]" = asyncio.create_task(
        websocket.receive()
    )
    last_essence: Optional[Tuple[Any, ...]] = None
    # Read only once a message was sent, which sets it: any start value is
    # the same (pragma).
    last_sent = 0.0  # pragma: no mutate
    reason = "connect"
    try:
        while True:
            message = state.snapshot()
            essence = _essence(message)
            now = time.monotonic()
            if last_essence is not None and essence != last_essence:
                reason = "change"
            elif last_essence is not None and now - last_sent >= interval:
                reason = "interval"
            if reason:
                message["reason"] = reason
                await asyncio.wait_for(
                    websocket.send_text(json.dumps(message)), SEND_TIMEOUT
                )
                last_essence, last_sent, reason = essence, now, ""
            await asyncio.wait({receiver}, timeout=sample)
            if receiver.done():
                received = receiver.result()
                if received["type"] == "websocket.disconnect":
                    return
                await asyncio.wait_for(
                    websocket.send_text(
                        json.dumps(
                            {
                                "type": "error",
                                "error": "the system channel takes no messages",
                            }
                        )
                    ),
                    SEND_TIMEOUT,
                )
                receiver = asyncio.create_task(websocket.receive())
    except asyncio.TimeoutError:
        logger.warning("System channel client too slow; closing it")
    except Exception as exc:
        logger.debug("System channel client went away: %s", exc)
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
