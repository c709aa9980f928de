"""A rehearsal against the real control plane: ``/rollback drill checkout --rehearse`` over signed
HTTP rolls the staging Deployment back and forward with the real deployment controller, as the
bot's ServiceAccount, through a kubeconfig with two contexts — and production stays as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml
from tests.kube.conftest import Cluster
from tests.kube.workloads import Workloads, until

pytestmark = pytest.mark.kube

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


def test_a_rehearsal_rolls_real_staging_back_and_forward(
    make_harness: Any,
    make_namespace: Callable[[], str],
    cluster: Cluster,
    two_contexts: KubernetesClient,
    prometheus: PrometheusSimulator,
) -> None:
    prod, staging = (Workloads(cluster.admin, make_namespace()) for _ in range(2))
    prod.release("checkout-api", IMAGES)
    staging.release("checkout-api", IMAGES)
    prod_before = prod.deployment("checkout-api").metadata.resource_version
    health = prometheus.health_url("checkout-staging")
    text = catalog_yaml(
        f"  checkout:\n    context: prod\n    namespace: {prod.ns}\n"
        "    deployment: checkout-api\n    responders: [U0ONCALL1]\n"
        f"    staging: {{context: staging, namespace: {staging.ns}, health_url: '{health}'}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two_contexts)

    answer = h.slash("drill checkout --rehearse weekly staging test").json()["text"]
    assert "Rehearsal #1 of *checkout* started in staging" in answer
    h.wait_rollbacks()
    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "succeeded", rehearsal
    # the real deployment controller: back to v2 (revision 4), forward to v3 (revision 5)
    assert staging.images("checkout-api") == {"app": "shop/checkout:v3"}
    assert staging.revision("checkout-api") == 5
    assert staging.rolled_out("checkout-api")
    # production: the very same object (not even a no-op write bumped its resourceVersion)
    assert prod.deployment("checkout-api").metadata.resource_version == prod_before
    assert prod.revision("checkout-api") == 3
    until(
        lambda: h.bot.deps.repo.list_audit_events(kind="rehearsal.reported"), "the rehearsal report"
    )
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_back_at_start"] is True
    assert reported.detail["is_within_sla"] is True
