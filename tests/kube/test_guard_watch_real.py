"""The guard's release detection against a real kube-apiserver (issue 14), as the bot's own
ServiceAccount: the ReleaseWatcher notices a new Deployment revision through a real watch, a
watch resumes from a resourceVersion (changes made before it started are not missed), and a
resourceVersion the API server no longer has (410 Gone, "too old resource version") is
answered by listing again, after which the watch goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import DeploymentListing, KubeTarget
from bot.catalog.load import Service, parse_catalog
from bot.guard.releases import ReleaseWatcher
from tests.conftest import catalog_yaml, service_yaml
from tests.kube.argo_controller import RolloutController
from tests.kube.conftest import Cluster
from tests.kube.workloads import Workloads, until

pytestmark = pytest.mark.kube


class CountingKube(KubernetesClient):
    """The bot's client, counting the LISTs the watcher makes (a resumed watch makes none)."""

    lists = 0

    def deployment_revisions(self, t: KubeTarget) -> DeploymentListing:
        self.lists += 1
        return super().deployment_revisions(t)


@pytest.fixture
def counting_kube(cluster: Cluster) -> Iterator[CountingKube]:
    kube = CountingKube(kubeconfig=str(cluster.bot_kubeconfig), sleep=lambda s: None)
    yield kube
    kube.close()


def guarded(namespace: str) -> list[Service]:
    text = catalog_yaml(
        service_yaml("checkout", None).replace("namespace: shop", f"namespace: {namespace}")
    )
    return [parse_catalog(text).services["checkout"]]


def test_the_watcher_notices_a_new_revision_and_resumes_without_listing(
    workloads: Workloads, counting_kube: CountingKube
) -> None:
    workloads.release("checkout-api", ["shop/checkout:v1"])
    wakes: list[int] = []
    woken = threading.Event()
    # each watch request lasts 1 s: the second release comes through a resumed watch
    watcher = ReleaseWatcher(
        counting_kube, lambda: (wakes.append(1), woken.set()), timeout_seconds=1
    )
    watcher.start(guarded(workloads.ns))
    try:
        assert watcher.listening.wait(30), "the watch never started"
        workloads.set_image("checkout-api", "shop/checkout:v2")
        assert woken.wait(30), "revision 2 woke nothing"
        woken.clear()
        lists = counting_kube.lists
        until(lambda: workloads.rolled_out("checkout-api"), "revision 2 rolled out")
        workloads.wait_rolled_out("checkout-api")
        # status updates of the rollout (same revision) and watch requests ending wake nothing
        threading.Event().wait(2.5)  # two watch requests end and resume meanwhile
        assert wakes == [1]
        workloads.set_image("checkout-api", "shop/checkout:v3")
        assert woken.wait(30), "revision 3 woke nothing"
        assert wakes == [1, 1]
        assert counting_kube.lists == lists  # resumed from resourceVersions, never relisted
    finally:
        watcher.stop(wait_seconds=10)


def test_a_watch_resumes_from_a_resource_version(
    workloads: Workloads, bot_kube: KubernetesClient, target: KubeTarget
) -> None:
    workloads.release("checkout-api", ["shop/checkout:v1"])
    listing = bot_kube.deployment_revisions(target)
    assert listing.deployments["checkout-api"].revision == 1
    workloads.set_image("checkout-api", "shop/checkout:v2")  # before the watch starts
    until(lambda: workloads.revision("checkout-api") == 2, "revision 2")
    seen = [
        e.revision
        for e in bot_kube.watch_deployments(target, listing.resource_version, timeout_seconds=2)
        if e.name == "checkout-api"
    ]
    assert 2 in seen  # the change between the list and the watch is not missed
    assert seen == sorted(seen)


def restart_api_server(cluster: Cluster) -> None:
    """Restart kube-apiserver alone (etcd keeps the data): its watch cache starts again at the
    store's current resourceVersion, so any older one a client resumes from is gone (410), as
    after an API server upgrade or a long disconnection. The fake kubelet's errors while the
    server was away are the restart's, not the test's failures: they are dropped."""
    plane, errors = cluster.plane, len(cluster.kubelet.errors)
    old = plane.processes["kube-apiserver"]
    argv = [str(a) for a in old.args]  # type: ignore[union-attr]  # a list: see _spawn
    old.kill()  # a graceful stop waits for every open watch to end: far too slow here
    old.wait(timeout=30)
    plane._spawn("kube-apiserver", argv)
    plane._wait_healthy("kube-apiserver", f"{plane.server}/readyz", 60, plane.admin_token)
    threading.Event().wait(1.5)  # one more kubelet round, against the server that is back
    del cluster.kubelet.errors[errors:]


def test_a_resource_version_too_old_lists_again_and_the_watch_goes_on(
    cluster: Cluster,
    workloads: Workloads,
    bot_kube: KubernetesClient,
    target: KubeTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    workloads.release("checkout-api", ["shop/checkout:v1"])
    stale = bot_kube.deployment_revisions(target).resource_version
    workloads.set_image("checkout-api", "shop/checkout:v2")
    until(lambda: workloads.revision("checkout-api") == 2, "revision 2")
    restart_api_server(cluster)
    relisted = list(bot_kube.watch_deployments(target, stale, timeout_seconds=2))
    assert "listing again" in caplog.text and "too old resource version" in caplog.text
    (listed,) = [e for e in relisted if e.name == "checkout-api"]
    assert listed.revision == 2 and listed.images == {"app": "shop/checkout:v2"}
    workloads.set_image("checkout-api", "shop/checkout:v3")
    later = [
        e.revision
        for e in bot_kube.watch_deployments(target, listed.resource_version, timeout_seconds=2)
        if e.name == "checkout-api"
    ]
    assert 3 in later  # the list's resourceVersion is one the watch can resume from


@pytest.mark.usefixtures("argo_rollouts_crd")
def test_the_watcher_notices_a_new_rollout_revision_through_a_real_watch(
    cluster: Cluster, workloads: Workloads, bot_kube: KubernetesClient, target: KubeTarget
) -> None:
    argo = RolloutController(cluster.admin, workloads.ns)
    argo.create("checkout-api", ["shop/checkout:v1"])
    text = catalog_yaml(
        service_yaml("checkout", None, workload="{kind: Rollout}").replace(
            "namespace: shop", f"namespace: {workloads.ns}"
        )
    )
    services = [parse_catalog(text).services["checkout"]]
    wakes: list[int] = []
    woken = threading.Event()
    watcher = ReleaseWatcher(bot_kube, lambda: (wakes.append(1), woken.set()), timeout_seconds=1)
    watcher.start(services)
    try:
        assert watcher.listening.wait(30), "the watch never started"
        assert [t.name for t in watcher._threads] == [f"guard-watch-{workloads.ns}-rollout"]
        argo.set_image("checkout-api", "shop/checkout:v2")
        threading.Event().wait(1.5)  # the template alone (same revision annotation) wakes nothing
        assert wakes == []
        argo.reconcile("checkout-api", promote=False)  # the controller: revision 2, paused canary
        assert woken.wait(30), "revision 2 woke nothing"
        assert wakes == [1]
    finally:
        watcher.stop(wait_seconds=10)
    seen = bot_kube.rollout_revisions(target).deployments["checkout-api"]
    assert (seen.revision, seen.images) == (2, {"app": "shop/checkout:v2"})
