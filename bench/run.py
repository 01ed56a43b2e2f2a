"""One scenario: start a server, connect the clients, publish, measure, stop.

Full speed is a closed loop: the publisher keeps at most ``window`` events
ahead of the slowest client, so the figure is what the server sustains
without dropping anything, not how fast Redis accepts PUBLISH. Fixed rates
are open loop, one PUBLISH per event on schedule, as the listener sends them.
"""

import json
import multiprocessing
import time
import urllib.request
from array import array
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import psutil
import redis

from bench import clients as bench_clients
from bench.clients import ACKED, DELIVERED, READY, SHARED_SLOTS, ClientSpec, ProcConfig
from bench.events import EVENT_TYPES, message
from bench.procs import CHANNEL, EVENTS_PATH, Managed, StartError, Usage, start_api


@dataclass
class Scenario:
    name: str
    server: str = "osism"
    clients: int = 1
    rate: Optional[float] = None
    filtered: bool = False
    stalled: int = 0
    workers: int = 1
    env: Dict[str, str] = field(default_factory=dict)
    duration: float = 8.0
    warmup: float = 2.0
    procs: int = 2
    stalled_rcvbuf: int = 0
    padding: int = 0
    baseline: Optional[str] = None
    note: str = ""
    # Clients ask for batched frames (``?batch=1``).
    batch: bool = False
    # uvicorn choices (ws, loop, http) other than ``osism api``'s defaults.
    choices: Dict[str, str] = field(default_factory=dict)
    # The naive broadcaster with plain uvicorn defaults (deflate on).
    plain_defaults: bool = False


@dataclass
class Result:
    scenario: Scenario
    events: int = 0
    seconds: float = 0.0
    deliveries: int = 0
    latencies_ms: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    closed_early: Dict[int, int] = field(default_factory=dict)
    server_cpu: float = 0.0
    server_rss_start: int = 0
    server_rss_idle: int = 0
    server_rss_warm: int = 0
    server_rss_end: int = 0
    server_rss_peak: int = 0
    client_cpu: float = 0.0
    publisher_cpu: float = 0.0
    machine_busy: float = 0.0
    deflate_negotiated: int = 0
    stalled_close: List[Optional[int]] = field(default_factory=list)
    stalled_bytes: List[int] = field(default_factory=list)
    evicted_after: Optional[float] = None
    status: Dict[str, Any] = field(default_factory=dict)

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.server_cpu / self.events * 1e6 if self.events else 0.0

    @property
    def cpu_us_per_delivery(self) -> float:
        return self.server_cpu / self.deliveries * 1e6 if self.deliveries else 0.0

    @property
    def client_us_per_delivery(self) -> float:
        return self.client_cpu / self.deliveries * 1e6 if self.deliveries else 0.0

    @property
    def server_cpu_pct(self) -> float:
        return self.server_cpu / self.seconds * 100 if self.seconds else 0.0

    @property
    def client_cpu_pct(self) -> float:
        return self.client_cpu / self.seconds * 100 if self.seconds else 0.0

    @property
    def rss_per_idle_kb(self) -> float:
        n = self.scenario.clients
        return (self.server_rss_idle - self.server_rss_start) / n / 1024 if n else 0.0


class Publisher:
    """PUBLISH on osism:events with redis-py, as the listener's bridge does."""

    def __init__(self, redis_port: int, padding: int = 0) -> None:
        self.redis = redis.Redis(host="127.0.0.1", port=redis_port)
        self.seq = 0
        self.padding = padding

    def publish(self, count: int) -> None:
        if count == 1:
            self.redis.publish(CHANNEL, message(self.seq, self.padding))
            self.seq += 1
            return
        pipe = self.redis.pipeline(transaction=False)
        for _ in range(count):
            pipe.publish(CHANNEL, message(self.seq, self.padding))
            self.seq += 1
        pipe.execute()

    def close(self) -> None:
        self.redis.close()


@dataclass
class Snapshot:
    at: float
    seq: int
    server_cpu: float
    client_cpu: float
    delivered: int
    machine: Any
    own_cpu: float


def window_for(clients: int, inflight: int) -> int:
    """Events in flight at full speed: ``inflight`` deliveries, 5 to 200 events."""
    return max(5, min(200, inflight // max(1, clients)))


def run(
    scenario: Scenario,
    redis_port: int,
    client_impl: str,
    profile: Optional[str] = None,
    inflight: int = 5000,
) -> Result:
    result = Result(scenario)
    server: Optional[Managed] = None
    children: List[Tuple[Any, Any, Any]] = []
    publisher: Optional[Publisher] = None
    try:
        server, port = start_api(
            scenario.server,
            redis_port,
            scenario.workers,
            scenario.env,
            profile=f"{profile}/{scenario.name}" if profile else None,
            choices=scenario.choices,
            plain_defaults=scenario.plain_defaults,
        )
        usage = Usage([server.pid])
        time.sleep(0.3)
        result.server_rss_start = usage.rss()
        children = _start_clients(scenario, port, client_impl)
        infos = _wait_ready(children, timeout=60.0)
        result.deflate_negotiated = sum(i["deflate_negotiated"] for i in infos)
        time.sleep(0.5)
        result.server_rss_idle = usage.rss()
        client_usage = Usage([proc.pid for proc, _, _ in children])
        publisher = Publisher(redis_port, scenario.padding)
        single = scenario.server == "osism" and scenario.workers == 1
        first, last = _drive(
            scenario,
            publisher,
            children,
            usage,
            client_usage,
            result,
            inflight,
            port if single else None,
        )
        _collect(children, publisher.seq, first.seq, last.seq, result)
        result.server_rss_end = usage.rss()
        result.server_rss_peak = max(result.server_rss_peak, result.server_rss_end)
        if scenario.server == "osism" and scenario.workers == 1:
            result.status = _status(port)
    finally:
        if publisher is not None:
            publisher.close()
        for proc, conn, _ in children:
            conn.close()
            proc.join(timeout=3)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=3)
            if proc.is_alive():  # pragma: no cover - SIGTERM ignored
                proc.kill()
        if server is not None:
            server.stop()
    return result


def _specs(scenario: Scenario) -> List[ClientSpec]:
    specs = [ClientSpec(stalled=True) for _ in range(scenario.stalled)]
    for i in range(scenario.clients - scenario.stalled):
        kind = i % len(EVENT_TYPES) if scenario.filtered else None
        specs.append(ClientSpec(kind=kind))
    return specs


def _start_clients(
    scenario: Scenario, port: int, client_impl: str
) -> List[Tuple[Any, Any, Any]]:
    ctx = multiprocessing.get_context("spawn")
    nprocs = max(1, min(scenario.procs, scenario.clients))
    shares: List[List[ClientSpec]] = [[] for _ in range(nprocs)]
    for i, spec in enumerate(_specs(scenario)):
        shares[i % nprocs].append(spec)
    url = f"ws://127.0.0.1:{port}{EVENTS_PATH}"
    if scenario.batch:
        url += "?batch=1"
    children = []
    for share in shares:
        shared = ctx.RawArray("d", SHARED_SLOTS)
        shared[ACKED] = -1
        parent, child = ctx.Pipe()
        config = ProcConfig(
            url=url,
            specs=share,
            impl=client_impl,
            stalled_rcvbuf=scenario.stalled_rcvbuf,
        )
        proc = ctx.Process(
            target=bench_clients.main, args=(config, shared, child), daemon=True
        )
        proc.start()
        child.close()
        children.append((proc, parent, shared))
    return children


def _wait_ready(children: List[Tuple[Any, Any, Any]], timeout: float) -> List[Any]:
    infos = []
    deadline = time.monotonic() + timeout
    for proc, conn, _ in children:
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise StartError("clients did not connect in time")
        try:
            kind, info = conn.recv()
        except EOFError:
            raise StartError(f"client process exited with {proc.exitcode}")
        if kind != "ready":
            raise StartError(f"clients could not connect: {info}")
        infos.append(info)
    return infos


def _snapshot(
    publisher: Publisher,
    children: List[Tuple[Any, Any, Any]],
    usage: Usage,
    client_usage: Usage,
    me: psutil.Process,
) -> Snapshot:
    own = me.cpu_times()
    return Snapshot(
        at=time.perf_counter(),
        seq=publisher.seq,
        server_cpu=usage.cpu(),
        client_cpu=client_usage.cpu(),
        delivered=int(sum(shared[DELIVERED] for _, _, shared in children)),
        machine=psutil.cpu_times(),
        own_cpu=own.user + own.system,
    )


def _drive(
    scenario: Scenario,
    publisher: Publisher,
    children: List[Tuple[Any, Any, Any]],
    usage: Usage,
    client_usage: Usage,
    result: Result,
    inflight: int,
    status_port: Optional[int] = None,
) -> Tuple[Snapshot, Snapshot]:
    me = psutil.Process()
    shared = [shared for _, _, shared in children if shared[READY]]
    window = window_for(scenario.clients, inflight)
    rate = scenario.rate
    start = time.perf_counter()
    warm_end = start + scenario.warmup
    end = warm_end + scenario.duration
    first: Optional[Snapshot] = None
    next_sample = warm_end + 1.0
    while True:
        now = time.perf_counter()
        if first is None and now >= warm_end:
            first = _snapshot(publisher, children, usage, client_usage, me)
            result.server_rss_warm = result.server_rss_peak = usage.rss()
        if now >= end:
            break
        if first is not None and scenario.stalled and now >= next_sample:
            result.server_rss_peak = max(result.server_rss_peak, usage.rss())
            next_sample = now + 0.25
            if result.evicted_after is None and status_port is not None:
                ws = _status(status_port).get("websocket", {})
                if ws.get("slow_disconnects"):
                    # As soon as the server let it go, the stalled client
                    # reads again: what was in flight, then the close frame.
                    result.evicted_after = now - start
                    for _, conn, _ in children:
                        conn.send(("resume",))
        if rate is None:
            acked = int(min(s[ACKED] for s in shared))
            allowed = acked + 1 + window - publisher.seq
            if allowed > 0:
                publisher.publish(min(allowed, 64))
            else:
                time.sleep(0.0005)
        else:
            due = int((now - start) * rate) + 1 - publisher.seq
            if due > 0:
                publisher.publish(min(due, 64))
            else:
                wait = start + publisher.seq / rate - now
                time.sleep(min(max(wait, 0.0), 0.01))
    last = _snapshot(publisher, children, usage, client_usage, me)
    assert first is not None
    result.seconds = last.at - first.at
    result.events = last.seq - first.seq
    result.deliveries = last.delivered - first.delivered
    result.server_cpu = last.server_cpu - first.server_cpu
    result.client_cpu = last.client_cpu - first.client_cpu
    result.publisher_cpu = last.own_cpu - first.own_cpu
    busy = sum(last.machine) - sum(first.machine)
    idle = (last.machine.idle + last.machine.iowait) - (
        first.machine.idle + first.machine.iowait
    )
    result.machine_busy = 100.0 * (busy - idle) / busy if busy else 0.0
    # /proc/stat on a VM can jump; the machine was at least as busy as we were.
    ours = result.server_cpu + result.client_cpu + result.publisher_cpu
    cores = psutil.cpu_count() or 1
    result.machine_busy = max(
        result.machine_busy, min(100.0, 100.0 * ours / cores / result.seconds)
    )
    return first, last


def _collect(
    children: List[Tuple[Any, Any, Any]],
    published: int,
    low: int,
    high: int,
    result: Result,
) -> None:
    for _, conn, _ in children:
        conn.send(("finish", published, low, high, 5.0))
    latencies = array("d")
    for proc, conn, _ in children:
        if not conn.poll(60.0):
            raise RuntimeError("a client process did not report")
        kind, data = conn.recv()
        tally = data["tally"]
        result.lost += tally["lost"]
        result.duplicated += tally["duplicated"]
        result.mismatched += tally["mismatched"]
        for code, count in tally["closed_early"].items():
            result.closed_early[code] = result.closed_early.get(code, 0) + count
        result.stalled_close.extend(tally["stalled_close"])
        result.stalled_bytes.extend(tally["stalled_bytes"])
        chunk = array("d")
        chunk.frombytes(data["latencies"])
        latencies.extend(chunk)
    result.latencies_ms = _percentiles(sorted(latencies))


def _percentiles(values: List[float]) -> Tuple[float, float, float, float]:
    if not values:
        return (0.0, 0.0, 0.0, 0.0)

    def at(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    return (at(0.50), at(0.90), at(0.99), values[-1] * 1000)


def _status(port: int) -> Dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data: Dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, ValueError):
        return {}
