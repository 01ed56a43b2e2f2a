"""``osism watch``: arguments, lines, resume and exit status, without a server.

The WebSocket connection is a fake that plays a script of server frames; the
tests check what was printed, what was sent and the exit status.
"""

import argparse
import io
import json
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Sequence, Union
from unittest.mock import MagicMock

import pytest
import websockets
from websockets.frames import Close

from osism.cli import watch

from osism.cli import watch_args
from osism.core import backoff
from osism.cli.main import build_parser, main
from osism.cli.watch import Watcher, format_event, set_filters_message, websocket_url


def event(
    event_id: str,
    event_type: str = "baremetal.node.power_set.end",
    node: Optional[str] = "node1",
    priority: Optional[str] = "INFO",
) -> Dict[str, Any]:
    data: Dict[str, Any] = {
        "service_type": "baremetal",
        "resource_id": "r-" + node_or(node),
    }
    if priority:
        data["_osism"] = {"priority": priority, "service": "ironic"}
    return {
        "id": event_id,
        "timestamp": "2026-11-23T12:03:14.5Z",
        "event_type": event_type,
        "source": "openstack",
        "node_name": node,
        "data": data,
    }


def node_or(node: Optional[str]) -> str:
    return node or "none"


REPLY = {"type": "filter_update", "status": "success"}
HEARTBEAT = {"id": "h", "event_type": "heartbeat", "source": "osism", "data": {}}
Frame = Union[Dict[str, Any], List[Any], str, BaseException]


class FakeSocket:
    def __init__(self, frames: Sequence[Frame]) -> None:
        self.frames = list(frames)
        self.sent: List[Dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def __aiter__(self) -> "FakeSocket":
        return self

    async def __anext__(self) -> str:
        if not self.frames:
            raise StopAsyncIteration
        frame = self.frames.pop(0)
        if isinstance(frame, BaseException):
            raise frame
        return frame if isinstance(frame, str) else json.dumps(frame)


class FakeServer:
    """Each connect() gets the next script; an exception instead fails it."""

    def __init__(self, *scripts: Union[Sequence[Frame], BaseException]) -> None:
        self.scripts = list(scripts)
        self.sockets: List[FakeSocket] = []
        self.urls: List[str] = []
        self.headers: List[Dict[str, str]] = []

    @asynccontextmanager
    async def connect(self, url: str, **kwargs: Any) -> AsyncIterator[FakeSocket]:
        self.urls.append(url)
        self.headers.append(kwargs.get("additional_headers", {}))
        if not self.scripts:
            raise OSError("no more scripts")
        script = self.scripts.pop(0)
        if isinstance(script, BaseException):
            raise script
        socket = FakeSocket(script)
        self.sockets.append(socket)
        yield socket


def closed(code: int = 1006, reason: str = "") -> websockets.ConnectionClosed:
    return websockets.ConnectionClosedError(Close(code, reason), None)


@pytest.fixture(autouse=True)
def highest_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """The back-off draws its highest delay, the step itself, so that a test
    reads the steps; the tests named ..._draw... draw other delays."""
    monkeypatch.setattr(backoff, "source", lambda: 1.0)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    slept: List[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(watch.asyncio, "sleep", sleep)
    return slept


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    fake = FakeServer()
    monkeypatch.setattr(watch, "connect", fake.connect)
    yield fake


def run_watch(
    server: FakeServer, argv: List[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    status = main(["watch", *argv])
    out, err = capsys.readouterr()
    return status, out, err


class TestArguments:
    def test_filters_repeat_and_map_to_their_kinds(self) -> None:
        args = build_parser().parse_args(
            ["watch", "--event", "compute.*", "--event", "a.b", "--node", "n1"]
            + ["--service", "nova", "--priority", "ERROR"]
        )
        assert watch_args.filters_of(args) == {
            "event_filters": ["compute.*", "a.b"],
            "node_filters": ["n1"],
            "service_filters": ["nova"],
            "priority_filters": ["ERROR"],
        }

    def test_kinds_not_given_are_left_out(self) -> None:
        args = build_parser().parse_args(["watch", "--node", "n1"])
        assert watch_args.filters_of(args) == {"node_filters": ["n1"]}

    @pytest.mark.parametrize(
        "argv", [["--count", "0"], ["--timeout", "0"], ["--count", "x"], ["--bad"]]
    )
    def test_usage_errors_exit_2(
        self, argv: List[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            main(["watch", *argv])
        assert exit_.value.code == 2

    def test_help_documents_the_exit_status(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit):
            main(["watch", "--help"])
        out = capsys.readouterr().out
        assert "3 ``--timeout``" in out.replace("\n", " ") or "130" in out

    @pytest.mark.parametrize(
        "base, last, expected",
        [
            ("http://h:8000", None, "ws://h:8000/v1/events/openstack"),
            ("https://h/", None, "wss://h/v1/events/openstack"),
            ("h:8000", None, "ws://h:8000/v1/events/openstack"),
            (
                "ws://h/v1/events/openstack",
                "abc",
                "ws://h/v1/events/openstack?last_event_id=abc",
            ),
        ],
    )
    def test_websocket_url(self, base: str, last: Optional[str], expected: str) -> None:
        assert websocket_url(base, last) == expected

    def test_a_url_that_is_not_http_is_a_usage_error(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, _, err = run_watch(server, ["--url", "ftp://h"], capsys)
        assert status == 2 and "not an http(s)" in err
        assert server.urls == []


class TestFormat:
    def test_one_line_time_priority_type_node_resource(self) -> None:
        assert format_event(event("1")) == (
            "2026-11-23T12:03:14.5Z INFO  baremetal.node.power_set.end "
            "node=node1 resource=r-node1"
        )

    def test_missing_fields_are_dashes(self) -> None:
        line = format_event({"event_type": "x", "data": "not an object"})
        assert line == "- -     x node=- resource=-"

    def test_set_filters_message(self) -> None:
        assert json.loads(set_filters_message({"node_filters": ["a"]}, "id1")) == {
            "action": "set_filters",
            "node_filters": ["a"],
            "last_event_id": "id1",
        }


class TestRun:
    def test_count_events_then_exit_0(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[REPLY, HEARTBEAT, event("1"), event("2"), event("3")]]
        status, out, err = run_watch(
            server, ["--count", "2", "--node", "node1"], capsys
        )
        assert status == 0
        assert [line.split()[2] for line in out.splitlines()] == [
            "baremetal.node.power_set.end"
        ] * 2
        assert server.sockets[0].sent == [
            {"action": "set_filters", "node_filters": ["node1"]}
        ]
        assert "filters: none" in err
        assert watch.describe_filters({"node_filters": ["a", "b"]}) == (
            "filters: node=a,b"
        )

    def test_json_prints_each_event_as_one_document(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[REPLY, event("1")]]
        status, out, _ = run_watch(server, ["--json", "--count", "1"], capsys)
        assert status == 0
        assert [json.loads(line) for line in out.splitlines()] == [event("1")]

    def test_heartbeats_only_when_asked(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[REPLY, HEARTBEAT, event("1")]]
        status, out, _ = run_watch(
            server, ["--json", "--heartbeats", "--count", "1"], capsys
        )
        assert status == 0
        assert [json.loads(line)["id"] for line in out.splitlines()] == ["h", "1"]

    def test_a_refused_filter_exits_2_with_the_servers_words(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[{"type": "error", "error": "unknown field 'x'"}]]
        status, out, err = run_watch(server, ["--priority", "X"], capsys)
        assert status == 2 and out == ""
        assert "the server refused: unknown field 'x'" in err

    def test_no_server_exits_1(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [ConnectionRefusedError(111, "Connection refused")]
        status, _, err = run_watch(server, [], capsys)
        assert status == 1 and "cannot connect" in err

    def test_a_refused_token_exits_1(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[closed(1008, "missing or invalid token")]]
        status, _, err = run_watch(server, ["--token", "bad"], capsys)
        assert status == 1 and "missing or invalid token" in err
        assert server.headers[0] == {"Authorization": "Bearer bad"}

    def test_token_from_the_environment(
        self,
        server: FakeServer,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("API_TOKEN", "from-env")
        server.scripts = [[REPLY, event("1")]]
        assert run_watch(server, ["--count", "1"], capsys)[0] == 0
        assert server.headers[0] == {"Authorization": "Bearer from-env"}

    def test_an_http_refusal_exits_1(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        response = MagicMock(status_code=403)
        server.scripts = [websockets.InvalidStatus(response)]
        status, _, err = run_watch(server, [], capsys)
        assert status == 1 and "HTTP 403" in err

    def test_reconnects_and_resumes_from_the_last_event_printed(
        self,
        server: FakeServer,
        capsys: pytest.CaptureFixture[str],
        no_sleep: List[float],
    ) -> None:
        server.scripts = [
            [REPLY, event("1"), event("2"), closed()],
            OSError("refused while restarting"),
            [
                {**REPLY, "recovered": True, "replayed": 1},
                event("2"),  # a duplicate at the seam is printed once
                event("3"),
            ],
        ]
        status, out, err = run_watch(
            server, ["--json", "--count", "3", "--event", "baremetal.*"], capsys
        )
        assert status == 0
        assert [json.loads(line)["id"] for line in out.splitlines()] == ["1", "2", "3"]
        assert server.sockets[1].sent == [
            {
                "action": "set_filters",
                "event_filters": ["baremetal.*"],
                "last_event_id": "2",
            }
        ]
        assert no_sleep == [0.5, 1.0]
        assert "connection lost" in err and "cannot reconnect" in err

    def test_each_reconnect_waits_a_draw_below_its_step_and_a_connection_resets_it(
        self,
        server: FakeServer,
        capsys: pytest.CaptureFixture[str],
        no_sleep: List[float],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(backoff, "source", iter([0.5, 0.25, 0.75, 0.5]).__next__)
        server.scripts = [
            [REPLY, event("1"), closed()],
            OSError("refused"),
            OSError("refused"),
            [REPLY, closed()],
            [REPLY, event("2")],
        ]
        status, _, err = run_watch(server, ["--count", "2"], capsys)
        assert status == 0
        # steps 0.5, 1, 2 s, then 0.5 s again after a connection
        assert no_sleep == [0.25, 0.25, 1.5, 0.25]
        assert [line for line in err.splitlines() if "reconnecting in" in line] == [
            "osism watch: reconnecting in 0.2 s",
            "osism watch: reconnecting in 0.2 s",
            "osism watch: reconnecting in 1.5 s",
            "osism watch: reconnecting in 0.2 s",
        ]

    def test_the_back_off_is_capped_at_ten_seconds(
        self,
        server: FakeServer,
        capsys: pytest.CaptureFixture[str],
        no_sleep: List[float],
    ) -> None:
        server.scripts = [
            [REPLY, closed()],
            *[OSError("refused")] * 6,
            [REPLY, event("1")],
        ]
        status, _, _ = run_watch(server, ["--count", "1"], capsys)
        assert status == 0
        assert no_sleep == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]

    def test_says_when_events_may_be_missing(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [
            [REPLY, event("1"), closed()],
            [{**REPLY, "recovered": False, "oldest_id": "9"}, event("10")],
        ]
        status, _, err = run_watch(server, ["--count", "2"], capsys)
        assert status == 0
        assert "events may be missing" in err and "9" in err

    def test_a_server_without_resume_is_asked_again_without_it(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [
            [REPLY, event("1"), closed()],
            [{"type": "error", "error": "unknown field 'last_event_id'"}, event("2")],
        ]
        status, _, err = run_watch(server, ["--count", "2"], capsys)
        assert status == 0
        assert server.sockets[1].sent[1] == {"action": "set_filters"}
        assert "cannot resume" in err

    def test_timeout_before_count_exits_3(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        async def never(self: Watcher) -> int:
            await watch.asyncio.Event().wait()
            return 0

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Watcher, "run", never)
            status, _, err = run_watch(
                server, ["--count", "1", "--timeout", "0.01"], capsys
            )
            assert status == 3 and "0 of 1 events" in err
            status, _, _ = run_watch(server, ["--timeout", "0.01"], capsys)
            assert status == 0

    def test_ctrl_c_exits_130_without_a_traceback(
        self,
        server: FakeServer,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def interrupted(coroutine: Any) -> int:
            coroutine.close()
            raise KeyboardInterrupt

        monkeypatch.setattr(watch.asyncio, "run", interrupted)
        status, _, err = run_watch(server, [], capsys)
        assert status == 130 and "Traceback" not in err

    def test_a_closed_pipe_ends_quietly(
        self, server: FakeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(coroutine: Any) -> int:
            coroutine.close()
            raise BrokenPipeError

        silenced: List[bool] = []
        monkeypatch.setattr(watch.asyncio, "run", broken)
        monkeypatch.setattr(watch, "_silence_stdout", lambda: silenced.append(True))
        args = argparse.Namespace(
            url="http://h",
            token=None,
            json=False,
            count=None,
            heartbeats=False,
            timeout=None,
        )
        assert watch.run(args) == 0 and silenced == [True]

    def test_the_watcher_writes_to_the_streams_it_is_given(self) -> None:
        out = io.StringIO()
        watcher = Watcher("http://h", {}, out=out, as_json=True)
        assert watcher._emit(event("1")) is False
        assert json.loads(out.getvalue())["id"] == "1"

    def test_a_frame_that_is_not_json_is_skipped_and_said(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[REPLY, "not json", [1, 2], event("1")]]
        status, out, err = run_watch(server, ["--count", "1"], capsys)
        assert status == 0 and len(out.splitlines()) == 1
        assert "ignored a frame that is not JSON" in err

    def test_a_clean_close_is_said_and_followed_by_a_reconnect(
        self, server: FakeServer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        server.scripts = [[REPLY], [REPLY, event("1")]]
        status, _, err = run_watch(server, ["--count", "1"], capsys)
        assert status == 0 and "the server closed the connection" in err
