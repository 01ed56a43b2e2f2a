"""Fixtures of the integration tests: a Redis, API replicas and a RabbitMQ.

Every test gets a fresh ``redis-server`` on a free loopback port and starts the
``osism api`` replicas it needs with ``start_api``; both are stopped when the
test ends, whatever happened. The listener tests share one RabbitMQ of the
session's own (``rabbitmq-server`` on free ports, data in a temporary
directory, stopped at the end); each test binds queues of its own names
(``broker``, ``start_listener``). With OSISM_TEST_RABBITMQ_URL set they use
that broker instead; a test that restarts the broker always starts its own
(``own_rabbitmq``). A missing redis-server or rabbitmq-server fails the tests
with a message saying what to install: they are never skipped. When a test
fails, the end of each server's log is shown with it. Every test's
pytest-timeout is scaled by OSISM_TEST_TIMEOUT_FACTOR (deadlines.py). Figures
a test measures (``report_figure``) are printed in the terminal summary.
"""

import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple

import pytest

from tests.integration.deadlines import deadline
from tests.integration.rabbitmq import Broker, ListenerProcess
from tests.integration.servers import (
    ApiServer,
    ManagedProcess,
    RabbitMQServer,
    RedisServer,
    ServerError,
    find_epmd,
    find_rabbitmq_server,
    find_redis_server,
)

EXTERNAL_RABBITMQ = "OSISM_TEST_RABBITMQ_URL"
SERVERS = pytest.StashKey[List[ManagedProcess]]()
FIGURES = pytest.StashKey[List[Tuple[str, str, str]]]()

StartApi = Callable[..., ApiServer]
ReportFigure = Callable[[str, Any, str], None]


def _register(request: pytest.FixtureRequest, server: ManagedProcess) -> None:
    request.node.stash.setdefault(SERVERS, []).append(server)


@pytest.fixture
def redis_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RedisServer]:
    """A redis-server owned by this test (stop() and start() cause an outage)."""
    try:
        binary = find_redis_server()
    except ServerError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    server = RedisServer(binary, tmp_path)
    _register(request, server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_api(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> Iterator[StartApi]:
    """Start an ``osism api`` replica on the test's Redis; all stopped at the end.

    ``start_api(name="api1", env={...})`` returns the running server, once it
    is ready and subscribed, and every replica started so far is subscribed.
    """
    started: List[ApiServer] = []

    def start(
        name: Optional[str] = None, env: Optional[Mapping[str, str]] = None
    ) -> ApiServer:
        api = ApiServer(
            tmp_path,
            name or f"api{len(started) + 1}",
            redis_port=redis_server.port,
            env=env,
        )
        started.append(api)
        _register(request, api)
        api.start()
        redis_server.wait_for_subscribers(sum(1 for s in started if s.running))
        return api

    try:
        yield start
    finally:
        problems = []
        for api in started:
            try:
                api.stop()
            except ServerError as exc:
                problems.append(str(exc))
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


def start_rabbitmq(workdir: Path) -> RabbitMQServer:
    """A running broker of our own in ``workdir`` (the test fails if it cannot)."""
    try:
        binaries = find_rabbitmq_server(), find_epmd()
    except ServerError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    server = RabbitMQServer(*binaries, workdir)
    try:
        server.start()
    except BaseException:
        server.shutdown()
        raise
    return server


@pytest.fixture(scope="session")
def session_rabbitmq(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Optional[RabbitMQServer]]:
    """The session's broker, started by the first test that needs one; None
    when OSISM_TEST_RABBITMQ_URL names an external broker."""
    if os.environ.get(EXTERNAL_RABBITMQ):
        yield None
        return
    server = start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture
def own_rabbitmq(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RabbitMQServer]:
    """A broker owned by this test alone (stop() and start() cause an outage),
    whatever OSISM_TEST_RABBITMQ_URL says."""
    server = start_rabbitmq(tmp_path / "rabbitmq")
    _register(request, server)
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture
def broker(
    request: pytest.FixtureRequest, session_rabbitmq: Optional[RabbitMQServer]
) -> Iterator[Broker]:
    """The session's RabbitMQ; the queues and exchanges a test made are deleted."""
    if session_rabbitmq is None:
        url = os.environ[EXTERNAL_RABBITMQ]
    else:
        url = session_rabbitmq.url
        _register(request, session_rabbitmq)
    broker = Broker(url)
    try:
        broker.connection.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(
            f"RabbitMQ is not reachable at {url} ({exc}); "
            + (
                f"is {EXTERNAL_RABBITMQ} right?"
                if session_rabbitmq is None
                else "the session's broker stopped answering"
            ),
            pytrace=False,
        )
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def start_listener(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    broker: Broker,
    redis_server: RedisServer,
) -> Iterator[Any]:
    """Start ``osism listener`` on the test's Redis; stopped at the end."""
    started: List[ListenerProcess] = []

    def start(
        env: Optional[Mapping[str, str]] = None, prefix: Optional[str] = None
    ) -> ListenerProcess:
        """A listener; ``prefix`` reuses the queues of an earlier one."""
        prefix = prefix or f"osism-test-{uuid.uuid4().hex[:10]}"
        name = f"listener{len(started) + 1}"
        listener = ListenerProcess(
            tmp_path, broker, redis_server.port, prefix, env, name
        )
        started.append(listener)
        # Its log is shown with a failing test, like the servers' logs.
        _register(request, listener)
        listener.start()
        return listener

    try:
        yield start
    finally:
        for listener in started:
            listener.stop()


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Each test's pytest-timeout, scaled by OSISM_TEST_TIMEOUT_FACTOR."""
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:
            continue
        marker = item.get_closest_marker("timeout")
        options = dict(marker.kwargs) if marker is not None else {}
        seconds = options.pop("timeout", None)
        if marker is not None and marker.args:
            seconds = marker.args[0]
        if seconds is None:
            seconds = item.config.getini("timeout")
        if seconds:
            scaled = pytest.mark.timeout(deadline(float(seconds)), **options)
            item.add_marker(scaled, append=False)


@pytest.fixture
def report_figure(
    request: pytest.FixtureRequest, record_property: Callable[[str, Any], None]
) -> ReportFigure:
    """Record a measured figure; it is printed in the terminal summary."""

    def report(name: str, value: Any, unit: str = "") -> None:
        record_property(name, value)
        figures = request.config.stash.setdefault(FIGURES, [])
        figures.append((request.node.nodeid, name, f"{value} {unit}".strip()))

    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[Any]:
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append(
                (f"{server.name} log, {server.log_path}", server.log_tail(80))
            )
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures = terminalreporter.config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("figures measured by the integration tests")
        for nodeid, name, value in figures:
            terminalreporter.write_line(f"{name}: {value}  [{nodeid}]")
