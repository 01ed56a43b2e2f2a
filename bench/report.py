"""The table a bench run prints, and the ratios to the naive broadcaster."""

from typing import Dict, List

from bench.run import Result

COLUMNS = (
    ("scenario", "<"),
    ("server", "<"),
    ("N", ">"),
    ("rate", ">"),
    ("events/s", ">"),
    ("deliv/s", ">"),
    ("p50 ms", ">"),
    ("p90 ms", ">"),
    ("p99 ms", ">"),
    ("max ms", ">"),
    ("lost", ">"),
    ("dup", ">"),
    ("srv us/ev", ">"),
    ("us/dlv", ">"),
    ("srv CPU", ">"),
    ("RSS MB", ">"),
    ("KB/conn", ">"),
    ("cli CPU", ">"),
    ("cli us/dlv", ">"),
    ("machine", ">"),
    ("limit", "<"),
)


def limit(result: Result) -> str:
    """What held the figure down: the server, the clients, the machine or the rate."""
    scenario = result.scenario
    if scenario.rate is not None and result.events_per_s >= 0.97 * scenario.rate:
        return "rate"
    if result.server_cpu_pct >= 85 * scenario.workers:
        return "server"
    if result.client_cpu_pct >= 85 * scenario.procs:
        return "clients"
    if result.machine_busy >= 90:
        # The machine is full: whoever took more of it held the figure down.
        return "machine/clients" if client_bound(result) else "machine/server"
    return "-"


def client_bound(result: Result) -> bool:
    """The clients, not the server, were the limit: they ran out of CPU, or
    took more of a full machine than the server did."""
    if result.client_cpu_pct >= 85 * result.scenario.procs:
        return True
    return result.machine_busy >= 90 and result.client_cpu > result.server_cpu


def row(result: Result) -> List[str]:
    s = result.scenario
    server = s.server if s.workers == 1 else f"{s.server} x{s.workers}"
    p50, p90, p99, top = result.latencies_ms
    return [
        s.name,
        server,
        str(s.clients),
        "full" if s.rate is None else f"{s.rate:g}",
        f"{result.events_per_s:,.0f}",
        f"{result.deliveries_per_s:,.0f}",
        f"{p50:.1f}",
        f"{p90:.1f}",
        f"{p99:.1f}",
        f"{top:.0f}",
        str(result.lost),
        str(result.duplicated),
        f"{result.cpu_us_per_event:,.0f}",
        f"{result.cpu_us_per_delivery:.1f}",
        f"{result.server_cpu_pct:.0f}%",
        f"{result.server_rss_end / 2**20:.0f}",
        f"{result.rss_per_idle_kb:.0f}",
        f"{result.client_cpu_pct:.0f}%",
        f"{result.client_us_per_delivery:.1f}",
        f"{result.machine_busy:.0f}%",
        limit(result),
    ]


def table(rows: List[List[str]]) -> str:
    heads = [name for name, _ in COLUMNS]
    widths = [max(len(r[i]) for r in rows + [heads]) for i in range(len(heads))]
    lines = []
    for r in [heads] + rows:
        cells = [
            cell.ljust(w) if align == "<" else cell.rjust(w)
            for cell, w, (_, align) in zip(r, widths, COLUMNS)
        ]
        lines.append(" ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def ratios(results: List[Result]) -> List[str]:
    by_name: Dict[str, Result] = {r.scenario.name: r for r in results}
    lines = []
    for result in results:
        base = by_name.get(result.scenario.baseline or "")
        if base is None:
            continue
        d = _ratio(result.deliveries_per_s, base.deliveries_per_s)
        p99 = _ratio(base.latencies_ms[2], result.latencies_ms[2])
        cpu = _ratio(base.cpu_us_per_delivery, result.cpu_us_per_delivery)
        lines.append(
            f"  {result.scenario.name:<16} vs {base.scenario.name:<14} "
            f"deliveries/s x{d}   p99 {base.latencies_ms[2]:.1f} -> "
            f"{result.latencies_ms[2]:.1f} ms (x{p99} lower)   "
            f"server CPU/delivery x{cpu} less   lost {base.lost} -> {result.lost}"
        )
    return lines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def notes(results: List[Result]) -> List[str]:
    lines = []
    for result in results:
        s = result.scenario
        bits = []
        if result.deflate_negotiated:
            bits.append(
                f"deflate negotiated by {result.deflate_negotiated}/{s.clients} clients"
            )
        if result.closed_early:
            codes = ", ".join(
                f"{c}: {n}" for c, n in sorted(result.closed_early.items())
            )
            bits.append(f"live clients closed early ({codes})")
        if result.mismatched:
            bits.append(f"{result.mismatched} events not matching the client's filter")
        if s.stalled:
            growth = (result.server_rss_end - result.server_rss_warm) / 2**20
            peak = (result.server_rss_peak - result.server_rss_warm) / 2**20
            codes = ", ".join(str(c) for c in result.stalled_close)
            if result.evicted_after is not None:
                when = (
                    f"closed by the server {result.evicted_after:.1f} s in, "
                    "then read again"
                )
            else:
                when = "never closed by the server; read again at the end"
            bits.append(
                f"stalled client: {when}: close code {codes or '-'}"
                f" ({sum(result.stalled_bytes):,} bytes were still queued for it);"
                f" server RSS growth over the run {growth:+.1f} MB"
                f" (peak {peak:+.1f} MB)"
            )
        ws = result.status.get("websocket", {})
        if ws:
            bits.append(
                "server: slow clients closed with 1013: "
                f"{ws.get('slow_disconnects', 0)}, events dropped: "
                f"{ws.get('dropped_events', 0)}"
            )
        seconds = result.seconds or 1.0
        if client_bound(result):
            bits.append(
                "CLIENT-BOUND: the clients, not the server, saturated "
                f"({result.client_cpu_pct:.0f}% client CPU vs "
                f"{result.server_cpu_pct:.0f}% server); the server figure is a floor"
            )
        bits.append(
            f"client CPU {result.client_cpu_pct:.0f}% over {s.procs} procs,"
            f" publisher {result.publisher_cpu / seconds * 100:.0f}%"
        )
        lines.append(f"  {s.name}: " + "; ".join(bits))
    return lines


def render(
    results: List[Result], machine: str, elapsed: float, impl: str, terms: str = ""
) -> str:
    out = [
        "",
        f"Machine: {machine}",
        terms,
        f"Clients: websockets ({impl}), permessage-deflate offered; "
        "latency = receive time - publish time in the payload",
        "CPU columns are % of one core; 'machine' is the whole machine's busy %, "
        "other people's work included; us/dlv = server CPU per delivery, "
        "cli us/dlv = client CPU per delivery",
        "",
        table([row(r) for r in results]),
    ]
    rat = ratios(results)
    if rat:
        out += ["", "Ratios (ours / baseline):"] + rat
    out += ["", "Notes:"] + notes(results)
    out += ["", f"Total bench time {elapsed:.0f} s"]
    return "\n".join(out)
