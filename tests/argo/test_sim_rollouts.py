"""The simulated cluster's Argo Rollouts: the CRD's schema and subresources as the API server
serves them, and the controller's ReplicaSets, revisions and phases, through the official
client (CustomObjectsApi)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, AppsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from bot.sim.kube_api import KubeSimulator
from bot.sim.kube_crd_schema import ROLLOUT_SCHEMA

CRD = Path(__file__).resolve().parents[1] / "kube" / "argo-rollouts-crd.yaml"
NS, NAME = "shop", "web"
RO = ("argoproj.io", "v1alpha1", NS, "rollouts")
MERGE = "application/merge-patch+json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Iterator[KubeSimulator]:
    with KubeSimulator(clock=clock) as started:
        started.seed_namespace(NS)
        yield started


@pytest.fixture
def api(sim: KubeSimulator) -> Iterator[ApiClient]:
    with sim.api_client() as client:
        yield client


def body(image: str = "web:1", **spec: Any) -> dict[str, Any]:
    labels = {"app": NAME}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


def get(api: ApiClient) -> dict[str, Any]:
    found: dict[str, Any] = CustomObjectsApi(api).get_namespaced_custom_object(*RO, NAME)
    return found


def set_image(api: ApiClient, image: str) -> None:
    path = "/spec/template/spec/containers/0/image"
    CustomObjectsApi(api).patch_namespaced_custom_object(
        *RO,
        NAME,
        [{"op": "replace", "path": path, "value": image}],
        _content_type="application/json-patch+json",
    )


def replicasets(api: ApiClient) -> list[dict[str, Any]]:
    listed = AppsV1Api(api).list_namespaced_replica_set(NS, _preload_content=False)
    return sorted(json.loads(listed.data)["items"], key=lambda rs: rs["metadata"]["name"])


# -- the CRD as the API server serves it -----------------------------------------------------------


def test_the_simulators_schema_is_the_crd_installed_on_the_real_control_plane() -> None:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    assert version["schema"]["openAPIV3Schema"] == ROLLOUT_SCHEMA
    assert version["subresources"]["status"] == {}
    assert crd["spec"]["names"]["plural"] == "rollouts" and version["name"] == "v1alpha1"


def test_discovery_serves_rollouts_with_status_and_scale(api: ApiClient) -> None:
    listing = CustomObjectsApi(api).get_api_resources("argoproj.io", "v1alpha1")
    names = {r.name for r in listing.resources}
    assert {"rollouts", "rollouts/status", "rollouts/scale"} <= names


def test_status_is_a_subresource(api: ApiClient) -> None:
    custom = CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(
        *RO, {**body(), "status": {"phase": "Healthy"}}
    )
    assert "status" not in created  # dropped on create
    custom.patch_namespaced_custom_object(*RO, NAME, {"status": {"abort": True}})
    assert "abort" not in get(api)["status"]  # the main resource cannot write it
    written = custom.patch_namespaced_custom_object_status(
        *RO, NAME, {"status": {"abort": True}, "spec": {"replicas": 9}}, _content_type=MERGE
    )
    assert written["status"]["abort"] is True
    assert written["spec"]["replicas"] == 2  # the status subresource cannot write the spec
    assert written["metadata"]["generation"] == 1


def test_wrong_types_are_refused_and_unknown_fields_pruned(
    api: ApiClient, sim: KubeSimulator
) -> None:
    custom = CustomObjectsApi(api)
    custom.create_namespaced_custom_object(*RO, body())
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_status(
            *RO, NAME, {"status": {"abort": "yes"}}, _content_type=MERGE
        )
    assert caught.value.status == 422
    assert (
        'status.abort: Invalid value: "string": status.abort in body must be of type boolean'
        in json.loads(caught.value.body)["message"]
    )
    custom.patch_namespaced_custom_object(*RO, NAME, {"spec": {"replicaz": 3}})
    assert "replicaz" not in get(api)["spec"]


# -- the controller --------------------------------------------------------------------------


def test_replicasets_are_owned_labelled_and_numbered_like_argos(
    sim: KubeSimulator, api: ApiClient
) -> None:
    sim.seed_rollout(NS, NAME, images=["web:1", "web:2"])
    ro = get(api)
    sets = replicasets(api)
    assert len(sets) == 2
    for rs in sets:
        pod_hash = rs["metadata"]["labels"]["rollouts-pod-template-hash"]
        assert rs["metadata"]["name"] == f"{NAME}-{pod_hash}"
        assert rs["spec"]["selector"]["matchLabels"]["rollouts-pod-template-hash"] == pod_hash
        assert (
            rs["spec"]["template"]["metadata"]["labels"]["rollouts-pod-template-hash"] == pod_hash
        )
        (owner,) = rs["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "Rollout",
            ro["metadata"]["uid"],
            True,
        )
    revisions = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
            "rollout.argoproj.io/revision"
        ]
        for rs in sets
    }
    assert revisions == {"web:1": "1", "web:2": "2"}
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "2"
    assert ro["status"]["observedGeneration"] == "2" and ro["status"]["phase"] == "Healthy"
    assert ro["status"]["currentPodHash"] == ro["status"]["stableRS"]


def test_a_canary_pauses_then_a_promote_and_a_timed_pause_finish_it(
    sim: KubeSimulator, api: ApiClient, clock: Clock
) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}, {"pause": {"duration": 30}}]
    sim.seed_rollout(NS, NAME, images=["web:1"], strategy={"canary": {"steps": steps}})
    set_image(api, "web:2")
    sim.tick()
    ro = get(api)
    assert (ro["status"]["phase"], ro["status"]["message"]) == ("Paused", "CanaryPauseStep")
    assert ro["status"]["controllerPause"] is True
    by_image = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
        for rs in replicasets(api)
    }
    assert by_image == {"web:1": 1, "web:2": 2}  # 50 % of 3 replicas, rounded up
    CustomObjectsApi(api).patch_namespaced_custom_object_status(
        *RO, NAME, {"status": {"pauseConditions": None}}, _content_type=MERGE
    )  # what `kubectl argo rollouts promote` sends
    sim.tick()
    assert get(api)["status"]["phase"] == "Paused"  # now in the timed pause
    clock.now += 31
    sim.tick()
    ro = get(api)
    assert ro["status"]["phase"] == "Healthy"
    assert ro["status"]["stableRS"] == ro["status"]["currentPodHash"]


def test_an_abort_goes_back_to_stable_and_a_new_template_clears_it(
    sim: KubeSimulator, api: ApiClient
) -> None:
    sim.seed_rollout(NS, NAME, images=["web:1", "web:2"])
    set_image(api, "web:3")
    sim.tick()
    CustomObjectsApi(api).patch_namespaced_custom_object_status(
        *RO, NAME, {"status": {"abort": True}}, _content_type=MERGE
    )
    sim.tick()
    ro = get(api)
    assert ro["status"]["phase"] == "Degraded"
    assert ro["status"]["message"] == "RolloutAborted: Rollout aborted update to revision 3"
    assert {
        rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]: rs["spec"]["replicas"]
        for rs in replicasets(api)
    } == {"1": 0, "2": 3, "3": 0}
    set_image(api, "web:2")  # the template of the stable ReplicaSet: a rollback to stable
    sim.tick()
    ro = get(api)
    assert ro["status"]["phase"] == "Healthy" and "abort" not in ro["status"]
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "4"


def test_blue_green_promotes_when_ready_or_pauses_without_auto_promotion(
    sim: KubeSimulator, api: ApiClient
) -> None:
    blue_green = {"blueGreen": {"activeService": "web", "autoPromotionEnabled": False}}
    sim.seed_rollout(NS, NAME, images=["web:1"], strategy=blue_green)
    set_image(api, "web:2")
    sim.tick()
    ro = get(api)
    assert (ro["status"]["phase"], ro["status"]["message"]) == ("Paused", "BlueGreenPause")
    assert ro["status"]["blueGreen"]["activeSelector"] == ro["status"]["stableRS"]
    CustomObjectsApi(api).patch_namespaced_custom_object_status(
        *RO, NAME, {"status": {"pauseConditions": None}}, _content_type=MERGE
    )
    sim.tick()
    ro = get(api)
    assert ro["status"]["phase"] == "Healthy"
    assert ro["status"]["blueGreen"]["activeSelector"] == ro["status"]["currentPodHash"]


def test_a_paused_rollout_is_not_rewritten_while_time_passes(
    sim: KubeSimulator, api: ApiClient, clock: Clock
) -> None:
    """A reconcile pass reaches a fixed point: a pause keeps its startTime, so reads between
    writes see one resourceVersion (the dry run relies on it)."""
    sim.seed_rollout(NS, NAME, images=["web:1"])
    set_image(api, "web:2")
    sim.tick()
    assert get(api)["status"]["phase"] == "Paused"
    before = sim.resource_version
    clock.now += 5
    sim.tick()
    assert sim.resource_version == before
