"""``osism watch`` against a live ``osism api``: filters, --json, --count, reconnect.

``osism watch`` runs as a subprocess of the interpreter running the tests; it
says on stderr when the server confirmed its filters ("watching ..."), which
is when the test starts publishing.
"""

import asyncio
import json
import signal
import sys
import uuid
from typing import List, Optional, Tuple

import pytest

from tests.integration.deadlines import async_wait_until, deadline
from tests.integration.conftest import StartApi
from tests.integration.scenario import ironic, nova
from tests.integration.servers import ApiServer

pytestmark = pytest.mark.integration

POWER = "baremetal.node.power_set.end"
CREATE = "compute.instance.create.end"


class Watch:
    """``osism watch`` in a subprocess; its stdout and stderr lines collected."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._readers = [
            asyncio.create_task(self._read(process.stdout, self.stdout)),
            asyncio.create_task(self._read(process.stderr, self.stderr)),
        ]

    @classmethod
    async def start(cls, api: ApiServer, *args: str) -> "Watch":
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "osism.cli.main",
            "watch",
            "--url",
            api.http_url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @staticmethod
    async def _read(stream: Optional[asyncio.StreamReader], into: List[str]) -> None:
        assert stream is not None
        async for line in stream:
            into.append(line.decode().rstrip("\n"))

    def said(self, text: str) -> int:
        return sum(1 for line in self.stderr if text in line)

    async def watching(self, times: int = 1, within: float = 15.0) -> None:
        await async_wait_until(lambda: self.said("watching ") >= times, within)

    async def finish(self, within: float = 20.0) -> Tuple[int, List[str]]:
        within = deadline(within)
        status = await asyncio.wait_for(self.process.wait(), within)
        await asyncio.wait_for(asyncio.gather(*self._readers), within)
        return status, self.stdout

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.mark.asyncio
async def test_json_count_and_filters_print_exactly_the_selected_events(
    start_api: StartApi,
) -> None:
    api = start_api()
    wanted, other = unique("wanted"), unique("other")
    watch = await Watch.start(api, "--json", "--count", "2", "--node", wanted)
    try:
        await watch.watching()
        for node in (other, wanted, other, wanted, wanted):
            await api.apublish(POWER, ironic(node))
        status, lines = await watch.finish()
    finally:
        await watch.kill()

    assert status == 0, watch.stderr
    events = [json.loads(line) for line in lines]
    assert [e["node_name"] for e in events] == [wanted, wanted]
    assert all(e["event_type"] == POWER for e in events)
    assert len({e["id"] for e in events}) == 2
    assert f"filters: node={wanted}" in "\n".join(watch.stderr)


@pytest.mark.asyncio
async def test_one_line_per_event_with_event_and_service_filters(
    start_api: StartApi,
) -> None:
    api = start_api()
    host = unique("host")
    watch = await Watch.start(
        api, "--count", "1", "--event", CREATE, "--service", "compute"
    )
    try:
        await watch.watching()
        await api.apublish(POWER, ironic(unique("node")))
        await api.apublish("compute.instance.delete.end", nova(host))
        await api.apublish(CREATE, nova(host, uuid="inst-1"))
        status, lines = await watch.finish()
    finally:
        await watch.kill()

    assert status == 0, watch.stderr
    [line] = lines
    fields = line.split()
    assert fields[0].endswith("Z")
    assert fields[2] == CREATE
    assert fields[3:] == [f"node={host}", "resource=inst-1"]


@pytest.mark.asyncio
async def test_a_filter_the_server_refuses_exits_2_with_its_reason(
    start_api: StartApi,
) -> None:
    api = start_api()
    watch = await Watch.start(api, "--node", "x" * 300)
    try:
        status, lines = await watch.finish()
    finally:
        await watch.kill()
    assert status == 2 and lines == []
    assert watch.said("the server refused: node_filters entry of 300 characters")


@pytest.mark.asyncio
async def test_no_server_exits_1(start_api: StartApi) -> None:
    api = start_api()
    api.stop()
    watch = await Watch.start(api, "--count", "1")
    try:
        status, _ = await watch.finish()
    finally:
        await watch.kill()
    assert status == 1 and watch.said("cannot connect")


@pytest.mark.asyncio
async def test_timeout_before_count_exits_3(start_api: StartApi) -> None:
    api = start_api()
    watch = await Watch.start(api, "--count", "1", "--timeout", "1")
    try:
        status, lines = await watch.finish()
    finally:
        await watch.kill()
    assert status == 3 and lines == []
    assert watch.said("timed out after 1 s with 0 of 1 events")


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_reconnects_after_the_api_restarts_and_goes_on(
    start_api: StartApi,
) -> None:
    api = start_api()
    node = unique("node")
    watch = await Watch.start(api, "--json", "--count", "4", "--node", node)
    try:
        await watch.watching()
        await api.apublish(POWER, ironic(node, uuid="1"))
        await api.apublish(POWER, ironic(node, uuid="2"))
        await async_wait_until(lambda: len(watch.stdout) == 2, 5.0)
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(api.start)
        await watch.watching(times=2, within=30.0)
        await api.apublish(POWER, ironic(node, uuid="3"))
        await api.apublish(POWER, ironic(node, uuid="4"))
        status, lines = await watch.finish()
    finally:
        await watch.kill()

    assert status == 0, watch.stderr
    events = [json.loads(line) for line in lines]
    assert [e["data"]["resource_id"] for e in events] == ["1", "2", "3", "4"]
    assert watch.said("connection lost")
    assert watch.said("reconnecting in")


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_resumes_without_a_gap_from_the_event_log(start_api: StartApi) -> None:
    # watch is on api1; api2 takes the events while api1 restarts, so they
    # are in the event log when watch comes back and resumes.
    api1 = start_api(name="api1")
    api2 = start_api(name="api2")
    node = unique("node")
    watch = await Watch.start(api1, "--json", "--count", "5", "--node", node)
    try:
        await watch.watching()
        await api2.apublish(POWER, ironic(node, uuid="1"))
        await async_wait_until(lambda: len(watch.stdout) == 1, 5.0)
        await asyncio.to_thread(api1.stop)
        await async_wait_until(lambda: watch.said("connection lost") >= 1, 10.0)
        for uuid_ in ("2", "3"):
            await api2.apublish(POWER, ironic(node, uuid=uuid_))
        await asyncio.to_thread(api1.start)
        await watch.watching(times=2, within=30.0)
        for uuid_ in ("4", "5"):
            await api2.apublish(POWER, ironic(node, uuid=uuid_))
        status, lines = await watch.finish()
    finally:
        await watch.kill()

    assert status == 0, watch.stderr
    events = [json.loads(line) for line in lines]
    assert [e["data"]["resource_id"] for e in events] == ["1", "2", "3", "4", "5"]
    assert not watch.said("events may be missing")


@pytest.mark.asyncio
async def test_ctrl_c_ends_it_with_130_and_no_traceback(start_api: StartApi) -> None:
    api = start_api()
    watch = await Watch.start(api)
    try:
        await watch.watching()
        watch.process.send_signal(signal.SIGINT)
        status, lines = await watch.finish()
    finally:
        await watch.kill()
    assert status == 130 and lines == []
    assert not any("Traceback" in line for line in watch.stderr), watch.stderr
    await async_wait_until(lambda: api.has_connections(0), 5.0)
