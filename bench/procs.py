"""The processes a bench run starts: redis-server and the API under test.

Each one is started in its own session, so that stopping it (by the pid we
got from Popen) also stops what it started itself (uvicorn's workers).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import psutil
import redis

CHANNEL = "osism:events"
EVENTS_PATH = "/v1/events/openstack"


class StartError(RuntimeError):
    """A process the bench needs did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Managed:
    """A child process started in its own session; ``stop`` ends its group."""

    def __init__(self, name: str, argv: List[str], env: Dict[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            with open(self.log.name, "r", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after a grace period."""
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
        # The group may outlive its leader (a worker still shutting down).
        _signal_group(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL ignored
            pass
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def start_redis() -> Tuple[Managed, int]:
    binary = os.environ.get("OSISM_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise StartError("redis-server is not on PATH (or set OSISM_REDIS_SERVER)")
    port = free_port()
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
    ]
    proc = Managed("redis", argv, dict(os.environ))
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        try:
            client.ping()
            return proc, port
        except redis.RedisError:
            time.sleep(0.05)
    tail = proc.tail()
    proc.stop()
    raise StartError(f"redis-server did not start on port {port}:\n{tail}")


def start_api(
    kind: str,
    redis_port: int,
    workers: int = 1,
    extra_env: Optional[Dict[str, str]] = None,
    profile: Optional[str] = None,
    choices: Optional[Dict[str, str]] = None,
    plain_defaults: bool = False,
) -> Tuple[Managed, int]:
    """``osism api`` (kind "osism") or the naive broadcaster (kind "naive").

    Both run on equal terms: uvicorn with the same ``choices`` (ws, loop,
    http; ``osism api``'s defaults unless given) and permessage-deflate off.
    ``plain_defaults`` serves the naive one with uvicorn's own defaults
    instead (deflate on), as the FastAPI tutorial does.
    """
    from osism.transport.server_settings import server_choices

    picked = server_choices()
    picked.update(choices or {})
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_port),
            "REDIS_DB": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    if kind == "osism":
        env.update({f"UVICORN_{name.upper()}": value for name, value in picked.items()})
        argv = [sys.executable, "-m", "osism.cli.main", "--log-level", "warning", "api"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        argv += ["--workers", str(workers)]
    elif kind == "naive":
        for name in ("UVICORN_WS", "UVICORN_LOOP", "UVICORN_HTTP"):
            env.pop(name, None)
        argv = [sys.executable, "-m", "uvicorn", "bench.naive:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        argv += ["--log-level", "warning", "--workers", str(workers)]
        if not plain_defaults:
            for name, value in picked.items():
                argv += [f"--{name}", value]
            argv += ["--ws-per-message-deflate", "false"]
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    if profile and kind == "osism" and workers == 1:
        # pyinstrument (pinned in the Pipfile) samples the server's event loop.
        argv[1:3] = ["-m", "bench.profiled", profile + ".txt"]
    proc = Managed(kind, argv, env)
    try:
        _wait_ready(proc, port, redis_port, subscribers=workers)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def _wait_ready(proc: Managed, port: int, redis_port: int, subscribers: int) -> None:
    """The port accepts connections and every worker subscribed to the channel."""
    client = redis.Redis(host="127.0.0.1", port=redis_port)
    deadline = time.monotonic() + 30
    listening = False
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(
                f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}"
            )
        if not listening:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                listening = True
            except OSError:
                pass
        if listening:
            numsub = dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0)
            if int(numsub) >= subscribers:
                client.close()
                return
        time.sleep(0.05)
    client.close()
    raise StartError(
        f"{proc.name} did not become ready on port {port} within 30 s:\n"
        f"{proc.tail()}"
    )


class Usage:
    """CPU seconds and RSS of a process and all its descendants."""

    def __init__(self, pids: List[int]) -> None:
        self.roots = [psutil.Process(pid) for pid in pids]

    def _tree(self) -> List[psutil.Process]:
        procs: List[psutil.Process] = []
        for root in self.roots:
            try:
                procs.append(root)
                procs.extend(root.children(recursive=True))
            except psutil.Error:
                continue
        return procs

    def cpu(self) -> float:
        total = 0.0
        for proc in self._tree():
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total
