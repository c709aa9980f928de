"""Release detection against the Kubernetes simulator: one LIST per namespace and round, the
revision annotation, no ping-pong, a restart that resumes from the database, and the watch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import Service, parse_catalog
from bot.guard.releases import ReleaseWatcher, detect
from bot.rollback.lifecycle import RollbackKind, RollbackStatus
from bot.sim.kube_api import KubeSimulator
from storage.db import make_engine, migrate
from storage.repository import Repository
from tests.conftest import catalog_yaml

SHOP = KubeTarget(None, "shop")
NAMES = ("checkout", "cart", "search")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(name: str, namespace: str = "shop") -> str:
    return (
        f"  {name}:\n    namespace: {namespace}\n    deployment: {name}-api\n"
        "    responders: [U0ONCALL1]\n    approvers: [U0APPROVER1]\n"
    )


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as started:
        for name in NAMES:
            started.seed_deployment("shop", f"{name}-api", images=[f"{name}:v1", f"{name}:v2"])
        started.seed_deployment("other", "other-api", images=["other:v1"])
        yield started


@pytest.fixture
def kube(sim: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)
    yield client
    client.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    migrate(make_engine(url))
    return url


@pytest.fixture
def services() -> list[Service]:
    catalog = parse_catalog(catalog_yaml(*map(entry, NAMES), entry("other", "other")), "t.yaml")
    return list(catalog.services.values())


def deployment_reads(sim: KubeSimulator) -> list[str]:
    return [path for verb, path in sim.requests if verb == "GET" and "/deployments" in path]


def test_one_list_per_namespace_and_a_new_revision_is_new(
    sim: KubeSimulator, kube: KubernetesClient, db_url: str, services: list[Service]
) -> None:
    repo = Repository(make_engine(db_url))
    before = len(sim.requests)
    assert detect(kube, repo, services, NOW) == []  # the first look: nothing is new
    reads = [path for verb, path in sim.requests[before:] if verb == "GET"]
    assert sorted(reads) == [
        "/apis/apps/v1/namespaces/other/deployments",
        "/apis/apps/v1/namespaces/shop/deployments",
    ]
    kube.set_image(SHOP, "cart-api", "app", "cart:v3")
    (new,) = detect(kube, repo, services, NOW)
    assert (new.service.name, new.revision, new.release) == ("cart", "3", "cart:v3")
    assert detect(kube, repo, services, NOW) == []  # seen once: not new again


def test_a_revision_made_by_a_rollback_is_not_new(
    kube: KubernetesClient, db_url: str, services: list[Service]
) -> None:
    repo = Repository(make_engine(db_url))
    detect(kube, repo, services, NOW)
    repo.create_rollback(
        service="cart",
        kind=RollbackKind.IMMEDIATE,
        strategy="undo",
        requested_by="U0ONCALL1",
        status=RollbackStatus.RUNNING,
        now=NOW,
    )
    kube.undo(SHOP, "cart-api", None)  # the rollback's undo: revision 3 runs cart:v1's images
    assert detect(kube, repo, services, NOW) == []


def test_a_restart_notices_a_release_made_while_down(
    kube: KubernetesClient, db_url: str, services: list[Service]
) -> None:
    detect(kube, Repository(make_engine(db_url)), services, NOW)
    kube.set_image(SHOP, "search-api", "app", "search:v3")  # while no bot runs
    restarted = Repository(make_engine(db_url))  # a new process on the same database
    (new,) = detect(kube, restarted, services, NOW)
    assert (new.service.name, new.revision) == ("search", "3")


def test_a_missing_deployment_or_namespace_skips_only_those(
    sim: KubeSimulator, kube: KubernetesClient, db_url: str, services: list[Service]
) -> None:
    repo = Repository(make_engine(db_url))
    detect(kube, repo, services, NOW)
    sim.inject("GET", "/namespaces/other/deployments$", 403)
    kube.set_image(SHOP, "checkout-api", "app", "checkout:v3")
    (new,) = detect(kube, repo, services, NOW)
    assert new.service.name == "checkout"


def until(condition: threading.Event, what: str) -> None:
    if not condition.wait(10):
        raise AssertionError(f"{what} did not happen within 10 s")


def test_a_watch_event_wakes_a_round(kube: KubernetesClient, services: list[Service]) -> None:
    woken = threading.Event()
    watcher = ReleaseWatcher(kube, woken.set, timeout_seconds=2)
    watcher.start(services)
    try:
        until(watcher.listening, "the watches")
        kube.set_image(SHOP, "checkout-api", "app", "checkout:v3")
        until(woken, "the wake-up")
    finally:
        watcher.stop(wait_seconds=10)


def test_a_status_change_alone_wakes_nothing(
    kube: KubernetesClient, services: list[Service]
) -> None:
    wakes: list[int] = []
    woken = threading.Event()
    watcher = ReleaseWatcher(kube, lambda: (wakes.append(1), woken.set()), timeout_seconds=1)
    watcher.start(services)
    try:
        until(watcher.listening, "the watches")
        kube.scale(SHOP, "cart-api", 5)  # a new resourceVersion, the same revision
        kube.set_image(SHOP, "checkout-api", "app", "checkout:v3")  # after it in the stream
        until(woken, "the wake-up")
        assert wakes == [1]  # the release woke the round; the scale before it did not
    finally:
        watcher.stop(wait_seconds=10)


def test_gone_lists_again_and_the_watch_goes_on(sim: KubeSimulator, kube: KubernetesClient) -> None:
    listing = kube.deployment_revisions(SHOP)
    kube.set_image(SHOP, "cart-api", "app", "cart:v3")
    sim.inject("GET", "/namespaces/shop/deployments$", 410)  # the watch: resourceVersion too old
    seen = {e.name: e for e in kube.watch_deployments(SHOP, "1", timeout_seconds=1)}
    assert seen["cart-api"].revision == 3 and len(seen) == len(NAMES)
    relisted = [p for v, p in sim.requests if p == "/apis/apps/v1/namespaces/shop/deployments"]
    assert len(relisted) == 2  # the first list, and the one after 410 Gone
    assert int(seen["cart-api"].resource_version) > int(listing.resource_version)
