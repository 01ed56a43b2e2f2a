"""Stopping the server: every client gets a close frame, the process exits cleanly."""

import asyncio
import signal
import time

import pytest

from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.scenario import (
    connect_many,
    event,
    ironic,
    publish,
    run_users,
)
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

POWER_ON = "baremetal.node.power_set.end"
# uvicorn closes open WebSockets with 1012 (service restart); the manager
# closes any it still holds with 1001 (going away).
SHUTDOWN_CODES = {1001, 1012}
DEADLINE = 10.0


@pytest.mark.asyncio
async def test_sigterm_closes_every_client_with_a_close_frame_and_exits_cleanly(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    api = start_api()
    redis = redis_server.async_client()
    try:
        async with connect_many(api.ws_url, 5, prefix="client") as clients:
            await run_users(*(c.set_filters() for c in clients), within=10.0)
            await publish(redis, POWER_ON, ironic("node-1"))
            await run_users(
                *(c.expect(event(POWER_ON, node="node-1")) for c in clients),
                within=10.0,
            )

            sent_at = time.monotonic()
            stopping = asyncio.create_task(asyncio.to_thread(api.stop, DEADLINE))
            await run_users(
                *(c.expect_closed(SHUTDOWN_CODES) for c in clients), within=DEADLINE
            )
            returncode = await stopping
            elapsed = time.monotonic() - sent_at
    finally:
        await redis.aclose()

    report_figure("SIGTERM to exit", f"{elapsed:.2f}", "s")
    # uvicorn re-raises the signal it shut down for once it is done, so a
    # supervisor sees "terminated by SIGTERM"; anything else is a failure.
    assert returncode in (0, -signal.SIGTERM), api.log_tail()
    log = api.log_text()
    assert "osism API stopped" in log
    assert "Application shutdown complete." in log
    assert api.tracebacks() == []
    assert api.error_lines() == []
    # Nobody is subscribed any more: the bridge closed its subscriber.
    assert redis_server.subscribers() == 0
