"""Redis goes away and comes back: delivery resumes without restarting the API.

The outage is real: the test's redis-server process is stopped and started
again on the same port, exactly ``outage`` seconds later; everything the test
checks meanwhile runs alongside, so nothing stretches the outage.

Timing to know: redis-py reconnects on its own before it reports a lost
connection (three retries with jittered exponential back-off, up to ~7 s), so
the bridge learns of an outage seconds late and each of its retries lasts
SUBSCRIBER_RETRY_DELAY plus those attempts. A 3 s outage may therefore end
before the bridge notices anything (redis-py resubscribes by itself), or be
noticed and mended by the bridge's next retry: either way delivery resumes.

- 3 s: the defaults (SUBSCRIBER_RETRY_DELAY 5 s, five retries).
- 45 s: SUBSCRIBER_RETRY_DELAY=2, so the five retries are surely used up
  (~30 s) well before Redis returns and the supervisor's restarts (default
  back-off, capped at SUBSCRIBER_RESTART_MAX_DELAY 30 s) must bring the
  subscriber back. With the default 5 s the five retries take ~45 s here and
  the outage would only just outlast them.
"""

import asyncio
import time
from typing import Dict, List, Optional, Tuple

import httpx
import psutil
import pytest

from tests.integration.deadlines import async_wait_until
from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.scenario import User, connect, event, ironic, publish
from tests.integration.servers import ApiServer, RedisServer

pytestmark = pytest.mark.integration

POWER_ON = "baremetal.node.power_set.end"
PROBE = "baremetal.node.probe"
RESTART_MAX_DELAY = 30.0  # SUBSCRIBER_RESTART_MAX_DELAY's default
REDIS_PY_RECONNECT = 7.0  # longest time redis-py spends reconnecting by itself


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "outage, env, bound, long_outage",
    [
        # Mended by redis-py itself, or by the bridge's next retry (5 s).
        pytest.param(3.0, {}, 5.0 + REDIS_PY_RECONNECT + 3.0, False, id="3s"),
        # Five retries used up; the next restart comes at most
        # RESTART_MAX_DELAY (plus one attempt) after the previous one.
        pytest.param(
            45.0,
            {"SUBSCRIBER_RETRY_DELAY": "2"},
            RESTART_MAX_DELAY + REDIS_PY_RECONNECT + 3.0,
            True,
            id="45s",
            marks=pytest.mark.timeout(180),
        ),
    ],
)
async def test_delivery_resumes_by_itself_after_redis_comes_back(
    start_api: StartApi,
    redis_server: RedisServer,
    report_figure: ReportFigure,
    outage: float,
    env: Dict[str, str],
    bound: float,
    long_outage: bool,
) -> None:
    api = start_api(env=env)
    started_at = psutil.Process(api.pid).create_time()

    async with connect(api.ws_url, "operator") as operator:
        await operator.set_filters()
        await _publish_on(redis_server, POWER_ON, ironic("before-outage"))
        await operator.expect(event(POWER_ON, node="before-outage"))

        await asyncio.to_thread(redis_server.stop)
        lost_at = time.monotonic()
        monitor = asyncio.create_task(_watch_status(api))
        try:
            if long_outage:
                # The bridge notices and the status says so. An event posted
                # to this API meanwhile is refused (503) at once: the log in
                # Redis cannot take it, and nothing is held in memory.
                await async_wait_until(
                    lambda: _subscribed(api, False), timeout=REDIS_PY_RECONNECT + 5
                )
                posted_at = time.monotonic()
                async with httpx.AsyncClient(timeout=30.0) as http:
                    response = await http.post(
                        f"{api.http_url}/v1/events/openstack",
                        json={
                            "event_type": POWER_ON,
                            "payload": ironic("during-outage"),
                        },
                    )
                answered = time.monotonic() - posted_at
                report_figure(
                    "POST during the outage refused in", f"{answered:.2f}", "s"
                )
                assert response.status_code == 503
                assert answered < 10.0
            remaining = outage - (time.monotonic() - lost_at)
            assert remaining > 0, "the checks above outlasted the outage"
            await asyncio.sleep(remaining)
            during = await _stop(monitor)
            await asyncio.to_thread(redis_server.start)
            recovery = await _first_delivery(redis_server, operator, within=bound)
        finally:
            await _stop(monitor)

        report_figure(
            f"delivery resumed after a {outage:.0f} s Redis outage in",
            f"{recovery:.2f}",
            "s",
        )
        assert recovery <= bound

        # While it lasted, the status showed the outage once the bridge knew,
        # and never claimed to be subscribed again before Redis was back.
        noticed = _first_false(during)
        report_figure(
            f"status showed the {outage:.0f} s outage",
            "not at all" if noticed is None else f"{noticed - lost_at:.2f} s in",
        )
        if long_outage:
            assert noticed is not None, during
        if noticed is not None:
            assert all(not ok for at, ok in during if at >= noticed), during

        # Back to normal: events published on Redis arrive, in order.
        for node in ("after-1", "after-2"):
            await _publish_on(redis_server, POWER_ON, ironic(node))
        await operator.expect(
            event(POWER_ON, node="after-1"), ignore={"event_type": PROBE}
        )
        await operator.expect(event(POWER_ON, node="after-2"))

    status = await api.astatus()
    assert status["bridge"]["subscribed"] is True
    assert status["bridge"]["mode"] == "redis"
    if long_outage:
        # The subscriber had given up and its supervisor started it again.
        assert status["bridge"]["subscriber_restarts"] >= 1, status
    # The same process all along, and it never logged a traceback.
    assert api.running
    assert psutil.Process(api.pid).create_time() == started_at
    assert api.tracebacks() == []


async def _publish_on(
    redis_server: RedisServer, event_type: str, payload: Dict
) -> None:
    redis = redis_server.async_client()
    try:
        await publish(redis, event_type, payload)
    finally:
        await redis.aclose()


async def _subscribed(api: ApiServer, expected: bool) -> bool:
    status = await api.astatus()
    return bool(status["bridge"]["subscribed"] is expected)


async def _watch_status(api: ApiServer) -> List[Tuple[float, bool]]:
    """(time, subscribed) every 0.2 s until cancelled; returned by ``_stop``."""
    samples: List[Tuple[float, bool]] = []
    try:
        async with httpx.AsyncClient(base_url=api.http_url, timeout=2.0) as http:
            while True:
                response = await http.get("/v1/status")
                samples.append(
                    (time.monotonic(), response.json()["bridge"]["subscribed"])
                )
                await asyncio.sleep(0.2)
    except asyncio.CancelledError:
        return samples


async def _stop(monitor: "asyncio.Task[List[Tuple[float, bool]]]") -> List:
    monitor.cancel()
    result = await asyncio.gather(monitor, return_exceptions=True)
    samples = result[0]
    if isinstance(samples, BaseException) and not isinstance(
        samples, asyncio.CancelledError
    ):
        raise samples
    return samples if isinstance(samples, list) else []


def _first_false(samples: List[Tuple[float, bool]]) -> Optional[float]:
    return next((at for at, subscribed in samples if not subscribed), None)


async def _first_delivery(
    redis_server: RedisServer, operator: User, within: float
) -> float:
    """Seconds from Redis answering again to the first event reaching the client.

    Probe events are published on Redis every 0.1 s; a PUBLISH reaches only
    current subscribers, so the first probe to arrive marks the resubscription.
    """
    back_at = time.monotonic()
    redis = redis_server.async_client()

    async def probe() -> None:
        seq = 0
        while True:
            await publish(redis, PROBE, ironic("probe", seq=seq))
            seq += 1
            await asyncio.sleep(0.1)

    prober = asyncio.create_task(probe())
    try:
        await operator.expect(
            {"event_type": PROBE, "source": "openstack"}, within=within + 5.0
        )
        return time.monotonic() - back_at
    finally:
        prober.cancel()
        await asyncio.gather(prober, return_exceptions=True)
        await redis.aclose()
