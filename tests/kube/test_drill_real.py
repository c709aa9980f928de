"""A drill's permission checks against the real API server, as the bot's ServiceAccount with
deploy/rbac.yaml's Role: every write of each built-in plan is ✓, and a verb the Role lacks is ✗
with the API server's own words — the SelfSubjectAccessReviews say what RBAC will do."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import AccessCheck, KubeError, KubeTarget
from bot.catalog.load import parse_catalog
from bot.drills.checks import State
from bot.drills.permissions import permissions_check
from bot.sim.kube_access import AccessRule
from bot.sim.kube_api import KubeSimulator
from tests.conftest import catalog_yaml
from tests.kube.conftest import Cluster, rbac_documents
from tests.kube.workloads import Workloads

pytestmark = [pytest.mark.kube, pytest.mark.usefixtures("virtual_service_crd")]

JOB = "{template: {spec: {restartPolicy: Never, containers: [{name: m, image: 'm:1'}]}}}"


def _catalog(namespace: str) -> str:
    return catalog_yaml(
        f"  checkout:\n    namespace: {namespace}\n    deployment: checkout-api\n",
        f"  shopfront:\n    namespace: {namespace}\n    deployment: blue\n"
        "    strategy: blue-green\n"
        "    blue_green: {service: shopfront, stable: blue, candidate: green}\n",
        f"  board:\n    namespace: {namespace}\n    deployment: board\n    strategy: canary\n"
        "    canary: {deployment: board-canary, traffic: {name: board}}\n",
        f"  ledger:\n    namespace: {namespace}\n    deployment: ledger\n"
        f"    phases: {{database: [{{kind: run_job, job: {JOB}}}],"
        " application: [{kind: restart}]}\n",
    )


def test_every_write_of_every_built_in_plan_is_allowed_by_the_role(
    workloads: Workloads, bot_kube: KubernetesClient
) -> None:
    catalog = parse_catalog(_catalog(workloads.ns))
    for service in catalog.services.values():
        check = permissions_check(bot_kube, service, service.plan())
        assert check.state == State.OK, (service.name, check.reason)
        assert "allowed" in check.reason


def test_a_verb_the_role_lacks_is_a_failed_check(
    cluster: Cluster, workloads: Workloads, bot_kube: KubernetesClient
) -> None:
    (role,) = [d for d in rbac_documents(workloads.ns) if d["kind"] == "Role"]
    service = parse_catalog(_catalog(workloads.ns)).services["checkout"]
    lacking = copy.deepcopy(role)
    for rule in lacking["rules"]:
        if rule["resources"] == ["deployments"]:
            rule["verbs"] = ["get"]  # no patch: a rollout undo would be refused at 3 am
    k8s.RbacAuthorizationV1Api(cluster.admin).replace_namespaced_role(
        "rollback-bot", workloads.ns, lacking
    )
    deadline = time.monotonic() + 10
    while True:  # a Role update reaches the authorizer within milliseconds
        check = permissions_check(bot_kube, service, service.plan())
        if check.state == State.FAILED or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert check.state == State.FAILED, check.reason
    assert f"not allowed: patch deployments.apps checkout-api in {workloads.ns}" in check.reason
    # and what the Role never had: delete
    t = KubeTarget(None, workloads.ns)
    decision = bot_kube.may(t, AccessCheck("delete", "apps", "deployments", workloads.ns, "x"))
    assert not decision.is_allowed and not decision.is_denied  # RBAC only ever allows


def test_the_simulators_403_says_what_the_api_server_says(
    cluster: Cluster, workloads: Workloads, bot_kube: KubernetesClient
) -> None:
    """The words a refused write reaches Slack with, from the real RBAC and from bot/sim."""
    workloads.release("checkout-api", ["shop/checkout:v1"])
    (role,) = [d for d in rbac_documents(workloads.ns) if d["kind"] == "Role"]
    lacking = copy.deepcopy(role)
    lacking["rules"] = [r for r in lacking["rules"] if r["resources"] != ["deployments"]]
    lacking["rules"].append({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]})
    k8s.RbacAuthorizationV1Api(cluster.admin).replace_namespaced_role(
        "rollback-bot", workloads.ns, lacking
    )
    t = KubeTarget(None, workloads.ns)

    def refusal(kube: KubernetesClient) -> str:
        deadline = time.monotonic() + 10
        while True:
            try:
                kube.restart(t, "checkout-api", at=datetime.now(UTC), dry_run=True)
            except KubeError as exc:
                assert exc.status == 403, str(exc)
                return str(exc)
            assert time.monotonic() < deadline, "still allowed"
            time.sleep(0.05)

    real = refusal(bot_kube)
    with KubeSimulator() as sim:
        sim.seed_namespace(workloads.ns)
        sim.seed_deployment(workloads.ns, "checkout-api", images=["shop/checkout:v1"])
        sim.set_access_rules([AccessRule(("get",), ("apps",), ("deployments",))])
        simulated = KubernetesClient(api_client_for=lambda ctx: sim.api_client())
        assert refusal(simulated) == real
