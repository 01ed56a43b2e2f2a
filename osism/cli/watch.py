"""``osism watch``: the event stream in a terminal, one line per event.

It connects to ``/v1/events/openstack``, sends the filters it was given as a
``set_filters`` message and prints each event (``--json``: the event as one
JSON document per line). After a dropped connection it reconnects with
back-off (with jitter, so that many watchers do not come back in step) and
resumes from the last event it printed.

Exit status: 0 got what was asked (``--count`` events, or ``--timeout``
elapsed without ``--count``), 1 the server could not be reached or refused
the connection, 2 a usage error or a filter the server refused, 3 ``--timeout``
elapsed before ``--count`` events, 130 interrupted (Ctrl-C).
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Set, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

from osism.core.backoff import Backoff
from osism.cli.watch_args import FILTER_OPTIONS, filters_of

logger = logging.getLogger("osism.cli.watch")

EVENTS_PATH = "/v1/events/openstack"
EXIT_OK = 0
EXIT_CONNECTION = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130
BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0
# Ids remembered to drop a duplicate at the seam of a resume.
SEEN_IDS = 1000


class WatchError(Exception):
    """Ends the watch with an exit status and a message for stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def websocket_url(base: str, last_event_id: Optional[str] = None) -> str:
    """``http://host:8000`` -> ``ws://host:8000/v1/events/openstack``."""
    parts = urlsplit(base if "://" in base else f"http://{base}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise WatchError(EXIT_USAGE, f"--url {base!r} is not an http(s) or ws(s) URL")
    path = parts.path.rstrip("/")
    if not path.endswith(EVENTS_PATH):
        path += EVENTS_PATH
    query = urlencode({"last_event_id": last_event_id}) if last_event_id else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def set_filters_message(
    filters: Mapping[str, List[str]], last_event_id: Optional[str] = None
) -> str:
    message: Dict[str, Any] = {"action": "set_filters"}
    message.update(filters)
    if last_event_id:
        message["last_event_id"] = last_event_id
    return json.dumps(message)


def format_event(event: Mapping[str, Any]) -> str:
    """time, priority, event type, node, resource: one line."""
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    meta = data.get("_osism")
    meta = meta if isinstance(meta, dict) else {}
    priority = meta.get("priority") or "-"
    return "{} {:<5} {} node={} resource={}".format(
        event.get("timestamp", "-"),
        priority,
        event.get("event_type", "-"),
        event.get("node_name") or "-",
        data.get("resource_id") or "-",
    )


def describe_filters(reply: Mapping[str, Any]) -> str:
    """The filters a ``filter_update`` reply says are in force."""
    parts = [
        f"{dest.replace('_filters', '')}={','.join(map(str, reply[dest]))}"
        for _, dest, _ in FILTER_OPTIONS
        if isinstance(reply.get(dest), list) and reply[dest]
    ]
    return "filters: " + (" ".join(parts) if parts else "none")


def is_heartbeat(event: Mapping[str, Any]) -> bool:
    return event.get("event_type") == "heartbeat" and event.get("source") == "osism"


class Watcher:
    """One ``osism watch`` run: connections, output and the exit status."""

    def __init__(
        self,
        url: str,
        filters: Mapping[str, List[str]],
        *,
        as_json: bool = False,
        count: Optional[int] = None,
        token: Optional[str] = None,
        heartbeats: bool = False,
        out: Optional[TextIO] = None,
        err: Optional[TextIO] = None,
    ) -> None:
        self.url = url
        self.filters = dict(filters)
        self.as_json = as_json
        self.count = count
        self.token = token
        self.heartbeats = heartbeats
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self.printed = 0
        self.last_event_id: Optional[str] = None
        self.connections = 0
        self._seen: Deque[str] = deque(maxlen=SEEN_IDS)
        self._seen_set: Set[str] = set()

    async def run(self) -> int:
        """Watch until --count events arrived; reconnect when dropped."""
        backoff = Backoff(BACKOFF_MIN, BACKOFF_MAX)
        while True:
            try:
                async with connect(
                    websocket_url(self.url),
                    additional_headers=self._headers(),
                    open_timeout=10,
                    max_size=None,
                ) as websocket:
                    self.connections += 1
                    backoff.reset()
                    if await self._session(websocket):
                        return EXIT_OK
                    self._note("the server closed the connection")
            except websockets.InvalidStatus as exc:
                code = exc.response.status_code
                raise WatchError(
                    EXIT_CONNECTION, f"the server refused the connection: HTTP {code}"
                )
            except websockets.ConnectionClosed as exc:
                self._refused(exc)
                self._note(f"connection lost ({_close_text(exc)})")
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
                if self.connections == 0:
                    raise WatchError(
                        EXIT_CONNECTION, f"cannot connect to {self.url}: {exc}"
                    )
                self._note(f"cannot reconnect: {exc}")
            delay = backoff.next()
            self._note(f"reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)

    async def _session(self, websocket: ClientConnection) -> bool:
        """One connection; True once --count events were printed."""
        resuming = self.last_event_id
        await websocket.send(set_filters_message(self.filters, resuming))
        async for text in websocket:
            try:
                message = json.loads(text)
            except ValueError:
                self._note(f"ignored a frame that is not JSON: {str(text)[:80]!r}")
                continue
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind == "error":
                error = str(message.get("error"))
                if resuming and "last_event_id" in error:
                    # A server without an event log: go on without resuming.
                    self._note("the server cannot resume: events may be missing")
                    resuming = None
                    await websocket.send(set_filters_message(self.filters))
                    continue
                raise WatchError(EXIT_USAGE, f"the server refused: {error}")
            if kind == "filter_update":
                self._note(f"watching {self.url} ({describe_filters(message)})")
                if message.get("recovered") is False:
                    self._note(
                        "events may be missing: the server could not resume "
                        f"(oldest id it holds: {message.get('oldest_id')})"
                    )
                continue
            if self._emit(message):
                return True
        return False

    def _emit(self, event: Mapping[str, Any]) -> bool:
        if is_heartbeat(event):
            if self.heartbeats:
                self._print(event)
            return False
        event_id = event.get("id")
        if isinstance(event_id, str):
            if event_id in self._seen_set:
                return False
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(event_id)
            self._seen_set.add(event_id)
            self.last_event_id = event_id
        self._print(event)
        self.printed += 1
        return self.count is not None and self.printed >= self.count

    def _print(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(event) if self.as_json else format_event(event)
        self.out.write(line + "\n")
        self.out.flush()

    def _headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _refused(self, exc: websockets.ConnectionClosed) -> None:
        received = exc.rcvd
        if received is not None and received.code == 1008:
            raise WatchError(
                EXIT_CONNECTION,
                f"the server refused the connection: {received.reason or 'policy'}",
            )

    def _note(self, text: str) -> None:
        self.err.write(f"osism watch: {text}\n")
        self.err.flush()


def _close_text(exc: websockets.ConnectionClosed) -> str:
    received = exc.rcvd
    if received is None:
        return "no close frame"
    return f"code {received.code}" + (f": {received.reason}" if received.reason else "")


async def watch(watcher: Watcher, timeout: Optional[float]) -> int:
    """Run ``watcher``, bounded by ``timeout`` seconds when given."""
    if timeout is None:
        return await watcher.run()
    try:
        return await asyncio.wait_for(watcher.run(), timeout)
    except asyncio.TimeoutError:
        if watcher.count is None:
            return EXIT_OK
        watcher._note(
            f"timed out after {timeout:g} s with {watcher.printed} of "
            f"{watcher.count} events"
        )
        return EXIT_TIMEOUT


def _token_from_environment() -> Optional[str]:
    """API_TOKEN, through the settings model (a client: other settings that
    cannot be used are not its business)."""
    from osism import config

    token = config.load_lenient()[0].security.api_token
    return token.get_secret_value() if token is not None else None


def run(args: argparse.Namespace) -> int:
    """``osism watch``: the exit status as the module's docstring lists it."""
    token = args.token or _token_from_environment()
    watcher = Watcher(
        args.url,
        filters_of(args),
        as_json=args.json,
        count=args.count,
        token=token,
        heartbeats=args.heartbeats,
    )
    started = time.monotonic()
    try:
        websocket_url(args.url)
        return asyncio.run(watch(watcher, args.timeout))
    except WatchError as exc:
        sys.stderr.write(f"osism watch: {exc}\n")
        return exc.status
    except KeyboardInterrupt:
        logger.debug("Interrupted after %.1f s", time.monotonic() - started)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say to anyone.
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
