"""``KubernetesClient.reading_once()``: the view a drill's checks share reads each object once;
the client itself never caches; a failed read is tried again."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.reads import ReadOnce
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.sim.kube_api import KubeSimulator

T = KubeTarget(None, "shop")


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as s:
        s.seed_deployment("shop", "web", images=["web:1", "web:2"])
        yield s


def _gets(sim: KubeSimulator, since: int) -> list[str]:
    return [p.partition("?")[0] for m, p in sim.requests[since:] if m == "GET"]


def test_the_view_reads_once_and_the_client_every_time(sim: KubeSimulator) -> None:
    kube = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)
    since = len(sim.requests)
    for _ in range(3):
        kube.plan_undo(T, "web", None)
    assert len(_gets(sim, since)) == 6  # GET + LIST, three times
    view, since = kube.reading_once(), len(sim.requests)
    for _ in range(3):
        view.plan_undo(T, "web", None)
        view.rollout_status(T, "web")
    assert sorted(_gets(sim, since)) == [
        "/apis/apps/v1/namespaces/shop/deployments/web",
        "/apis/apps/v1/namespaces/shop/replicasets",
    ]
    view.undo(T, "web", None, dry_run=True)  # a write goes out, on the view's reads
    assert [m for m, _ in sim.requests[since:]].count("PATCH") == 1


def test_a_failed_read_is_tried_again(sim: KubeSimulator) -> None:
    view = KubernetesClient(
        api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None, retries=0
    ).reading_once()
    sim.inject("GET", "/deployments/web$", 500)
    with pytest.raises(KubeError):
        view.deployment(T, "web")
    assert view.deployment(T, "web").name == "web"


def test_concurrent_readers_share_one_fetch() -> None:
    reads, calls, gate = ReadOnce(), [], threading.Event()

    def fetch() -> int:
        gate.wait(5)
        calls.append(1)
        return 42

    found: list[int] = []
    threads = [
        threading.Thread(target=lambda: found.append(reads.get("k", fetch))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert found == [42] * 8 and calls == [1]
