"""``python -m bench``: the scenarios, the options, and the exit status."""

import argparse
import json
import math
import os
import platform
import re
import signal
import sys
import time
from typing import Any, List, Optional

import psutil

from bench.procs import Managed, StartError, start_redis
from bench.report import render
from bench.run import Result, Scenario, run

# Deliveries per second one client process takes at about half a core (the
# default client costs about 10 us per delivery when each read carries one
# event). A scenario at a fixed rate gets as few client processes as its
# load needs: on two cores every further process takes turns with the
# server, and the waits show up as latency that is the harness's, not the
# server's (100 clients x 500 events/s: p99 10-19 ms over two processes,
# 3.6-9.3 ms over one, same server).
DELIVERIES_PER_PROC = 50_000

# Client processes of the full-speed scenarios.
FULL_SPEED_PROCS = 2


def rated_procs(scenario: Scenario) -> int:
    """Client processes of a scenario at a fixed rate: one per
    DELIVERIES_PER_PROC of its clients times its rate."""
    assert scenario.rate is not None
    return max(1, math.ceil(scenario.clients * scenario.rate / DELIVERIES_PER_PROC))


def scenarios(args: argparse.Namespace) -> List[Scenario]:
    quick = args.quick
    full = dict(duration=args.duration or (1.0 if quick else 8.0))
    full["warmup"] = 0.5 if quick else 2.0
    rated = dict(duration=args.duration or (1.5 if quick else 10.0))
    rated["warmup"] = 0.5 if quick else 1.0
    procs = args.client_procs or FULL_SPEED_PROCS
    stall = args.stall_seconds or (6.0 if quick else 60.0)
    # A short run makes the stall show within seconds: a small receive buffer,
    # 8 KB events and outboxes of 100, so the kernel's send buffer (MBs on
    # loopback) and the outbox fill quickly. The full run is as in production.
    rcvbuf = 32768 if quick else 0
    padding = 8192 if quick else 0
    stall_env = {"WEBSOCKET_OUTBOX_SIZE": "100"} if quick else {}
    naive_stall = min(stall, 4.0) if quick else stall
    deflate_on = {"WEBSOCKET_DEFLATE": "1"}
    choices = {
        name: value
        for name, value in (("ws", args.ws), ("loop", args.loop), ("http", args.http))
        if value
    }
    out: List[Scenario] = []
    for n in (1, 10, 100, 500):
        p = 1 if n == 1 else procs
        out.append(
            Scenario(f"full-{n}", "osism", n, procs=p, baseline=f"naive-{n}", **full)
        )
        if n >= 100:
            out.append(
                Scenario(
                    f"batch-{n}",
                    "osism",
                    n,
                    procs=p,
                    batch=True,
                    baseline=f"naive-{n}",
                    note="?batch=1",
                    **full,
                )
            )
        out.append(Scenario(f"naive-{n}", "naive", n, procs=p, **full))
        if n >= 100:
            out.append(
                Scenario(
                    f"naive-defaults-{n}",
                    "naive",
                    n,
                    procs=p,
                    plain_defaults=True,
                    note="plain uvicorn defaults, deflate on",
                    **full,
                )
            )
    # uvicorn's own WebSocket implementations (without the send-many
    # extension of ours) and the asyncio loop, against our default.
    for name, picked in (
        ("ws-sansio", {"ws": "websockets-sansio"}),
        ("ws-websockets", {"ws": "websockets"}),
        ("ws-wsproto", {"ws": "wsproto"}),
        ("loop-asyncio", {"loop": "asyncio"}),
    ):
        out.append(
            Scenario(
                f"{name}-100",
                "osism",
                100,
                procs=procs,
                choices=picked,
                baseline="full-100",
                note=" ".join(f"--{k} {v}" for k, v in picked.items()),
                **full,
            )
        )
    out += [
        Scenario(
            "rate-100x500",
            "osism",
            100,
            500,
            procs=procs,
            baseline="naive-100x500",
            **rated,
        ),
        Scenario("naive-100x500", "naive", 100, 500, procs=procs, **rated),
        Scenario(
            "batch-100x500",
            "osism",
            100,
            500,
            procs=procs,
            batch=True,
            baseline="naive-100x500",
            note="?batch=1",
            **rated,
        ),
        Scenario("rate-100x20", "osism", 100, 20, procs=procs, **rated),
        Scenario("rate-500x20", "osism", 500, 20, procs=procs, **rated),
        Scenario(
            "filter-100",
            "osism",
            100,
            filtered=True,
            procs=procs,
            note="1/10 each",
            **full,
        ),
        Scenario(
            "filter-100x500",
            "osism",
            100,
            500,
            filtered=True,
            procs=procs,
            note="1/10 each",
            **rated,
        ),
        Scenario(
            "deflate-100",
            "osism",
            100,
            env=deflate_on,
            procs=procs,
            baseline="full-100",
            note="WEBSOCKET_DEFLATE=1",
            **full,
        ),
        Scenario(
            "workers2-100",
            "osism",
            100,
            workers=2,
            procs=procs,
            baseline="full-100",
            note="--workers 2",
            **full,
        ),
        Scenario(
            "workers2-500",
            "osism",
            500,
            workers=2,
            procs=procs,
            baseline="full-500",
            note="--workers 2",
            **full,
        ),
        Scenario(
            "stall-50x300",
            "osism",
            50,
            300,
            stalled=1,
            procs=procs,
            stalled_rcvbuf=rcvbuf,
            padding=padding,
            env=stall_env,
            baseline="naive-stall",
            duration=stall,
            warmup=1.0,
            note="1 never reads",
        ),
        Scenario(
            "naive-stall",
            "naive",
            50,
            300,
            stalled=1,
            procs=procs,
            stalled_rcvbuf=rcvbuf,
            padding=padding,
            duration=naive_stall,
            warmup=1.0,
            note="1 never reads",
        ),
    ]
    for scenario in out:
        if not scenario.choices:
            scenario.choices = dict(choices)
        if scenario.rate is not None and not args.client_procs:
            scenario.procs = rated_procs(scenario)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    if args.only:
        pattern = re.compile(args.only)
        out = [s for s in out if pattern.search(s.name)]
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fan-out benchmark of osism api against a naive broadcaster.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short smoke run (about 3 min)"
    )
    parser.add_argument("--duration", type=float, help="seconds measured per scenario")
    parser.add_argument(
        "--stall-seconds",
        type=float,
        help="length of the stalled-client scenario (default 60)",
    )
    parser.add_argument(
        "--only", help="run the scenarios whose name matches this regex"
    )
    parser.add_argument(
        "--client-procs",
        type=int,
        help="client processes of every scenario (default: 2 at full speed; at a "
        "fixed rate one per 50,000 deliveries/s)",
    )
    parser.add_argument(
        "--client-impl",
        choices=["sansio", "asyncio"],
        default="sansio",
        help="client implementation (default sansio)",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        default=5000,
        help="full speed: deliveries in flight, published but not yet received "
        "(default 5000)",
    )
    for name, values in (
        ("ws", "websockets-sansio, websockets, wsproto"),
        ("loop", "uvloop, asyncio"),
        ("http", "httptools, h11"),
    ):
        parser.add_argument(
            f"--{name}",
            help=f"uvicorn --{name} for both servers ({values}; default: "
            "osism api's)",
        )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run each one-worker server under pyinstrument, reports in DIR",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the scenarios and exit"
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    plan = scenarios(args)
    if args.list:
        for scenario in plan:
            print(scenario.name)
        return 0
    if not plan:
        print("no scenario matches --only", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)
    redis_proc: Optional[Managed] = None
    results: List[Result] = []
    failed: List[str] = []
    started = time.monotonic()
    try:
        redis_proc, redis_port = start_redis()
        for scenario in plan:
            print(
                f"-- {scenario.name}: {_describe(scenario)}",
                file=sys.stderr,
                flush=True,
            )
            try:
                results.append(
                    run(
                        scenario,
                        redis_port,
                        args.client_impl,
                        args.profile,
                        args.inflight,
                    )
                )
            except StartError as exc:
                print(f"   failed to start: {exc}", file=sys.stderr, flush=True)
                failed.append(scenario.name)
    except StartError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        if redis_proc is not None:
            redis_proc.stop()
        signal.signal(signal.SIGTERM, previous)
    elapsed = time.monotonic() - started
    print(render(results, _machine(), elapsed, args.client_impl, _terms(args)))
    if args.json:
        _write_json(args.json, results)
    if failed:
        print(f"bench: did not start: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _describe(scenario: Scenario) -> str:
    rate = "full speed" if scenario.rate is None else f"{scenario.rate:g} events/s"
    extra = f", {scenario.note}" if scenario.note else ""
    return f"{scenario.server}, {scenario.clients} clients, {rate}{extra}"


def _terms(args: argparse.Namespace) -> str:
    from osism.transport.server_settings import server_choices

    picked = server_choices()
    picked.update({k: v for k, v in vars(args).items() if k in picked and v})
    flags = " ".join(f"--{k} {v}" for k, v in picked.items())
    return (
        f"Both servers: uvicorn {flags} --ws-per-message-deflate false (equal "
        "terms); naive-defaults rows: the naive one with plain uvicorn defaults "
        "(deflate negotiated)"
    )


def _machine() -> str:
    freq = psutil.cpu_freq()
    mhz = f" @ {freq.current:.0f} MHz" if freq else ""
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.system()} {platform.release()}, {model or platform.machine()}"
        f"{mhz}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def _write_json(path: str, results: List[Result]) -> None:
    rows = []
    for result in results:
        row = dict(result.__dict__)
        row["scenario"] = dict(result.scenario.__dict__)
        row.update(
            deliveries_per_s=result.deliveries_per_s,
            events_per_s=result.events_per_s,
            cpu_us_per_event=result.cpu_us_per_event,
            cpu_us_per_delivery=result.cpu_us_per_delivery,
            server_cpu_pct=result.server_cpu_pct,
            client_cpu_pct=result.client_cpu_pct,
            client_us_per_delivery=result.client_us_per_delivery,
            rss_per_idle_kb=result.rss_per_idle_kb,
        )
        rows.append(row)
    with open(path, "w") as handle:
        json.dump(rows, handle, indent=1, default=str)
