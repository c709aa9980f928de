"""A blue-green rehearsal against the real control plane: the staging Service is switched to the
stable colour and the candidate scaled to 0 by the real API server and deployment controller, then
the candidate is scaled back, found ready, and the Service switched back to it — production's
objects stay the very same (not one write)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml
from tests.kube.conftest import Cluster
from tests.kube.workloads import Workloads, deployment_body, until

pytestmark = pytest.mark.kube


def colours(w: Workloads) -> None:
    """web-blue (stable) and web-green (the candidate, 2 replicas); the Service selects green."""
    for colour, image, replicas in (("blue", "web:1", 1), ("green", "web:2", 2)):
        body = deployment_body(f"web-{colour}", image, app="web")
        labels = {"app": "web", "version": colour}
        body["metadata"]["labels"] = body["spec"]["template"]["metadata"]["labels"] = labels
        body["spec"]["selector"]["matchLabels"] = labels
        body["spec"]["replicas"] = replicas
        w.apps.create_namespaced_deployment(w.ns, body)
        w.wait_rolled_out(f"web-{colour}")
    w.service("web", {"app": "web", "version": "green"})


def test_a_blue_green_rehearsal_rolls_real_staging_back_and_forward(
    make_harness: Any,
    make_namespace: Callable[[], str],
    cluster: Cluster,
    two_contexts: KubernetesClient,
    prometheus: PrometheusSimulator,
) -> None:
    prod, staging = (Workloads(cluster.admin, make_namespace()) for _ in range(2))
    colours(prod)
    colours(staging)
    prod_versions = {
        name: prod.deployment(name).metadata.resource_version for name in ("web-blue", "web-green")
    }
    prod_service = prod.core.read_namespaced_service("web", prod.ns).metadata.resource_version
    health = prometheus.health_url("web-staging")
    text = catalog_yaml(
        f"  web:\n    context: prod\n    namespace: {prod.ns}\n    deployment: web-blue\n"
        "    strategy: blue-green\n    responders: [U0ONCALL1]\n"
        "    blue_green: {service: web, stable: blue, candidate: web-green}\n"
        f"    staging: {{context: staging, namespace: {staging.ns}, health_url: '{health}'}}\n"
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two_contexts)

    answer = h.slash("drill web --rehearse").json()["text"]
    assert "Rehearsal #1 of *web* started in staging" in answer
    h.wait_rollbacks()
    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "succeeded", rehearsal
    # staging is back where it started: green selected, its 2 replicas back and ready
    assert staging.selector("web") == {"app": "web", "version": "green"}
    assert staging.deployment("web-green").spec.replicas == 2
    # the roll-forward waited for one ready pod before the switch; the second comes after
    staging.wait_rolled_out("web-green")
    stored = h.bot.deps.repo.list_steps(1)
    steps = [(s.phase, s.kind, s.status) for s in stored]
    assert [
        s.kind
        for s in stored
        if s.phase == "cleanup" and not s.detail["params"].get("roll_forward")
    ] == ["scale"]  # the rollback's own cleanup
    assert [s.kind for s in stored if s.detail["params"].get("roll_forward")] == [
        "scale",
        "wait_rollout",
        "switch_selector",
        "http_check",
    ]
    assert all(status == "succeeded" for _, _, status in steps), steps
    # production: the very same objects
    for name, version in prod_versions.items():
        assert prod.deployment(name).metadata.resource_version == version
    assert prod.core.read_namespaced_service("web", prod.ns).metadata.resource_version == (
        prod_service
    )
    until(
        lambda: h.bot.deps.repo.list_audit_events(kind="rehearsal.reported"), "the rehearsal report"
    )
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_back_at_start"] is True
