"""The permissions check: every Kubernetes write the plan would make, asked of the API server as
a SelfSubjectAccessReview under the bot's own credentials (``kubectl auth can-i``), one review
per distinct write."""

from __future__ import annotations

from collections.abc import Iterator

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import AccessCheck, KubeError, KubeTarget
from bot.catalog.load import Service
from bot.drills.checks import Check, failed, ok, unknown
from bot.notify.blocks import plural
from bot.rollback.plan import Plan, StepSpec

NAME = "Permissions"
# step kind → (verb, group, resource, subresource) of the one write it makes to its deployment
_DEPLOYMENT_WRITES = {
    "rollout_undo": ("patch", "apps", "deployments", ""),
    "set_image": ("patch", "apps", "deployments", ""),
    "restart": ("patch", "apps", "deployments", ""),
    "scale": ("patch", "apps", "deployments", "scale"),
}


def plan_writes(kube: KubernetesClient, service: Service, plan: Plan) -> list[AccessCheck]:
    """Each distinct write of the plan, in the plan's order."""
    t = KubeTarget(service.context, service.namespace)
    found: dict[AccessCheck, None] = {}
    for s in plan.steps:
        for write in _writes_of(kube, t, service, s):
            found.setdefault(write)
    return list(found)


def _writes_of(
    kube: KubernetesClient, t: KubeTarget, service: Service, s: StepSpec
) -> Iterator[AccessCheck]:
    p, ns = s.params, t.namespace
    if s.kind in _DEPLOYMENT_WRITES:
        verb, group, resource, sub = _DEPLOYMENT_WRITES[s.kind]
        name = str(p.get("deployment") or service.spec.deployment)
        yield AccessCheck(verb, group, resource, ns, name, sub)
    elif s.kind == "switch_selector":
        yield AccessCheck("patch", "", "services", ns, str(p["service"]))
    elif s.kind == "shift_traffic":
        tr = p["traffic"]
        group, plural = kube.resource_of(t, str(tr["api_version"]), str(tr["kind"]))
        yield AccessCheck("patch", group, plural, ns, str(tr["name"]))
    elif s.kind == "run_job":
        # a create is authorized before the object has a name: RBAC cannot limit it by name
        yield AccessCheck("create", "batch", "jobs", ns)


def permissions_check(kube: KubernetesClient, service: Service, plan: Plan) -> Check:
    t = KubeTarget(service.context, service.namespace)
    try:
        writes = plan_writes(kube, service, plan)
    except KubeError as exc:
        return unknown(NAME, f"cannot tell which resources the plan writes: {exc}", _FIX)
    if not writes:
        return ok(NAME, "the plan makes no Kubernetes write")
    refused, errors = [], []
    for write in writes:
        try:
            decision = kube.may(t, write)
        except KubeError as exc:
            errors.append(f"{write}: {exc}")
            continue
        if not decision.is_allowed:
            why = decision.reason or decision.evaluation_error or "no rule allows it"
            refused.append(f"{write} ({'denied: ' if decision.is_denied else ''}{why})")
    if refused:
        return failed(NAME, "not allowed: " + "; ".join(refused), _FIX)
    if errors:
        return unknown(NAME, "the API server did not answer: " + "; ".join(errors), _RETRY)
    listed = "; ".join(str(w) for w in writes)
    return ok(NAME, f"{plural(len(writes), 'write')} allowed: {listed}")


_FIX = (
    "Grant the missing verbs to the bot's ServiceAccount in this namespace (deploy/rbac.yaml"
    " lists what each step kind needs), then run the drill again."
)
_RETRY = "Run the drill again; if it persists, check the bot's kubeconfig and the API server."
