"""kubectl's rules as pure functions on SDK models: revisions, undo patch, rollout status."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s
from pydantic import BaseModel

from bot.adapters.kube.values import JobState, KubeError, RolloutStatus, UndoPlan

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH = "pod-template-hash"  # appsv1.DefaultDeploymentUniqueLabelKey
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"  # deploymentutil.TimedOutReason

# rollback.go annotationsToSkip: kept from the Deployment, never copied back from the ReplicaSet
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


# ── kubectl ports (pure; fed with SDK model objects) ──────────────────────────────────────────


def wire(model: BaseModel) -> dict[str, Any]:
    """A model as the API writes it: camelCase keys, no nulls, timestamps as strings."""
    data: dict[str, Any] = json.loads(model.to_json())  # type: ignore[attr-defined]  # generated
    return data


def meta(metadata: k8s.V1ObjectMeta | None) -> k8s.V1ObjectMeta:
    """Server objects always carry metadata; the models still declare it optional."""
    return metadata or k8s.V1ObjectMeta()


def revision_of(metadata: k8s.V1ObjectMeta | None) -> int | None:
    """deploymentutil.Revision: a missing annotation is revision 0; garbage is None (skipped)."""
    value = (meta(metadata).annotations or {}).get(REVISION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def images_of(template: k8s.V1PodTemplateSpec | None) -> dict[str, str]:
    """Container name → image (init containers are not what a revision is known by)."""
    containers = template.spec.containers if template and template.spec else []
    return {c.name: c.image or "" for c in containers}


def is_controlled_by(replicaset: k8s.V1ReplicaSet, owner_uid: str | None) -> bool:
    """metav1.IsControlledBy: the owner reference marked controller=true carries this uid."""
    refs = meta(replicaset.metadata).owner_references or []
    controller = next((ref for ref in refs if ref.controller), None)
    return controller is not None and owner_uid is not None and controller.uid == owner_uid


def _pruned(value: Any) -> Any:
    """Drop nulls and empty lists/maps: apimachinery's semantic DeepEqual treats nil == empty."""
    if isinstance(value, dict):
        items = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def template_without_hash(template: k8s.V1PodTemplateSpec | None) -> dict[str, Any]:
    """The pod template in wire form minus the pod-template-hash label the controller adds."""
    data = wire(template) if template is not None else {}
    labels = data.get("metadata", {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
    return data


def equal_ignore_hash(
    template1: k8s.V1PodTemplateSpec | None, template2: k8s.V1PodTemplateSpec | None
) -> bool:
    """kubectl equalIgnoreHash. Quantities compare as text: the API server stores them canonical."""
    first, second = template_without_hash(template1), template_without_hash(template2)
    return bool(_pruned(first) == _pruned(second))


def template_fingerprint(template: k8s.V1PodTemplateSpec | None) -> str:
    """A short digest of the pod template as equal_ignore_hash compares it: two revisions with
    the same fingerprint run the same release, whatever their revision numbers say."""
    return fingerprint_of(template_without_hash(template))


def fingerprint_of(template: dict[str, Any]) -> str:
    """A short digest of a pod template in wire form (nulls and empty values aside)."""
    canonical = json.dumps(_pruned(template), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def select_revision(
    deployment: k8s.V1Deployment, replicasets: Sequence[k8s.V1ReplicaSet], to_revision: int | None
) -> k8s.V1ReplicaSet:
    """rollback.go deploymentRevision: the asked revision, else the second-highest one."""
    wanted = to_revision or 0  # kubectl's --to-revision=0 means "the previous one"
    if wanted < 0:
        raise _revision_not_found(wanted)
    if wanted:
        found = next((rs for rs in replicasets if revision_of(rs.metadata) == wanted), None)
        if found is None:
            raise _revision_not_found(wanted)
        return found
    latest: tuple[int, k8s.V1ReplicaSet] | None = None
    previous: tuple[int, k8s.V1ReplicaSet] | None = None
    for rs in replicasets:
        number = revision_of(rs.metadata)
        if number is None:
            continue
        if latest is None or latest[0] < number:
            previous, latest = latest, (number, rs)
        elif previous is None or previous[0] < number:
            previous = (number, rs)
    if previous is None:
        name = meta(deployment.metadata).name
        raise KubeError(
            None, "NoRolloutHistory", f'no rollout history found for deployment "{name}"'
        )
    return previous[1]


def _revision_not_found(number: int) -> KubeError:
    message = f"unable to find specified revision {number} in history"
    return KubeError(None, "RevisionNotFound", message)


def undo_annotations(deployment: k8s.V1Deployment, replicaset: k8s.V1ReplicaSet) -> dict[str, str]:
    """rollback.go: the Deployment keeps its revision bookkeeping, the rest comes from the RS."""
    own = meta(deployment.metadata).annotations or {}
    theirs = meta(replicaset.metadata).annotations or {}
    kept = {k: v for k, v in own.items() if k in ANNOTATIONS_TO_SKIP}
    return kept | {k: v for k, v in theirs.items() if k not in ANNOTATIONS_TO_SKIP}


def undo_patch(deployment: k8s.V1Deployment, replicaset: k8s.V1ReplicaSet) -> list[dict[str, Any]]:
    """rollback.go getDeploymentPatch: a JSON Patch replacing the template and the annotations."""
    template = template_without_hash(replicaset.spec.template)
    annotations = undo_annotations(deployment, replicaset)
    return [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]


def rollout_status_of(deployment: k8s.V1Deployment) -> RolloutStatus:
    """rollout_status.go DeploymentStatusViewer.Status, with kubectl's words."""
    name = meta(deployment.metadata).name
    status = deployment.status or k8s.V1DeploymentStatus()
    if (meta(deployment.metadata).generation or 0) > (status.observed_generation or 0):
        return _waiting("Waiting for deployment spec update to be observed...")
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == TIMED_OUT_REASON:
        return RolloutStatus(False, True, f'deployment "{name}" exceeded its progress deadline')
    wanted, updated = deployment.spec.replicas, status.updated_replicas or 0
    replicas, available = status.replicas or 0, status.available_replicas or 0
    prefix = f'Waiting for deployment "{name}" rollout to finish'
    if wanted is not None and updated < wanted:
        return _waiting(f"{prefix}: {updated} out of {wanted} new replicas have been updated...")
    if replicas > updated:
        return _waiting(f"{prefix}: {replicas - updated} old replicas are pending termination...")
    if available < updated:
        return _waiting(f"{prefix}: {available} of {updated} updated replicas are available...")
    return RolloutStatus(True, False, f'deployment "{name}" successfully rolled out')


def _waiting(message: str) -> RolloutStatus:
    return RolloutStatus(False, False, message)


def label_selector_string(selector: k8s.V1LabelSelector) -> str:
    """metav1.LabelSelectorAsSelector(...).String(), the label_selector of a list call."""
    parts = [f"{k}={v}" for k, v in (selector.match_labels or {}).items()]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        forms = {"In": f"{expr.key} in ({values})", "NotIn": f"{expr.key} notin ({values})"}
        forms |= {"Exists": expr.key, "DoesNotExist": f"!{expr.key}"}
        parts.append(forms[expr.operator])
    return ",".join(sorted(parts))


def job_state_of(job: k8s.V1Job) -> JobState:
    """Complete/Failed decide; FailureTarget is not final yet (pods may still be stopping)."""
    name = meta(job.metadata).name
    status = job.status or k8s.V1JobStatus()
    for cond in status.conditions or []:
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            return JobState("complete", f'job "{name}" completed')
        if cond.type == "Failed":
            detail = ": ".join(part for part in (cond.reason, cond.message) if part)
            return JobState("failed", f'job "{name}" failed: {detail or "no reason given"}')
    active, done, failed = status.active or 0, status.succeeded or 0, status.failed or 0
    counts = f"{active} active, {done} succeeded, {failed} failed"
    return JobState("running", f'job "{name}" running: {counts}')


def _plan(dep: k8s.V1Deployment, rs: k8s.V1ReplicaSet) -> UndoPlan:
    """rollback.go after the revision is found: refuse when paused, skip when it matches."""
    name = meta(dep.metadata).name or ""
    if dep.spec.paused:
        raise KubeError(
            None,
            "Paused",
            "you cannot rollback a paused deployment; resume it first with "
            f"'kubectl rollout resume deployment/{name}' and try again",
        )
    return UndoPlan(
        deployment=name,
        from_revision=revision_of(dep.metadata) or 0,
        to_revision=revision_of(rs.metadata) or 0,
        images_before=images_of(dep.spec.template),
        images_after=images_of(rs.spec.template),
        is_noop=equal_ignore_hash(rs.spec.template, dep.spec.template),
        from_template=template_fingerprint(dep.spec.template),
        to_template=template_fingerprint(rs.spec.template),
    )
