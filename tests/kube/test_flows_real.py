"""Whole rollbacks (signed slash commands, the engine, the steps) against the real control plane.

Slack and Prometheus are the simulators, as in tests/scenarios; Kubernetes is real, and the bot
reaches it as the ServiceAccount bound to deploy/rbac.yaml's Role.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, set_service_values
from tests.kube.conftest import Cluster
from tests.kube.test_steps_real import _route
from tests.kube.workloads import Workloads, deployment_body, until

pytestmark = pytest.mark.kube

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
JOB = "{template: {spec: {restartPolicy: Never, containers: [{name: m, image: 'migrate:1'}]}}}"


def service(name: str, namespace: str, body: str) -> str:
    return (
        f"  {name}:\n    namespace: {namespace}\n    responders: [U0ONCALL1]\n"
        "    approvers: [U0APPROVER1]\n" + body
    )


def steps_of(h: Harness, rollback: int = 1) -> list[tuple[str, str]]:
    return [(s.kind, s.status) for s in h.bot.deps.repo.list_steps(rollback)]


def finished(h: Harness, rollback: int = 1) -> Any:
    h.wait_rollbacks()
    found = h.bot.deps.repo.get_rollback(rollback)
    assert found is not None
    return found


def test_immediate_undo_with_the_default_plan(
    make_harness: Any,
    bot_kube: KubernetesClient,
    workloads: Workloads,
    prometheus: PrometheusSimulator,
) -> None:
    workloads.release("checkout-api", IMAGES)
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.1, sessions=30, db_up=1)
    text = catalog_yaml(
        service(
            "checkout",
            workloads.ns,
            f"    deployment: checkout-api\n    health_url: {prometheus.health_url('checkout')}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=bot_kube)

    resp = h.slash("run checkout --immediate 5xx storm after v3")
    rollback = finished(h)

    assert "Rollback #1 of *checkout* started" in resp.json()["text"]
    assert rollback.status == "succeeded", rollback.error
    assert all(status == "succeeded" for _, status in steps_of(h)), steps_of(h)
    assert workloads.images("checkout-api") == {"app": "shop/checkout:v2"}
    assert workloads.revision("checkout-api") == 4
    assert workloads.rolled_out("checkout-api")


def test_blue_green_switches_the_service_back(
    make_harness: Any, bot_kube: KubernetesClient, workloads: Workloads
) -> None:
    for colour, image in (("blue", "web:1"), ("green", "web:2")):
        body = deployment_body(f"web-{colour}", image, app="web")
        labels = {"app": "web", "version": colour}
        body["metadata"]["labels"] = body["spec"]["template"]["metadata"]["labels"] = labels
        body["spec"]["selector"]["matchLabels"] = labels
        workloads.apps.create_namespaced_deployment(workloads.ns, body)
        workloads.wait_rolled_out(f"web-{colour}")
    workloads.service("web", {"app": "web", "version": "green"})
    text = catalog_yaml(
        service(
            "web",
            workloads.ns,
            "    deployment: web-blue\n    strategy: blue-green\n"
            "    blue_green: {service: web, stable: blue, candidate: web-green}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=bot_kube)
    h.slash("run web --immediate bad release")
    rollback = finished(h)

    assert rollback.status == "succeeded", rollback.error
    assert workloads.selector("web") == {"app": "web", "version": "blue"}
    assert workloads.deployment("web-green").spec.replicas == 0
    until(lambda: (workloads.deployment("web-green").status.replicas or 0) == 0, "green gone")


@pytest.mark.usefixtures("virtual_service_crd")
def test_canary_weight_goes_to_zero_and_the_canary_scales_down(
    make_harness: Any, bot_kube: KubernetesClient, workloads: Workloads
) -> None:
    workloads.release("board", ["b:1"])
    workloads.apps.create_namespaced_deployment(
        workloads.ns, deployment_body("board-canary", "b:2", replicas=1)
    )
    workloads.virtual_service("board", _route(75, 25))
    text = catalog_yaml(
        service(
            "board",
            workloads.ns,
            "    deployment: board\n    strategy: canary\n"
            "    canary: {deployment: board-canary, traffic: {name: board}}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=bot_kube)
    h.slash("run board --immediate bad release")
    rollback = finished(h)

    assert rollback.status == "succeeded", rollback.error
    route = workloads.read_virtual_service("board")["spec"]["http"][0]["route"]
    assert [r.get("weight") for r in route] == [100, 0]
    assert workloads.deployment("board-canary").spec.replicas == 0


def test_dry_run_reads_and_dry_runs_but_changes_nothing(
    make_harness: Any, bot_kube: KubernetesClient, workloads: Workloads
) -> None:
    workloads.release("db-api", ["db:1", "db:2"])
    before = workloads.deployment("db-api").metadata.resource_version
    text = catalog_yaml(
        service(
            "db",
            workloads.ns,
            "    deployment: db-api\n    phases:\n"
            f"      database:\n        - {{kind: run_job, name: Downgrade schema, job: {JOB}}}\n"
            "      application:\n        - {kind: rollout_undo}\n"
            "        - {kind: scale, replicas: 3}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=bot_kube)
    h.slash("run db --dry-run")
    answer = str(h.slack.wait_for("response_url").params["text"])

    assert "revision 2" in answer and "revision 1" in answer, answer
    assert "error" not in answer.lower(), answer
    assert workloads.deployment("db-api").metadata.resource_version == before
    assert workloads.batch.list_namespaced_job(workloads.ns).items == []


def test_a_failing_database_job_stops_the_rollback_before_the_application(
    make_harness: Any, bot_kube: KubernetesClient, workloads: Workloads
) -> None:
    workloads.release("db-api", ["db:1", "db:2"])
    job = JOB.replace(
        "{template: {spec:",
        "{backoffLimit: 0, template: {metadata: {labels: {kubelet.test/job-outcome: fail}}, spec:",
    )
    text = catalog_yaml(
        service(
            "db",
            workloads.ns,
            "    deployment: db-api\n    phases:\n"
            f"      database:\n        - {{kind: run_job, name: Downgrade schema, job: {job}}}\n"
            "      application:\n        - {kind: rollout_undo}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=bot_kube)
    h.slash("run db --immediate bad release")
    rollback = finished(h)

    assert rollback.status == "failed"
    assert "BackoffLimitExceeded" in (rollback.error or ""), rollback.error
    assert steps_of(h) == [("run_job", "failed"), ("rollout_undo", "pending")]
    assert workloads.images("db-api") == {"app": "db:2"}


def test_abort_during_a_rollout_that_never_converges(
    cluster: Cluster, make_harness: Any, bot_kube: KubernetesClient, workloads: Workloads
) -> None:
    workloads.release("slow-api", ["slow:1", "slow:2"])
    cluster.kubelet.never_ready_images.add("slow:1")  # from now on: the undo never converges
    text = catalog_yaml(
        service(
            "slow",
            workloads.ns,
            "    deployment: slow-api\n    phases:\n"
            "      application:\n        - {kind: rollout_undo}\n"
            "        - {kind: wait_rollout, name: Wait}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=None, kube=bot_kube)
    h.slash("run slow --immediate bad release")
    until(
        lambda: steps_of(h) == [("rollout_undo", "succeeded"), ("wait_rollout", "running")],
        "the wait for the rollout",
    )
    h.slash("abort 1 wrong service")
    rollback = finished(h)

    assert rollback.status == "aborted"
    summary = next(m["text"] for m in h.slack.messages("C0DEPLOYS") if "*Aborted.*" in m["text"])
    assert "the rollout has not finished" in summary, summary
    assert "(app=slow:1) 0/2 available" in summary, summary
    # the old pods still serve: the real controller never took them down (maxUnavailable 0)
    assert workloads.deployment("slow-api").status.available_replicas == 2
