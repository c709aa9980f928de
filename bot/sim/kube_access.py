"""Who may do what in the simulated cluster: an ordered rule list, `SelfSubjectAccessReview`
answers from it, and the 403 a real API server gives a request its authorizer refuses.

Without rules (the default) every request is allowed, as before. With rules, the first rule
that matches a request decides: an ``allow`` rule allows it, a ``deny`` rule denies it (what a
webhook authorizer can do; RBAC only ever allows), and a request no rule matches is not allowed,
with no reason — exactly how an RBAC-only API server answers. `SelfSubjectAccessReview` itself
is always allowed (every authenticated user has it through ``system:basic-user``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.sim.kube_schema import KubeError, ResourceType

__all__ = ["SSAR", "AccessRule", "AccessRules", "request_verb"]

JSON = Any
DEFAULT_USER = "system:serviceaccount:rollback-bot:rollback-bot"
SSAR = ResourceType(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview"
)


@dataclass(frozen=True)
class AccessRule:
    """One rule: ``"*"`` in a list matches anything; empty ``namespaces``/``names`` match all.
    ``resources`` name subresources as RBAC does (``deployments/scale``)."""

    verbs: tuple[str, ...]
    groups: tuple[str, ...]
    resources: tuple[str, ...]
    namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    effect: Literal["allow", "deny"] = "allow"

    def matches(self, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        return (
            _has(self.verbs, verb)
            and _has(self.groups, group)
            and _has(self.resources, resource)
            and (not self.namespaces or _has(self.namespaces, namespace))
            and (not self.names or _has(self.names, name))
        )


def _has(values: Sequence[str], value: str) -> bool:
    return "*" in values or value in values


@dataclass(frozen=True)
class Decision:
    is_allowed: bool
    is_denied: bool
    reason: str


class AccessRules:
    """The rule list (None: everything is allowed) and the user it speaks for."""

    def __init__(self) -> None:
        self.rules: list[AccessRule] | None = None
        self.user = DEFAULT_USER

    def decide(self, verb: str, group: str, resource: str, namespace: str, name: str) -> Decision:
        if self.rules is None:
            return Decision(True, False, "KubeSimulator: no access rules set, all allowed")
        for n, rule in enumerate(self.rules, 1):
            if rule.matches(verb, group, resource, namespace, name):
                if rule.effect == "deny":
                    return Decision(False, True, f"KubeSimulator: denied by rule {n}")
                return Decision(True, False, f"RBAC: allowed by KubeSimulator rule {n}")
        return Decision(False, False, "")

    def check(
        self, verb: str, rt: ResourceType, subresource: str | None, namespace: str, name: str
    ) -> None:
        """Raise the API server's 403 when the request is not allowed."""
        resource = f"{rt.plural}/{subresource}" if subresource else rt.plural
        if self.decide(verb, rt.group, resource, namespace, name).is_allowed:
            return
        what = f'{rt.qualified} "{name}"' if name else rt.qualified
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        message = (
            f'{what} is forbidden: User "{self.user}" cannot {verb} resource "{resource}" in API'
            f' group "{rt.group}"{where}'
        )
        details: dict[str, JSON] = {"name": name} if name else {}
        details |= {"group": rt.group, "kind": rt.plural} if rt.group else {"kind": rt.plural}
        raise KubeError(403, "Forbidden", message, details)

    def review(self, body: JSON) -> JSON:
        """The answer to a POSTed SelfSubjectAccessReview: the spec echoed, and its status."""
        spec = body.get("spec") if isinstance(body, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        attributes = spec.get("resourceAttributes")
        if (attributes is None) == (spec.get("nonResourceAttributes") is None):
            raise KubeError.invalid(
                SSAR,
                "",
                [
                    (
                        "spec.resourceAttributes",
                        'Invalid value: "null": exactly one of nonResourceAttributes or'
                        " resourceAttributes must be specified",
                    )
                ],
            )
        if attributes is None:  # non-resource URLs (/healthz …): discovery is open to everyone
            decision = Decision(True, False, "")
        else:
            a = {k: str(v) for k, v in dict(attributes).items()}
            resource = a.get("resource", "")
            if a.get("subresource"):
                resource = f"{resource}/{a['subresource']}"
            decision = self.decide(
                a.get("verb", ""),
                a.get("group", ""),
                resource,
                a.get("namespace", ""),
                a.get("name", ""),
            )
        status: JSON = {"allowed": decision.is_allowed}
        if decision.is_denied:
            status["denied"] = True
        if decision.reason:
            status["reason"] = decision.reason
        return {
            "kind": SSAR.kind,
            "apiVersion": SSAR.api_version,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }


def request_verb(method: str, name: str | None, query: dict[str, list[str]]) -> str:
    """The authorizer's verb of a request, as the API server's RequestInfo derives it."""
    if method == "GET":
        if name:
            return "get"
        return "watch" if (query.get("watch") or [""])[0] in ("true", "1") else "list"
    if method == "DELETE" and not name:
        return "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )
