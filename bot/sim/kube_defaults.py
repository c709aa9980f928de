"""What the API server fills in: defaulting (validation is in `kube_validation`).

Defaults matter more than they look: the deployment controller decides "same template?" by
comparing pod templates, so a template a client sends back without defaults (kubectl rollout
undo strips pod-template-hash and nothing else) must come out equal to the stored one.
"""

from __future__ import annotations

from typing import Any

from bot.sim.kube_quantity import canonical_quantity
from bot.sim.kube_schema import ResourceType

__all__ = ["POD_TEMPLATE_HASH", "apply_defaults", "same_template", "template_without_hash"]

JSON = Any
POD_TEMPLATE_HASH = "pod-template-hash"


def template_without_hash(template: JSON) -> JSON:
    """A pod template minus the pod-template-hash label, for "same template?" comparisons."""
    metadata = dict((template or {}).get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != POD_TEMPLATE_HASH}
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    return {**(template or {}), "metadata": metadata}


def same_template(first: JSON, second: JSON) -> bool:
    """Whether two pod templates are the same to the deployment controller: pod-template-hash
    aside, compared as values (EqualIgnoreHash on the decoded structs), so that `null`, empty
    lists and maps, and `0.5` against `500m` make no difference."""
    same: bool = _semantic(template_without_hash(first)) == _semantic(template_without_hash(second))
    return same


def _semantic(value: JSON, key: str = "") -> JSON:
    if isinstance(value, dict):
        if key in _QUANTITY_MAPS:
            return {k: canonical_quantity(v) or v for k, v in value.items() if v is not None}
        pruned = {k: _semantic(v, k) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


_QUANTITY_MAPS = frozenset({"limits", "requests", "overhead"})


def apply_defaults(rt: ResourceType, obj: JSON, *, cluster_ip: str) -> None:
    """Fill the fields the API server defaults, so that templates compare like on a cluster."""
    if rt.kind == "Namespace":
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
    elif rt.kind == "Deployment":
        _default_deployment(obj.setdefault("spec", {}))
    elif rt.kind == "ReplicaSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        _default_pod_template(spec.setdefault("template", {}))
    elif rt.kind == "Job":
        _default_job(obj, obj.setdefault("spec", {}))
    elif rt.kind == "Service":
        _default_service(obj.setdefault("spec", {}), cluster_ip)


def _default_deployment(spec: JSON) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    _default_pod_template(spec.setdefault("template", {}))


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
