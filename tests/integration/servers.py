"""The real processes the integration tests run against.

``RedisServer`` is a ``redis-server`` owned by one test: it listens on a free
loopback port, keeps nothing on disk, and can be stopped and started again on
the same port to cause a real outage. ``ApiServer`` is ``osism api`` in a
subprocess, configured through its environment like in production. Both write
their output to a log file the tests read (and show when a test fails), both
wait for their process to be ready with a deadline, and both only ever signal
the process they started themselves.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Dict, List, Mapping, Optional, Type

import httpx
import redis
import redis.asyncio

REDIS_NOT_FOUND = "redis-server not found: install it or set OSISM_REDIS_SERVER"
LOOPBACK = "127.0.0.1"
EVENTS_PATH = "/v1/events/openstack"
CHANNEL = "osism:events"
# Lines of uvicorn's and our own logging that say something went wrong.
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)
ERROR_LINE = re.compile(r"^(?:\S+ \S+ (?:ERROR|CRITICAL) |ERROR: )", re.MULTILINE)


class ServerError(RuntimeError):
    """A server could not be found, started, or did not behave."""


def find_redis_server() -> str:
    """The redis-server to run: $OSISM_REDIS_SERVER, else the one on PATH."""
    configured = os.environ.get("OSISM_REDIS_SERVER", "").strip()
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise ServerError(
            f"OSISM_REDIS_SERVER={configured!r} is not an executable file; "
            + REDIS_NOT_FOUND
        )
    found = shutil.which("redis-server")
    if found is None:
        raise ServerError(REDIS_NOT_FOUND)
    return found


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file ("" if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A subprocess whose output goes to a log file; stopped by its own pid."""

    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: Optional["subprocess.Popen[bytes]"] = None
        self._log: Optional[IO[bytes]] = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def _spawn(self, command: List[str], env: Optional[Mapping[str, str]]) -> None:
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"==== {' '.join(command)}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )

    def _terminate(self, timeout: float) -> Optional[int]:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10.0)
                self._close_log()
                raise ServerError(
                    f"{self.name} (pid {process.pid}) ignored SIGTERM for "
                    f"{timeout} s and was killed"
                )
        self._close_log()
        return process.returncode

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def _failed_to_start(self, reason: str) -> ServerError:
        return ServerError(
            f"{self.name} {reason}; its log ({self.log_path}) ends with:\n"
            + self.log_tail()
        )


class RedisServer(ManagedProcess):
    """A redis-server of our own on a loopback port, nothing saved to disk."""

    name = "redis-server"

    def __init__(self, binary: str, workdir: Path, port: Optional[int] = None) -> None:
        super().__init__(workdir / "redis.log")
        self.binary = binary
        self.workdir = workdir
        self.host = LOOPBACK
        self.port = free_port() if port is None else port

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self._spawn(
            [
                self.binary,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--loglevel",
                "notice",
            ],
            env=None,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if not self.running or time.monotonic() > deadline:
                reason = (
                    f"did not answer PING within {timeout} s"
                    if self.running
                    else "exited while starting"
                )
                self.stop()
                raise self._failed_to_start(reason)
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process this object started (and nothing else)."""
        self._terminate(timeout)

    def ping(self) -> bool:
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )

    def async_client(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis(
            host=self.host, port=self.port, socket_connect_timeout=5.0
        )

    def subscribers(self, channel: str = CHANNEL) -> int:
        """How many connections are subscribed to ``channel`` right now."""
        client = self.client()
        try:
            counts = client.pubsub_numsub(channel)
        finally:
            client.close()
        return int(counts[0][1]) if counts else 0

    def wait_for_subscribers(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.subscribers() < count:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{CHANNEL} has {self.subscribers()} subscribers, "
                    f"not {count}, after {timeout} s"
                )
            time.sleep(0.02)


class ApiServer(ManagedProcess):
    """``osism api --host 127.0.0.1 --port <free>`` as a subprocess.

    It is pointed at the test's Redis with REDIS_HOST/REDIS_PORT; ``env`` adds
    or overrides settings (HEARTBEAT_INTERVAL is 0 unless a test sets it, so
    heartbeats only appear where a test asks for them).
    """

    def __init__(
        self,
        workdir: Path,
        name: str = "api",
        redis_port: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(workdir / f"{name}.log")
        self.name = name
        self.host = LOOPBACK
        self.port = free_port()
        self.redis_port = redis_port
        self.env = dict(env or {})
        self.returncode: Optional[int] = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{EVENTS_PATH}"

    def command(self) -> List[str]:
        # The interpreter running the tests is the one the project is installed
        # in (the project venv, or nox's session venv), so this needs no PATH.
        return [
            sys.executable,
            "-m",
            "osism.main",
            "api",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def environment(self) -> Dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REDIS_", "API_TOKEN", "ALLOWED_ORIGINS"))
        }
        env.update(
            REDIS_HOST=self.host,
            # Without a test Redis, a port nobody listens on: the API runs alone.
            REDIS_PORT=str(self.redis_port or free_port()),
            HEARTBEAT_INTERVAL="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 30.0, subscribed: Optional[bool] = None) -> None:
        """Start it; return once /v1/status says ready (and subscribed to Redis).

        ``subscribed`` defaults to whether the server was given a Redis port.
        """
        want_subscribed = (
            self.redis_port is not None if subscribed is None else (subscribed)
        )
        self._spawn(self.command(), self.environment())
        deadline = time.monotonic() + timeout
        last: Any = None
        with httpx.Client(base_url=self.http_url, timeout=1.0) as http:
            while True:
                if not self.running:
                    self.stop()
                    raise self._failed_to_start("exited while starting")
                try:
                    last = http.get("/v1/status").json()
                except (httpx.HTTPError, ValueError) as exc:
                    last = exc
                else:
                    if last.get("ready") and (
                        not want_subscribed or last["bridge"]["subscribed"]
                    ):
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise self._failed_to_start(
                        f"was not ready within {timeout} s (last status: {last!r})"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM and wait for the exit (SIGKILL and an error after ``timeout``)."""
        returncode = self._terminate(timeout)
        if returncode is not None:
            self.returncode = returncode
        return self.returncode

    def status(self) -> Dict[str, Any]:
        response = httpx.get(f"{self.http_url}/v1/status", timeout=5.0)
        response.raise_for_status()
        result: Dict[str, Any] = response.json()
        return result

    async def astatus(self) -> Dict[str, Any]:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.get(f"{self.http_url}/v1/status")
        response.raise_for_status()
        result: Dict[str, Any] = response.json()
        return result

    async def has_connections(self, count: int) -> bool:
        """Whether exactly ``count`` WebSocket clients are connected."""
        status = await self.astatus()
        return bool(status["websocket"]["connections"] == count)

    async def apublish(
        self, event_type: str, payload: Mapping[str, Any], timeout: float = 10.0
    ) -> None:
        """POST an event, as ``osism publish`` does; it must be accepted."""
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(
                f"{self.http_url}{EVENTS_PATH}",
                content=json.dumps({"event_type": event_type, "payload": payload}),
                headers={"Content-Type": "application/json"},
            )
        if response.status_code != 202:
            raise ServerError(
                f"POST {EVENTS_PATH} to {self.name} answered "
                f"{response.status_code}: {response.text}"
            )

    def tracebacks(self) -> List[str]:
        """Each traceback in the log, with the lines around it."""
        text = self.log_text()
        return [text[m.start() : m.start() + 2000] for m in TRACEBACK.finditer(text)]

    def error_lines(self) -> List[str]:
        text = self.log_text()
        return [text[m.start() :].split("\n", 1)[0] for m in ERROR_LINE.finditer(text)]

    def __enter__(self) -> "ApiServer":
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()
