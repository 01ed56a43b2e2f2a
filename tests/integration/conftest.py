"""Fixtures of the integration tests: a Redis and API replicas of their own.

Every test gets a fresh ``redis-server`` on a free loopback port and starts the
``osism api`` replicas it needs with ``start_api``; both are stopped when the
test ends, whatever happened. A missing redis-server fails the tests with a
message saying so: they are never skipped. When a test fails, the end of each
server's log is shown with it. Figures a test measures (``report_figure``)
are printed in the terminal summary.
"""

from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple, Union

import pytest

from tests.integration.servers import (
    ApiServer,
    RedisServer,
    ServerError,
    find_redis_server,
)

_Server = Union[RedisServer, ApiServer]
SERVERS = pytest.StashKey[List[_Server]]()
FIGURES = pytest.StashKey[List[Tuple[str, str, str]]]()

StartApi = Callable[..., ApiServer]
ReportFigure = Callable[[str, Any, str], None]


def _register(request: pytest.FixtureRequest, server: _Server) -> None:
    request.node.stash.setdefault(SERVERS, []).append(server)


@pytest.fixture
def redis_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RedisServer]:
    """A redis-server owned by this test (stop() and start() cause an outage)."""
    try:
        binary = find_redis_server()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    server = RedisServer(binary, tmp_path)
    _register(request, server)
    for attempt in range(3):
        try:
            server.start()
            break
        except ServerError:
            # The free port may have been taken meanwhile: try another one.
            if attempt == 2:
                raise
            server = RedisServer(binary, tmp_path)
            _register(request, server)
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
