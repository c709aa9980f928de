"""The bot's ``rollout_undo``/``abort_rollout`` against the algorithm of ``kubectl argo rollouts
undo``/``abort`` (tests/argo/reference.py), on identical Rollouts in two namespaces of the
simulated cluster: the same revision chosen, the same template patched back, the same errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import AppsV1Api, CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.sim.kube_api import KubeSimulator
from tests.argo.reference import PluginError, abort_rollout, run_undo_rollout

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
OURS, THEIRS, NAME = "ours", "theirs", "checkout-api"


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as started:
        for namespace in (OURS, THEIRS):
            started.seed_rollout(namespace, NAME, images=IMAGES)
        yield started


@pytest.fixture
def kube(sim: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)
    yield client
    client.close()


def outcome(sim: KubeSimulator, namespace: str) -> dict[str, Any]:
    """What an undo decides: the Rollout's spec, revision and phase; its ReplicaSets."""
    sim.tick()
    with sim.api_client() as api:
        ro = CustomObjectsApi(api).get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "rollouts", NAME
        )
        listed = AppsV1Api(api).list_namespaced_replica_set(namespace, _preload_content=False)
    sets = json.loads(listed.data)["items"]
    return {
        "spec": ro["spec"],
        "revision": ro["metadata"]["annotations"]["rollout.argoproj.io/revision"],
        "phase": ro["status"].get("phase"),
        "abort": ro["status"].get("abort"),
        "replicasets": sorted(
            (
                rs["metadata"]["annotations"]["rollout.argoproj.io/revision"],
                rs["spec"]["template"]["spec"]["containers"][0]["image"],
                rs["metadata"]["labels"]["rollouts-pod-template-hash"],
                rs["spec"]["replicas"],
            )
            for rs in sets
        ),
    }


def theirs(sim: KubeSimulator, to_revision: int) -> str:
    with sim.api_client() as api:
        return run_undo_rollout(api, THEIRS, NAME, to_revision)


def test_undo_previous_then_to_revision_match_the_plugin(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    plan = kube.rollout_undo(KubeTarget(None, OURS), NAME, None)
    assert theirs(sim, 0) == f"rollout '{NAME}' undo\n"
    assert (plan.from_revision, plan.to_revision, plan.is_noop) == (3, 2, False)
    ours_now, theirs_now = outcome(sim, OURS), outcome(sim, THEIRS)
    assert ours_now == theirs_now
    assert ours_now["revision"] == "4"  # v2's ReplicaSet reused with the next revision
    assert ours_now["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGES[1]

    plan = kube.rollout_undo(KubeTarget(None, OURS), NAME, 1)
    theirs(sim, 1)
    assert (plan.to_revision, plan.images_after) == (1, {"app": IMAGES[0]})
    assert outcome(sim, OURS) == outcome(sim, THEIRS)
    assert outcome(sim, OURS)["revision"] == "5"


def test_undo_to_the_current_template_is_skipped_like_the_plugin(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    kube.rollout_undo(KubeTarget(None, OURS), NAME, 1)
    theirs(sim, 1)
    before = sim.resource_version
    plan = kube.rollout_undo(KubeTarget(None, OURS), NAME, 4)  # v1's ReplicaSet, now revision 4
    assert theirs(sim, 4) == "skipped rollback (current template already matches revision 4)"
    assert plan.is_noop and sim.resource_version == before  # no patch from either
    assert outcome(sim, OURS) == outcome(sim, THEIRS)


@pytest.mark.parametrize("to_revision", [7, 3 + 99])
def test_an_unknown_revision_is_the_plugins_error(
    sim: KubeSimulator, kube: KubernetesClient, to_revision: int
) -> None:
    with pytest.raises(KubeError) as ours:
        kube.rollout_undo(KubeTarget(None, OURS), NAME, to_revision)
    with pytest.raises(PluginError) as plugin:
        theirs(sim, to_revision)
    assert str(ours.value) == str(plugin.value)
    assert str(ours.value) == f"unable to find specified revision {to_revision} in history"
    assert outcome(sim, OURS) == outcome(sim, THEIRS)  # nothing changed in either


def test_no_previous_revision_is_the_plugins_error(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    for namespace in (OURS, THEIRS):
        sim.seed_rollout(namespace, "fresh", images=["shop/fresh:v1"])
    with pytest.raises(KubeError) as ours:
        kube.rollout_undo(KubeTarget(None, OURS), "fresh", None)
    with sim.api_client() as api, pytest.raises(PluginError) as plugin:
        run_undo_rollout(api, THEIRS, "fresh", 0)
    assert str(ours.value) == str(plugin.value) == 'no revision found for rollout "fresh"'


def test_the_undo_patch_is_the_plugins_single_replace(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """One PATCH of the Rollout, JSON Patch, /spec/template only (annotations stay)."""
    before = len(sim.requests)
    kube.rollout_undo(KubeTarget(None, OURS), NAME, None)
    writes = [(m, p) for m, p in sim.requests[before:] if m != "GET"]
    assert writes == [
        (
            "PATCH",
            f"/apis/argoproj.io/v1alpha1/namespaces/{OURS}/rollouts/{NAME}"
            "?fieldManager=rollback-bot",
        )
    ]


def update_to(sim: KubeSimulator, namespace: str, image: str) -> None:
    """A new release: the canary starts and stops at its `pause: {}` step."""
    with sim.api_client() as api:
        CustomObjectsApi(api).patch_namespaced_custom_object(
            "argoproj.io",
            "v1alpha1",
            namespace,
            "rollouts",
            NAME,
            [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}],
            _content_type="application/json-patch+json",
        )


def test_abort_during_a_canary_matches_the_plugin(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    for namespace in (OURS, THEIRS):
        update_to(sim, namespace, "shop/checkout:v4")
        assert outcome(sim, namespace)["phase"] == "Paused"
    before = len(sim.requests)
    kube.abort_rollout(KubeTarget(None, OURS), NAME)
    writes = [(m, p) for m, p in sim.requests[before:] if m != "GET"]
    assert writes == [
        (
            "PATCH",
            f"/apis/argoproj.io/v1alpha1/namespaces/{OURS}/rollouts/{NAME}/status"
            "?fieldManager=rollback-bot",
        )
    ]
    with sim.api_client() as api:
        assert abort_rollout(api, THEIRS, NAME) == f"rollout '{NAME}' aborted\n"
    ours_now = outcome(sim, OURS)
    assert ours_now == outcome(sim, THEIRS)
    assert (ours_now["phase"], ours_now["abort"]) == ("Degraded", True)
    stable = [rs for rs in ours_now["replicasets"] if rs[1] == IMAGES[2]]
    assert stable[0][3] == 3  # the stable ReplicaSet has every pod again
    status = kube.rollout_phase(KubeTarget(None, OURS), NAME)
    assert status.is_failed and "RolloutAborted" in status.message
