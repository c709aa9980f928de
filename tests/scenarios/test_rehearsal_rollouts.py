"""Rehearsals of an Argo Rollout service over signed HTTP: the staging Rollout (a second
Kubernetes simulator with its Argo controller, context ``staging``) is rolled back and forward to
the template it started at, while production's simulator receives not one request. A canary that
pauses after an undo waits for someone to promote it in staging, as in production: the bot never
promotes by itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml
from tests.scenarios.test_approval_flow import settle
from tests.scenarios.test_manual_gate_continue import gate_button, until
from tests.scenarios.test_rehearsal import report
from tests.scenarios.test_rehearsal_strategies import steps_of, untouched

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
ARGO = ("argoproj.io", "v1alpha1")
PROMOTE = "kubectl argo rollouts promote checkout-api --context staging -n shop-staging"


@pytest.fixture
def prod_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_rollout("shop", "checkout-api", images=IMAGES)
        yield sim


@pytest.fixture
def staging_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_rollout("shop-staging", "checkout-api", images=IMAGES)
        yield sim


@pytest.fixture
def kube(prod_sim: KubeSimulator, staging_sim: KubeSimulator) -> Iterator[KubernetesClient]:
    clusters = {"prod": prod_sim, "staging": staging_sim}
    client = KubernetesClient(
        api_client_for=lambda context: clusters[str(context)].api_client(), sleep=lambda s: None
    )
    yield client
    client.close()


@pytest.fixture
def h(make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator) -> Harness:
    health = prometheus.health_url("staging")
    harness: Harness = make_harness(
        catalog_yaml(
            "  checkout:\n    context: prod\n    namespace: shop\n    deployment: checkout-api\n"
            "    workload: {kind: Rollout}\n    responders: [U0ONCALL1]\n"
            f"    health_url: '{prometheus.health_url('checkout-prod')}'\n"
            f"    staging: {{context: staging, namespace: shop-staging, health_url: '{health}'}}"
        ),
        prometheus_url=prometheus.url,
        kube=kube,
    )
    return harness


def rollout(sim: KubeSimulator) -> dict[str, Any]:
    sim.tick()
    found = sim.get_object("argoproj.io/v1alpha1", "rollouts", "shop-staging", "checkout-api")
    assert found is not None
    return found


def image_and_revision(sim: KubeSimulator) -> tuple[str, str]:
    ro = rollout(sim)
    image = ro["spec"]["template"]["spec"]["containers"][0]["image"]
    return str(image), str(ro["metadata"]["annotations"]["rollout.argoproj.io/revision"])


def without_pauses(sim: KubeSimulator) -> None:
    """A canary of one `setWeight: 50` step: an undo goes through without a promote."""
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *ARGO,
        "shop-staging",
        "rollouts",
        "checkout-api",
        {"spec": {"strategy": {"canary": {"steps": [{"setWeight": 50}]}}}},
    )


def release_v4(sim: KubeSimulator) -> None:
    """Someone releases v4 to staging: its canary goes to 20 % and pauses."""
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *ARGO,
        "shop-staging",
        "rollouts",
        "checkout-api",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "v4"}],
        _content_type="application/json-patch+json",
    )
    assert rollout(sim)["status"]["phase"] == "Paused"


def promote(sim: KubeSimulator) -> None:
    """What `kubectl argo rollouts promote` sends: the pause conditions cleared."""
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object_status(
        *ARGO,
        "shop-staging",
        "rollouts",
        "checkout-api",
        {"status": {"pauseConditions": None}},
        _content_type="application/merge-patch+json",
    )


def test_a_rollout_rehearsal_rolls_staging_back_and_forward_without_production(
    h: Harness, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    without_pauses(staging_sim)
    is_untouched = untouched(prod_sim)
    answer = h.slash("drill checkout --rehearse").json()["text"]
    assert "Rehearsal #1 of *checkout* started in staging" in answer
    assert "rollout checkout-api" in answer  # where: the staging Rollout
    assert "the undo rollback of the Argo Rollout checkout-api" in answer
    assert "checkout-api revision 3 (checkout:v3) → 2" in answer
    assert "checkout-api's abort is left out: staging's Rollout is fully promoted" in answer
    settle(h)
    text = report(h)["text"]
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded", rollback
    assert steps_of(h, 1) == [
        ("preparation", "snapshot", "succeeded"),
        ("application", "rollout_undo", "succeeded"),
        ("application", "wait_rollout", "succeeded"),
        ("verification", "http_check", "succeeded"),
        ("forward", "rollout_undo", "succeeded"),
        ("forward", "wait_rollout", "succeeded"),
        ("forward", "http_check", "succeeded"),
    ]
    undos = [s.detail["undo"] for s in h.bot.deps.repo.list_steps(1) if s.kind == "rollout_undo"]
    assert [(u["from_revision"], u["to_revision"]) for u in undos] == [(3, 2), (4, 3)]
    # back at the template it started at (Argo numbers the re-used ReplicaSet 5)
    assert image_and_revision(staging_sim) == ("shop/checkout:v3", "5")
    assert rollout(staging_sim)["status"]["phase"] == "Healthy"
    assert is_untouched()  # production: not one request
    assert "Roll-forward to revision 3, verified:" in text
    assert "Rollout checkout-api at revision 5: Healthy" in text
    assert "not* back" not in text
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_back_at_start"] is True


def test_a_paused_canary_waits_for_a_promote_in_staging_each_way(
    h: Harness, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    """The undo to revision 2 runs the canary steps (20 %, then `pause: {}`), and so does the
    roll-forward: each waits until someone promotes in staging, and the thread says how."""
    is_untouched = untouched(prod_sim)
    h.slash("drill checkout --rehearse")

    def notes() -> int:
        texts = [m.get("text", "") for m in h.slack.messages("C0DEPLOYS")]
        return sum(PROMOTE in t for t in texts)

    def paused_at(image: str) -> Callable[[], bool]:
        def check() -> bool:
            ro = rollout(staging_sim)
            return image_and_revision(staging_sim)[0] == image and (
                ro.get("status", {}).get("phase") == "Paused"
            )

        return check

    until(paused_at("shop/checkout:v2"), "the rollback's canary to pause")
    until(lambda: notes() >= 1, "the note that says how to promote")
    assert ("application", "wait_rollout", "running") in steps_of(h, 1)
    promote(staging_sim)
    until(paused_at("shop/checkout:v3"), "the roll-forward's canary to pause")
    until(lambda: ("forward", "wait_rollout", "running") in steps_of(h, 1), "the forward wait")
    promote(staging_sim)
    settle(h)

    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded", rollback
    assert image_and_revision(staging_sim)[0] == "shop/checkout:v3"
    assert rollout(staging_sim)["status"]["phase"] == "Healthy"
    # the bot sent no promote: the only status writes are the two above
    status_writes = [p for m, p in staging_sim.requests if m == "PATCH" and "/status" in p]
    assert len(status_writes) == 2
    assert is_untouched()


def test_refused_while_staging_s_rollout_is_mid_update(
    h: Harness, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    release_v4(staging_sim)
    is_untouched, seeded = untouched(prod_sim), len(staging_sim.writes)

    answer = h.slash("drill checkout --rehearse").json()["text"]

    assert answer.startswith(":no_entry: No rehearsal of *checkout* was started: staging's")
    assert (
        "Rollout checkout-api is mid-update (step 2 of 2, paused): promote or abort it in"
        " staging first" in answer
    )
    assert staging_sim.writes[seeded:] == [] and is_untouched()
    assert h.bot.deps.repo.list_rollbacks() == []


GATED = catalog_yaml(
    "  checkout:\n    context: prod\n    namespace: shop\n    deployment: checkout-api\n"
    "    workload: {kind: Rollout}\n    responders: [U0ONCALL1]\n    approvers: [U0ONCALL1]\n"
    "    staging: {context: staging, namespace: shop-staging}\n"
    "    phases:\n"
    "      preparation:\n"
    "        - {kind: manual_gate, prompt: 'Staging quiet?'}\n"
    "      stop_traffic:\n"
    "        - {kind: rollout_abort}\n"
    "      application:\n"
    "        - {kind: rollout_undo}\n"
    "        - {kind: wait_rollout}\n"
)


def test_a_release_to_staging_between_plan_and_run_stops_the_rehearsal_untouched(
    make_harness: Any,
    slack: SlackSimulator,
    kube: KubernetesClient,
    prod_sim: KubeSimulator,
    staging_sim: KubeSimulator,
) -> None:
    """Someone releases v4 to staging while the rehearsal waits at its gate: the undo is pinned
    to the release it starts from too, so it refuses rather than roll their update back."""
    slack.add_user("U0ONCALL1", "oncall")
    is_untouched = untouched(prod_sim)
    h: Harness = make_harness(GATED, prometheus_url=None, kube=kube)
    answer = h.slash("drill checkout --rehearse").json()["text"]
    assert "its own phases of the Argo Rollout checkout-api" in answer
    assert "checkout-api's abort is left out" in answer
    message, button = until(lambda: gate_button(slack), "the gate's Continue button")

    release_v4(staging_sim)
    changed = len(staging_sim.writes)

    h.requester.click(message, button, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    h.wait_rollbacks()
    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "failed", rehearsal
    undo = next(s for s in h.bot.deps.repo.list_steps(1) if s.kind == "rollout_undo")
    assert undo.status == "failed"
    assert undo.error is not None and undo.error.startswith(
        "Rollout checkout-api runs revision 4 (app=v4) in staging, not the release it ran when"
        " the rehearsal was planned (someone released to it or rolled it back meanwhile);"
        " nothing was changed."
    )
    assert staging_sim.writes[changed:] == []  # their update stays, paused at its step
    assert image_and_revision(staging_sim) == ("v4", "4")
    assert is_untouched()
