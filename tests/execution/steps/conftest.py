"""A StepContext for step tests: real clients, a fake monotonic clock instead of waiting."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.adapters.prometheus import PrometheusAPI
from bot.catalog.load import parse_catalog
from bot.execution.steps.base import StepContext
from bot.sim.kube_api import KubeSimulator
from tests.conftest import catalog_yaml, service_yaml

# The Istio VirtualService "board" that create_virtual_service makes, as a step's `traffic`.
TRAFFIC = {
    "api_version": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "name": "board",
    "stable_weight_path": "/spec/http/0/route/0/weight",
    "canary_weight_path": "/spec/http/0/route/1/weight",
}


@dataclass
class FakeTime:
    """Monotonic and wall clocks that only move when a step waits."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 11, 23, tzinfo=UTC) + timedelta(seconds=self.now)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@dataclass
class Recorded:
    remembered: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient() as client:
        yield client


@pytest.fixture
def make_ctx(fake_time: FakeTime, http: HttpClient) -> Any:
    def make(
        *,
        kube: KubernetesClient | None = None,
        prometheus_url: str | None = None,
        previous: Mapping[str, Any] | None = None,
        timeout_seconds: float = 30.0,
        fresh: Mapping[str, Any] | None = None,
    ) -> tuple[StepContext, Recorded]:
        rec = Recorded()
        service = parse_catalog(catalog_yaml(service_yaml("checkout", None))).services["checkout"]
        ctx = StepContext(
            rollback_id=7,
            position=2,
            service=service,
            target=KubeTarget(None, "shop"),
            kube=kube or KubernetesClient(api_client_for=lambda ctx: None),  # type: ignore[arg-type,return-value]
            http=http,
            prometheus=PrometheusAPI(prometheus_url, http.shared, 2) if prometheus_url else None,
            clock=fake_time.wall,
            wait=fake_time.wait,
            remember=rec.remembered.update,
            previous=dict(previous or {}),
            timeout_seconds=timeout_seconds,
            note=rec.notes.append,
            fresh_detail=lambda: dict(fresh or {}),
            monotonic=fake_time.monotonic,
        )
        return ctx, rec

    return make


def create_virtual_service(sim: KubeSimulator, namespace: str, *routes: dict[str, Any]) -> None:
    """The VirtualService "board" with these routes (a real API server may leave out a weight
    of 0, so a route may have none)."""
    with sim.api_client() as api:
        CustomObjectsApi(api).create_namespaced_custom_object(
            "networking.istio.io",
            "v1beta1",
            namespace,
            "virtualservices",
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": {"name": "board"},
                "spec": {"http": [{"route": list(routes)}]},
            },
        )
