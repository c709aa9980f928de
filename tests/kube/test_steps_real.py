"""Every Kubernetes step kind against a real kube-apiserver and kube-controller-manager.

The bot's client runs as the ServiceAccount that deploy/rbac.yaml's Role is bound to; the
objects are created by an admin, as a CD pipeline would. Revisions, ReplicaSets, rollouts,
progress deadlines and Jobs are the real controllers' work.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.objects import (
    restart,
    rollout_undo,
    scale,
    set_image,
    snapshot,
    switch_selector,
)
from bot.execution.steps.kubernetes.traffic import shift_traffic
from bot.execution.steps.kubernetes.waits import RUN_LABEL, run_job, wait_rollout
from tests.kube.conftest import Cluster
from tests.kube.fake_kubelet import JOB_OUTCOME_LABEL
from tests.kube.workloads import Workloads, until

pytestmark = pytest.mark.kube

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


def test_undo_goes_back_one_revision_and_the_rollout_completes(
    workloads: Workloads, make_ctx: Any
) -> None:
    workloads.release("checkout-api", IMAGES)
    assert workloads.revision("checkout-api") == 3
    ctx, rec = make_ctx()

    detail = rollout_undo(ctx, {})

    assert detail["undo"]["from_revision"] == 3 and detail["undo"]["to_revision"] == 2
    assert rec.remembered["undo"]["images_after"] == {"app": "shop/checkout:v2"}
    assert workloads.images("checkout-api") == {"app": "shop/checkout:v2"}
    # the real deployment controller: v2's ReplicaSet is reused and takes the next revision
    until(lambda: workloads.revision("checkout-api") == 4, "revision 4")
    status = wait_rollout(ctx, {})["status"]
    assert "successfully rolled out" in status
    assert workloads.rolled_out("checkout-api")


def test_undo_to_a_given_revision(workloads: Workloads, make_ctx: Any) -> None:
    workloads.release("checkout-api", IMAGES)
    ctx, _ = make_ctx()
    rollout_undo(ctx, {"to_revision": 1})
    assert workloads.images("checkout-api") == {"app": "shop/checkout:v1"}
    until(lambda: workloads.revision("checkout-api") == 4, "revision 4")
    wait_rollout(ctx, {})
    history = ctx.kube.history(ctx.target, "checkout-api")
    assert [(r.number, r.images["app"]) for r in history] == [
        (2, "shop/checkout:v2"),
        (3, "shop/checkout:v3"),
        (4, "shop/checkout:v1"),
    ]


def test_undo_to_a_revision_that_does_not_exist_changes_nothing(
    workloads: Workloads, make_ctx: Any
) -> None:
    workloads.release("checkout-api", IMAGES[:2])
    ctx, _ = make_ctx()
    with pytest.raises(StepFailed, match="unable to find specified revision 9"):
        rollout_undo(ctx, {"to_revision": 9})
    assert workloads.revision("checkout-api") == 2


def test_a_resumed_undo_does_not_undo_twice(workloads: Workloads, make_ctx: Any) -> None:
    workloads.release("checkout-api", IMAGES)
    ctx, rec = make_ctx()
    rollout_undo(ctx, {})
    until(lambda: workloads.revision("checkout-api") == 4, "revision 4")
    again, _ = make_ctx(previous=rec.remembered)
    detail = rollout_undo(again, {})
    assert detail["note"] == "already rolled back before the restart"
    assert workloads.images("checkout-api") == {"app": "shop/checkout:v2"}
    assert workloads.revision("checkout-api") == 4


def test_set_image_makes_a_new_revision(workloads: Workloads, make_ctx: Any) -> None:
    workloads.release("checkout-api", IMAGES[:1])
    ctx, _ = make_ctx()
    detail = set_image(ctx, {"container": "app", "image": "shop/checkout:v0"})
    assert detail == {"image_before": "shop/checkout:v1", "image_after": "shop/checkout:v0"}
    wait_rollout(ctx, {})
    assert workloads.revision("checkout-api") == 2
    with pytest.raises(StepFailed, match='unable to find container named "web"'):
        set_image(ctx, {"container": "web", "image": "shop/checkout:v0"})


def test_scale_through_the_scale_subresource(workloads: Workloads, make_ctx: Any) -> None:
    workloads.release("checkout-api", IMAGES[:1])
    ctx, rec = make_ctx()
    detail = scale(ctx, {"replicas": 3})
    assert detail == {"replicas_before": 2, "replicas_after": 3}
    assert rec.remembered == {"replicas_before": 2}
    result = wait_rollout(ctx, {"min_available": 3})
    assert "successfully rolled out" in result["status"]
    assert workloads.deployment("checkout-api").status.available_replicas == 3
    scale(ctx, {"replicas": 0})
    until(lambda: (workloads.deployment("checkout-api").status.replicas or 0) == 0, "0 pods")
    with pytest.raises(StepFailed, match="scaled to 0 replicas"):
        wait_rollout(ctx, {"min_available": 1})


def test_restart_replaces_every_pod(workloads: Workloads, make_ctx: Any) -> None:
    workloads.release("checkout-api", IMAGES[:1])
    ctx, rec = make_ctx()
    detail = restart(ctx, {})
    annotations = workloads.deployment("checkout-api").spec.template.metadata.annotations
    assert annotations["kubectl.kubernetes.io/restartedAt"] == (detail["restarted_at"][:19] + "Z")
    wait_rollout(ctx, {})
    assert workloads.revision("checkout-api") == 2
    # resumed after a crash: the annotation was written, no second restart
    again, _ = make_ctx(previous=rec.remembered)
    restart(again, {})
    assert workloads.revision("checkout-api") == 2


def test_wait_rollout_fails_on_the_progress_deadline(
    cluster: Cluster, workloads: Workloads, make_ctx: Any
) -> None:
    workloads.release("checkout-api", IMAGES[:1], progress_deadline=2)
    cluster.kubelet.never_ready_images.add("shop/checkout:broken")
    workloads.set_image("checkout-api", "shop/checkout:broken")
    ctx, _ = make_ctx(timeout_seconds=60)
    with pytest.raises(StepFailed, match="exceeded its progress deadline"):
        wait_rollout(ctx, {})
    # the old pods kept serving: maxUnavailable 0 never took them down
    assert workloads.deployment("checkout-api").status.available_replicas == 2


def test_wait_rollout_times_out_on_a_release_that_never_converges(
    cluster: Cluster, workloads: Workloads, make_ctx: Any
) -> None:
    workloads.release("checkout-api", IMAGES[:1])
    cluster.kubelet.never_ready_images.add("shop/checkout:stuck")
    workloads.set_image("checkout-api", "shop/checkout:stuck")
    ctx, _ = make_ctx(timeout_seconds=2)
    with pytest.raises(StepFailed, match="not done after 2 s; last status: Waiting"):
        wait_rollout(ctx, {})


def test_switch_selector(workloads: Workloads, make_ctx: Any) -> None:
    workloads.service("storefront", {"app": "storefront", "version": "green"})
    ctx, rec = make_ctx()
    detail = switch_selector(ctx, {"service": "storefront", "selector": {"version": "blue"}})
    assert detail["selector"] == {"app": "storefront", "version": "blue"}
    assert rec.remembered["selector_before"] == {"app": "storefront", "version": "green"}
    assert workloads.selector("storefront") == {"app": "storefront", "version": "blue"}
    with pytest.raises(StepFailed, match='service "nope" not found'):
        switch_selector(ctx, {"service": "nope", "selector": {"version": "blue"}})


JOB = {
    "backoffLimit": 0,
    "template": {
        "metadata": {"labels": {JOB_OUTCOME_LABEL: "succeed"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "shop/migrate:v2", "args": ["down"]}],
        },
    },
}


def _job(outcome: str | None) -> dict[str, Any]:
    template = dict(JOB["template"])
    template["metadata"] = {"labels": {JOB_OUTCOME_LABEL: outcome}} if outcome else {}
    return {**JOB, "template": template}


def test_run_job_waits_for_the_job_to_complete(
    cluster: Cluster, workloads: Workloads, make_ctx: Any
) -> None:
    ctx, _ = make_ctx()
    detail = run_job(ctx, {"job": _job("succeed")})
    job = workloads.batch.read_namespaced_job(detail["job"], workloads.ns)
    assert job.status.succeeded == 1
    assert job.metadata.labels[RUN_LABEL] == detail["run_id"]
    # TTLAfterFinished is alpha in 1.20: the server kept the field because the gate is on
    assert job.spec.ttl_seconds_after_finished == 3600


def test_run_job_that_fails_fails_the_step(workloads: Workloads, make_ctx: Any) -> None:
    ctx, _ = make_ctx()
    with pytest.raises(StepFailed, match=r"failed: .*(BackoffLimitExceeded|backoff limit)"):
        run_job(ctx, {"job": _job("fail")})


def test_run_job_finished_on_request(cluster: Cluster, workloads: Workloads, make_ctx: Any) -> None:
    ctx, rec = make_ctx(timeout_seconds=1)
    with pytest.raises(StepFailed, match="is still running"):
        run_job(ctx, {"job": _job(None)})
    name = rec.remembered["job"]
    cluster.kubelet.finish_job(workloads.ns, name)
    again, _ = make_ctx(previous=rec.remembered)
    assert run_job(again, {"job": _job(None)})["job"] == name  # the same Job, not a second


def test_run_job_refuses_a_job_it_did_not_create(workloads: Workloads, make_ctx: Any) -> None:
    body = {"metadata": {"name": "migrate"}, "spec": _job("succeed")}
    workloads.batch.create_namespaced_job(workloads.ns, body)
    ctx, _ = make_ctx()
    with pytest.raises(StepFailed, match=r'job "migrate" already exists .* not created by this'):
        run_job(ctx, {"job": _job("succeed"), "job_name": "migrate"})


def _route(stable: int | None, canary: int | None) -> list[dict[str, Any]]:
    def dest(subset: str, weight: int | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"destination": {"host": "board", "subset": subset}}
        if weight is not None:  # Istio's clients leave out a zero weight
            entry["weight"] = weight
        return entry

    return [dest("stable", stable), dest("canary", canary)]


TRAFFIC = {
    "api_version": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "name": "board",
    "stable_weight_path": "/spec/http/0/route/0/weight",
    "canary_weight_path": "/spec/http/0/route/1/weight",
}


@pytest.mark.usefixtures("virtual_service_crd")
def test_shift_traffic_on_a_custom_resource(workloads: Workloads, make_ctx: Any) -> None:
    workloads.virtual_service("board", _route(70, 30))
    ctx, _ = make_ctx()
    detail = shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 20})
    assert detail["canary_percent"] == 0 and detail["weights"] == [10, 0]
    route = workloads.read_virtual_service("board")["spec"]["http"][0]["route"]
    assert [r.get("weight") for r in route] == [100, 0]


@pytest.mark.usefixtures("virtual_service_crd")
def test_shift_traffic_sets_a_weight_left_out_when_zero(
    workloads: Workloads, make_ctx: Any
) -> None:
    workloads.virtual_service("board", _route(100, None))
    ctx, _ = make_ctx()
    shift_traffic(ctx, {"traffic": TRAFFIC, "to_percent": 25})
    route = workloads.read_virtual_service("board")["spec"]["http"][0]["route"]
    assert [r.get("weight") for r in route] == [75, 25]


@pytest.mark.usefixtures("virtual_service_crd")
def test_snapshot_of_builtin_and_custom_objects(workloads: Workloads, make_ctx: Any) -> None:
    workloads.release("checkout-api", IMAGES[:1])
    workloads.service("checkout", {"app": "checkout-api"})
    workloads.virtual_service("board", _route(100, None))
    ctx, _ = make_ctx()
    objects = [
        ["Deployment", "checkout-api"],
        ["Service", "checkout"],
        ["VirtualService", "board", "networking.istio.io/v1beta1"],
    ]
    snaps = snapshot(ctx, {"objects": objects})["snapshots"]
    dep = yaml.safe_load(snaps["Deployment/checkout-api"])
    assert dep["kind"] == "Deployment" and dep["apiVersion"] == "apps/v1"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/checkout:v1"
    assert yaml.safe_load(snaps["Service/checkout"])["spec"]["selector"] == {"app": "checkout-api"}
    vs = yaml.safe_load(snaps["VirtualService/board"])
    assert vs["spec"]["http"][0]["route"][0]["weight"] == 100


def test_server_side_dry_run_changes_nothing(
    workloads: Workloads, bot_kube: KubernetesClient, target: KubeTarget
) -> None:
    workloads.release("checkout-api", IMAGES)
    workloads.service("storefront", {"app": "storefront", "version": "green"})
    before = workloads.deployment("checkout-api")

    plan = bot_kube.undo(target, "checkout-api", None, dry_run=True)
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    bot_kube.set_image(target, "checkout-api", "app", "shop/checkout:v9", dry_run=True)
    assert bot_kube.scale(target, "checkout-api", 5, dry_run=True) == (2, 5)
    bot_kube.restart(target, "checkout-api", at=before.metadata.creation_timestamp, dry_run=True)
    switched = bot_kube.switch_selector(target, "storefront", {"app": "x"}, dry_run=True)
    assert switched[1] == {"app": "x"}  # what the server would store

    after = workloads.deployment("checkout-api")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.metadata.generation == before.metadata.generation
    assert workloads.selector("storefront") == {"app": "storefront", "version": "green"}


def test_the_bot_has_only_its_roles_permissions(
    workloads: Workloads, bot_kube: KubernetesClient, make_namespace: Any
) -> None:
    """The client under test is not an admin: outside a bound namespace, RBAC refuses it."""
    workloads.release("checkout-api", IMAGES[:1])
    unbound = KubeTarget(None, "default")
    with pytest.raises(KubeError) as refused:
        bot_kube.deployment(unbound, "checkout-api")
    assert refused.value.status == 403
    assert "system:serviceaccount:rollback-bot:rollback-bot" in str(refused.value)


def test_a_rehearsal_s_pinned_writes_are_conditional_on_the_real_api(
    workloads: Workloads, make_ctx: Any
) -> None:
    """The real API takes the Scale's resourceVersion and the JSON Patch test on the image."""
    workloads.release("checkout-api", IMAGES[:1])
    workloads.service("storefront", {"app": "storefront", "version": "green"})
    ctx, _ = make_ctx()
    assert scale(ctx, {"replicas": 3, "expect_replicas": 2})["replicas_after"] == 3
    image = {"container": "app", "image": "shop/checkout:v0", "expect_image": "shop/checkout:v1"}
    assert set_image(ctx, image)["image_after"] == "shop/checkout:v0"
    green_to_blue = {
        "service": "storefront",
        "selector": {"version": "blue"},
        "expect_selector": {"version": "green"},
    }
    assert switch_selector(ctx, green_to_blue)["selector"]["version"] == "blue"
    # the controller-manager keeps writing the status (resourceVersion moves); a spec write
    # would move the generation
    generation = workloads.deployment("checkout-api").metadata.generation
    with pytest.raises(
        StepFailed, match="the replica count of checkout-api is 3 in staging, not 2"
    ):
        scale(ctx, {"replicas": 1, "expect_replicas": 2})
    after = workloads.deployment("checkout-api")
    assert (after.metadata.generation, after.spec.replicas) == (generation, 3)
