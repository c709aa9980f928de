"""The Argo Rollouts controller of the simulated cluster (argoproj.io/v1alpha1 ``Rollout``).

What it does, after argoproj/argo-rollouts' controller (rollout/sync.go, canary.go,
bluegreen.go), simplified to instant scaling:
- the ReplicaSets of a Rollout are those whose ownerReferences name it as controller; the one
  whose pod template (minus ``rollouts-pod-template-hash``) equals the Rollout's is the new one —
  reused on a rollback with revision max+1 — else ``<rollout>-<hash>`` is created with the next
  ``rollout.argoproj.io/revision``, the hash label on its template and selector; the Rollout
  carries the revision of its new ReplicaSet in the same annotation;
- the first ReplicaSet is stable at once; a later template is an update: a canary walks its
  ``steps`` (``setWeight`` scales the canary to that share, ``pause: {}`` waits for a promote
  — ``status.pauseConditions`` cleared with ``controllerPause`` left true —, a timed pause
  waits its duration), a blue-green update scales the new ReplicaSet up and promotes when it is
  ready (or pauses with ``autoPromotionEnabled: false``); a template equal to the stable
  ReplicaSet's is a rollback to stable: promoted at once, steps skipped;
- ``status.abort: true`` (``kubectl argo rollouts abort``) scales the update down, the stable
  ReplicaSet up, phase Degraded ``RolloutAborted``; a new template clears the abort;
- status is written as the controller patches it: ``observedGeneration`` as a string,
  ``currentPodHash``, ``stableRS``, counts, ``phase`` and ``message``.
Pods become ready through the deployment controller's clock (``ready_delay_seconds``, never for
images set never-ready). Not simulated: analysis, experiments, traffic routers, workloadRef,
scale-down delays, progress deadlines.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from bot.sim.kube_controller import REPLICASETS, DeploymentController
from bot.sim.kube_defaults import apply_defaults, same_template
from bot.sim.kube_rolling import owner_reference, template_hash
from bot.sim.kube_schema import ResourceType, label_selector_string
from bot.sim.kube_store import JSON_PATCH, ObjectStore

__all__ = ["POD_HASH", "REVISION", "ROLLOUTS", "ArgoController"]

JSON = Any
ROLLOUTS = ResourceType("argoproj.io", "v1alpha1", "rollouts", "Rollout")
REVISION = "rollout.argoproj.io/revision"
POD_HASH = "rollouts-pod-template-hash"


def _revision(obj: JSON) -> int:
    value = str((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    return int(value) if value.isdigit() else 0


def _hash(replica_set: JSON) -> str:
    return str((replica_set["metadata"].get("labels") or {}).get(POD_HASH, ""))


def _without_hash(template: JSON) -> JSON:
    copied = copy.deepcopy(template or {})
    labels = (copied.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_HASH, None)
    return copied


class ArgoController:
    """Reconciles Rollouts → ReplicaSets and writes each Rollout's status."""

    def __init__(
        self,
        store: ObjectStore,
        clock: Callable[[], float],
        wall_now: Callable[[], str],
        pods: DeploymentController,
    ) -> None:
        self._store, self._clock, self._now, self._pods = store, clock, wall_now, pods
        self._step_started: dict[tuple[str, str, int], float] = {}  # (uid, hash, step) → clock
        self._settling = False  # seeding a history: every update is promoted at once

    def sync(self) -> None:
        for rollout in self._store.list(ROLLOUTS, None):
            if isinstance(rollout.get("spec"), dict) and "template" in rollout["spec"]:
                self._reconcile(rollout)

    def is_waiting_on_clock(self) -> bool:
        return bool(self._step_started)

    def seed(
        self,
        namespace: str,
        name: str,
        *,
        images: list[str],
        replicas: int = 3,
        strategy: JSON = None,
        container: str = "app",
    ) -> JSON:
        """A Rollout released through ``images`` in order, each promoted: revision N runs
        images[N-1], like a cluster after several releases. Returns it as stored."""
        labels = {"app": name}
        body = {
            "apiVersion": ROLLOUTS.api_version,
            "kind": "Rollout",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": container, "image": images[0]}]},
                },
                "strategy": strategy or {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
            },
        }
        self._store.ensure_namespace(namespace)
        self._store.create(ROLLOUTS, namespace, body)
        self._settling = True
        try:
            self.sync()
            for image in images[1:]:
                path = "/spec/template/spec/containers/0/image"
                patch = [{"op": "replace", "path": path, "value": image}]
                self._store.patch(ROLLOUTS, namespace, name, JSON_PATCH, patch)
                self.sync()
        finally:
            self._settling = False
        return self._store.get(ROLLOUTS, namespace, name)

    # -- one Rollout -----------------------------------------------------------------------------

    def _reconcile(self, rollout: JSON) -> None:
        spec, status = rollout["spec"], copy.deepcopy(rollout.get("status") or {})
        owned = self._owned(rollout)
        current = self._current(rollout, owned)
        if current is None and spec.get("paused"):
            return
        if current is None:
            current = self._create(rollout, owned)
            owned.append(current)
        current = self._promote_revision(current, owned)
        pod_hash = _hash(current)
        if status.get("currentPodHash") != pod_hash:  # a new template: a new update
            for key in ("abort", "abortedAt", "pauseConditions", "controllerPause"):
                status.pop(key, None)
            status["currentStepIndex"] = 0
        stable_hash = status.get("stableRS") or pod_hash
        stable = next((rs for rs in owned if _hash(rs) == stable_hash), current)
        status |= {"currentPodHash": pod_hash, "stableRS": _hash(stable)}
        phase = self._step(rollout, status, current, stable, owned)
        owned = self._owned(rollout)
        self._write(rollout, status, current, owned, phase)

    def _step(
        self, rollout: JSON, status: JSON, current: JSON, stable: JSON, owned: list[JSON]
    ) -> tuple[str, str]:
        """Scale the ReplicaSets for where the update is; the phase and message it is in."""
        spec, replicas = rollout["spec"], rollout["spec"].get("replicas", 1)
        strategy = spec.get("strategy") or {}
        if current is stable or self._settling:
            return self._promoted(status, current, owned, replicas, strategy)
        if status.get("abort"):
            self._scale_all(owned, {_hash(stable): replicas})
            status.setdefault("abortedAt", self._now())
            aborted = f"Rollout aborted update to revision {_revision(current)}"
            return "Degraded", f"RolloutAborted: {aborted}"
        if spec.get("paused"):
            return "Paused", "manually paused"
        if strategy.get("blueGreen") is not None:
            return self._blue_green(status, current, stable, owned, replicas, strategy)
        return self._canary(rollout, status, current, stable, owned)

    def _promoted(
        self, status: JSON, current: JSON, owned: list[JSON], replicas: int, strategy: JSON
    ) -> tuple[str, str]:
        self._scale_all(owned, {_hash(current): replicas})
        status["stableRS"] = _hash(current)
        status["currentStepIndex"] = len((strategy.get("canary") or {}).get("steps") or [])
        for key in ("pauseConditions", "controllerPause"):
            status.pop(key, None)
        if strategy.get("blueGreen") is not None:
            status["blueGreen"] = {"activeSelector": _hash(current)}
        if not self._is_ready(self._fresh(current), replicas):
            return "Progressing", "updated replicas are still becoming available"
        return "Healthy", ""

    def _canary(
        self, rollout: JSON, status: JSON, current: JSON, stable: JSON, owned: list[JSON]
    ) -> tuple[str, str]:
        replicas = rollout["spec"].get("replicas", 1)
        steps = ((rollout["spec"].get("strategy") or {}).get("canary") or {}).get("steps") or []
        uid, pod_hash = rollout["metadata"]["uid"], _hash(current)
        while True:
            index = int(status.get("currentStepIndex") or 0)
            weights = [s["setWeight"] for s in steps[:index] if "setWeight" in s]
            weight = weights[-1] if weights else 0
            canary = math.ceil(weight * replicas / 100)
            self._scale_all(owned, {pod_hash: canary, _hash(stable): replicas - canary})
            if index >= len(steps):
                strategy = {"canary": {"steps": steps}}
                return self._promoted(status, current, owned, replicas, strategy)
            if not self._is_ready(self._fresh(current), canary):
                return "Progressing", "more replicas need to be updated"
            step = steps[index]
            if "pause" in step and not self._pause_over(uid, pod_hash, index, step, status):
                return self._paused(status, "CanaryPauseStep")
            status["currentStepIndex"] = index + 1

    def _pause_over(self, uid: str, pod_hash: str, index: int, step: JSON, status: JSON) -> bool:
        """A promote (pause conditions cleared, controllerPause still true) or a timed pause
        that ran its duration ends the pause."""
        if status.get("controllerPause") and not status.get("pauseConditions"):
            status.pop("controllerPause", None)
            return True
        duration = (step.get("pause") or {}).get("duration")
        if duration is None:
            return False
        key = (uid, pod_hash, index)
        started = self._step_started.setdefault(key, self._clock())
        seconds = int(str(duration).rstrip("s"))
        if self._clock() - started < seconds:
            return False
        del self._step_started[key]
        return True

    def _blue_green(
        self,
        status: JSON,
        current: JSON,
        stable: JSON,
        owned: list[JSON],
        replicas: int,
        strategy: JSON,
    ) -> tuple[str, str]:
        self._scale_all(owned, {_hash(current): replicas, _hash(stable): replicas})
        status["blueGreen"] = {"activeSelector": _hash(stable), "previewSelector": _hash(current)}
        if not self._is_ready(self._fresh(current), replicas):
            return "Progressing", "active service cutover pending"
        is_promoted = status.get("controllerPause") and not status.get("pauseConditions")
        if strategy["blueGreen"].get("autoPromotionEnabled", True) or is_promoted:
            return self._promoted(status, current, owned, replicas, strategy)
        return self._paused(status, "BlueGreenPause")

    def _paused(self, status: JSON, reason: str) -> tuple[str, str]:
        """Paused for ``reason``; a pause already there keeps its startTime (no rewrite)."""
        kept = [c for c in status.get("pauseConditions") or [] if c.get("reason") == reason]
        status["pauseConditions"] = kept or [{"reason": reason, "startTime": self._now()}]
        status["controllerPause"] = True
        return "Paused", reason

    # -- ReplicaSets -------------------------------------------------------------------------------

    def _owned(self, rollout: JSON) -> list[JSON]:
        metadata = rollout["metadata"]
        return self._store.list(REPLICASETS, metadata["namespace"], controller=metadata["uid"])

    def _current(self, rollout: JSON, owned: list[JSON]) -> JSON | None:
        # the API server defaults the ReplicaSets' templates: compare with the defaults applied
        template = _defaulted(_without_hash(rollout["spec"]["template"]))
        matching = [
            rs for rs in owned if same_template(_without_hash(rs["spec"]["template"]), template)
        ]
        return max(matching, key=_revision, default=None)

    def _create(self, rollout: JSON, owned: list[JSON]) -> JSON:
        metadata, spec = rollout["metadata"], rollout["spec"]
        template = _without_hash(spec["template"])
        template.setdefault("metadata", {})
        pod_hash = template_hash(template, 0)
        labels = {**(template["metadata"].get("labels") or {}), POD_HASH: pod_hash}
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[POD_HASH] = pod_hash
        revision = 1 + max((_revision(rs) for rs in owned), default=0)
        body = {
            "metadata": {
                "name": f"{metadata['name']}-{pod_hash}",
                "labels": labels,
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [owner_reference(rollout)],
            },
            "spec": {
                "replicas": 0,
                "selector": selector,
                "template": {**template, "metadata": {**template["metadata"], "labels": labels}},
            },
        }
        return self._store.create(REPLICASETS, metadata["namespace"], body)

    def _promote_revision(self, current: JSON, owned: list[JSON]) -> JSON:
        """A rollback reuses an old ReplicaSet: it becomes the newest revision."""
        newest = max((_revision(rs) for rs in owned), default=0)
        if _revision(current) >= newest:
            return current
        updated = copy.deepcopy(current)
        updated["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
        return self._store.write(REPLICASETS, updated)

    def _scale_all(self, owned: list[JSON], sizes: dict[str, int]) -> None:
        """Scale each ReplicaSet to its size in ``sizes`` (by pod hash), the others to 0."""
        for replica_set in owned:
            wanted = max(0, sizes.get(_hash(replica_set), 0))
            fresh = self._fresh(replica_set)
            if fresh["spec"].get("replicas", 0) == wanted:
                continue
            if wanted and not fresh["spec"].get("replicas"):
                self._pods.pods_started(fresh["metadata"]["uid"], is_settled=self._settling)
            fresh["spec"]["replicas"] = wanted
            self._pods.refresh_replica_set(self._store.write(REPLICASETS, fresh))

    def _fresh(self, replica_set: JSON) -> JSON:
        metadata = replica_set["metadata"]
        return self._store.get(REPLICASETS, metadata["namespace"], metadata["name"])

    def _is_ready(self, replica_set: JSON, wanted: int) -> bool:
        self._pods.refresh_replica_set(replica_set)
        available = (self._fresh(replica_set).get("status") or {}).get("availableReplicas", 0)
        return bool(available >= wanted)

    # -- status ------------------------------------------------------------------------------------

    def _write(
        self, rollout: JSON, status: JSON, current: JSON, owned: list[JSON], phase: tuple[str, str]
    ) -> None:
        for replica_set in owned:
            self._pods.refresh_replica_set(replica_set)
        owned = [self._fresh(rs) for rs in owned]

        def total(key: str, sets: list[JSON]) -> int:
            return sum((rs.get("status") or {}).get(key, 0) for rs in sets)

        updated = [rs for rs in owned if _hash(rs) == _hash(current)]
        counts = {
            "replicas": total("replicas", owned),
            "HPAReplicas": total("replicas", owned),
            "updatedReplicas": total("replicas", updated),
            "readyReplicas": total("readyReplicas", owned),
            "availableReplicas": total("availableReplicas", owned),
        }
        for key, value in counts.items():  # omitempty: a zero count is left out
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status["observedGeneration"] = str(rollout["metadata"].get("generation", 1))
        status["selector"] = label_selector_string(rollout["spec"].get("selector"))
        status["phase"], status["message"] = phase
        if not status["message"]:
            del status["message"]
        written = copy.deepcopy(rollout)
        written["metadata"].setdefault("annotations", {})[REVISION] = str(_revision(current))
        written["status"] = status
        self._store.write(ROLLOUTS, written)


def _defaulted(template: JSON) -> JSON:
    """The pod template as the API server would store it in a ReplicaSet."""
    replica_set = {"metadata": {}, "spec": {"replicas": 1, "template": copy.deepcopy(template)}}
    apply_defaults(REPLICASETS, replica_set, cluster_ip="")
    return replica_set["spec"]["template"]
