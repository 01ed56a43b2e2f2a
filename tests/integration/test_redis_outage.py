"""Redis goes away and comes back: delivery resumes without restarting the API.

The outage is real: the test's redis-server process is stopped and started
again on the same port, exactly ``outage`` seconds later; everything the test
checks meanwhile runs alongside, so nothing stretches the outage.

- 3 s, the defaults (SUBSCRIBER_RETRY_DELAY 5 s, five retries). Whether the
  bridge notices an outage this short depends on the Redis client library (it
  reconnects on its own before it reports a lost connection), so this case
  asserts only what holds either way: delivery resumes, and /v1/status
  answered all along.
- 45 s, SUBSCRIBER_RETRY_DELAY=2: the five retries are used up well before
  Redis returns, so the supervisor's restarts (back-off capped at
  SUBSCRIBER_RESTART_MAX_DELAY, 30 s) must bring the subscriber back; the
  status must show the outage and never claim a subscription before Redis is
  back.

The time limits are requirements of the service, not estimates of how a
library behaves inside: if the client library takes longer, the test fails.
"""

import asyncio
import time
from typing import Awaitable, Callable, Dict, List, Optional, Tuple

import httpx
import psutil
import pytest

from tests.conftest import async_wait_until
from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.scenario import User, connect, event, ironic, publish
from tests.integration.servers import ApiServer, RedisServer

pytestmark = pytest.mark.integration

POWER_ON = "baremetal.node.power_set.end"
PROBE = "baremetal.node.probe"
RETRY_DELAY = 5.0  # SUBSCRIBER_RETRY_DELAY's default
RESTART_MAX_DELAY = 30.0  # SUBSCRIBER_RESTART_MAX_DELAY's default
# Once Redis answers and the bridge's own wait (retry delay or restart
# back-off) is over, resubscribing and delivering the next event take at
# most this long.
RESUBSCRIBE_WITHIN = 10.0
# A lost subscription shows in /v1/status within this long.
NOTICE_WITHIN = 15.0

Samples = List[Tuple[float, bool]]


@pytest.mark.asyncio
async def test_a_3s_outage_ends_with_delivery_and_the_status_answering(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    api = start_api()
    started_at = psutil.Process(api.pid).create_time()
    async with connect(api.ws_url, "operator") as operator:
        await _deliver_before_the_outage(redis_server, operator)
        lost_at = await _stop_redis(redis_server)
        during, recovery = await _outage(
            api, redis_server, operator, lost_at, 3.0, RETRY_DELAY + RESUBSCRIBE_WITHIN
        )
        noticed = _first_false(during)
        report_figure(
            "status showed the 3 s outage",
            "not at all" if noticed is None else f"{noticed - lost_at:.2f} s in",
        )
        report_figure("delivery resumed after a 3 s outage in", f"{recovery:.2f}", "s")
        # The API answered its status every 0.2 s throughout.
        assert len(during) >= 5, during
        await _deliver_after_the_outage(redis_server, operator)
    await _assert_subscribed_in_the_same_process(api, started_at)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_a_45s_outage_shows_in_the_status_and_ends_with_delivery(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    api = start_api(env={"SUBSCRIBER_RETRY_DELAY": "2"})
    started_at = psutil.Process(api.pid).create_time()
    async with connect(api.ws_url, "operator") as operator:
        await _deliver_before_the_outage(redis_server, operator)
        lost_at = await _stop_redis(redis_server)

        async def meanwhile() -> None:
            # The bridge notices; events posted to this API meanwhile still
            # reach its own clients (in-process).
            await async_wait_until(
                lambda: _subscribed(api, False), timeout=NOTICE_WITHIN
            )
            posted_at = time.monotonic()
            await api.apublish(POWER_ON, ironic("during-outage"), timeout=30.0)
            report_figure(
                "first POST during the outage answered in",
                f"{time.monotonic() - posted_at:.2f}",
                "s",
            )
            await operator.expect(event(POWER_ON, node="during-outage"))

        during, recovery = await _outage(
            api,
            redis_server,
            operator,
            lost_at,
            45.0,
            RESTART_MAX_DELAY + RESUBSCRIBE_WITHIN,
            meanwhile,
        )
        report_figure(
            "delivery resumed after a 45 s Redis outage in", f"{recovery:.2f}", "s"
        )
        # The status showed the outage, and from then on never claimed to be
        # subscribed before Redis was back.
        noticed = _first_false(during)
        assert noticed is not None, during
        report_figure("status showed the 45 s outage", f"{noticed - lost_at:.2f} s in")
        since = [subscribed for at, subscribed in during if at >= noticed]
        assert since and not any(since), during
        await _deliver_after_the_outage(redis_server, operator)
    status = await _assert_subscribed_in_the_same_process(api, started_at)
    # The subscriber had given up and its supervisor started it again.
    assert status["bridge"]["subscriber_restarts"] >= 1, status


async def _deliver_before_the_outage(redis_server: RedisServer, operator: User) -> None:
    await operator.set_filters()
    await _publish_on(redis_server, POWER_ON, ironic("before-outage"))
    await operator.expect(event(POWER_ON, node="before-outage"))


async def _stop_redis(redis_server: RedisServer) -> float:
    await asyncio.to_thread(redis_server.stop)
    return time.monotonic()


async def _outage(
    api: ApiServer,
    redis_server: RedisServer,
    operator: User,
    lost_at: float,
    outage: float,
    bound: float,
    meanwhile: Optional[Callable[[], Awaitable[None]]] = None,
) -> Tuple[Samples, float]:
    """Keep Redis down ``outage`` s from ``lost_at`` while the status is
    sampled (and ``meanwhile`` runs), start it again; the status samples and
    the seconds until an event reached ``operator`` (at most ``bound``)."""
    monitor = asyncio.create_task(_watch_status(api))
    try:
        if meanwhile is not None:
            await meanwhile()
        remaining = outage - (time.monotonic() - lost_at)
        assert remaining > 0, "the checks above outlasted the outage"
        await asyncio.sleep(remaining)
        during = await _stop(monitor)
        await asyncio.to_thread(redis_server.start)
        recovery = await _first_delivery(redis_server, operator, within=bound)
    finally:
        await _stop(monitor)
    assert recovery <= bound
    return during, recovery


async def _deliver_after_the_outage(redis_server: RedisServer, operator: User) -> None:
    """Back to normal: events published on Redis arrive, in order."""
    for node in ("after-1", "after-2"):
        await _publish_on(redis_server, POWER_ON, ironic(node))
    await operator.expect(event(POWER_ON, node="after-1"), ignore={"event_type": PROBE})
    await operator.expect(event(POWER_ON, node="after-2"))


async def _assert_subscribed_in_the_same_process(
    api: ApiServer, started_at: float
) -> Dict:
    status: Dict = await api.astatus()
    assert status["bridge"]["subscribed"] is True
    assert status["bridge"]["mode"] == "redis"
    # The same process all along, and it never logged a traceback.
    assert api.running
    assert psutil.Process(api.pid).create_time() == started_at
    assert api.tracebacks() == []
    return status


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


async def _watch_status(api: ApiServer) -> Samples:
    """(time, subscribed) every 0.2 s until cancelled; returned by ``_stop``."""
    samples: Samples = []
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


async def _stop(monitor: "asyncio.Task[Samples]") -> Samples:
    """The samples of a monitor; a monitor that failed fails the test."""
    monitor.cancel()
    (samples,) = await asyncio.gather(monitor, return_exceptions=True)
    if isinstance(samples, asyncio.CancelledError):
        return []  # stopped before it started: nothing was sampled
    if isinstance(samples, BaseException):
        raise samples
    return samples


def _first_false(samples: Samples) -> Optional[float]:
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
