"""Assessment wall time when every probe is slow: concurrent (ours) vs sequential (the seed script).

Every Prometheus query and the health check answer after ~200 ms (the simulator's delay). The
runbook's `automated-rollback-decision.sh` runs its curl calls one after another; the bot runs
them at the same time. The decision matrix has four PromQL signals plus the health URL, so an
assessment makes five slow calls.

    python benchmarks/assessment_latency.py [--delay 0.2] [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bot.adapters.http import HttpClient
from bot.adapters.prometheus import PrometheusAPI
from bot.assessment.signals import WORST, SignalReader
from bot.demo import DEMO_SERVICES, demo_catalog, query_values
from bot.rollback.assess import assess
from bot.sim.prometheus_api import PrometheusSimulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    health = {d.name: d.health_status for d in DEMO_SERVICES}
    with (
        PrometheusSimulator(query_values(), health, delay_seconds=args.delay) as sim,
        HttpClient() as http,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        service = demo_catalog(sim.url).services["checkout"]
        prometheus = PrometheusAPI(sim.url, http.shared, timeout_seconds=5)
        reader = SignalReader(prometheus, http, pool)
        probes = len(service.signals) + 1

        def single() -> None:
            prometheus.query(next(iter(service.signals.values())))

        def concurrent() -> None:
            assess(service.name, reader.read(service), service.thresholds)

        def sequential() -> None:
            for signal, promql in service.signals.items():
                prometheus.query(promql, WORST[signal])
            http.check_health(service.spec.health_url or "", 5)

        concurrent()  # warm the connection pool
        results: dict[str, list[float]] = {}
        for name, fn in (("single query", single), ("ours", concurrent), ("seq", sequential)):
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            results[name] = times
    slowest = max(results["single query"])
    print(f"{probes} probes, each delayed {args.delay * 1000:.0f} ms, {args.runs} runs")
    print(f"{'':<28}{'median ms':>10}{'max ms':>9}")
    labels = {
        "single query": "one query alone",
        "ours": "assessment, concurrent",
        "seq": "assessment, sequential",
    }
    for name, times in results.items():
        print(
            f"{labels[name]:<28}{statistics.median(times) * 1000:>10.0f}{max(times) * 1000:>9.0f}"
        )
    print(
        f"concurrent max / slowest single query: {max(results['ours']) / slowest:.2f}"
        f"  (target ≤ 1.3); sequential/concurrent median:"
        f" {statistics.median(results['seq']) / statistics.median(results['ours']):.1f}x"
    )


if __name__ == "__main__":
    main()
