"""Production Redis setups: password and ACL user, TLS only, Sentinel failover.

Every ``redis-server`` (and Sentinel) is started by the test on a free loopback
port (tests/integration/redis_setups.py); the API replicas and the listener
are real processes configured through their environment, as in production.
An event counts as "flowing" when it is POSTed to one API replica and reaches
a WebSocket client of another: it can only have gone through Redis.
"""

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping
from urllib.parse import quote

import psutil
import pytest
import redis

from tests.integration.deadlines import async_wait_until, deadline
from tests.integration.conftest import SERVERS, ReportFigure
from tests.integration.redis_setups import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    RedisNode,
    SentinelSetup,
    make_tls_files,
)
from tests.integration.scenario import ScenarioError, User, connect, event, ironic
from tests.integration.servers import (
    LOOPBACK,
    ApiServer,
    ServerError,
    find_redis_server,
    free_port,
)
from tests.integration.rabbitmq import (
    DEFAULT_KEYS,
    Broker,
    ListenerProcess,
    oslo_envelope,
)

pytestmark = pytest.mark.integration

POWER_ON = "baremetal.node.power_set.end"
PROBE = "baremetal.node.probe"
# Secrets that must never show up in a log or in /v1/status.
ADMIN_PASSWORD = "admin-Pw-4f1c"
USER_PASSWORD = "user:pw@4f1c/x"  # needs quoting in a URL
WRONG_PASSWORD = "wrong-Pw-93ab"
SENTINEL_PASSWORD = "sentinel-Pw-77e2"
SECRETS = (ADMIN_PASSWORD, USER_PASSWORD, WRONG_PASSWORD, SENTINEL_PASSWORD)
EMBEDDED = (
    "; events stay in this process (embedded mode), trying again in the background"
)

StartApi = Callable[..., ApiServer]


@pytest.fixture
def redis_binary() -> str:
    try:
        return find_redis_server()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def register(request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    """Show a process's log with a failing test."""

    def add(process: Any) -> Any:
        request.node.stash.setdefault(SERVERS, []).append(process)
        return process

    return add


@pytest.fixture
def nodes(register: Callable[[Any], Any]) -> Iterator[List[Any]]:
    """Redis processes (or setups) to stop at the end, whatever happened."""
    started: List[Any] = []
    yield started
    for node in reversed(started):
        node.stop()


@pytest.fixture
def apis(tmp_path: Path, register: Callable[[Any], Any]) -> Iterator[StartApi]:
    """``apis(name, env, subscribed=True)``: an API replica, stopped at the end."""
    started: List[ApiServer] = []

    def start(name: str, env: Mapping[str, str], subscribed: bool = True) -> ApiServer:
        api = ApiServer(tmp_path, name, env=env)
        started.append(register(api))
        api.start(subscribed=subscribed)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def listeners(
    tmp_path: Path, broker: Broker, register: Callable[[Any], Any]
) -> Iterator[Callable[[Mapping[str, str]], ListenerProcess]]:
    """A listener on ironic only, with queues of its own; stopped at the end."""
    started: List[ListenerProcess] = []

    def start(env: Mapping[str, str]) -> ListenerProcess:
        prefix = f"osism-test-{uuid.uuid4().hex[:10]}"
        listener = ListenerProcess(
            tmp_path,
            broker,
            free_port(),  # REDIS_HOST/PORT: overridden by the env below
            prefix,
            {"LISTENER_SERVICES": "ironic", **env},
            f"listener{len(started) + 1}",
        )
        started.append(register(listener))
        listener.start()
        return listener

    yield start
    for listener in started:
        listener.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_acl_user_by_url_and_a_wrong_password_reported_and_retried(
    redis_binary: str,
    tmp_path: Path,
    nodes: List[Any],
    register: Callable[[Any], Any],
    apis: StartApi,
    listeners: Callable[[Mapping[str, str]], ListenerProcess],
    broker: Broker,
) -> None:
    node = register(
        RedisNode(
            redis_binary,
            tmp_path,
            password=ADMIN_PASSWORD,
            users={"osism": USER_PASSWORD},
        )
    )
    node.start()
    nodes.append(node)
    where = f"{LOOPBACK}:{node.port}/0"
    good_url = f"redis://osism:{quote(USER_PASSWORD, safe='')}@{where}"

    # A wrong password: one clear line, the API serves on its own, and it
    # keeps trying (each try is a failed AUTH in the server's ACL LOG).
    wrong = apis(
        "api-wrong",
        {
            "REDIS_URL": f"redis://osism:{WRONG_PASSWORD}@{where}",
            "SUBSCRIBER_RESTART_MAX_DELAY": "2",
        },
        subscribed=False,
    )
    status = wrong.status()
    assert status["bridge"]["mode"] == "local"
    assert status["bridge"]["redis"] == f"redis://osism:***@{where}"
    [line] = await _error_lines(wrong)
    assert (
        f"Redis at redis://osism:***@{where} refused the credentials (wrong "
        "password or unknown user 'osism'" in line
    )
    assert line.endswith(EMBEDDED)
    async with connect(wrong.ws_url, "alone") as alone:
        await alone.set_filters()
        await wrong.apublish(POWER_ON, ironic("in-process"))
        await alone.expect(event(POWER_ON, node="in-process"))
    failures = node.auth_failures("osism")
    await async_wait_until(
        lambda: node.auth_failures("osism") >= failures + 2, timeout=15.0
    )
    # The listener with the wrong password says why, and keeps what arrives
    # in RabbitMQ meanwhile.
    refused = listeners(
        {
            "REDIS_URL": f"redis://osism:{WRONG_PASSWORD}@{where}",
            "LISTENER_RECONNECT_MAX_DELAY": "2",
        }
    )
    await _notify(broker, "held-while-refused")
    await async_wait_until(
        lambda: "keeping it unacknowledged" in refused.log_text(), timeout=15.0
    )
    assert (
        f"Redis at redis://osism:***@{where} refused the credentials"
        in refused.log_text()
    )
    assert not any("held-while-refused" in e for e in node.log_events())

    # The operator gives the user the password the API has: it connects by
    # itself, no restart.
    admin = node.client()
    try:
        admin.acl_setuser("osism", enabled=True, passwords=[f"+{WRONG_PASSWORD}"])
    finally:
        admin.close()
    await async_wait_until(lambda: _subscribed(wrong), timeout=20.0)
    # ... and the listener's retries get the held notification into the log.
    await async_wait_until(
        lambda: any("held-while-refused" in e for e in node.log_events()),
        timeout=30.0,
    )

    right = apis("api-right", {"REDIS_URL": good_url})
    assert right.status()["bridge"]["redis"] == f"redis://osism:***@{where}"
    listener = listeners({"REDIS_URL": good_url})
    async with connect(wrong.ws_url, "a") as a, connect(right.ws_url, "b") as b:
        await a.set_filters()
        await b.set_filters()
        await right.apublish(POWER_ON, ironic("from-right"))
        await a.expect(event(POWER_ON, node="from-right"))
        await b.expect(event(POWER_ON, node="from-right"))
        await wrong.apublish(POWER_ON, ironic("from-wrong"))
        await b.expect(event(POWER_ON, node="from-wrong"))
        await a.expect(event(POWER_ON, node="from-wrong"))
        await asyncio.to_thread(
            broker.publish,
            "ironic",
            DEFAULT_KEYS["ironic"],
            oslo_envelope(POWER_ON, ironic("from-rabbitmq")),
        )
        await a.expect(event(POWER_ON, node="from-rabbitmq"), within=15.0)
        await b.expect(event(POWER_ON, node="from-rabbitmq"), within=15.0)

    assert listener.stop() == 0 and refused.stop() == 0
    _assert_no_secret(wrong, right, listener, refused)
    assert wrong.tracebacks() == [] and right.tracebacks() == []


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_tls_only_redis_events_flow_and_a_wrong_ca_is_reported(
    redis_binary: str,
    tmp_path: Path,
    nodes: List[Any],
    register: Callable[[Any], Any],
    apis: StartApi,
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    node = register(RedisNode(redis_binary, tmp_path, password=ADMIN_PASSWORD, tls=tls))
    node.start()
    nodes.append(node)
    plain = redis.Redis(host=LOOPBACK, port=node.port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()  # TLS only: a plaintext client is turned away
    plain.close()

    where = f"{LOOPBACK}:{node.port}/0"
    env = {
        "REDIS_URL": f"rediss://:{ADMIN_PASSWORD}@{where}",
        "REDIS_TLS_CA_FILE": tls.ca,
        "REDIS_TLS_CERT_FILE": tls.client_cert,
        "REDIS_TLS_KEY_FILE": tls.client_key,
    }
    api1 = apis("api1", env)
    api2 = apis("api2", env)
    assert api1.status()["bridge"]["redis"] == f"rediss://:***@{where}"
    async with connect(api1.ws_url, "a") as a, connect(api2.ws_url, "b") as b:
        await a.set_filters()
        await b.set_filters()
        for node_name in ("tls-1", "tls-2"):
            await api1.apublish(POWER_ON, ironic(node_name))
        for user in (a, b):
            await user.expect_each(
                [event(POWER_ON, node="tls-1"), event(POWER_ON, node="tls-2")]
            )

    # A CA that did not sign the server's certificate: one clear line, and
    # the API serves on its own.
    other = make_tls_files(tmp_path / "other-ca", name="other")
    stranger = apis(
        "api-wrong-ca", {**env, "REDIS_TLS_CA_FILE": other.ca}, subscribed=False
    )
    assert stranger.status()["bridge"]["mode"] == "local"
    [line] = await _error_lines(stranger)
    assert f"TLS with Redis at rediss://:***@{where} failed" in line
    assert "CERTIFICATE_VERIFY_FAILED" in line
    _assert_no_secret(api1, api2, stranger)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_sentinel_failover_events_flow_again_without_a_restart(
    tls: bool,
    redis_binary: str,
    tmp_path: Path,
    nodes: List[Any],
    register: Callable[[Any], Any],
    apis: StartApi,
    listeners: Callable[[Mapping[str, str]], ListenerProcess],
    broker: Broker,
    report_figure: ReportFigure,
) -> None:
    tls_files = make_tls_files(tmp_path / "tls") if tls else None
    setup = SentinelSetup(
        redis_binary,
        tmp_path,
        password=ADMIN_PASSWORD,
        sentinel_password=SENTINEL_PASSWORD,
        tls=tls_files,
    )
    for process in setup.processes:
        register(process)
    nodes.append(setup)
    setup.start()
    env = {
        "REDIS_SENTINELS": setup.sentinel_list,
        "REDIS_SENTINEL_MASTER": "mymaster",
        "REDIS_PASSWORD": ADMIN_PASSWORD,
        "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
    }
    if tls_files is not None:
        env.update(
            REDIS_TLS="1",
            REDIS_TLS_CA_FILE=tls_files.ca,
            REDIS_TLS_CERT_FILE=tls_files.client_cert,
            REDIS_TLS_KEY_FILE=tls_files.client_key,
        )
    api1 = apis("api1", env)
    api2 = apis("api2", env)
    listener = listeners(env)
    scheme = "sentinel+tls" if tls else "sentinel"
    assert api1.status()["bridge"]["redis"] == (
        f"{scheme}://:***@{setup.sentinel_list}/mymaster"
    )
    processes: List[Any] = [api1, api2, listener]
    pids = {p: psutil.Process(p.pid).create_time() for p in processes}

    async with connect(api1.ws_url, "a") as a, connect(api2.ws_url, "b") as b:
        await a.set_filters()
        await b.set_filters()
        async with connect(api2.ws_url, "resumer") as resumer:
            await resumer.set_filters()
            await api1.apublish(POWER_ON, ironic("before"))
            await b.expect(event(POWER_ON, node="before"))
            await a.expect(event(POWER_ON, node="before"))
            await _notify(broker, "listener-before")
            await a.expect(event(POWER_ON, node="listener-before"), within=15.0)
            await b.expect(event(POWER_ON, node="listener-before"), within=15.0)
            await resumer.expect(event(POWER_ON, node="before"))
            last_seen = await resumer.expect(event(POWER_ON, node="listener-before"))
        # Everything so far is on the replica too: what a failover can lose
        # (docs/howto/production-redis.md) is not what this test is about.
        assert setup.master.wait_for_replicas(1) == 1

        marks = {user: len(user.received) for user in (a, b)}
        setup.master.kill()
        killed_at = time.monotonic()
        # A notification that arrives while there is no master: the listener
        # keeps it in RabbitMQ until the new master's log has it.
        await _notify(broker, "during-failover")
        await async_wait_until(lambda: setup.promoted(), timeout=30.0, interval=0.05)
        promoted = time.monotonic() - killed_at
        report_figure(
            f"{scheme}: Sentinel promoted the replica after SIGKILL in",
            f"{promoted:.2f}",
            "s",
        )

        bound = (DOWN_AFTER_MS + FAILOVER_TIMEOUT_MS) / 1000 + 10.0
        again = await _first_probe(api1, b, killed_at, within=bound)
        report_figure(
            f"{scheme}: API events flowed again after SIGKILL in", f"{again:.2f}", "s"
        )
        assert again <= bound

        # Both directions, in order; the listener follows the failover too.
        for name in ("after-1", "after-2"):
            await api2.apublish(POWER_ON, ironic(name))
        await _notify(broker, "listener-after")
        wanted = {"during-failover", "after-1", "after-2", "listener-after"}
        for user in (a, b):
            seen = await _collect(user, wanted, within=20.0, since=marks[user])
            after = [name for name in seen if name.startswith("after-")]
            assert after == ["after-1", "after-2"], seen
        report_figure(
            f"{scheme}: everything incl. the notification sent mid-failover delivered",
            f"{time.monotonic() - killed_at:.2f}",
            "s",
        )

        # The live clients got what the new master holds: once, in order.
        held = await asyncio.to_thread(setup.replica.log_ids)
        assert last_seen["id"] in held
        for user in (a, b):
            assert _event_ids(user) == held, user.name

    # A client that was away through the failover resumes by id and misses
    # nothing the new master holds.
    async with connect(
        f"{api1.ws_url}?last_event_id={last_seen['id']}", "resumer"
    ) as resumer:
        missed = held[held.index(last_seen["id"]) + 1 :]
        reply = await resumer.expect(
            {"type": "filter_update", "recovered": True, "replayed": len(missed)}
        )
        assert reply["oldest_id"] == held[0]
        replayed = [await resumer.next_message() for _ in missed]
        assert [message["id"] for message in replayed] == missed

    # Nothing was restarted: the same processes all along.
    for process, created in pids.items():
        assert process.running and psutil.Process(process.pid).create_time() == created
    assert api1.tracebacks() == [] and api2.tracebacks() == []
    _assert_no_secret(api1, api2, listener)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_unreachable_sentinels_are_reported_and_the_api_serves_alone(
    apis: StartApi,
) -> None:
    sentinels = f"{LOOPBACK}:{free_port()},{LOOPBACK}:{free_port()}"
    api = apis(
        "api-no-sentinel",
        {"REDIS_SENTINELS": sentinels, "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD},
        subscribed=False,
    )
    [line] = await _error_lines(api)
    assert (
        f"No Sentinel of sentinel://{sentinels}/mymaster answered, so the master "
        "'mymaster' is unknown" in line
    )
    assert line.endswith(EMBEDDED)
    status = api.status()
    assert status["ready"] is True and status["bridge"]["mode"] == "local"
    async with connect(api.ws_url, "alone") as alone:
        await alone.set_filters()
        await api.apublish(POWER_ON, ironic("in-process"))
        await alone.expect(event(POWER_ON, node="in-process"))
    _assert_no_secret(api)


async def _notify(broker: Broker, node: str) -> None:
    await asyncio.to_thread(
        broker.publish,
        "ironic",
        DEFAULT_KEYS["ironic"],
        oslo_envelope(POWER_ON, ironic(node)),
    )


async def _first_probe(
    api: ApiServer, user: User, since: float, within: float
) -> float:
    """Seconds from ``since`` until a probe POSTed to ``api`` reaches ``user``.

    A probe is POSTed every 0.2 s; a POST may fail or be slow while there is no
    master, which is what is measured.
    """

    async def probe() -> None:
        seq = 0
        while True:
            try:
                await api.apublish(PROBE, ironic("probe", seq=seq), timeout=30.0)
            except Exception:  # no master yet: the next probe tries again
                pass
            seq += 1
            await asyncio.sleep(0.2)

    prober = asyncio.create_task(probe())
    try:
        until = since + deadline(within + 5.0)
        while True:
            message = await user.next_message_by(until)
            if message.get("event_type") == PROBE:
                return time.monotonic() - since
    finally:
        prober.cancel()
        await asyncio.gather(prober, return_exceptions=True)


def _event_ids(user: User) -> List[str]:
    """The ids of the events ``user`` received, in order (replies aside)."""
    return [m["id"] for m in user.received if m.get("source") == "openstack"]


async def _collect(user: User, names: set, within: float, since: int = 0) -> List[str]:
    """Node names of the POWER_ON events ``user`` received (from message
    ``since`` on), reading on until every one of ``names`` is among them."""
    seen = [
        message["node_name"]
        for message in user.received[since:]
        if message.get("event_type") == POWER_ON
    ]
    until = time.monotonic() + deadline(within)
    while not names <= set(seen):
        try:
            message = await user.next_message_by(until)
        except ScenarioError as exc:
            raise ScenarioError(
                f"{user.name} got {seen}, not {sorted(names - set(seen))}: {exc}"
            ) from None
        if message.get("event_type") == POWER_ON:
            seen.append(message["node_name"])
    return seen


async def _error_lines(api: ApiServer) -> List[str]:
    """The ERROR lines of ``api``'s log, once there is one (the watcher, in
    the background, logs it)."""
    await async_wait_until(lambda: bool(api.error_lines()), timeout=20.0)
    return api.error_lines()


async def _subscribed(api: ApiServer) -> bool:
    status = await api.astatus()
    return bool(status["bridge"]["subscribed"] and status["bridge"]["mode"] == "redis")


def _assert_no_secret(*processes: Any) -> None:
    for process in processes:
        text = process.log_text()
        leaked = [secret for secret in SECRETS if secret in text]
        assert leaked == [], f"{process.name} logged a secret"
        leaked += [
            quote(secret, safe="")
            for secret in SECRETS
            if quote(secret, safe="") in text
        ]
        assert leaked == [], f"{process.name} logged a secret"
        if isinstance(process, ApiServer) and process.running:
            status = str(process.status())
            assert not any(secret in status for secret in SECRETS)
