"""Clients resume from the last id they saw, on real processes.

Events enter the log the way the listener puts them there (RedisEventLog, one
atomic append + PUBLISH on the test's redis-server), or through POST in the
embedded mode. Clients are real ``websockets`` clients of real ``osism api``
subprocesses. Each event carries its number (``seq``) in its payload, so a
client's stream can be compared with what was published: every number once,
in order.
"""

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from osism.core.event_log import new_envelope
from osism.services.bridge.redis_client import RedisSettings, create_client
from osism.services.bridge.redis_log import RedisEventLog
from tests.integration.deadlines import deadline
from tests.integration.conftest import ReportFigure, StartApi
from tests.integration.scenario import ironic
from tests.integration.servers import EVENTS_PATH, ApiServer, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EVENT_TYPE = "baremetal.node.power_set.end"
Message = Dict[str, Any]


def payload(seq: int) -> Dict[str, Any]:
    return ironic(f"node-{seq % 10}", seq=seq)


# --------------------------------------------------------------------------
# publishers


def append_paced(
    redis_server: RedisServer,
    first: int,
    count: int,
    rate: float,
    history_size: Optional[int] = None,
) -> List[str]:
    """Append events ``first..first+count-1`` to the log at ``rate`` per second,
    as the listener does; their ids, in log order. Blocking (run in a thread)."""
    client = create_client(
        RedisSettings(host=redis_server.host, port=redis_server.port)
    )
    log = RedisEventLog(client, history_size=history_size)
    ids = []
    started = time.monotonic()
    try:
        for number in range(count):
            # Pacing the publisher, not waiting for a condition.
            delay = started + number / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            entry = log.append(new_envelope(EVENT_TYPE, payload(first + number)))
            assert entry is not None, "the log did not take an event"
            ids.append(str(entry.event["id"]))
    finally:
        client.close()
    return ids


async def post_paced(api: ApiServer, first: int, count: int, rate: float) -> None:
    """POST events ``first..first+count-1`` at ``rate`` per second."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=api.http_url, timeout=10.0) as http:
        for number in range(count):
            delay = started + number / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"event_type": EVENT_TYPE, "payload": payload(first + number)}
            response = await http.post(EVENTS_PATH, json=body)
            assert response.status_code == 202, response.text


def oldest_logged_id(redis_server: RedisServer) -> str:
    client = redis_server.client()
    try:
        rows = client.xrange("osism:events:log", "-", "+", count=1)
    finally:
        client.close()
    fields = rows[0][1]
    return str(fields[b"id"].decode())


# --------------------------------------------------------------------------
# a client that remembers what it saw


class Client:
    """A WebSocket client keeping every event (in order) and every reply."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: List[Message] = []
        self.replies: List[Message] = []
        self.ws: Optional[ClientConnection] = None

    @property
    def last_id(self) -> str:
        return str(self.events[-1]["id"])

    @property
    def seqs(self) -> List[int]:
        return [int(event["data"]["seq"]) for event in self.events]

    async def connect(
        self, api: ApiServer, last_event_id: Optional[str] = None
    ) -> None:
        url = api.ws_url
        if last_event_id is not None:
            url += f"?last_event_id={last_event_id}"
        self.ws = await ws_connect(
            url, open_timeout=deadline(10), close_timeout=deadline(5)
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def read(self, events: int, within: float = 30.0) -> None:
        """Read until this client holds ``events`` events in all."""
        assert self.ws is not None
        async with asyncio.timeout(deadline(within)):
            while len(self.events) < events:
                self.take(json.loads(await self.ws.recv()))

    async def reply(self, within: float = 10.0, after_live: bool = False) -> Message:
        """The next message, which must be a reply; with ``after_live``, live
        events that came before it (sent before the filters) are passed over."""
        assert self.ws is not None
        async with asyncio.timeout(deadline(within)):
            message: Message = json.loads(await self.ws.recv())
            while after_live and "type" not in message:
                message = json.loads(await self.ws.recv())
        assert message.get("type") == "filter_update", (self.name, message)
        self.replies.append(message)
        return message

    def take(self, message: Message) -> None:
        if "type" in message:
            self.replies.append(message)
        elif message.get("event_type") != "heartbeat":
            self.events.append(message)

    async def read_until_closed(self, events: int, within: float) -> bool:
        """Read until ``events`` events (True) or the server goes away (False)."""
        assert self.ws is not None
        try:
            await self.read(events, within)
        except ConnectionClosed:
            return False
        return True


async def wait_ready(api: ApiServer, within: float = 30.0) -> None:
    """Like a load balancer's readiness probe: until /v1/status says ready."""
    within = deadline(within)
    until = time.monotonic() + within
    while True:
        try:
            if (await api.astatus())["ready"]:
                return
        except (httpx.HTTPError, ValueError):
            pass
        assert time.monotonic() < until, f"{api.name} not ready in {within} s"
        await asyncio.sleep(0.05)


def assert_exactly(client: Client, expected: List[int]) -> None:
    seqs = client.seqs
    duplicates = len(seqs) - len(set(seqs))
    missing = sorted(set(expected) - set(seqs))
    assert seqs == expected, (
        f"{client.name}: {len(seqs)} events, {duplicates} duplicates, "
        f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}"
    )


# --------------------------------------------------------------------------
# Redis mode


@pytest.mark.asyncio
async def test_a_client_away_for_3_s_gets_exactly_what_it_missed_then_live(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    api = start_api()
    client = Client("reader")
    await client.connect(api)
    publishing = asyncio.create_task(
        asyncio.to_thread(append_paced, redis_server, 0, 1000, 200.0)
    )
    try:
        await client.read(200)
        await client.close()
        away_after = client.last_id
        await asyncio.sleep(3.0)  # the client is away for three seconds

        reconnected = time.monotonic()
        await client.connect(api, last_event_id=away_after)
        reply = await client.reply()
        await client.read(200 + reply["replayed"])
        replay_seconds = time.monotonic() - reconnected
        published = await asyncio.wait_for(publishing, deadline(30.0))
        await client.read(1000)
        later = await asyncio.to_thread(append_paced, redis_server, 1000, 5, 100.0)
        await client.read(1005)
    finally:
        publishing.cancel()
        await client.close()

    assert reply["recovered"] is True
    assert reply["oldest_id"] == published[0]
    assert 0 < reply["replayed"] <= 800
    assert_exactly(client, list(range(1005)))
    # One id per event: the one the log gave it, for this client too.
    assert [event["id"] for event in client.events] == published + later
    report_figure("resume_replayed_after_3s_away", reply["replayed"], "events")
    report_figure(
        "resume_reconnect_to_last_replayed_event", round(replay_seconds, 3), "s"
    )


@pytest.mark.asyncio
async def test_an_id_older_than_the_log_is_not_recovered_and_names_the_oldest(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api(env={"EVENT_HISTORY_SIZE": "100"})
    published = await asyncio.to_thread(
        append_paced, redis_server, 0, 1000, 100000.0, 100
    )
    oldest = oldest_logged_id(redis_server)
    held = published[published.index(oldest) :]
    assert 100 <= len(held) < 1000

    client = Client("late")
    try:
        await client.connect(api, last_event_id=published[0])
        reply = await client.reply()
        await client.read(len(held))
    finally:
        await client.close()

    assert reply["recovered"] is False
    assert reply["oldest_id"] == oldest
    assert reply["replayed"] == len(held)
    assert [event["id"] for event in client.events] == held


@pytest.mark.asyncio
async def test_resume_in_set_filters_replays_only_what_the_filters_admit(
    start_api: StartApi, redis_server: RedisServer
) -> None:
    api = start_api()
    published = await asyncio.to_thread(append_paced, redis_server, 0, 100, 100000.0)
    client = Client("filtered")
    await client.connect(api)
    try:
        assert client.ws is not None
        await client.ws.send(
            json.dumps(
                {
                    "action": "set_filters",
                    "node_filters": ["node-3"],
                    "last_event_id": published[0],
                }
            )
        )
        # Events of the burst that were still on their way to the API when
        # the client connected reach it unfiltered, before the reply.
        reply = await client.reply(after_live=True)
        await client.read(10)
        await asyncio.to_thread(append_paced, redis_server, 100, 10, 100000.0)
        await client.read(11)
    finally:
        await client.close()

    assert reply["node_filters"] == ["node-3"]
    assert reply["recovered"] is True
    assert reply["replayed"] == 10
    assert client.seqs == [3, 13, 23, 33, 43, 53, 63, 73, 83, 93, 103]


@pytest.mark.asyncio
async def test_clients_of_a_killed_and_restarted_replica_get_all_500_once(
    start_api: StartApi, redis_server: RedisServer, report_figure: ReportFigure
) -> None:
    api = start_api()
    clients = [Client(f"client-{n}") for n in range(3)]
    for client in clients:
        await client.connect(api)
    publishing = asyncio.create_task(
        asyncio.to_thread(append_paced, redis_server, 0, 500, 100.0)
    )
    try:
        await asyncio.gather(*(client.read(50) for client in clients))
        assert api.process is not None
        api.process.kill()  # SIGKILL: no shutdown, no close frames
        api.process.wait(10)
        killed_at = time.monotonic()
        await asyncio.gather(
            *(client.read_until_closed(500, within=10) for client in clients)
        )
        await asyncio.to_thread(api.start)
        await wait_ready(api)
        back_after = time.monotonic() - killed_at
        replies = []
        for client in clients:
            await client.connect(api, last_event_id=client.last_id)
            replies.append(await client.reply())
        published = await asyncio.wait_for(publishing, deadline(30.0))
        await asyncio.gather(*(client.read(500) for client in clients))
    finally:
        publishing.cancel()
        for client in clients:
            await client.close()

    assert all(reply["recovered"] is True for reply in replies), replies
    for client in clients:
        assert_exactly(client, list(range(500)))
        assert [event["id"] for event in client.events] == published
    report_figure("resume_replica_restart_seconds", round(back_after, 2), "s")


# --------------------------------------------------------------------------
# embedded mode: one process, no Redis


@pytest.fixture
def embedded_api(tmp_path: Path) -> Iterator[Any]:
    """Start ``osism api`` without a Redis (in-memory log); stopped at the end."""
    started: List[ApiServer] = []

    def start(env: Optional[Dict[str, str]] = None) -> ApiServer:
        api = ApiServer(tmp_path, f"embedded{len(started) + 1}", env=env)
        started.append(api)
        api.start(subscribed=False)
        return api

    try:
        yield start
    finally:
        for api in started:
            api.stop()


@pytest.mark.asyncio
async def test_embedded_a_client_away_for_3_s_gets_exactly_what_it_missed(
    embedded_api: Any,
) -> None:
    api = embedded_api()
    watcher, client = Client("watcher"), Client("reader")
    await watcher.connect(api)
    await client.connect(api)
    publishing = asyncio.create_task(post_paced(api, 0, 1000, 200.0))
    try:
        await client.read(200)
        await client.close()
        away_after = client.last_id
        await asyncio.sleep(3.0)  # the client is away for three seconds

        await client.connect(api, last_event_id=away_after)
        reply = await client.reply()
        await asyncio.wait_for(publishing, deadline(30.0))
        await post_paced(api, 1000, 5, 100.0)
        await client.read(1005)
        await watcher.read(1005)
    finally:
        publishing.cancel()
        await client.close()
        await watcher.close()

    assert reply["recovered"] is True
    assert reply["oldest_id"] == watcher.events[0]["id"]
    assert 0 < reply["replayed"] <= 800
    assert_exactly(client, list(range(1005)))
    assert [e["id"] for e in client.events] == [e["id"] for e in watcher.events]


@pytest.mark.asyncio
async def test_embedded_an_id_older_than_the_log_is_not_recovered(
    embedded_api: Any,
) -> None:
    api = embedded_api(env={"EVENT_HISTORY_SIZE": "100"})
    watcher = Client("watcher")
    await watcher.connect(api)
    try:
        await post_paced(api, 0, 300, 100000.0)
        await watcher.read(300)
    finally:
        await watcher.close()
    held = watcher.events[-100:]

    client = Client("late")
    try:
        await client.connect(api, last_event_id=watcher.events[0]["id"])
        reply = await client.reply()
        await client.read(100)
    finally:
        await client.close()

    assert reply["recovered"] is False
    assert reply["oldest_id"] == held[0]["id"]
    assert reply["replayed"] == 100
    assert client.events == held


@pytest.mark.asyncio
async def test_embedded_more_missed_than_the_replay_limit_gets_the_newest_part(
    embedded_api: Any,
) -> None:
    api = embedded_api(env={"REPLAY_LIMIT": "50"})
    watcher = Client("watcher")
    await watcher.connect(api)
    try:
        await post_paced(api, 0, 200, 100000.0)
        await watcher.read(200)
    finally:
        await watcher.close()

    client = Client("late")
    try:
        await client.connect(api, last_event_id=watcher.events[9]["id"])
        reply = await client.reply()
        await client.read(50)
    finally:
        await client.close()

    assert reply["recovered"] is False
    assert reply["replayed"] == 50
    assert client.seqs == list(range(150, 200))
