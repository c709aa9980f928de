"""The guard on a service that runs as an Argo Rollout: a new Rollout revision is a new release,
noticed with one LIST of Rollouts per namespace and round, next to the Deployments' LIST, and
sooner through a watch on the Rollouts that wakes a round."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import Service, parse_catalog
from bot.guard.releases import ReleaseWatcher, current_revision, detect
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


def release(sim: KubeSimulator, image: str, name: str = "checkout-api") -> None:
    """A new image in the Rollout's template; the simulated controller makes its revision."""
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", "shop", "rollouts", name),
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}],
        _content_type="application/json-patch+json",
    )
    sim.tick()


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
    release(sim, "checkout:v3")  # revision 3 (a canary, paused at its first step)
    (new,) = detect(kube, repo, services, NOW)
    assert (new.service.name, new.revision, new.release) == ("checkout", "3", "checkout:v3")
    assert detect(kube, repo, services, NOW) == []
    checkout = next(s for s in services if s.name == "checkout")
    assert current_revision(kube, checkout) == ("3", {"app": "checkout:v3"})


def test_a_rollout_watch_wakes_a_round_and_a_status_change_does_not(
    sim: KubeSimulator, kube: KubernetesClient, services: list[Service]
) -> None:
    wakes: list[int] = []
    woken = threading.Event()
    watcher = ReleaseWatcher(kube, lambda: (wakes.append(1), woken.set()), timeout_seconds=1)
    watcher.start(services)
    try:
        assert watcher.listening.wait(10), "the watches never listed"
        threads = sorted(t.name for t in watcher._threads)
        assert threads == ["guard-watch-shop-deployment", "guard-watch-shop-rollout"]
        kube.abort_rollout(KubeTarget(None, "shop"), "checkout-api")  # status only: same revision
        release(sim, "checkout:v3")
        assert woken.wait(10), "the new Rollout revision woke nothing"
        assert wakes == [1]
    finally:
        watcher.stop(wait_seconds=10)
    watches = [p for v, p in sim.requests if "watch=true" in p and "/rollouts" in p]
    assert watches, "no watch request on the Rollouts"


def test_a_rollout_watch_resumes_and_lists_again_when_gone(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    shop = KubeTarget(None, "shop")
    listing = kube.rollout_revisions(shop)
    assert listing.deployments["checkout-api"].revision == 2
    release(sim, "checkout:v3")  # before the watch starts: not missed
    seen = [
        (e.revision, e.images)
        for e in kube.watch_rollouts(shop, listing.resource_version, timeout_seconds=1)
        if e.name == "checkout-api"
    ]
    assert (3, {"app": "checkout:v3"}) in seen
    sim.inject("GET", "/namespaces/shop/rollouts$", 410)  # the watch: resourceVersion too old
    relisted = {e.name: e for e in kube.watch_rollouts(shop, "1", timeout_seconds=1)}
    assert relisted["checkout-api"].revision == 3
    assert int(relisted["checkout-api"].resource_version) > int(listing.resource_version)
