"""The guard on a service that runs as an Argo Rollout: a new Rollout revision is a new release,
noticed with one LIST of Rollouts per namespace and round, next to the Deployments' LIST."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import Service, parse_catalog
from bot.guard.releases import current_revision, detect
from bot.sim.kube_api import KubeSimulator
from storage.db import make_engine, migrate
from storage.repository import Repository
from tests.conftest import catalog_yaml

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(name: str, kind: str) -> str:
    return (
        f"  {name}:\n    namespace: shop\n    deployment: {name}-api\n"
        f"    workload: {{kind: {kind}}}\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
    )


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as started:
        started.seed_rollout("shop", "checkout-api", images=["checkout:v1", "checkout:v2"])
        started.seed_deployment("shop", "cart-api", images=["cart:v1"])
        yield started


@pytest.fixture
def kube(sim: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)
    yield client
    client.close()


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    migrate(make_engine(url))
    return Repository(make_engine(url))


@pytest.fixture
def services() -> list[Service]:
    text = catalog_yaml(entry("checkout", "Rollout"), entry("cart", "Deployment"))
    return list(parse_catalog(text, "t.yaml").services.values())


def test_a_new_rollout_revision_is_a_new_release(
    sim: KubeSimulator, kube: KubernetesClient, repo: Repository, services: list[Service]
) -> None:
    before = len(sim.requests)
    assert detect(kube, repo, services, NOW) == []  # the first look: nothing is new
    reads = sorted(path for verb, path in sim.requests[before:] if verb == "GET")
    assert reads == [
        "/apis/apps/v1/namespaces/shop/deployments",
        "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts",
    ]
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", "shop", "rollouts", "checkout-api"),
        [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "checkout:v3",
            }
        ],
        _content_type="application/json-patch+json",
    )
    sim.tick()  # the controller makes revision 3 (a canary, paused at its first step)
    (new,) = detect(kube, repo, services, NOW)
    assert (new.service.name, new.revision, new.release) == ("checkout", "3", "checkout:v3")
    assert detect(kube, repo, services, NOW) == []
    checkout = next(s for s in services if s.name == "checkout")
    assert current_revision(kube, checkout) == ("3", {"app": "checkout:v3"})
