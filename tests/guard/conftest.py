"""The guard's world: a real Prometheus scraping an exporter the test controls, the Kubernetes
simulator, the whole bot (Slack simulator, engine) — and an injected clock for the guard's time
(how long a breach has held), so that nothing waits for minutes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from tests.conftest import Harness, catalog_yaml
from tests.guard.exporter import Exporter, scrape_config
from tests.prometheus_server import RealPrometheus, require_prometheus

T = KubeTarget(None, "shop")
ERRORS = 'max(guard_error_rate{service="checkout"})'
LATENCY = 'max(guard_latency_p95{service="checkout"})'
SIGNALS = f"    signals:\n      error_rate: '{ERRORS}'\n      latency_p95_seconds: '{LATENCY}'\n"


def service(guard: str, interval_seconds: int = 30) -> str:
    return (
        "  checkout:\n    namespace: shop\n    deployment: checkout-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
        + SIGNALS
        + "    auto_rollback:\n      enabled: true\n"
        f"      interval_seconds: {interval_seconds}\n"
        "      watch_minutes: 30\n" + guard
    )


SUSTAINED = (
    "      triggers:\n"
    "        - {metric: error_rate, threshold: 0.01, comparison: greater_than,"
    " duration_seconds: 60}\n"
)


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def wait_seen(prometheus_url: str, promql: str, value: float | None) -> None:
    """Wait until Prometheus answers ``promql`` with ``value`` (None: no series)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = httpx.post(
            f"{prometheus_url}/api/v1/query", data={"query": promql}, timeout=5
        ).json()["data"]["result"]
        seen = float(found[0]["value"][1]) if found else None
        if seen == value:
            return
        time.sleep(0.1)  # the scrape interval is 1 s: poll Prometheus with a deadline
    raise AssertionError(f"Prometheus did not see {promql} = {value} within 15 s")


@dataclass
class World:
    h: Harness
    kube: KubernetesClient
    sim: KubeSimulator
    exporter: Exporter
    prometheus_url: str
    clock: FakeClock

    def errors(self, value: float | None) -> None:
        """Set the exporter's error rate and wait until Prometheus has scraped it."""
        self.exporter.set("guard_error_rate", value, service="checkout")
        wait_seen(self.prometheus_url, ERRORS, value)

    def latency(self, value: float | None) -> None:
        """Set the exporter's p95 latency and wait until Prometheus answers with it."""
        self.exporter.set("guard_latency_p95", value, service="checkout")
        wait_seen(self.prometheus_url, LATENCY, value)

    def release(self, image: str) -> None:
        self.kube.set_image(T, "checkout-api", "app", image)

    def tick(self, after_seconds: float = 0) -> None:
        self.clock.advance(after_seconds)
        self.h.bot.guard.tick()
        self.h.wait_idle()

    def recovered(self) -> None:
        """The rollback helped: the error rate falls (its verification gate reads it)."""
        self.errors(0.001)
        self.h.wait_rollbacks()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    with Exporter() as running:
        yield running


@pytest.fixture(scope="module")
def scraping_prometheus(exporter: Exporter) -> Iterator[RealPrometheus]:
    """A real Prometheus scraping the test's exporter every second (``prometheus`` is the
    simulator of tests/conftest.py)."""
    require_prometheus()
    with RealPrometheus(config_text=scrape_config(exporter.target)) as running:
        yield running


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield sim


@pytest.fixture
def make_world(
    make_harness: Any,
    exporter: Exporter,
    scraping_prometheus: RealPrometheus,
    kube_sim: KubeSimulator,
) -> Iterator[Any]:
    """``make_world(guard_yaml, prometheus_url=…, interval_seconds=…, clock=…, **settings)``: the
    bot on a fresh database (or ``database_url``), the running release already seen (not new).
    ``prometheus_url`` other than the module's Prometheus is not waited for (it may be down on
    purpose); ``clock`` shares one fake clock between several bots (replicas)."""
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)

    def make(
        guard: str = SUSTAINED,
        *,
        prometheus_url: str | None = None,
        interval_seconds: int = 30,
        clock: FakeClock | None = None,
        **settings: Any,
    ) -> World:
        clock = clock or FakeClock(datetime.now(UTC))
        url = prometheus_url or scraping_prometheus.url
        h = make_harness(
            catalog_yaml(service(guard, interval_seconds)),
            prometheus_url=url,
            kube=kube,
            clock=clock,
            **settings,
        )
        world = World(h, kube, kube_sim, exporter, url, clock)
        if prometheus_url is None:
            world.errors(0.001)
        world.tick()  # the guard's first look: the running release is not new
        return world

    yield make
    kube.close()


def guard_messages(h: Harness) -> list[str]:
    texts = [c.params.get("text", "") for c in h.slack.calls_to("chat.postMessage")]
    texts += [c.params.get("text", "") for c in h.slack.calls_to("chat.update")]
    return [t for t in texts if "uard" in t]
