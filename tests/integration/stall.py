"""One client that never reads among readers that do: the scenario both the
slow-client and the byte-bound tests run, with their own bounds.

The stalled client's socket has a small receive window and it never reads
until the server has given up on it (``slow_disconnects``); then it reads what
was already in flight and the close frame. Bulky events are published on
Redis until that happens, then ``after_eviction`` more, then DONE. The peak
RSS of the server is sampled meanwhile.
"""

import asyncio
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import psutil
import pytest
import redis.asyncio

from tests.integration.deadlines import async_wait_until
from tests.integration.scenario import (
    User,
    connect,
    connect_many,
    ironic,
    publish,
    run_users,
    small_window_socket,
)
from tests.integration.servers import ApiServer, RedisServer

DONE = "baremetal.node.done"
BLOB = "x" * 65536  # each event is ~64 KiB on the wire


@dataclass(frozen=True)
class Stall:
    """How one stalled-client scenario runs."""

    event_type: str
    readers: int
    max_events: int  # the stalled client must be closed before this many
    after_eviction: int  # events published after it was closed
    within: float  # for the clients to finish
    evicted_within: float  # for the server to close the stalled client


@dataclass(frozen=True)
class StallOutcome:
    published: int
    stalled_seqs: List[int]
    reader_seqs: List[List[int]]
    baseline_rss: int
    peak_rss: int
    status: Dict[str, Any]


async def run_stall(
    api: ApiServer, redis_server: RedisServer, stall: Stall
) -> StallOutcome:
    """Run the scenario against ``api``; what every client received."""
    server = psutil.Process(api.pid)
    client = redis_server.async_client()
    try:
        async with connect_many(api.ws_url, stall.readers, prefix="reader") as readers:
            sock = small_window_socket(api.host, api.port)
            async with connect(
                api.ws_url, "stalled", sock=sock, max_queue=1
            ) as stalled:
                await async_wait_until(
                    lambda: api.has_connections(stall.readers + 1), timeout=10.0
                )
                baseline = server.memory_info().rss
                sampler = RssSampler(server)
                published, (stalled_seqs, *reader_seqs) = await asyncio.gather(
                    _publish_until_evicted(client, api, stall),
                    run_users(
                        _drain_once_evicted(stalled, api, stall),
                        *(_read_until_done(reader) for reader in readers),
                        within=stall.within,
                    ),
                )
                peak = await sampler.stop()
            status = await api.astatus()
    finally:
        await client.aclose()
    return StallOutcome(published, stalled_seqs, reader_seqs, baseline, peak, status)


class RssSampler:
    """The peak resident memory of a process, sampled every 50 ms."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._task: Optional["asyncio.Task[None]"] = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            # A sampler that failed (the process gone, psutil denied) must not
            # leave a peak that looks fine: the memory check would not run.
            if isinstance(outcome, Exception):
                raise outcome
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak


async def _publish_until_evicted(
    client: redis.asyncio.Redis, api: ApiServer, stall: Stall
) -> int:
    """Publish bulky events until the server gives up on the stalled client,
    then some more, then DONE; the number of bulky events."""
    seq = 0
    while seq < stall.max_events:
        await publish(client, stall.event_type, ironic("node-1", seq=seq, blob=BLOB))
        seq += 1
        if seq % 5 == 0 and await _slow_disconnects(api):
            break
    else:
        pytest.fail(
            f"the stalled client was not closed after {stall.max_events} events"
        )
    for _ in range(stall.after_eviction):
        await publish(client, stall.event_type, ironic("node-1", seq=seq, blob=BLOB))
        seq += 1
    await publish(client, DONE, ironic("node-1"))
    return seq


async def _read_until_done(reader: User) -> List[int]:
    seqs = []
    while True:
        message = await reader.expect({"source": "openstack"}, within=30.0)
        if message["event_type"] == DONE:
            return seqs
        seqs.append(message["data"]["seq"])


async def _drain_once_evicted(stalled: User, api: ApiServer, stall: Stall) -> List[int]:
    """Never read until the server has closed this client; then read what
    was already in flight, and the close frame with 1013."""
    await async_wait_until(
        lambda: _slow_disconnects(api), timeout=stall.evicted_within, interval=0.02
    )
    await stalled.expect_closed(1013, within=20.0)
    return [message["data"]["seq"] for message in stalled.received]


async def _slow_disconnects(api: ApiServer) -> bool:
    status = await api.astatus()
    return bool(status["websocket"]["slow_disconnects"])
