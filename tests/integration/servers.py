"""The real processes the integration tests run against.

``RedisServer`` is a ``redis-server`` owned by one test: it listens on a free
loopback port, keeps nothing on disk, and can be stopped and started again on
the same port to cause a real outage. ``ApiServer`` is ``osism api`` in a
subprocess, configured through its environment like in production.
``RabbitMQServer`` is Debian's ``rabbitmq-server`` with a node name, ports,
data and logs of its own (and an ``epmd`` of its own), so it never meets the
machine's broker; stopped and started again it keeps its durable queues. All of
them write their output to a log file the tests read (and show when a test
fails), wait for their process to be ready with a deadline, and only ever
signal the processes they started themselves.

Ports: ``free_port()`` asks the kernel for a port nobody listens on, but
somebody may take it before the server binds it. The first ``start()`` of each
server therefore tries again on new ports (up to ``PORT_ATTEMPTS`` times) when
it failed because one of its ports was taken; a later ``start()`` keeps its
ports, since a restart on the same port is what a test wants.
"""

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Type

import httpx
import redis
import redis.asyncio
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.integration.deadlines import deadline
from tools import services

LOOPBACK = "127.0.0.1"
PORT_ATTEMPTS = 3
# What a server says when a port it was given is already bound.
PORT_TAKEN = re.compile(
    r"address already in use|eaddrinuse|port_already_used", re.IGNORECASE
)
EVENTS_PATH = "/v1/events/openstack"
CHANNEL = "osism:events"
# Lines of uvicorn's and our own logging that say something went wrong.
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)
ERROR_LINE = re.compile(r"^(?:\S+ \S+ (?:ERROR|CRITICAL) |ERROR: )", re.MULTILINE)


class ServerError(RuntimeError):
    """A server could not be found, started, or did not behave."""


def find_redis_server() -> str:
    """The redis-server to run: $OSISM_REDIS_SERVER, else the one on PATH."""
    try:
        return services.find_redis_server()
    except services.MissingService as exc:
        raise ServerError(str(exc)) from None


def find_rabbitmq_server() -> str:
    """The rabbitmq-server to run: $OSISM_RABBITMQ_SERVER, else Debian's."""
    try:
        return services.find_rabbitmq_server()
    except services.MissingService as exc:
        raise ServerError(str(exc)) from None


def find_epmd() -> str:
    try:
        return services.find_epmd()
    except services.MissingService as exc:
        raise ServerError(str(exc)) from None


def free_port() -> int:
    """A loopback port nobody listens on right now (see "Ports" above)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether somebody has bound ``port`` on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        return False


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
        self._log_offset = 0
        self.started_once = False

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

    def log_of_last_start(self) -> str:
        """What the process wrote since it was last spawned."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def ports(self) -> List[int]:
        """The ports this process binds (a retried first start replaces them)."""
        return []

    def choose_ports(self) -> None:
        """Take new free ports for a first start that lost one of its own."""

    def lost_a_port(self) -> bool:
        """Whether the last start failed because one of its ports was taken."""
        return bool(PORT_TAKEN.search(self.log_of_last_start())) or any(
            port_in_use(port) for port in self.ports()
        )

    def _start_on_free_ports(self, start_once: Callable[[], None]) -> None:
        """``start_once()``; a first start whose port was taken meanwhile is
        tried again on new ports, up to PORT_ATTEMPTS times in all."""
        attempts = 1 if self.started_once else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                start_once()
            except ServerError:
                if attempt == attempts or not self.lost_a_port():
                    raise
                self.choose_ports()
            else:
                self.started_once = True
                return

    def _spawn(
        self,
        command: List[str],
        env: Optional[Mapping[str, str]],
        new_session: bool = False,
    ) -> None:
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        self._log.write(f"==== {' '.join(command)}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=new_session,
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
        self.fixed_port = port is not None
        self.port = free_port() if port is None else port

    def ports(self) -> List[int]:
        return [self.port]

    def choose_ports(self) -> None:
        if not self.fixed_port:
            self.port = free_port()

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self._start_on_free_ports(lambda: self._start(deadline(timeout)))

    def _start(self, timeout: float) -> None:
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
        until = time.monotonic() + timeout
        while not self.ping():
            if not self.running or time.monotonic() > until:
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
        self._terminate(deadline(timeout))

    def ping(self) -> bool:
        # One try: while starting, whatever holds the port must not keep
        # the loop from seeing that the process exited.
        client = redis.Redis(
            host=self.host,
            port=self.port,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
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
        timeout = deadline(timeout)
        until = time.monotonic() + timeout
        while self.subscribers() < count:
            if time.monotonic() > until:
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
            "osism.cli.main",
            "api",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def ports(self) -> List[int]:
        return [self.port]

    def choose_ports(self) -> None:
        self.port = free_port()

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
        self._start_on_free_ports(
            lambda: self._start(deadline(timeout), want_subscribed)
        )

    def _start(self, timeout: float, want_subscribed: bool) -> None:
        self._spawn(self.command(), self.environment())
        until = time.monotonic() + timeout
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
                if time.monotonic() > until:
                    self.stop()
                    raise self._failed_to_start(
                        f"was not ready within {timeout} s (last status: {last!r})"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM and wait for the exit (SIGKILL and an error after ``timeout``)."""
        returncode = self._terminate(deadline(timeout))
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


class EpmdProcess(ManagedProcess):
    """Erlang's port mapper on a loopback port of its own, in the foreground.

    A broker started with ERL_EPMD_PORT pointing here registers with this
    epmd, not with the machine's one on 4369 (nor does it start a daemon of
    its own that would outlive the tests).
    """

    name = "epmd"

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(workdir / "epmd.log")
        self.binary = binary
        self.port = free_port()

    def ports(self) -> List[int]:
        return [self.port]

    def choose_ports(self) -> None:
        self.port = free_port()

    def start(self, timeout: float = 10.0) -> None:
        self._start_on_free_ports(lambda: self._start(deadline(timeout)))

    def _start(self, timeout: float) -> None:
        self._spawn(
            [self.binary, "-port", str(self.port), "-address", LOOPBACK],
            env={**os.environ, "ERL_EPMD_ADDRESS": LOOPBACK},
        )
        until = time.monotonic() + timeout
        while not self.answers():
            if not self.running or time.monotonic() > until:
                reason = (
                    f"did not listen on {self.port} within {timeout} s"
                    if self.running
                    else "exited while starting"
                )
                self.stop()
                raise self._failed_to_start(reason)
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._terminate(deadline(timeout))


class RabbitMQServer(ManagedProcess):
    """A RabbitMQ broker of our own: Debian's ``rabbitmq-server`` script, its
    environment pointing every name, port and directory into ``workdir``.

    Node ``osism-test-<random>@localhost``; AMQP and Erlang distribution on
    free loopback ports; mnesia (queues, messages), logs, the config file and
    an empty plugin list under ``workdir``; HOME there too, for the Erlang
    cookie; /etc/rabbitmq/rabbitmq-env.conf is not read. The broker runs in a
    process group of its own, which ``stop()`` ends. ``stop()`` then
    ``start()`` brings the same node back on the same ports and data, with
    its durable queues and persistent messages.
    """

    name = "rabbitmq-server"

    def __init__(self, binary: str, epmd_binary: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir / "rabbitmq-server.log")
        self.binary = binary
        self.workdir = workdir
        self.host = LOOPBACK
        self.node = f"osism-test-{uuid.uuid4().hex[:8]}@localhost"
        self.epmd = EpmdProcess(epmd_binary, workdir)
        self.port = free_port()
        self.dist_port = free_port()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}//"

    @property
    def node_log_path(self) -> Path:
        return self.workdir / "log" / f"{self.node}.log"

    def ports(self) -> List[int]:
        return [self.port, self.dist_port]

    def choose_ports(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()

    def log_tail(self, lines: int = 60) -> str:
        """The end of the script's output and of the node's own log."""
        return (
            f"{tail(self.log_path, lines // 3)}\n"
            f"---- {self.node_log_path}\n{tail(self.node_log_path, lines)}"
        )

    def lost_a_port(self) -> bool:
        return super().lost_a_port() or bool(
            PORT_TAKEN.search(tail(self.node_log_path, 200))
        )

    def environment(self) -> Dict[str, str]:
        config = self.workdir / "rabbitmq.conf"
        # The broker refuses publishers below the free disk limit (50 MB by
        # default); a test machine's temporary directory may be small.
        config.write_text(
            "disk_free_limit.absolute = 1MB\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        plugins = self.workdir / "enabled_plugins"
        plugins.write_text("[].\n")
        env_file = self.workdir / "rabbitmq-env.conf"
        env_file.write_text("")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            HOME=str(self.workdir),
            ERL_EPMD_PORT=str(self.epmd.port),
            RABBITMQ_CONF_ENV_FILE=str(env_file),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.workdir / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
        )
        return env

    def start(self, timeout: float = 90.0) -> None:
        """Start it (again: same node, ports and data) and wait until an AMQP
        client can log in."""
        if not self.epmd.running:
            self.epmd.start()
        self._start_on_free_ports(lambda: self._start(deadline(timeout)))

    def _start(self, timeout: float) -> None:
        self._spawn([self.binary], self.environment(), new_session=True)
        until = time.monotonic() + timeout
        while not self.answers():
            if not self.running or time.monotonic() > until:
                reason = (
                    f"did not accept an AMQP login on {self.port} within {timeout} s"
                    if self.running
                    else "exited while starting"
                )
                self.stop()
                raise self._failed_to_start(reason)
            time.sleep(0.2)

    def answers(self) -> bool:
        """Whether an AMQP client gets through the handshake and the login."""
        connection = Connection(self.url, connect_timeout=1)
        try:
            connection.connect()
        except Exception:
            return False
        finally:
            connection.release()
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (the script stops the node cleanly) and wait; then end what
        is left of its process group. epmd stays for a ``start()`` again."""
        process = self.process
        try:
            self._terminate(deadline(timeout))
        finally:
            if process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def shutdown(self) -> None:
        """Stop the broker and its epmd, for good."""
        try:
            self.stop()
        finally:
            self.epmd.stop()
