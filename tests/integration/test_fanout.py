"""The fan-out end to end: batched frames for the clients that ask for them,
one event per frame for everyone else, and an outbox bounded in bytes that
lets a stalled client go before it pins more memory than the bound."""

import asyncio
import json
from typing import Any, List

import pytest
import redis.asyncio

from tests.integration.deadlines import async_wait_until, deadline
from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.scenario import (
    User,
    connect,
    ironic,
)
from tests.integration.servers import RedisServer
from tests.integration.stall import Stall, run_stall

pytestmark = pytest.mark.integration

EVENT = "baremetal.node.power_set.end"
DONE = "baremetal.node.done"
COUNT = 300
OUTBOX_BYTES = 1 << 20
AFTER_EVICTION = 20
STALL = Stall(
    event_type=EVENT,
    readers=10,
    max_events=400,  # 25 MiB of events: far beyond the byte bound
    after_eviction=AFTER_EVICTION,
    within=60.0,
    evicted_within=50.0,
)
# The stalled client may pin OUTBOX_BYTES; what else grows is the allocator's
# slack and the other clients' in-flight events.
RSS_BUDGET = OUTBOX_BYTES + (16 << 20)


async def publish_burst(client: redis.asyncio.Redis, count: int) -> None:
    """``count`` events and then DONE, pipelined: they arrive faster than one
    frame at a time would go out, so the writers find several queued."""
    async with client.pipeline(transaction=False) as pipe:
        for seq in range(count):
            message = json.dumps(
                {"event_type": EVENT, "payload": ironic("node-1", seq=seq)}
            )
            pipe.publish("osism:events", message)
        pipe.publish(
            "osism:events", json.dumps({"event_type": DONE, "payload": ironic("n")})
        )
        await pipe.execute()


async def read_frames_until_done(user: User) -> List[Any]:
    """Every frame the client gets until the one holding DONE, decoded."""
    frames: List[Any] = []
    while True:
        async with asyncio.timeout(deadline(20.0)):
            frames.append(json.loads(await user.ws.recv()))
        last = frames[-1]
        events = last if isinstance(last, list) else [last]
        if any(event.get("event_type") == DONE for event in events):
            return frames


@pytest.mark.asyncio
async def test_batch_client_gets_arrays_of_every_event_in_order(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    api = start_api()
    redis = redis_server.async_client()
    try:
        async with connect(api.ws_url + "?batch=1", "batched") as batched:
            async with connect(api.ws_url, "plain") as plain:
                await batched.send({"action": "set_filters", "event_filters": []})
                reply = json.loads(
                    await asyncio.wait_for(batched.ws.recv(), deadline(5.0))
                )
                await async_wait_until(lambda: api.has_connections(2), timeout=10.0)
                batched_frames, plain_frames, _ = await asyncio.gather(
                    read_frames_until_done(batched),
                    read_frames_until_done(plain),
                    publish_burst(redis, COUNT),
                )
    finally:
        await redis.aclose()

    # In batch mode even a reply comes as an array.
    assert reply == [
        {
            "type": "filter_update",
            "status": "success",
            "event_filters": [],
            "node_filters": [],
            "service_filters": [],
            "priority_filters": [],
        }
    ]
    assert all(isinstance(frame, list) and frame for frame in batched_frames)
    events = [event for frame in batched_frames for event in frame]
    assert [e["data"]["seq"] for e in events[:-1]] == list(range(COUNT))
    assert events[-1]["event_type"] == DONE
    assert all(
        set(e) == {"id", "timestamp", "event_type", "source", "node_name", "data"}
        for e in events
    )
    # The default client: one event per frame, the same events in the same order.
    assert all(isinstance(frame, dict) for frame in plain_frames)
    assert [e["id"] for e in plain_frames] == [e["id"] for e in events]
    assert len(batched_frames) < len(plain_frames)
    report_figure(
        "batched frames: events per frame",
        f"{len(events) / len(batched_frames):.1f}",
        f"({len(events)} events in {len(batched_frames)} frames)",
    )
    assert api.tracebacks() == []


@pytest.mark.asyncio
async def test_stalled_client_is_closed_at_the_byte_bound_and_nobody_waits(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    """Outboxes of 100000 events, 1 MiB: only the byte bound can close the
    client that never reads. The readers get every event; the stalled client
    is closed with 1013; the server's memory grows by about the bound."""
    api = start_api(
        env={
            "WEBSOCKET_OUTBOX_SIZE": "100000",
            "WEBSOCKET_OUTBOX_BYTES": str(OUTBOX_BYTES),
        }
    )
    outcome = await run_stall(api, redis_server, STALL)
    published, stalled_seqs = outcome.published, outcome.stalled_seqs
    reader_seqs, status = outcome.reader_seqs, outcome.status
    baseline, peak = outcome.baseline_rss, outcome.peak_rss

    for seqs in reader_seqs:
        assert seqs == list(range(published))
    assert stalled_seqs == list(range(len(stalled_seqs)))
    assert len(stalled_seqs) < published - AFTER_EVICTION
    assert status["websocket"]["slow_disconnects"] == 1
    growth = peak - baseline
    report_figure(
        "byte-bounded outbox: stalled client closed after / server RSS growth",
        f"{published - AFTER_EVICTION} events / {growth / 2**20:.1f}",
        f"events of 64 KiB / MiB (bound {OUTBOX_BYTES >> 20} MiB)",
    )
    assert growth < RSS_BUDGET
    assert api.tracebacks() == []
