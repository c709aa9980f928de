"""What the simulated API server knows about resources: names, Status errors, selectors.

Everything here is pure: it works on plain JSON dicts, the way the objects travel on the wire.
The error builders produce the exact `Status` bodies of the real API server (see
k8s.io/apimachinery/pkg/api/errors), because clients parse them: `reason` drives retries,
`message` ends up in the bot's Slack messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FieldRequirement",
    "KubeError",
    "LabelRequirement",
    "ResourceType",
    "label_selector_string",
    "matches",
    "parse_field_selector",
    "parse_label_selector",
    "requirements_of",
]

JSON = Any

# Kinds of the resources a rollback bot meets. Unknown plurals become generic objects whose kind
# is learned from the first created body (CustomObjectsApi always sends one).
_KINDS: dict[tuple[str, str], str] = {
    ("", "namespaces"): "Namespace",
    ("", "services"): "Service",
    ("", "pods"): "Pod",
    ("", "configmaps"): "ConfigMap",
    ("", "secrets"): "Secret",
    ("apps", "deployments"): "Deployment",
    ("apps", "replicasets"): "ReplicaSet",
    ("apps", "statefulsets"): "StatefulSet",
    ("apps", "daemonsets"): "DaemonSet",
    ("batch", "jobs"): "Job",
    ("batch", "cronjobs"): "CronJob",
    ("networking.k8s.io", "ingresses"): "Ingress",
    ("networking.k8s.io", "networkpolicies"): "NetworkPolicy",
    ("autoscaling", "horizontalpodautoscalers"): "HorizontalPodAutoscaler",
    ("policy", "poddisruptionbudgets"): "PodDisruptionBudget",
    ("networking.istio.io", "virtualservices"): "VirtualService",
    ("networking.istio.io", "destinationrules"): "DestinationRule",
    ("networking.istio.io", "gateways"): "Gateway",
    ("argoproj.io", "rollouts"): "Rollout",
}
# Built-in kinds whose metadata.generation tracks spec changes (Services and Pods have none).
_GENERATION_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Ingress",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
)


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: /apis/{group}/{version}/namespaces/{ns}/{plural}."""

    group: str
    version: str
    plural: str
    kind: str

    @staticmethod
    def known_kind(group: str, plural: str) -> str | None:
        return _KINDS.get((group, plural))

    @staticmethod
    def guess_kind(plural: str) -> str:
        singular = plural[:-2] if plural.endswith("sses") else plural.removesuffix("s")
        return singular[:1].upper() + singular[1:]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps`, `services`: how the server names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def is_namespaced(self) -> bool:
        return self.plural != "namespaces"

    @property
    def is_builtin(self) -> bool:
        """Built-in (not a CRD): strategic merge patch works and status is a subresource."""
        return "." not in self.group or self.group.endswith(".k8s.io")

    @property
    def has_generation(self) -> bool:
        return self.kind in _GENERATION_KINDS or not self.is_builtin


# -- Status errors -----------------------------------------------------------------------------


@dataclass
class KubeError(Exception):
    """An API error, answered as a `Status` object with `code` as the HTTP status."""

    code: int
    reason: str
    message: str
    details: dict[str, JSON] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def status(self) -> dict[str, JSON]:
        body: dict[str, JSON] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    @staticmethod
    def _details(rt: ResourceType, name: str, kind: str | None = None) -> dict[str, JSON]:
        details: dict[str, JSON] = {"name": name} if name else {}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = kind or rt.plural
        return details

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> KubeError:
        return cls(404, "NotFound", f'{rt.qualified} "{name}" not found', cls._details(rt, name))

    @classmethod
    def no_such_resource(cls) -> KubeError:
        """What the server answers for a group, version or resource it does not serve."""
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> KubeError:
        message = f'{rt.qualified} "{name}" already exists'
        return cls(409, "AlreadyExists", message, cls._details(rt, name))

    @classmethod
    def conflict(cls, rt: ResourceType, name: str) -> KubeError:
        message = (
            f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again"
        )
        return cls(409, "Conflict", message, cls._details(rt, name))

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, errors: list[tuple[str, str]]) -> KubeError:
        """422 from validation; `errors` are (field path, "Invalid value: …" text) pairs."""
        causes = [
            {"reason": _cause_reason(text), "message": text, "field": path} for path, text in errors
        ]
        listed = ", ".join(f"{path}: {text}" for path, text in errors)
        if len(errors) > 1:
            listed = f"[{listed}]"
        details = cls._details(rt, name, rt.kind) | {"causes": causes}
        return cls(422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {listed}', details)

    @classmethod
    def patch_not_applicable(cls) -> KubeError:
        # The API server wraps JSON Patch failures (a failed "test" included) in a generic 422
        # that drops the underlying message: NewGenericServerResponse(422, …, isUnexpected=false).
        message = "the server rejected our request due to an error in our request"
        return cls(422, "Invalid", message, {})

    @classmethod
    def bad_request(cls, message: str) -> KubeError:
        return cls(400, "BadRequest", message)

    @classmethod
    def method_not_supported(cls, rt: ResourceType, verb: str) -> KubeError:
        message = f'{verb} is not supported on resources of kind "{rt.qualified}"'
        return cls(405, "MethodNotAllowed", message, cls._details(rt, ""))

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: Iterable[str]) -> KubeError:
        message = (
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)} (got {content_type or 'none'})"
        )
        return cls(415, "UnsupportedMediaType", message)


def _cause_reason(text: str) -> str:
    """The StatusCause reason of a field error, from how its message starts (field.Error)."""
    for prefix, reason in (
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
    ):
        if text.startswith(prefix):
            return reason
    return "FieldValueInvalid"


# -- label and field selectors -------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRequirement:
    """One term of a label selector: `a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return value is not None
        if self.operator == "!exists":
            return value is None
        if self.operator in ("=", "in"):
            return value in self.values
        return value not in self.values  # "!=" and "notin" also match a missing label


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    value: str
    is_negated: bool

    def matches(self, obj: JSON) -> bool:
        current: JSON = obj
        for part in self.path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            text = ""
        elif isinstance(current, bool):
            text = "true" if current else "false"
        else:
            text = str(current)
        return (text == self.value) != self.is_negated


_SET_TERM = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_TERM = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
_KEY_TERM = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")
_FIELD_TERM = re.compile(r"^(?P<path>[^\s!=]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^\s]*)$")


def _split_terms(text: str) -> list[str]:
    """Split on the commas that are not inside `in (…)` value lists."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [term.strip() for term in terms if term.strip()]


def parse_label_selector(text: str) -> list[LabelRequirement]:
    requirements = []
    for term in _split_terms(text):
        if match := _SET_TERM.match(term):
            values = tuple(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(LabelRequirement(match["key"], match["op"], values))
        elif match := _EQ_TERM.match(term):
            op = "!=" if match["op"] == "!=" else "="
            requirements.append(LabelRequirement(match["key"], op, (match["value"],)))
        elif match := _KEY_TERM.match(term):
            op = "!exists" if match["neg"] else "exists"
            requirements.append(LabelRequirement(match["key"], op))
        else:
            raise KubeError.bad_request(f"unable to parse requirement: found '{term}'")
    return requirements


def parse_field_selector(text: str) -> list[FieldRequirement]:
    requirements = []
    for term in _split_terms(text):
        match = _FIELD_TERM.match(term)
        if match is None:
            raise KubeError.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        requirements.append(FieldRequirement(match["path"], match["value"], match["op"] == "!="))
    return requirements


def requirements_of(selector: Mapping[str, JSON] | None) -> list[LabelRequirement]:
    """The requirements of a LabelSelector object (matchLabels + matchExpressions)."""
    selector = selector or {}
    requirements = [
        LabelRequirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators[expression["operator"]]
        requirements.append(
            LabelRequirement(expression["key"], operator, tuple(expression.get("values") or ()))
        )
    return requirements


def label_selector_string(selector: Mapping[str, JSON] | None) -> str:
    """A LabelSelector in query-string form, as Scale.status.selector shows it."""
    terms = []
    for req in requirements_of(selector):
        if req.operator in ("in", "notin"):
            terms.append(f"{req.key} {req.operator} ({','.join(req.values)})")
        elif req.operator in ("exists", "!exists"):
            terms.append(("!" if req.operator == "!exists" else "") + req.key)
        else:
            terms.append(f"{req.key}{req.operator}{req.values[0]}")
    return ",".join(sorted(terms))


def matches(
    obj: JSON, labels: Iterable[LabelRequirement], fields: Iterable[FieldRequirement] = ()
) -> bool:
    object_labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(object_labels) for r in labels) and all(f.matches(obj) for f in fields)
