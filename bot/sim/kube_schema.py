"""What the simulated API server knows about resources: names, Status errors, selectors, defaults.

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
    "apply_defaults",
    "label_selector_string",
    "matches",
    "parse_field_selector",
    "parse_label_selector",
    "requirements_of",
    "template_without_hash",
    "validate",
]

JSON = Any
POD_TEMPLATE_HASH = "pod-template-hash"

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
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


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
            {"reason": "FieldValueInvalid", "message": text, "field": path} for path, text in errors
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


# -- defaulting and validation -------------------------------------------------------------------


def template_without_hash(template: JSON) -> JSON:
    """A pod template minus the pod-template-hash label, for "same template?" comparisons."""
    metadata = dict((template or {}).get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != POD_TEMPLATE_HASH}
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    return {**(template or {}), "metadata": metadata}


def apply_defaults(rt: ResourceType, obj: JSON, *, cluster_ip: str) -> None:
    """Fill the fields the API server defaults, so that templates compare like on a cluster."""
    spec = obj.setdefault("spec", {}) if rt.kind != "Namespace" else None
    if rt.kind == "Deployment" and spec is not None:
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        _default_pod_template(spec.setdefault("template", {}))
    elif rt.kind == "ReplicaSet" and spec is not None:
        spec.setdefault("replicas", 1)
        _default_pod_template(spec.setdefault("template", {}))
    elif rt.kind == "Job" and spec is not None:
        _default_job(obj, spec)
    elif rt.kind == "Service" and spec is not None:
        _default_service(spec, cluster_ip)
    elif rt.kind == "Namespace":
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})


def _default_pod_template(template: JSON) -> None:
    spec = template.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        is_latest = "@" not in image and tag in ("", "latest")
        container.setdefault("imagePullPolicy", "Always" if is_latest else "IfNotPresent")
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _default_job(job: JSON, spec: JSON) -> None:
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    for key, value in (
        ("backoffLimit", 6),
        ("completions", 1),
        ("parallelism", 1),
        ("completionMode", "NonIndexed"),
        ("suspend", False),
        ("podReplacementPolicy", "TerminatingOrFailed"),
    ):
        spec.setdefault(key, value)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    generated = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    labels.update({k: v for k, v in generated.items() if k not in labels})
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    # batch/v1 defaulting: a Job without labels takes its pod template's labels.
    if not job["metadata"].get("labels"):
        job["metadata"]["labels"] = dict(labels)
    _default_pod_template(template)


def _default_service(spec: JSON, cluster_ip: str) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("type") != "ExternalName":
        spec.setdefault("clusterIP", cluster_ip)
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def validate(rt: ResourceType, obj: JSON, old: JSON | None) -> None:
    """The few validation rules that catch real client bugs; raises 422 Invalid."""
    name = obj["metadata"].get("name", "")
    errors: list[tuple[str, str]] = []
    if not _NAME.match(name) or len(name) > 253:
        errors.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    if rt.kind in ("Deployment", "ReplicaSet"):
        errors += _selector_errors(obj["spec"], (old or {}).get("spec"), rt.kind == "Deployment")
    if errors:
        raise KubeError.invalid(rt, name, errors)


def _selector_errors(
    spec: JSON, old_spec: JSON | None, is_immutable: bool
) -> list[tuple[str, str]]:
    selector = spec.get("selector")
    if not selector or not requirements_of(selector):
        return [("spec.selector", "Required value")]
    errors = []
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not all(req.matches(labels) for req in requirements_of(selector)):
        errors.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
            )
        )
    if is_immutable and old_spec is not None and old_spec.get("selector") != selector:
        errors.append(
            ("spec.selector", f"Invalid value: {_go_selector(selector)}: field is immutable")
        )
    return errors


def _go_map(labels: Mapping[str, str]) -> str:
    """Labels printed like Go's %#v of a map[string]string, as the server's message does."""
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def _go_selector(selector: Mapping[str, JSON]) -> str:
    return f"v1.LabelSelector{{MatchLabels:{_go_map(selector.get('matchLabels') or {})}}}"
