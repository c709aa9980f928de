"""The bot's rollout undo against the real ``kubectl rollout undo``, on identical objects.

Two namespaces get the same Deployment with the same three releases; the bot undoes in one,
kubectl (the image's /usr/bin/kubectl, with the bot's own ServiceAccount kubeconfig: the Role
is enough for kubectl too) in the other. Then everything the undo decides must be equal.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from kubernetes import client as k8s

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from tests.kube.conftest import Cluster
from tests.kube.workloads import Workloads, until

pytestmark = pytest.mark.kube

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


def kubectl(cluster: Cluster, namespace: str, *args: str) -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("no kubectl on PATH")
    done = subprocess.run(
        [path, "--kubeconfig", str(cluster.bot_kubeconfig), "-n", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def outcome(w: Workloads, name: str) -> dict[str, Any]:
    """What an undo decides: the Deployment's spec and annotations, its ReplicaSets' revisions."""
    dep = w.deployment(name)
    sets = w.apps.list_namespaced_replica_set(w.ns).items
    api = k8s.ApiClient()
    return {
        "spec": api.sanitize_for_serialization(dep.spec),
        "annotations": dep.metadata.annotations,
        "labels": dep.metadata.labels,
        "replicasets": sorted(
            (
                rs.metadata.annotations["deployment.kubernetes.io/revision"],
                rs.spec.template.spec.containers[0].image,
                rs.metadata.labels["pod-template-hash"],
            )
            for rs in sets
        ),
    }


def test_undo_and_undo_to_revision_match_kubectl(
    cluster: Cluster, make_namespace: Any, bot_kube: KubernetesClient
) -> None:
    ours, theirs = make_namespace(), make_namespace()
    w_ours, w_theirs = Workloads(cluster.admin, ours), Workloads(cluster.admin, theirs)
    for w in (w_ours, w_theirs):
        w.release("checkout-api", IMAGES)

    bot_kube.undo(KubeTarget(None, ours), "checkout-api", None)
    out = kubectl(cluster, theirs, "rollout", "undo", "deployment/checkout-api")
    assert "rolled back" in out
    for w in (w_ours, w_theirs):
        until(lambda w=w: w.revision("checkout-api") == 4, "revision 4")  # type: ignore[misc]
        w.wait_rolled_out("checkout-api")
    assert outcome(w_ours, "checkout-api") == outcome(w_theirs, "checkout-api")

    bot_kube.undo(KubeTarget(None, ours), "checkout-api", 1)
    kubectl(cluster, theirs, "rollout", "undo", "deployment/checkout-api", "--to-revision=1")
    for w in (w_ours, w_theirs):
        until(lambda w=w: w.revision("checkout-api") == 5, "revision 5")  # type: ignore[misc]
        w.wait_rolled_out("checkout-api")
    ours_now, theirs_now = outcome(w_ours, "checkout-api"), outcome(w_theirs, "checkout-api")
    assert ours_now == theirs_now
    assert ours_now["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/checkout:v1"

    # the history the bot reads is kubectl's too
    history = bot_kube.history(KubeTarget(None, ours), "checkout-api")
    listed = kubectl(cluster, theirs, "rollout", "history", "deployment/checkout-api")
    numbers = [line.split()[0] for line in listed.splitlines()[2:] if line.strip()]
    assert [str(r.number) for r in history] == numbers == ["3", "4", "5"]
