"""deploy/rbac.yaml against real RBAC: each verb of the Role is used, and needed, by the bot.

For every (group, resource, verb) of the Role there is a bot operation that uses it: with the
Role as shipped it succeeds; with only that verb taken out of the Role, the API server refuses
it (403). A verb nothing uses, or a use the Role does not allow, fails here.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget
from tests.kube.argo_controller import RolloutController
from tests.kube.conftest import Cluster, rbac_documents
from tests.kube.test_steps_real import TRAFFIC, _route
from tests.kube.workloads import Workloads

pytestmark = [
    pytest.mark.kube,
    pytest.mark.usefixtures("virtual_service_crd", "argo_rollouts_crd"),
]

Use = Callable[[KubernetesClient, KubeTarget, dict[str, str]], object]
JOB_SPEC = {
    "backoffLimit": 0,
    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}},
}
VS = (TRAFFIC["api_version"], TRAFFIC["kind"], "board")
INGRESS = ("networking.k8s.io/v1", "Ingress", "web")
ANNOTATE = [{"op": "add", "path": "/metadata/annotations", "value": {"weight": "10"}}]

# what the bot does with each verb (KubernetesClient, as the steps call it)
USES: dict[tuple[str, str, str], Use] = {
    ("apps", "deployments", "get"): lambda kube, t, o: kube.deployment(t, "checkout-api"),
    ("apps", "deployments", "patch"): lambda kube, t, o: kube.set_image(
        t, "checkout-api", "app", "shop/checkout:v9", dry_run=True
    ),
    # the guard's release detection: a LIST a round, and a watch (from "0": no LIST needed)
    ("apps", "deployments", "list"): lambda kube, t, o: kube.deployment_revisions(t),
    ("apps", "deployments", "watch"): lambda kube, t, o: next(
        kube.watch_deployments(t, "0", timeout_seconds=1), None
    ),
    ("apps", "deployments/scale", "get"): lambda kube, t, o: kube.scale(
        t, "checkout-api", 3, dry_run=True
    ),
    ("apps", "deployments/scale", "patch"): lambda kube, t, o: kube.scale(
        t, "checkout-api", 3, dry_run=True
    ),
    ("apps", "replicasets", "list"): lambda kube, t, o: kube.history(t, "checkout-api"),
    ("apps", "replicasets", "get"): lambda kube, t, o: kube.read_object(
        t, "apps/v1", "ReplicaSet", o["replicaset"]
    ),
    ("", "services", "get"): lambda kube, t, o: kube.service_selector(t, "web"),
    ("", "services", "patch"): lambda kube, t, o: kube.switch_selector(
        t, "web", {"app": "web", "version": "blue"}, dry_run=True
    ),
    ("batch", "jobs", "create"): lambda kube, t, o: kube.create_job(
        t, f"m-{time.monotonic_ns()}", JOB_SPEC, labels={"rollback-bot/run": "x"}, dry_run=True
    ),
    ("batch", "jobs", "get"): lambda kube, t, o: kube.job_state(t, "migrate"),
    ("networking.k8s.io", "ingresses", "get"): lambda kube, t, o: kube.read_object(t, *INGRESS),
    ("networking.k8s.io", "ingresses", "patch"): lambda kube, t, o: kube.patch_object(
        t, *INGRESS, ANNOTATE, dry_run=True
    ),
    ("networking.istio.io", "virtualservices", "get"): lambda kube, t, o: kube.read_object(t, *VS),
    ("networking.istio.io", "virtualservices", "patch"): lambda kube, t, o: kube.patch_object(
        t, *VS, [{"op": "replace", "path": "/spec/hosts", "value": ["board"]}], dry_run=True
    ),
    ("argoproj.io", "rollouts", "get"): lambda kube, t, o: kube.rollout_info(t, "checkout-ro"),
    ("argoproj.io", "rollouts", "list"): lambda kube, t, o: kube.rollout_revisions(t),
    ("argoproj.io", "rollouts", "watch"): lambda kube, t, o: next(
        kube.watch_rollouts(t, "0", timeout_seconds=1), None
    ),
    ("argoproj.io", "rollouts", "patch"): lambda kube, t, o: kube.rollout_undo(
        t, "checkout-ro", 1, dry_run=True
    ),
    ("argoproj.io", "rollouts/status", "patch"): lambda kube, t, o: kube.abort_rollout(
        t, "checkout-ro", dry_run=True
    ),
}


def role_verbs(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def without(role: dict[str, Any], drop: tuple[str, str, str]) -> dict[str, Any]:
    """The Role less one verb (rules are split so that nothing else changes)."""
    trimmed = copy.deepcopy(role)
    trimmed["rules"] = [
        {"apiGroups": [g], "resources": [r], "verbs": [v]}
        for g, r, v in sorted(role_verbs(role) - {drop})
    ]
    return trimmed


def seed(w: Workloads) -> dict[str, str]:
    w.release("checkout-api", ["shop/checkout:v1"])
    w.service("web", {"app": "web", "version": "green"})
    w.virtual_service("board", _route(100, None))
    w.batch.create_namespaced_job(w.ns, {"metadata": {"name": "migrate"}, "spec": JOB_SPEC})
    ingress = {
        "metadata": {"name": "web"},
        "spec": {
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
        },
    }
    k8s.NetworkingV1Api(w.apps.api_client).create_namespaced_ingress(w.ns, ingress)
    (rs,) = w.apps.list_namespaced_replica_set(w.ns, label_selector="app=checkout-api").items
    RolloutController(w.apps.api_client, w.ns).create("checkout-ro", ["ro:v1", "ro:v2"])
    return {"replicaset": rs.metadata.name}


def refused(use: Use, kube: KubernetesClient, t: KubeTarget, objects: dict[str, str]) -> str:
    """Run ``use`` until RBAC refuses it (a Role update reaches the authorizer within ms)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            use(kube, t, objects)
        except KubeError as exc:
            if exc.status == 403:
                return str(exc)
            raise
        assert time.monotonic() < deadline, "still allowed 10 s after the verb was removed"
        time.sleep(0.05)


def test_every_verb_of_the_role_is_used_and_needed(
    cluster: Cluster, workloads: Workloads, bot_kube: KubernetesClient, target: KubeTarget
) -> None:
    (role,) = [d for d in rbac_documents(workloads.ns) if d["kind"] == "Role"]
    assert role_verbs(role) == set(USES), (
        f"verbs nothing uses: {sorted(role_verbs(role) - set(USES))}; "
        f"uses the Role lacks: {sorted(set(USES) - role_verbs(role))}"
    )
    objects = seed(workloads)
    for use in USES.values():
        use(bot_kube, target, objects)  # allowed with the Role as shipped

    rbac = k8s.RbacAuthorizationV1Api(cluster.admin)
    for verb, use in USES.items():
        rbac.replace_namespaced_role("rollback-bot", workloads.ns, without(role, verb))
        message = refused(use, bot_kube, target, objects)
        _, resource, name = verb
        assert f'cannot {name} resource "{resource}"' in message, message
        rbac.replace_namespaced_role("rollback-bot", workloads.ns, role)
        # allowed again before the next verb is taken out
        deadline = time.monotonic() + 10
        while True:
            try:
                use(bot_kube, target, objects)
                break
            except KubeError as exc:
                assert exc.status == 403 and time.monotonic() < deadline, str(exc)
                time.sleep(0.05)
