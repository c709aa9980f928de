"""What the API server fills in and refuses: defaulting and (a little) validation.

Defaults matter more than they look: the deployment controller decides "same template?" by
comparing pod templates, so a template a client sends back without defaults (kubectl rollout
undo strips pod-template-hash and nothing else) must come out equal to the stored one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.sim.kube_schema import KubeError, ResourceType, requirements_of

__all__ = ["POD_TEMPLATE_HASH", "apply_defaults", "template_without_hash", "validate"]

JSON = Any
POD_TEMPLATE_HASH = "pod-template-hash"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


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


def validate(rt: ResourceType, obj: JSON, old: JSON | None) -> None:
    """The few validation rules that catch real client bugs; raises 422 Invalid."""
    name = obj["metadata"].get("name", "")
    errors: list[tuple[str, str]] = []
    if not name:
        errors.append(("metadata.name", "Required value: name or generateName is required"))
    elif not _NAME.match(name) or len(name) > 253:
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
