"""A rehearsal of an Argo Rollout service against the real control plane: Argo Rollouts' Rollout
CRD installed, the test playing the Argo controller (tests/kube/argo_controller.py), the bot
acting as its ServiceAccount through a kubeconfig with two contexts. The staging Rollout is rolled
back and forward — each undo waits at the canary's pause until the test promotes it, as a person
would — and production's Rollout is the very same object afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml
from tests.kube.argo_controller import RolloutController
from tests.kube.conftest import Cluster
from tests.kube.workloads import until

pytestmark = [pytest.mark.kube, pytest.mark.usefixtures("argo_rollouts_crd")]

NAME = "checkout-api"
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


def paused_at(controller: RolloutController, image: str) -> Callable[[], bool]:
    def check() -> bool:
        ro = controller.get(NAME)
        running = ro["spec"]["template"]["spec"]["containers"][0]["image"]
        return bool(running == image and (ro.get("status") or {}).get("phase") == "Paused")

    return check


def test_a_rollout_rehearsal_rolls_real_staging_back_and_forward(
    make_harness: Any,
    make_namespace: Callable[[], str],
    cluster: Cluster,
    two_contexts: KubernetesClient,
    prometheus: PrometheusSimulator,
) -> None:
    prod, staging = (RolloutController(cluster.admin, make_namespace()) for _ in range(2))
    prod.create(NAME, IMAGES)
    staging.create(NAME, IMAGES)
    prod_before = prod.get(NAME)["metadata"]["resourceVersion"]
    health = prometheus.health_url("checkout-staging")
    text = catalog_yaml(
        f"  checkout:\n    context: prod\n    namespace: {prod.ns}\n    deployment: {NAME}\n"
        "    workload: {kind: Rollout}\n    responders: [U0ONCALL1]\n"
        f"    staging: {{context: staging, namespace: {staging.ns}, health_url: '{health}'}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two_contexts)

    with staging.running(NAME):
        answer = h.slash("drill checkout --rehearse").json()["text"]
        assert "Rehearsal #1 of *checkout* started in staging" in answer, answer
        assert "abort is left out" in answer
        until(paused_at(staging, IMAGES[1]), "the rollback's canary to pause")
        staging.reconcile(NAME, promote=True)  # someone promotes in staging
        until(paused_at(staging, IMAGES[2]), "the roll-forward's canary to pause")
        staging.reconcile(NAME, promote=True)
        h.wait_rollbacks()

    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "succeeded", rehearsal
    ro = staging.get(NAME)
    assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGES[2]
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "5"
    assert ro["status"]["phase"] == "Healthy"
    # production: the very same object (not even a no-op write bumped its resourceVersion)
    assert prod.get(NAME)["metadata"]["resourceVersion"] == prod_before
    until(
        lambda: h.bot.deps.repo.list_audit_events(kind="rehearsal.reported"), "the rehearsal report"
    )
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_back_at_start"] is True
