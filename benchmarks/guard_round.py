"""One guard round over 1,000 services against a real Prometheus: batched vs one query a key.

A real Prometheus (``tests/prometheus_server.py``: promtool backfill, then the server) holds
synthetic series for ``--services`` services (1,000 by default). Each service has three guard
queries — the error rate, the p95 latency from a histogram and a raw counter's rate — so a round
reads 3,000 keys. Measured in the same run, after one warm-up round each:

1. ``read_many`` (chunks of ``--chunk`` queries, one HTTP query per chunk);
2. the naive loop: one ``PrometheusAPI.query`` per key.

Printed per way: HTTP queries per round (counted at the httpx transport), wall time per round,
the bot process's CPU time per round (``time.process_time``) and Prometheus's CPU time per round
(its own ``process_cpu_seconds_total``); then the targets: ≥ 20× fewer queries, a round ≤ 2 s.

    python benchmarks/guard_round.py [--services 1000] [--chunk 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

# the real-Prometheus harness lives with the tests; run as a script, the repository root is
# not on sys.path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.prometheus import PrometheusAPI
from bot.guard.readings import Reading, read_many
from tests.prometheus_server import RealPrometheus, Series, require_prometheus

BUCKETS = ("0.1", "0.25", "0.5", "1.0", "2.5", "+Inf")
SHARE = (0.5, 0.8, 0.93, 0.97, 0.99, 1.0)  # cumulative share of requests per bucket
MAX_QUERIES_RATIO = 20
MAX_ROUND_SECONDS = 2.0


class CountingTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def service_series(i: int) -> list[Series]:
    """Requests split 200/500, a latency histogram and a job counter; rates vary by service."""
    labels = {"service": f"svc{i:04d}"}
    rps = 10.0 + i % 50
    errors = (i % 7) / 100
    series = [
        Series("http_requests_total", {**labels, "code": "200"}, "counter", rps * (1 - errors)),
        Series("http_requests_total", {**labels, "code": "500"}, "counter", rps * errors),
        Series("jobs_total", labels, "counter", 1.0 + i % 10),
    ]
    for le, share in zip(BUCKETS, SHARE, strict=True):
        series.append(
            Series(
                "http_request_duration_seconds_bucket", {**labels, "le": le}, "counter", rps * share
            )
        )
    return series


def guard_queries(services: int) -> dict[str, str]:
    queries = {}
    for i in range(services):
        s = f'service="svc{i:04d}"'
        queries[f"{i}:error_rate"] = (
            f'sum(rate(http_requests_total{{{s},code=~"5.."}}[5m]))'
            f" / sum(rate(http_requests_total{{{s}}}[5m]))"
        )
        queries[f"{i}:latency_p95_seconds"] = (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{s}}}[5m])))"
        )
        queries[f"{i}:jobs"] = f"sum(rate(jobs_total{{{s}}}[5m]))"
    return queries


def server_cpu(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    raise RuntimeError("Prometheus exports no process_cpu_seconds_total")


def measure(
    fn: Callable[[], dict[str, Reading]], counter: CountingTransport, url: str, rounds: int
) -> tuple[dict[str, Reading], dict[str, float]]:
    readings = fn()  # warm-up: connections, Prometheus's caches
    walls, cpus, servers, requests = [], [], [], []
    for _ in range(rounds):
        counter.requests = 0
        server0, cpu0, wall0 = server_cpu(url), time.process_time(), time.perf_counter()
        readings = fn()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
        servers.append(server_cpu(url) - server0)
        requests.append(counter.requests)
    return readings, {
        "queries": statistics.median(requests),
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "server": statistics.median(servers),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binaries = require_prometheus()
    series = [s for i in range(args.services) for s in service_series(i)]
    queries = guard_queries(args.services)
    now = time.time()
    started = time.perf_counter()
    # 15 min of history (the 5-minute rate windows) and 5 min ahead so "now" stays covered
    with RealPrometheus(series, end=now + 300, duration_s=1200, binaries=binaries) as prom:
        ready = time.perf_counter() - started
        transport = CountingTransport()
        with httpx.Client(transport=transport) as client:
            api = PrometheusAPI(prom.url, client, timeout_seconds=30)

            def batched() -> dict[str, Reading]:
                return read_many(api, queries, chunk=args.chunk)

            def naive() -> dict[str, Reading]:
                readings = {}
                for key, promql in queries.items():
                    result = api.query(promql)
                    readings[key] = Reading(result.value, result.note)
                return readings

            ours, fast = measure(batched, transport, prom.url, args.rounds)
            theirs, slow = measure(naive, transport, prom.url, args.rounds)
    report(args, len(series), ready, ours, theirs, fast, slow)


def same(a: Reading, b: Reading) -> bool:
    if a.value is None or b.value is None:
        return a == b
    return math.isclose(a.value, b.value, rel_tol=1e-6)


def report(
    args: argparse.Namespace,
    series: int,
    ready: float,
    ours: dict[str, Reading],
    theirs: dict[str, Reading],
    fast: dict[str, float],
    slow: dict[str, float],
) -> None:
    known = sum(r.value is not None for r in ours.values())
    differ = [k for k in ours if not same(ours[k], theirs[k])]
    print(
        f"{args.services} services, {len(ours)} keys, {series} series "
        f"(backfill + start {ready:.1f} s), chunk {args.chunk}, median of {args.rounds} rounds"
    )
    print(
        f"readings known: {known}/{len(ours)}; differing between the two ways (> 1e-6 relative,"
        f" the two rounds run at different instants): {len(differ)} {differ[:3]}"
    )
    print(f"{'':<22}{'HTTP queries':>13}{'wall s':>9}{'bot CPU s':>11}{'Prom CPU s':>12}")
    for name, m in (("read_many (batched)", fast), ("one query per key", slow)):
        print(
            f"{name:<22}{m['queries']:>13.0f}{m['wall']:>9.3f}{m['cpu']:>11.3f}{m['server']:>12.2f}"
        )
    ratio = slow["queries"] / fast["queries"]
    print(
        f"queries: {ratio:.0f}x fewer (target >= {MAX_QUERIES_RATIO}x: "
        f"{'met' if ratio >= MAX_QUERIES_RATIO else 'MISSED'}); "
        f"round {fast['wall']:.3f} s (target <= {MAX_ROUND_SECONDS:g} s: "
        f"{'met' if fast['wall'] <= MAX_ROUND_SECONDS else 'MISSED'}); "
        f"wall {slow['wall'] / fast['wall']:.1f}x, bot CPU {slow['cpu'] / fast['cpu']:.1f}x less"
    )


if __name__ == "__main__":
    main()
