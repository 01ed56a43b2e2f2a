"""A client that stops reading costs nobody else anything, and is let go."""

import asyncio
from typing import List, Optional

import psutil
import pytest
import redis.asyncio

from tests.conftest import async_wait_until
from tests.integration.conftest import ReportFigure, StartApi
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

pytestmark = pytest.mark.integration

BULK = "baremetal.node.inspection.end"
DONE = "baremetal.node.done"
OUTBOX = 8
BLOB = "x" * 65536  # each event is ~64 KiB on the wire
MAX_EVENTS = 1000  # far beyond what the kernel buffers of one socket hold
AFTER_EVICTION = 30
RSS_BUDGET = 32 << 20


@pytest.mark.asyncio
async def test_a_client_that_never_reads_is_closed_with_1013_and_nobody_waits(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    """20 readers and one client that stops reading (tiny TCP window, a
    one-frame queue, no recv): once its socket and its outbox of 8 are full
    it is closed with 1013; the readers get every event, in order, meanwhile
    and after; the server's memory stays flat.

    The close frame can only reach the stalled client through its full
    socket, behind the data already in flight, and the server waits 5 s for
    it to go out: so the client starts reading as soon as the server reports
    it closed, and must then find the events it was sent and the close frame.
    """
    api = start_api(env={"WEBSOCKET_OUTBOX_SIZE": str(OUTBOX)})
    server = psutil.Process(api.pid)
    redis = redis_server.async_client()
    try:
        async with connect_many(api.ws_url, 20, prefix="reader") as readers:
            sock = small_window_socket(api.host, api.port)
            async with connect(
                api.ws_url, "stalled", sock=sock, max_queue=1
            ) as stalled:
                await async_wait_until(lambda: api.has_connections(21), timeout=10.0)
                baseline = server.memory_info().rss
                sampler = RssSampler(server)

                published, (stalled_seqs, *reader_seqs) = await asyncio.gather(
                    _publish_until_evicted(redis, api),
                    run_users(
                        _drain_once_evicted(stalled, api),
                        *(_read_until_done(reader) for reader in readers),
                        within=45.0,
                    ),
                )
                peak = await sampler.stop()

            status = await api.astatus()
    finally:
        await redis.aclose()

    for seqs in reader_seqs:
        assert seqs == list(range(published))
    # It got a prefix of the stream, then the close frame.
    assert stalled_seqs == list(range(len(stalled_seqs)))
    assert len(stalled_seqs) < published - AFTER_EVICTION
    assert status["websocket"]["slow_disconnects"] == 1
    assert status["websocket"]["dropped_events"] == 0
    growth = peak - baseline
    report_figure(
        "stalled client: server RSS baseline / peak / growth",
        f"{baseline / 2**20:.1f} / {peak / 2**20:.1f} / {growth / 2**20:.1f}",
        f"MiB over {published} events of 64 KiB to 21 clients "
        f"({len(stalled_seqs)} reached the stalled one)",
    )
    assert growth < RSS_BUDGET
    assert api.tracebacks() == []


async def _publish_until_evicted(redis: redis.asyncio.Redis, api: ApiServer) -> int:
    """Publish bulky events until the server gives up on the stalled client,
    then some more, then DONE; the number of bulky events."""
    seq = 0
    while seq < MAX_EVENTS:
        await publish(redis, BULK, ironic("node-1", seq=seq, blob=BLOB))
        seq += 1
        if seq % 5 == 0:
            status = await api.astatus()
            if status["websocket"]["slow_disconnects"]:
                break
    else:
        pytest.fail(f"the stalled client was not closed after {MAX_EVENTS} events")
    for _ in range(AFTER_EVICTION):
        await publish(redis, BULK, ironic("node-1", seq=seq, blob=BLOB))
        seq += 1
    await publish(redis, DONE, ironic("node-1"))
    return seq


async def _read_until_done(reader: User) -> List[int]:
    seqs = []
    while True:
        message = await reader.expect({"source": "openstack"}, within=30.0)
        if message["event_type"] == DONE:
            return seqs
        seqs.append(message["data"]["seq"])


async def _drain_once_evicted(stalled: User, api: ApiServer) -> List[int]:
    """Never read until the server has closed this client; then read what
    was already in flight, and the close frame with 1013."""
    await async_wait_until(lambda: _slow_disconnects(api), timeout=40.0, interval=0.02)
    await stalled.expect_closed(1013, within=20.0)
    return [message["data"]["seq"] for message in stalled.received]


async def _slow_disconnects(api: ApiServer) -> bool:
    status = await api.astatus()
    return bool(status["websocket"]["slow_disconnects"])


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
