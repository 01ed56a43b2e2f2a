"""A client that stops reading costs nobody else anything, and is let go."""

import pytest

from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.servers import RedisServer
from tests.integration.stall import Stall, run_stall

pytestmark = pytest.mark.integration

OUTBOX = 8
AFTER_EVICTION = 30
RSS_BUDGET = 32 << 20
STALL = Stall(
    event_type="baremetal.node.inspection.end",
    readers=20,
    max_events=1000,  # far beyond what the kernel buffers of one socket hold
    after_eviction=AFTER_EVICTION,
    within=45.0,
    evicted_within=40.0,
)


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
    outcome = await run_stall(api, redis_server, STALL)
    published, stalled_seqs = outcome.published, outcome.stalled_seqs
    status = outcome.status

    for seqs in outcome.reader_seqs:
        assert seqs == list(range(published))
    # It got a prefix of the stream, then the close frame.
    assert stalled_seqs == list(range(len(stalled_seqs)))
    assert len(stalled_seqs) < published - AFTER_EVICTION
    assert status["websocket"]["slow_disconnects"] == 1
    assert status["websocket"]["dropped_events"] == 0
    baseline, peak = outcome.baseline_rss, outcome.peak_rss
    growth = peak - baseline
    report_figure(
        "stalled client: server RSS baseline / peak / growth",
        f"{baseline / 2**20:.1f} / {peak / 2**20:.1f} / {growth / 2**20:.1f}",
        f"MiB over {published} events of 64 KiB to 21 clients "
        f"({len(stalled_seqs)} reached the stalled one)",
    )
    assert growth < RSS_BUDGET
    assert api.tracebacks() == []
