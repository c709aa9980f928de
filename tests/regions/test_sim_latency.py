"""KubeSimulator.set_latency: every answer waits, concurrent requests side by side (the
benchmark's far-away API servers)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes.client import AppsV1Api

from bot.sim.kube_api import KubeSimulator


def test_latency_delays_each_answer_without_serialising_them() -> None:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop", "checkout-api", images=["checkout:1"])
        sim.set_latency(0.2)
        apps = AppsV1Api(sim.api_client())

        def read() -> float:
            t0 = time.perf_counter()
            apps.read_namespaced_deployment("checkout-api", "shop")
            return time.perf_counter() - t0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            each = list(pool.map(lambda _: read(), range(4)))
        whole = time.perf_counter() - t0

        assert min(each) >= 0.2
        assert whole < 0.6  # four waits side by side, not one after another (0.8 s)
        sim.set_latency(0)
        assert read() < 0.2
