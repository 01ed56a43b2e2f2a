"""Production-like Redis setups for the integration tests, all real processes.

- ``RedisNode``: a ``redis-server`` with the options a setup needs: a password
  and ACL users, TLS only (``--port 0 --tls-port``), or a replica of another.
- ``SentinelNode``: ``redis-server --sentinel`` with short timeouts.
- ``SentinelSetup``: one master, one replica, three Sentinels watching them.
- ``make_tls_files``: a CA, a server and a client certificate from the
  ``openssl`` command line, valid for 127.0.0.1 and localhost.

Every process listens on a free loopback port, keeps nothing on disk, writes
its output to a log in the test's directory and is only ever signalled by the
object that started it.
"""

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import redis

from tests.integration.deadlines import deadline
from tests.integration.servers import LOOPBACK, ManagedProcess, ServerError, free_port

SENTINEL_MASTER = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, the server's and a client's certificate and key."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_tls_files(directory: Path, name: str = "test") -> TlsFiles:
    """A fresh CA and two certificates signed by it (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}-ca", "-keyout", ca_key, "-out", ca,
    )  # fmt: skip
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for role in ("server", "client"):
        key, csr = directory / f"{role}.key", directory / f"{role}.csr"
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}-{role}",
            "-keyout", key, "-out", csr,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", extensions,
            "-out", directory / f"{role}.crt",
        )  # fmt: skip
    return TlsFiles(
        ca=str(ca),
        server_cert=str(directory / "server.crt"),
        server_key=str(directory / "server.key"),
        client_cert=str(directory / "client.crt"),
        client_key=str(directory / "client.key"),
    )


def _tls_client_kwargs(tls: Optional[TlsFiles]) -> Dict[str, Any]:
    if tls is None:
        return {}
    return {
        "ssl": True,
        "ssl_ca_certs": tls.ca,
        "ssl_certfile": tls.client_cert,
        "ssl_keyfile": tls.client_key,
    }


def _openssl(*args: Any) -> None:
    try:
        subprocess.run(
            ["openssl", *map(str, args)],
            check=True,
            capture_output=True,
            timeout=deadline(60),
        )
    except FileNotFoundError:
        raise ServerError("openssl not found: the TLS tests make their certificates")
    except subprocess.CalledProcessError as exc:
        raise ServerError(f"openssl {args[0]} failed: {exc.stderr.decode()}")


class _Node(ManagedProcess):
    """What a redis-server and a Sentinel share: start, wait, stop, kill."""

    def __init__(self, binary: str, workdir: Path, name: str) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.workdir / f"{name}.log")
        self.binary = binary
        self.host = LOOPBACK
        self.port = free_port()

    def command(self) -> List[str]:
        raise NotImplementedError

    def client(self, timeout: float = 2.0) -> redis.Redis:
        raise NotImplementedError

    def ping(self) -> bool:
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 15.0) -> None:
        self._spawn(self.command(), env=None)
        until = time.monotonic() + deadline(timeout)
        while not self.ping():
            if not self.running or time.monotonic() > until:
                self.stop()
                raise self._failed_to_start(
                    "exited while starting" if not self.running else "did not answer"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        self._terminate(deadline(timeout))

    def kill(self) -> None:
        """SIGKILL: the host is gone, nothing is flushed or said goodbye."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10.0)
        self._close_log()


class RedisNode(_Node):
    """``redis-server`` on a free port, with a password, ACL users, TLS, or
    as a replica (``replica_of``)."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        name: str = "redis",
        password: Optional[str] = None,
        users: Optional[Dict[str, str]] = None,
        tls: Optional[TlsFiles] = None,
        replica_of: Optional["RedisNode"] = None,
    ) -> None:
        super().__init__(binary, workdir, name)
        self.password = password
        self.users = dict(users or {})
        self.tls = tls
        self.replica_of = replica_of

    def command(self) -> List[str]:
        command = [
            self.binary,
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--loglevel", "notice",
        ]  # fmt: skip
        if self.tls is None:
            command += ["--port", str(self.port)]
        else:
            command += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", self.tls.server_cert,
                "--tls-key-file", self.tls.server_key,
                "--tls-ca-cert-file", self.tls.ca,
                "--tls-auth-clients", "yes",
                "--tls-replication", "yes",
            ]  # fmt: skip
        if self.password is not None:
            command += ["--requirepass", self.password]
        for user, password in self.users.items():
            # Least privilege: the service's keys and channels only.
            command += ["--user", user, "on", f">{password}", "~osism:*"]
            command += ["&osism:*", "+@all"]
        if self.replica_of is not None:
            command += ["--replicaof", LOOPBACK, str(self.replica_of.port)]
            if self.replica_of.password is not None:
                command += ["--masterauth", self.replica_of.password]
        return command

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """An administrator's client (the default user)."""
        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            decode_responses=True,
            **_tls_client_kwargs(self.tls),
        )

    def role(self) -> str:
        client = self.client()
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()

    def replication_up(self) -> bool:
        client = self.client()
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return bool(info.get("master_link_status") == "up")

    def wait_for_replicas(self, count: int, timeout_ms: int = 5000) -> int:
        """WAIT: how many replicas acknowledged every write so far."""
        client = self.client()
        try:
            return int(client.execute_command("WAIT", count, timeout_ms))
        finally:
            client.close()

    def log_ids(self, stream: str = "osism:events:log") -> List[str]:
        """The event ids in the event log stream this server holds, in order."""
        client = self.client()
        try:
            rows: Any = client.xrange(stream)
        finally:
            client.close()
        return [str(fields["id"]) for _, fields in rows]

    def log_events(self, stream: str = "osism:events:log") -> List[str]:
        """The envelopes (JSON text) in the event log stream, in order."""
        client = self.client()
        try:
            rows: Any = client.xrange(stream)
        finally:
            client.close()
        return [str(fields["event"]) for _, fields in rows]

    def auth_failures(self, user: str) -> int:
        """How many failed AUTHs for ``user`` the server's ACL LOG counted."""
        client = self.client()
        try:
            entries: Any = client.acl_log()
        finally:
            client.close()
        return sum(
            int(entry["count"])
            for entry in entries
            if entry.get("reason") == "auth" and entry.get("username") == user
        )


class SentinelNode(_Node):
    """``redis-server sentinel.conf --sentinel`` watching one master."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        name: str,
        master: RedisNode,
        password: Optional[str] = None,
        tls: Optional[TlsFiles] = None,
    ) -> None:
        super().__init__(binary, workdir, name)
        self.master = master
        self.password = password
        self.tls = tls
        self.config = self.workdir / "sentinel.conf"

    def command(self) -> List[str]:
        if self.tls is None:
            listen = [f"port {self.port}"]
        else:
            # TLS only, towards clients, the Redis servers and the other Sentinels.
            listen = [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls.server_cert}",
                f"tls-key-file {self.tls.server_key}",
                f"tls-ca-cert-file {self.tls.ca}",
                "tls-auth-clients yes",
                "tls-replication yes",
            ]
        lines = listen + [
            f"bind {self.host}",
            "daemonize no",
            f"dir {self.workdir}",
            f"sentinel monitor {SENTINEL_MASTER} {LOOPBACK} {self.master.port} 2",
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SENTINEL_MASTER} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1",
        ]
        if self.master.password is not None:
            lines.append(f"sentinel auth-pass {SENTINEL_MASTER} {self.master.password}")
        if self.password is not None:
            lines += [
                f"requirepass {self.password}",
                f"sentinel sentinel-pass {self.password}",
            ]
        if not self.config.exists():
            # Sentinel rewrites its file (what it learned): written once only.
            self.config.write_text("\n".join(lines) + "\n")
        return [self.binary, str(self.config), "--sentinel"]

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            decode_responses=True,
            **_tls_client_kwargs(self.tls),
        )

    def master_state(self) -> Dict[str, Any]:
        client = self.client()
        try:
            state: Any = client.sentinel_master(SENTINEL_MASTER)
            return dict(state)
        finally:
            client.close()

    def master_port(self) -> Optional[int]:
        client = self.client()
        try:
            address: Any = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return int(address[1]) if address else None


class SentinelSetup:
    """One master, one replica and three Sentinels, all on loopback."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        password: Optional[str] = None,
        sentinel_password: Optional[str] = None,
        tls: Optional[TlsFiles] = None,
    ) -> None:
        self.master = RedisNode(binary, workdir, "master", password=password, tls=tls)
        self.replica = RedisNode(
            binary,
            workdir,
            "replica",
            password=password,
            tls=tls,
            replica_of=self.master,
        )
        self.sentinels = [
            SentinelNode(
                binary, workdir, f"sentinel{i}", self.master, sentinel_password, tls
            )
            for i in (1, 2, 3)
        ]

    @property
    def processes(self) -> List[_Node]:
        return [self.master, self.replica, *self.sentinels]

    @property
    def sentinel_list(self) -> str:
        """The REDIS_SENTINELS value for this setup."""
        return ",".join(f"{s.host}:{s.port}" for s in self.sentinels)

    def start(self, timeout: float = 30.0) -> None:
        """Start everything; return once the Sentinels know the whole setup."""
        for process in self.processes:
            process.start()
        timeout = deadline(timeout)
        until = time.monotonic() + timeout
        while not (self.replica.replication_up() and self._sentinels_agree()):
            if time.monotonic() > until:
                raise ServerError(
                    f"the Sentinel setup was not complete within {timeout} s: "
                    f"{[s.master_state() for s in self.sentinels]}"
                )
            time.sleep(0.1)

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.master_state()
            if (
                int(state["num-other-sentinels"]) != 2
                or int(state["num-slaves"]) != 1
                or int(state["port"]) != self.master.port
            ):
                return False
        return True

    def promoted(self) -> bool:
        """Whether every Sentinel names the replica as master and it is one."""
        ports = {sentinel.master_port() for sentinel in self.sentinels}
        return ports == {self.replica.port} and self.replica.role() == "master"

    def stop(self) -> None:
        problems = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except ServerError as exc:
                problems.append(str(exc))
        if problems:
            raise ServerError("; ".join(problems))
