"""A rehearsal's plan for an Argo Rollout service, from one read of the staging Rollout in the
simulated cluster (its Argo controller): refused while an update is under way there; otherwise
the undo pinned to the template read, the wait, and the roll-forward back to where it started —
without the abort, which has nothing to abort on a fully promoted Rollout (and says so)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import Service, parse_catalog
from bot.rehearsal.forward import written
from bot.rehearsal.plan import plan_rehearsal
from bot.rehearsal.report import report_text, timings, undos_back, undos_of
from bot.rehearsal.rollout import mid_update, rollout_now
from bot.rollback.plan import StepSpec
from bot.rollback.safety import Refusal
from bot.sim.kube_api import KubeSimulator
from tests.rehearsal.test_plans import rows
from tests.rehearsal.test_report import UNDO, rehearsal, step

STAGING = "shop-staging"
FORWARD = {"params": {"roll_forward": True}}
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
CATALOG = textwrap.dedent(
    """\
    defaults:
      channel: C0DEPLOYS
      context: prod
    services:
      checkout:
        namespace: shop
        deployment: checkout-api
        workload: {kind: Rollout}
        health_url: http://checkout.prod/health
        responders: [U0ONCALL1]
        staging: {context: staging, namespace: shop-staging, health_url: 'http://checkout.staging/health'}
      cart:
        namespace: shop
        deployment: cart-api
        workload: {kind: Rollout}
        responders: [U0ONCALL1]
        staging: {context: staging, namespace: shop-staging, deployment: checkout-api}
        phases:
          preparation:
            - {kind: snapshot, objects: [[Rollout, cart-api, argoproj.io/v1alpha1]]}
          stop_traffic:
            - {kind: rollout_abort}
          application:
            - {kind: rollout_undo}
            - {kind: wait_rollout}
    """
)


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as s:
        s.seed_rollout(STAGING, "checkout-api", images=IMAGES)
        yield s


@pytest.fixture
def kube(sim: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda c: sim.api_client(), sleep=lambda s: None)
    yield client
    client.close()


def plan(kube: KubernetesClient, name: str = "checkout", target: str | None = None) -> Any:
    svc: Service = parse_catalog(CATALOG).services[name]
    twin = svc.staging_twin()
    assert twin is not None
    return plan_rehearsal(kube, svc, twin, target)


def patch_rollout(sim: KubeSimulator, patch: Any, *, status: bool = False) -> dict[str, Any]:
    api = CustomObjectsApi(sim.api_client())
    args = ("argoproj.io", "v1alpha1", STAGING, "rollouts", "checkout-api", patch)
    if status:
        api.patch_namespaced_custom_object_status(
            *args, _content_type="application/merge-patch+json"
        )
    else:
        api.patch_namespaced_custom_object(*args, _content_type="application/json-patch+json")
    sim.tick()
    found = sim.get_object("argoproj.io/v1alpha1", "rollouts", STAGING, "checkout-api")
    assert found is not None
    return found


def release(sim: KubeSimulator, image: str) -> dict[str, Any]:
    """A new release in staging: the canary goes to 20 % and stops at its `pause: {}`."""
    path = "/spec/template/spec/containers/0/image"
    return patch_rollout(sim, [{"op": "replace", "path": path, "value": image}])


def test_the_undo_is_pinned_and_rolled_forward_without_the_abort(kube: KubernetesClient) -> None:
    r = plan(kube)
    assert rows(r.plan.steps) == [
        (
            "preparation",
            "snapshot",
            {"objects": [["Rollout", "checkout-api", "argoproj.io/v1alpha1"]]},
        ),
        (
            "application",
            "rollout_undo",
            {
                "deployment": "checkout-api",
                "to_revision": 2,
                "expect_template": r.undo.to_template,
                "expect_from_template": r.undo.from_template,
            },
        ),
        ("application", "wait_rollout", {"deployment": "checkout-api"}),
        ("verification", "http_check", {"url": "http://checkout.staging/health"}),
        (
            "forward",
            "rollout_undo",
            {
                "deployment": "checkout-api",
                "to_revision": 3,
                "expect_template": r.undo.from_template,
                "expect_from_template": r.undo.to_template,
                "expect_from_revision": 2,  # named by its refusal
                "expect_from_images": {"app": "shop/checkout:v2"},
            },
        ),
        ("forward", "wait_rollout", {"deployment": "checkout-api"}),
        ("forward", "http_check", {"url": "http://checkout.staging/health"}),
    ]
    assert (r.undo.from_revision, r.undo.to_revision) == (3, 2)
    assert r.undo.from_template != r.undo.to_template
    assert all(s.kind != "rollout_abort" for s in r.plan.steps)
    assert r.notes == (
        "checkout-api's abort is left out: staging's Rollout is fully promoted and Healthy at"
        " revision 3, so there is no update to abort",
    )
    assert r.what == (
        "the undo rollback of the Argo Rollout checkout-api (checkout-api revision 3"
        " (checkout:v3) → 2)"
    )
    assert all("checkout.prod" not in str(s.params) for s in r.plan.steps)  # production's URL


def test_to_picks_a_rollout_revision(kube: KubernetesClient) -> None:
    r = plan(kube, target="1")
    undos = [(ph, p["to_revision"]) for ph, k, p in rows(r.plan.steps) if k == "rollout_undo"]
    assert undos == [("application", 1), ("forward", 3)]
    assert r.undo.images_after == {"app": "shop/checkout:v1"}


def test_a_paused_canary_in_staging_is_refused_with_its_step(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    release(sim, "shop/checkout:v4")
    with pytest.raises(Refusal) as refused:
        plan(kube)
    assert str(refused.value) == (
        "staging's Rollout checkout-api is mid-update (step 2 of 2, paused): promote or abort"
        " it in staging first (`kubectl argo rollouts promote` / `abort`)"
    )
    # nothing was written: the Rollout still waits at its pause
    ro = sim.get_object("argoproj.io/v1alpha1", "rollouts", STAGING, "checkout-api")
    assert ro is not None and ro["status"]["phase"] == "Paused"


def test_an_aborted_update_in_staging_is_refused(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    release(sim, "shop/checkout:v4")
    patch_rollout(sim, {"status": {"abort": True}}, status=True)
    with pytest.raises(Refusal, match=r"checkout-api has an aborted update \(Degraded: Rollout"):
        plan(kube)


def test_the_states_a_rehearsal_starts_from() -> None:
    healthy = {
        "metadata": {"name": "api", "generation": 2},
        "status": {"phase": "Healthy", "currentPodHash": "a", "stableRS": "a"},
    }
    assert mid_update(healthy) is None
    progressing = {**healthy, "status": {**healthy["status"], "phase": "Progressing"}}
    assert mid_update(progressing) == (
        "staging's Rollout api is not Healthy (Progressing): wait until it is (`kubectl argo"
        " rollouts status`), or fix it in staging first"
    )
    updating = {**healthy, "status": {**healthy["status"], "currentPodHash": "b", "message": ""}}
    assert mid_update(updating) == (
        "staging's Rollout api is mid-update (its template's ReplicaSet is not the stable one"
        " yet): promote or abort it in staging first (`kubectl argo rollouts promote` / `abort`)"
    )
    paused = {**healthy, "spec": {"paused": True}, "status": {**healthy["status"], "phase": ""}}
    assert "api is mid-update (paused)" in str(mid_update(paused))


def test_custom_phases_leave_the_abort_out_and_rename_the_rollout(
    kube: KubernetesClient,
) -> None:
    r = plan(kube, "cart")
    assert [(ph, k) for ph, k, _ in rows(r.plan.steps)] == [
        ("preparation", "snapshot"),
        ("application", "rollout_undo"),
        ("application", "wait_rollout"),
        ("forward", "rollout_undo"),
        ("forward", "wait_rollout"),
    ]
    assert r.plan.steps[0].params["objects"] == [
        ["Rollout", "checkout-api", "argoproj.io/v1alpha1"]
    ]
    assert r.plan.steps[1].params["expect_template"] == r.undo.to_template
    assert r.notes and "abort is left out" in r.notes[0]
    assert r.what.startswith("its own phases of the Argo Rollout checkout-api")


BASKET = CATALOG + textwrap.indent(
    textwrap.dedent(
        """\
        basket:
          namespace: shop
          deployment: checkout-api
          workload: {kind: Rollout}
          responders: [U0ONCALL1]
          staging: {context: staging, namespace: shop-staging}
          phases:
            stop_traffic:
              - {kind: rollout_abort, deployment: pricing-api}
              - {kind: rollout_abort}
            application:
              - {kind: rollout_undo}
        """
    ),
    "  ",
)


def test_phases_naming_another_rollout_check_that_one_too(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """The abort of another Rollout is left out as well: refused while that one is mid-update
    in staging (its abort would have had something to abort), and a note for each otherwise."""
    sim.seed_rollout(STAGING, "pricing-api", images=["shop/pricing:v1", "shop/pricing:v2"])
    svc = parse_catalog(BASKET).services["basket"]
    twin = svc.staging_twin()
    assert twin is not None
    r = plan_rehearsal(kube, svc, twin, None)
    assert r.notes == (
        "pricing-api's abort is left out: staging's Rollout is fully promoted and Healthy at"
        " revision 2, so there is no update to abort",
        "checkout-api's abort is left out: staging's Rollout is fully promoted and Healthy at"
        " revision 3, so there is no update to abort",
    )
    path = "/spec/template/spec/containers/0/image"
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", STAGING, "rollouts", "pricing-api"),
        [{"op": "replace", "path": path, "value": "shop/pricing:v3"}],
        _content_type="application/json-patch+json",
    )
    sim.tick()

    with pytest.raises(Refusal) as refused:
        plan_rehearsal(kube, svc, twin, None)

    assert str(refused.value).startswith("staging's Rollout pricing-api is mid-update (step 2")


def test_a_rollout_not_back_is_reported_with_the_argo_undo_command(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """The rollback ran (3 → 2), the roll-forward failed: the report reads the staging Rollout
    (not a Deployment) and gives `kubectl argo rollouts undo … --to-revision=3`."""
    twin = parse_catalog(CATALOG).services["checkout"].staging_twin()
    assert twin is not None
    path = "/spec/template/spec/containers/0/image"
    patch_rollout(sim, [{"op": "replace", "path": path, "value": "shop/checkout:v2"}])
    undo = {**UNDO, "images_before": {"app": "shop/checkout:v3"}}
    steps = [
        step(0, "application", "rollout_undo", 0, 1, detail={"undo": undo, "params": {}}),
        step(1, "cleanup", "rollout_undo", 1, 2, status="failed", detail=FORWARD),
    ]
    is_back, not_back = undos_back(kube, twin, undos_of(steps))
    assert (is_back, not_back) == (False, [undo])
    text = report_text(
        rehearsal("failed"),
        steps,
        timings(steps),
        sla_minutes=15,
        state=rollout_now(kube, twin),
        is_back=is_back,
        twin=twin,
        not_back=not_back,
    )
    assert "Staging now: Rollout checkout-api at revision 4: Paused (CanaryPauseStep)" in text
    assert (
        "roll it forward (`kubectl argo rollouts undo checkout-api --to-revision=3 -n"
        " shop-staging --context staging`), then promote it if its canary pauses (`kubectl argo"
        " rollouts promote checkout-api -n shop-staging --context staging`)" in text
    )
    assert "rollout undo deployment" not in text


def test_a_rollout_paused_mid_canary_at_the_start_template_is_not_back(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """The roll-forward put the start's template back but its canary waits at a pause: most
    pods still run the rollback's release, so staging is not back, and the report says how to
    promote it."""
    twin = parse_catalog(CATALOG).services["checkout"].staging_twin()
    assert twin is not None
    release(sim, "shop/checkout:v4")  # the template the rehearsal started from, paused
    undo = {**UNDO, "images_before": {"app": "shop/checkout:v4"}}
    steps = [
        step(0, "application", "rollout_undo", 0, 1, detail={"undo": undo, "params": {}}),
        step(1, "cleanup", "rollout_undo", 1, 2, detail=FORWARD),
    ]
    is_back, not_back = undos_back(kube, twin, undos_of(steps))
    assert (is_back, not_back) == (False, [{**undo, "not_promoted": "Paused: CanaryPauseStep"}])
    text = report_text(
        rehearsal("succeeded"),
        steps,
        timings(steps),
        sla_minutes=15,
        state=None,
        is_back=is_back,
        twin=twin,
        not_back=not_back,
    )
    assert (
        ":warning: Staging is *not* back at revision 3 (checkout:v4) yet: Rollout checkout-api"
        " has that template but is Paused: CanaryPauseStep. Promote it (`kubectl argo rollouts"
        " promote checkout-api -n shop-staging --context staging`) before the next deploy or"
        " test relies on it."
    ) in text


def test_a_rollout_written_twice_is_called_a_rollout() -> None:
    twin = parse_catalog(CATALOG).services["cart"].staging_twin()
    assert twin is not None
    undo = StepSpec("application", "rollout_undo", "Undo", {})
    assert written(undo, twin) == "the pod template of Rollout checkout-api"
    image = StepSpec("application", "set_image", "Image", {"deployment": "worker"})
    assert written(image, twin) == "the pod template of deployment worker"
