"""Whole rollbacks of a service that runs as an Argo Rollout, through signed HTTP: the real app,
engine and Kubernetes client against the simulated cluster and its Argo Rollouts controller.
The do-no-harm rules hold as they do for a Deployment (same code paths, another workload)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values
from tests.scenarios.test_approval_flow import settle

NS = "shop"
T = KubeTarget(None, NS)
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_rollout(NS, "checkout-api", images=IMAGES)
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: 0)
    yield client
    client.close()


def rollout_service(extra: str = "") -> str:
    return (
        service_yaml("checkout", None, workload="{kind: Rollout}").replace(
            "    responders: [U0ONCALL1]", "    responders: [U0ONCALL1, U0APPROVER1]"
        )
        + extra
    )


@pytest.fixture
def h(make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator) -> Harness:
    # slow and its database down: IMMEDIATE ROLLBACK; the error rate passes the verification gate
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)
    harness: Harness = make_harness(
        catalog_yaml(rollout_service()), prometheus_url=prometheus.url, kube=kube
    )
    return harness


def rollout(kube_sim: KubeSimulator) -> dict[str, Any]:
    kube_sim.tick()
    found = kube_sim.get_object("argoproj.io/v1alpha1", "rollouts", NS, "checkout-api")
    assert found is not None
    return found


def image(kube_sim: KubeSimulator) -> str:
    return str(rollout(kube_sim)["spec"]["template"]["spec"]["containers"][0]["image"])


def release(kube_sim: KubeSimulator, new_image: str) -> None:
    """A new release: the canary starts, and stops at its `pause: {}` step."""
    CustomObjectsApi(kube_sim.api_client()).patch_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        NS,
        "rollouts",
        "checkout-api",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": new_image}],
        _content_type="application/json-patch+json",
    )
    assert rollout(kube_sim)["status"]["phase"] == "Paused"


def test_an_immediate_rollback_mid_canary_aborts_then_undoes(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    release(kube_sim, "shop/checkout:v4")  # revision 4 at 20 %, paused

    text = h.slash("run checkout --immediate v4 canary 5xx").json()["text"]
    settle(h)

    assert "Rollback #1 of *checkout* started" in text
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "succeeded"
    steps = h.bot.deps.repo.list_steps(1)
    assert [s.kind for s in steps][:4] == [
        "snapshot",
        "rollout_abort",
        "rollout_undo",
        "wait_rollout",
    ]
    assert all(s.status == "succeeded" for s in steps)
    assert "shop/checkout:v4" in steps[0].detail["snapshots"]["Rollout/checkout-api"]
    assert steps[1].detail["aborted"] is True and steps[1].detail["revision"] == 4
    undo = steps[2].detail["undo"]
    assert (undo["from_revision"], undo["to_revision"]) == (4, 3)
    assert undo["images_after"] == {"app": "shop/checkout:v3"}
    assert 'rollout "checkout-api" is Healthy' in steps[3].detail["status"]
    ro = rollout(kube_sim)
    assert image(kube_sim) == "shop/checkout:v3"
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "5"
    assert ro["status"]["phase"] == "Healthy" and "abort" not in ro["status"]
    progress = [m for m in h.slack.messages("C0DEPLOYS") if "Rollback #" in m.get("text", "")]
    assert "SUCCEEDED" in progress[-1]["text"]


def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_undoing_a_healthy_rollout_runs_its_canary_and_waits_for_a_promote(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    """v2 is not the stable ReplicaSet: Argo runs the canary steps for it, as for any update,
    and its `pause: {}` waits for a person. The bot says so in the thread and waits."""
    h.slash("run checkout --immediate v3 is bad")

    def paused_thread_note() -> bool:
        texts = [m.get("text", "") for m in h.slack.messages("C0DEPLOYS")]
        return any("kubectl argo rollouts promote checkout-api -n shop" in t for t in texts)

    until(paused_thread_note, "the note that the rollout is paused")
    assert image(kube_sim) == "shop/checkout:v2"
    assert rollout(kube_sim)["status"]["phase"] == "Paused"
    # what `kubectl argo rollouts promote` sends: the pause conditions cleared
    CustomObjectsApi(kube_sim.api_client()).patch_namespaced_custom_object_status(
        *("argoproj.io", "v1alpha1", NS, "rollouts", "checkout-api"),
        {"status": {"pauseConditions": None}},
        _content_type="application/merge-patch+json",
    )
    settle(h)

    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "succeeded"
    steps = h.bot.deps.repo.list_steps(1)
    assert steps[1].detail["aborted"] is False  # no update was under way: no abort sent
    assert "no update is under way" in steps[1].detail["why"]
    assert rollout(kube_sim)["status"]["phase"] == "Healthy"
    status_writes = [p for m, p in kube_sim.requests if m == "PATCH" and "/status" in p]
    assert len(status_writes) == 1  # the promote above; the bot sent none


def without_pauses(kube_sim: KubeSimulator) -> None:
    """A canary of one `setWeight: 50` step: an update (or an undo to an older revision) goes
    through without waiting for a promote."""
    CustomObjectsApi(kube_sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", NS, "rollouts", "checkout-api"),
        {"spec": {"strategy": {"canary": {"steps": [{"setWeight": 50}]}}}},
    )


def test_a_second_undo_would_redeploy_the_bad_release_and_is_refused(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    without_pauses(kube_sim)
    h.slash("run checkout --immediate v3 5xx")
    settle(h)
    assert image(kube_sim) == "shop/checkout:v2"

    text = h.slash("run checkout --immediate still broken").json()["text"]

    assert "No rollback of *checkout* was started" in text
    assert "checkout was rolled back from checkout:v3 by #1 (" in text
    assert "1 (checkout:v1) · 3 (checkout:v3) · 4 (checkout:v2, current)" in text
    assert image(kube_sim) == "shop/checkout:v2"
    assert [r.id for r in h.bot.deps.repo.list_rollbacks()] == [1]


def test_to_resolves_a_tag_against_the_rollouts_revisions(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    without_pauses(kube_sim)
    text = h.slash("run checkout --immediate --to v1 bad release").json()["text"]
    assert "Rollback #1 of *checkout* started" in text
    settle(h)
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and (r.status, r.target_revision) == ("succeeded", "1")
    assert image(kube_sim) == "shop/checkout:v1"

    refused = h.slash("run checkout --immediate --to v9 bad release").json()["text"]
    assert "No revision of checkout-api runs `v9`" in refused


def test_the_point_of_no_return_holds_for_a_rollout(
    make_harness: Any, kube: KubernetesClient, kube_sim: KubeSimulator
) -> None:
    ponr = "\n    point_of_no_return: {revision: 3, reason: migration 011 drops a column}"
    h: Harness = make_harness(catalog_yaml(rollout_service(ponr)), prometheus_url=None, kube=kube)
    refused = h.slash("run checkout --immediate bad release").json()["text"]
    assert "crosses the point of no return at revision 3" in refused
    assert h.bot.deps.repo.list_rollbacks() == []
    assert image(kube_sim) == "shop/checkout:v3"


def test_the_dry_run_shows_the_abort_and_the_undo_without_changing_anything(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    release(kube_sim, "shop/checkout:v4")
    before = kube_sim.resource_version
    h.slash("run checkout --dry-run")
    text = str(h.slack.wait_for("response_url").params["text"])
    assert "Abort checkout-api's running update" in text
    assert "as `kubectl argo rollouts abort` does; server-side dry run accepted" in text
    assert "revision 4 (app=shop/checkout:v4) → template of revision 3" in text
    assert "by kubectl argo rollouts status" in text
    assert kube_sim.resource_version == before
    assert rollout(kube_sim)["status"]["phase"] == "Paused"


def test_the_assessment_reads_the_release_the_rollout_runs(h: Harness) -> None:
    h.slash("assess checkout")
    h.wait_idle()
    (stored,) = h.bot.deps.repo.list_assessments(service="checkout")
    assert stored.decision == "IMMEDIATE ROLLBACK"
    assert stored.result["release"] == {
        "deployment": "checkout-api",
        "revision": 3,
        "images": {"app": "shop/checkout:v3"},
    }


def test_a_drill_of_a_rollout_service_reads_the_rollout_and_reviews_argo_writes(
    h: Harness, kube_sim: KubeSimulator
) -> None:
    """The readiness drill of a Rollout service: its target is the Rollout's history (not a
    Deployment by that name), and the writes reviewed are argoproj.io's."""
    before, version = len(h.posted()), kube_sim.resource_version
    assert "Readiness drill" in h.slash("drill checkout").json()["text"]
    h.wait_idle()
    (report,) = [c.params["text"] for c in h.posted()[before:]]
    assert "✓ Target" in report and "revision 3 (checkout:v3) → revision 2" in report, report
    assert "patch rollouts.argoproj.io checkout-api in shop" in report, report
    assert "patch rollouts/status.argoproj.io checkout-api in shop" in report, report
    assert "deployments.apps" not in report
    assert kube_sim.resource_version == version  # a drill changes nothing
