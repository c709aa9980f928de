"""The rules of ``kubectl argo rollouts`` as pure functions on a Rollout (a dict, as
CustomObjectsApi serves it) and its ReplicaSets (SDK models).

Ported from argoproj/argo-rollouts: ``pkg/kubectl-argo-rollouts/cmd/undo/undo.go`` (revision
choice, DeepDerivative template comparison, the one-operation JSON Patch), ``cmd/abort/abort.go``
(the status merge patch) and ``utils/rollout/rolloututil.go`` (GetRolloutPhase, the phase and
message the plugin's ``status`` command waits on).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client as k8s

from bot.adapters.kube.kubectl import fingerprint_of, images_of, meta, wire
from bot.adapters.kube.values import KubeError, RolloutStatus

API_VERSION = "argoproj.io/v1alpha1"
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
REVISION = "rollout.argoproj.io/revision"  # undo.go revisionAnnotation
POD_HASH = "rollouts-pod-template-hash"  # v1alpha1.DefaultRolloutUniqueLabelKey
ABORT_PATCH = {"status": {"abort": True}}  # abort.go abortPatch, sent as a merge patch
HEALTHY, DEGRADED, PAUSED, PROGRESSING = "Healthy", "Degraded", "Paused", "Progressing"

_GO_INT = re.compile(r"^[+-]?[0-9]+$")  # what strconv.ParseInt(v, 10, 64) accepts


def revision_of(annotations: Mapping[str, str] | None) -> int | None:
    """undo.go revision(): no annotation is revision 0; one ParseInt refuses is None (skipped)."""
    value = (annotations or {}).get(REVISION)
    if value is None:
        return 0
    return int(value) if _GO_INT.match(value) else None


def rs_revision(replicaset: k8s.V1ReplicaSet) -> int | None:
    return revision_of(meta(replicaset.metadata).annotations)


def spec_of(rollout: Mapping[str, Any]) -> dict[str, Any]:
    spec = rollout.get("spec")
    return spec if isinstance(spec, dict) else {}


def status_of(rollout: Mapping[str, Any]) -> dict[str, Any]:
    status = rollout.get("status")
    return status if isinstance(status, dict) else {}


def name_of(rollout: Mapping[str, Any]) -> str:
    return str((rollout.get("metadata") or {}).get("name") or "")


def rollout_images(rollout: Mapping[str, Any]) -> dict[str, str]:
    """Container name → image of the Rollout's pod template."""
    pod = (spec_of(rollout).get("template") or {}).get("spec") or {}
    return {str(c.get("name")): str(c.get("image") or "") for c in pod.get("containers") or []}


def select_revision(
    rollout: Mapping[str, Any], replicasets: Sequence[k8s.V1ReplicaSet], to_revision: int
) -> k8s.V1ReplicaSet:
    """undo.go rolloutRevision: revision ``to_revision``, or with 0 the second-highest one."""
    latest: tuple[int, k8s.V1ReplicaSet] | None = None
    previous: tuple[int, k8s.V1ReplicaSet] | None = None
    for rs in replicasets:
        number = rs_revision(rs)
        if number is None:
            continue
        if to_revision == 0:
            if latest is None or latest[0] < number:
                previous, latest = latest, (number, rs)
            elif previous is None or previous[0] < number:
                previous = (number, rs)
        elif number == to_revision:
            return rs
    if to_revision > 0:
        message = f"unable to find specified revision {to_revision} in history"
        raise KubeError(None, "RevisionNotFound", message)
    if previous is None:
        message = f'no revision found for rollout "{name_of(rollout)}"'
        raise KubeError(None, "NoRolloutHistory", message)
    return previous[1]


def without_hash(template: Mapping[str, Any] | None) -> dict[str, Any]:
    """A pod template (wire form) minus the rollouts-pod-template-hash label (RemoveNestedField:
    an emptied labels map stays, as an empty map)."""
    copied: dict[str, Any] = copy.deepcopy(dict(template or {}))
    labels = (copied.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_HASH, None)
    return copied


def rs_template(replicaset: k8s.V1ReplicaSet) -> dict[str, Any]:
    """The ReplicaSet's pod template as ToUnstructured gives it, minus the hash label."""
    template = replicaset.spec.template if replicaset.spec else None
    return without_hash(wire(template) if template is not None else {})


def deep_derivative(first: Any, second: Any) -> bool:
    """apimachinery's ``Semantic.DeepDerivative`` on JSON values: what ``first`` leaves unset
    (nil, an empty string, map or list) is not compared; a map or list of ``first`` may not be
    longer than ``second``'s; a key of ``first`` missing from ``second`` differs."""
    if type(first) is not type(second):
        return first is None  # an unset (nil) interface derives anything; other types differ
    if isinstance(first, dict):
        if not first:
            return True
        if len(first) > len(second):
            return False
        return all(k in second and deep_derivative(v, second[k]) for k, v in first.items())
    if isinstance(first, list):
        if not first:
            return True
        if len(first) > len(second):
            return False
        return all(deep_derivative(a, b) for a, b in zip(first, second, strict=False))
    if isinstance(first, str) and not first:
        return True
    return bool(first == second)


def equal_ignore_hash(rollout: Mapping[str, Any], replicaset: k8s.V1ReplicaSet) -> bool:
    """undo.go equalIgnoreHash: the Rollout's template derives the ReplicaSet's (hashes aside).
    A Rollout without a template (workloadRef) never matches, as NestedMap finds none."""
    template = spec_of(rollout).get("template")
    if not isinstance(template, dict):
        return False
    return deep_derivative(without_hash(template), rs_template(replicaset))


def undo_patch(replicaset: k8s.V1ReplicaSet) -> list[dict[str, Any]]:
    """undo.go getRolloutPatch: one JSON Patch ``replace`` of /spec/template with the
    ReplicaSet's template minus the hash label; unlike kubectl's Deployment undo it leaves
    the annotations alone."""
    return [{"op": "replace", "path": "/spec/template", "value": rs_template(replicaset)}]


def current_replicaset(
    rollout: Mapping[str, Any], replicasets: Sequence[k8s.V1ReplicaSet]
) -> k8s.V1ReplicaSet | None:
    """The ReplicaSet of the Rollout's template: the one labelled with status.currentPodHash,
    else the newest one the template derives."""
    pod_hash = status_of(rollout).get("currentPodHash")
    by_hash = [rs for rs in replicasets if pod_hash and _hash_of(rs) == pod_hash]
    matching = by_hash or [rs for rs in replicasets if equal_ignore_hash(rollout, rs)]
    return max(matching, key=lambda rs: rs_revision(rs) or 0, default=None)


def release_fingerprint(rollout: Mapping[str, Any], replicasets: Sequence[k8s.V1ReplicaSet]) -> str:
    """The identity of the release the Rollout runs, in the terms of its ReplicaSets' templates
    (the API server defaults those, not the CRD's): comparable with :func:`rs_fingerprint`."""
    current = current_replicaset(rollout, replicasets)
    if current is not None:
        return rs_fingerprint(current)
    return fingerprint_of(without_hash(spec_of(rollout).get("template")))


def is_spec_observed(rollout: Mapping[str, Any], replicasets: Sequence[k8s.V1ReplicaSet]) -> bool:
    """The controller has picked up the Rollout's spec: its generation is observed and its
    template is the one of the ReplicaSet it names (status.currentPodHash). Until then
    :func:`release_fingerprint` names the release before that change."""
    if not _is_generation_observed(rollout):
        return False
    current = current_replicaset(rollout, replicasets)
    return current is not None and equal_ignore_hash(rollout, current)


def rs_fingerprint(replicaset: k8s.V1ReplicaSet) -> str:
    return fingerprint_of(rs_template(replicaset))


def rs_images(replicaset: k8s.V1ReplicaSet) -> dict[str, str]:
    return images_of(replicaset.spec.template if replicaset.spec else None)


def _hash_of(replicaset: k8s.V1ReplicaSet) -> str | None:
    return (meta(replicaset.metadata).labels or {}).get(POD_HASH)


def is_mid_update(rollout: Mapping[str, Any]) -> bool:
    """A canary or blue-green update is under way: the desired pod hash is not the stable one
    (rolloututil.IsFullyPromoted negated), and it was not aborted already."""
    status = status_of(rollout)
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    return bool(current) and current != stable and not status.get("abort")


# ── phase (rolloututil.GetRolloutPhase) ───────────────────────────────────────────────────────


def rollout_phase(rollout: Mapping[str, Any]) -> tuple[str, str]:
    """rolloututil.GetRolloutPhase: the phase and message the plugin's ``status`` reports."""
    status = status_of(rollout)
    if not _is_generation_observed(rollout):
        return PROGRESSING, "waiting for rollout spec update to be observed"
    if status.get("controllerPause") and not status.get("pauseConditions"):
        return PROGRESSING, "waiting for rollout to unpause"
    if status.get("phase"):
        return str(status["phase"]), str(status.get("message") or "")
    return _calculated_phase(spec_of(rollout), status)


def _is_generation_observed(rollout: Mapping[str, Any]) -> bool:
    """status.observedGeneration is a string; one that is not a number counts as observed."""
    observed = str(status_of(rollout).get("observedGeneration") or "")
    if not _GO_INT.match(observed):
        return True
    generation = int((rollout.get("metadata") or {}).get("generation") or 0)
    return int(observed) >= generation


def _calculated_phase(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[str, str]:
    """rolloututil.CalculateRolloutPhase, for a controller that reports no phase (before 1.0)."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "InvalidSpec":
            return DEGRADED, f"InvalidSpec: {cond.get('message')}"
        if cond.get("reason") in ("RolloutAborted", "ProgressDeadlineExceeded"):
            return DEGRADED, f"{cond.get('reason')}: {cond.get('message')}"
    if spec.get("paused"):
        return PAUSED, "manually paused"
    for pause in status.get("pauseConditions") or []:
        return PAUSED, str(pause.get("reason"))
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    if updated < (1 if replicas is None else replicas):
        return PROGRESSING, "more replicas need to be updated"
    if (status.get("availableReplicas") or 0) < updated:
        return PROGRESSING, "updated replicas are still becoming available"
    strategy = spec.get("strategy") or {}
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    if strategy.get("blueGreen") is not None:
        active = (status.get("blueGreen") or {}).get("activeSelector")
        if not active or active != current:
            return PROGRESSING, "active service cutover pending"
        if not stable or stable != current:
            return PROGRESSING, "waiting for post-promotion verification to complete"
    elif strategy.get("canary") is not None:
        traffic = (strategy.get("canary") or {}).get("trafficRouting")
        if traffic is None and (status.get("replicas") or 0) > updated:
            return PROGRESSING, "old replicas are pending termination"
        if not stable or stable != current:
            return PROGRESSING, "waiting for all steps to complete"
    return HEALTHY, ""


def rollout_status_of(rollout: Mapping[str, Any]) -> RolloutStatus:
    """The phase as the plugin's ``status`` prints it: done on Healthy, failed on Degraded."""
    phase, message = rollout_phase(rollout)
    name = name_of(rollout)
    if phase == HEALTHY:
        return RolloutStatus(True, False, f'rollout "{name}" is Healthy')
    if phase == DEGRADED:
        text = f"The rollout is in a degraded state with message: {message}"
        return RolloutStatus(False, True, f'rollout "{name}": {text}')
    text = f'rollout "{name}": {phase} - {message}'.rstrip(" -")
    return RolloutStatus(False, False, text, is_paused=phase == PAUSED)
