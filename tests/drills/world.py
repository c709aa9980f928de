"""A drill's world: the bot over signed HTTP, the Kubernetes and Prometheus simulators, and a
catalog whose checkout passes every readiness check until a test breaks one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values

NS = "shop"
TWILIO = {
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "token",
    "twilio_from_number": "+15550100999",
}
ONCALL = (
    "[{name: Primary, phone: '+15550100001'},"
    " {name: Lead, phone: '+15550100002', after_minutes: 5}]"
)


@dataclass
class World:
    h: Harness
    kube_sim: KubeSimulator
    prometheus: PrometheusSimulator

    def drill(self, text: str = "checkout") -> dict[str, Any]:
        """``/rollback drill <text>``; the report posted in the channel."""
        before = len(self.h.posted())
        response = self.h.slash(f"drill {text}")
        assert response.status_code == 200
        assert "Readiness drill" in response.json()["text"], response.json()
        self.h.wait_idle()
        posted = self.h.posted()
        assert len(posted) == before + 1, [c.params.get("text") for c in posted]
        return posted[-1].params

    @property
    def deps(self) -> Any:
        return self.h.bot.deps


def virtual_service(
    kube_sim: KubeSimulator, name: str, weights: tuple[int, ...] = (50, 50)
) -> None:
    """An Istio VirtualService ``name`` in the shop namespace, routing by ``weights``."""
    route = [{"destination": {"host": f"h{n}"}, "weight": w} for n, w in enumerate(weights)]
    with kube_sim.api_client() as api:
        CustomObjectsApi(api).create_namespaced_custom_object(
            "networking.istio.io",
            "v1beta1",
            NS,
            "virtualservices",
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": {"name": name},
                "spec": {"http": [{"route": route}]},
            },
        )


def checkout_yaml(**extra: Any) -> str:
    values = {"sla_minutes": 30, "oncall": ONCALL, **extra}
    return service_yaml("checkout", None, **{k: v for k, v in values.items() if v is not None})


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)


@pytest.fixture
def make_world(
    make_harness: Any,
    kube: KubernetesClient,
    kube_sim: KubeSimulator,
    prometheus: PrometheusSimulator,
) -> Any:
    def make(*services: str, twilio: bool = True, **settings: Any) -> World:
        if kube_sim.get_object("apps/v1", "deployments", NS, "checkout-api") is None:
            kube_sim.seed_deployment(NS, "checkout-api", images=["checkout:v1", "checkout:v2"])
        set_service_values(
            prometheus, "checkout", error_rate=0.001, latency=0.2, sessions=40, db_up=1
        )
        text = catalog_yaml(*(services or (checkout_yaml(),)))
        h = make_harness(
            text, prometheus_url=prometheus.url, kube=kube, **(TWILIO if twilio else {}), **settings
        )
        return World(h, kube_sim, prometheus)

    return make
