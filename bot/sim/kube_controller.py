"""The deployment controller of the simulated cluster, as in kube-controller-manager.

`DeploymentController.sync()` is one reconcile pass over every Deployment and ReplicaSet, cheap
enough to run around every request and from a ticker. A pass reaches the fixed point for the
current clock, so a second pass writes nothing and resourceVersions stay put between reads.

What it does (pkg/controller/deployment, simplified to instant scaling):
- the ReplicaSets of a Deployment are those whose ownerReferences name it as controller;
- a ReplicaSet whose pod template (minus pod-template-hash) equals the Deployment's is the new
  one — on rollback it is reused and gets revision max+1, the old number going to
  `deployment.kubernetes.io/revision-history`; otherwise a ReplicaSet `<deployment>-<hash>` is
  created with the next revision;
- a RollingUpdate grows the new ReplicaSet within maxSurge and shrinks the old ones only as far
  as maxUnavailable allows, so old pods keep serving until new ones are available (Recreate
  scales at once); new pods become ready `ready_delay_seconds` after the rollout started —
  never, for pods set never-ready (a whole deployment, or the templates that run a given
  image: a crash-looping release) — and ProgressDeadlineExceeded follows when
  progressDeadlineSeconds pass without the rollout completing;
- a paused Deployment gets no new ReplicaSet; old ReplicaSets beyond revisionHistoryLimit go.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.sim.kube_defaults import POD_TEMPLATE_HASH, same_template, template_without_hash
from bot.sim.kube_index import json_copy
from bot.sim.kube_rolling import (
    REVISION,
    controller_reference,
    max_surge,
    max_unavailable,
    owner_reference,
    revision_of,
    rolled_sizes,
    template_hash,
    with_status,
)
from bot.sim.kube_schema import ResourceType
from bot.sim.kube_store import ObjectStore

__all__ = [
    "DEPLOYMENTS",
    "REPLICASETS",
    "REVISION",
    "DeploymentController",
    "controller_reference",
    "owner_reference",
]

JSON = Any

DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment")
REPLICASETS = ResourceType("apps", "v1", "replicasets", "ReplicaSet")

REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations the controller does not copy onto its ReplicaSets.
_NOT_COPIED = frozenset(
    {REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS}
    | {"kubectl.kubernetes.io/last-applied-configuration"}
)


@dataclass
class _Rollout:
    replica_set_uid: str
    started_at: float
    is_paused: bool


class DeploymentController:
    """Reconciles Deployments → ReplicaSets. `never_ready` holds (namespace, deployment, image)
    triples: image None stands for every pod of the deployment."""

    def __init__(
        self,
        store: ObjectStore,
        clock: Callable[[], float],
        wall_now: Callable[[], str],
        *,
        ready_delay_seconds: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._now = wall_now
        self.ready_delay_seconds = ready_delay_seconds
        self.never_ready: set[tuple[str, str, str | None]] = set()
        self._rollouts: dict[str, _Rollout] = {}  # by deployment uid
        self._ready_at: dict[str, float] = {}  # ReplicaSet uid → clock time its pods are ready

    def sync(self) -> None:
        deployments = self._store.list(DEPLOYMENTS, None)
        for deployment in deployments:
            self.reconcile_replica_sets(deployment)
        for replica_set in self._store.list(REPLICASETS, None):
            self._sync_replica_set_status(replica_set)
        for deployment in deployments:
            self._sync_deployment_status(deployment)

    def pods_started(self, replica_set_uid: str, *, is_settled: bool = False) -> None:
        """Another controller (Argo Rollouts') scaled this ReplicaSet up from 0: its pods
        become ready after the delay (at once when settled)."""
        delay = 0.0 if is_settled else self.ready_delay_seconds
        self._ready_at[replica_set_uid] = self._clock() + delay

    def refresh_replica_set(self, replica_set: JSON) -> None:
        """Write the status of one ReplicaSet now (for another controller that just scaled it)."""
        self._sync_replica_set_status(replica_set)

    def is_never_ready(self, replica_set: JSON) -> bool:
        """Whether the pods of this ReplicaSet crash-loop: its deployment was set never-ready, or
        one of its template's containers runs an image that was."""
        owner = (controller_reference(replica_set) or {}).get("name")
        namespace = replica_set["metadata"]["namespace"]
        spec = replica_set["spec"]["template"].get("spec") or {}
        images = {c.get("image") for c in spec.get("containers") or []}
        images |= {c.get("image") for c in spec.get("initContainers") or []}
        return any((namespace, owner, image) in self.never_ready for image in (None, *images))

    def reconcile_replica_sets(self, deployment: JSON, *, is_settled: bool = False) -> None:
        """Create or reuse the ReplicaSet of the current template and scale all of them.

        `is_settled` makes the new pods ready at once (seeding a deployment's history).
        """
        spec = deployment["spec"]
        current = self._current_replica_set(deployment)
        if not spec.get("paused"):
            if current is None:
                current = self._create_replica_set(deployment)
            current = self._promote(deployment, current)
        self._track_rollout(deployment, current, is_settled=is_settled)
        if current is not None:
            owned = self._owned(deployment)
            sizes = self._rolled(deployment, current, owned)
            for replica_set in owned:
                self._scale(deployment, replica_set, sizes[replica_set["metadata"]["uid"]])
        self._clean_up_history(deployment, current)

    def _rolled(self, deployment: JSON, current: JSON, owned: list[JSON]) -> dict[str, int]:
        ready = {rs["metadata"]["uid"]: self._is_ready(rs) for rs in owned}
        return rolled_sizes(deployment["spec"], current, owned, ready)

    def _owned(self, deployment: JSON) -> list[JSON]:
        return self._store.list(
            REPLICASETS,
            deployment["metadata"]["namespace"],
            controller=deployment["metadata"]["uid"],
        )

    def _current_replica_set(self, deployment: JSON) -> JSON | None:
        template = deployment["spec"]["template"]
        return next(
            (
                replica_set
                for replica_set in self._owned(deployment)
                if same_template(replica_set["spec"]["template"], template)
            ),
            None,
        )

    def _create_replica_set(self, deployment: JSON) -> JSON:
        metadata, spec = deployment["metadata"], deployment["spec"]
        namespace = metadata["namespace"]
        collisions = (deployment.get("status") or {}).get("collisionCount", 0)
        template = template_without_hash(spec["template"])
        while True:
            pod_hash = template_hash(template, collisions)
            name = f"{metadata['name']}-{pod_hash}"
            if self._store.find(REPLICASETS, namespace, name) is None:
                break
            collisions += 1  # a name taken by another template: what status.collisionCount is for
        labels = {**(template["metadata"].get("labels") or {}), POD_TEMPLATE_HASH: pod_hash}
        selector = json_copy(spec["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = pod_hash
        revision = 1 + max((revision_of(rs) for rs in self._owned(deployment)), default=0)
        body = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": {**template, "metadata": {**template["metadata"], "labels": labels}},
            },
        }
        if collisions:
            self._store.write(DEPLOYMENTS, with_status(deployment, collisionCount=collisions))
        return self._store.create(REPLICASETS, namespace, body)

    def _promote(self, deployment: JSON, current: JSON) -> JSON:
        """Make `current` the newest revision (a rollback reuses an old ReplicaSet)."""
        newest = max((revision_of(rs) for rs in self._owned(deployment)), default=0)
        updated = json_copy(current)
        annotations = updated["metadata"].setdefault("annotations", {})
        if revision_of(current) < newest:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(revision_of(current))])
            annotations[REVISION] = str(newest + 1)
        for key, value in (deployment["metadata"].get("annotations") or {}).items():
            if key not in _NOT_COPIED:
                annotations[key] = value
        return self._store.write(REPLICASETS, updated)

    def _track_rollout(self, deployment: JSON, current: JSON | None, *, is_settled: bool) -> None:
        if current is None:
            return
        uid, now = deployment["metadata"]["uid"], self._clock()
        is_paused = bool(deployment["spec"].get("paused"))
        rollout = self._rollouts.get(uid)
        current_uid = current["metadata"]["uid"]
        if rollout is None or rollout.replica_set_uid != current_uid:
            self._rollouts[uid] = _Rollout(current_uid, now, is_paused)
            self._ready_at[current_uid] = now if is_settled else now + self.ready_delay_seconds
        elif rollout.is_paused and not is_paused:
            rollout.started_at = now  # resuming restarts the progress deadline (DeploymentResumed)
        self._rollouts[uid].is_paused = is_paused

    def _scale(self, deployment: JSON, replica_set: JSON, replicas: int) -> None:
        updated = json_copy(replica_set)
        updated["spec"]["replicas"] = replicas
        annotations = updated["metadata"].setdefault("annotations", {})
        want = deployment["spec"]["replicas"]
        annotations[DESIRED_REPLICAS] = str(want)
        annotations[MAX_REPLICAS] = str(want + max_surge(deployment["spec"]))
        self._store.write(REPLICASETS, updated)

    def _clean_up_history(self, deployment: JSON, current: JSON | None) -> None:
        """Delete scaled-down ReplicaSets beyond spec.revisionHistoryLimit, oldest first."""
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        current_uid = current["metadata"]["uid"] if current else None
        old = sorted(
            (
                rs
                for rs in self._owned(deployment)
                if rs["metadata"]["uid"] != current_uid and rs["spec"].get("replicas", 0) == 0
            ),
            key=revision_of,
        )
        for replica_set in old[: max(len(old) - limit, 0)]:
            metadata = replica_set["metadata"]
            self._store.delete(REPLICASETS, metadata["namespace"], metadata["name"])

    def _sync_replica_set_status(self, replica_set: JSON) -> None:
        replicas = replica_set["spec"].get("replicas", 0)
        ready = replicas if self._is_ready(replica_set) else 0
        status: dict[str, JSON] = {"replicas": replicas}
        # The API omits zero counts (omitempty), so clients read None, not 0.
        if replicas:
            status["fullyLabeledReplicas"] = replicas
        if ready:
            status |= {"readyReplicas": ready, "availableReplicas": ready}
        status["observedGeneration"] = replica_set["metadata"].get("generation", 1)
        self._store.write(REPLICASETS, {**replica_set, "status": status})

    def _is_ready(self, replica_set: JSON) -> bool:
        if self.is_never_ready(replica_set):
            return False
        return self._clock() >= self._ready_at.get(replica_set["metadata"]["uid"], -math.inf)

    def _sync_deployment_status(self, deployment: JSON) -> None:
        # Re-read: reconciling may have written the deployment (collisionCount).
        metadata = deployment["metadata"]
        deployment = self._store.find(DEPLOYMENTS, metadata["namespace"], metadata["name"])
        if deployment is None:
            return
        owned = self._owned(deployment)
        current = self._current_replica_set(deployment)
        updated = json_copy(deployment)
        if current is not None:
            annotations = updated["metadata"].setdefault("annotations", {})
            annotations[REVISION] = str(revision_of(current))
        updated["status"] = self._deployment_status(deployment, current, owned)
        self._store.write(DEPLOYMENTS, updated)

    def _deployment_status(self, deployment: JSON, current: JSON | None, owned: list[JSON]) -> JSON:
        spec, old_status = deployment["spec"], deployment.get("status") or {}
        want = spec["replicas"]

        def total(key: str) -> int:
            return sum((rs.get("status") or {}).get(key, 0) for rs in owned)

        counts = {
            "replicas": total("replicas"),
            "updatedReplicas": ((current or {}).get("status") or {}).get("replicas", 0),
            "readyReplicas": total("readyReplicas"),
            "availableReplicas": total("availableReplicas"),
        }
        counts["unavailableReplicas"] = max(
            sum(rs["spec"].get("replicas", 0) for rs in owned) - counts["availableReplicas"], 0
        )
        status: dict[str, JSON] = {"observedGeneration": deployment["metadata"]["generation"]}
        status |= {key: value for key, value in counts.items() if value}
        is_available = counts["availableReplicas"] >= want - max_unavailable(spec)
        is_complete = all(counts[k] == want for k in ("updatedReplicas", "replicas"))
        is_complete = is_complete and counts["availableReplicas"] == want
        previous = {c["type"]: c for c in old_status.get("conditions") or []}
        available = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if is_available
            else (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        )
        status["conditions"] = [
            self._condition(previous, "Available", *available),
            self._condition(
                previous, "Progressing", *self._progress(deployment, current, is_complete)
            ),
        ]
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        return status

    def _progress(
        self, deployment: JSON, current: JSON | None, is_complete: bool
    ) -> tuple[str, str, str]:
        if deployment["spec"].get("paused"):
            return "Unknown", "DeploymentPaused", "Deployment is paused"
        name = current["metadata"]["name"] if current else ""
        if is_complete:
            return (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
        rollout = self._rollouts.get(deployment["metadata"]["uid"])
        deadline = deployment["spec"].get("progressDeadlineSeconds", 600)
        if rollout is not None and self._clock() - rollout.started_at > deadline:
            return (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
            )
        return "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.'

    def _condition(
        self, previous: dict[str, JSON], kind: str, status: str, reason: str, message: str
    ) -> JSON:
        """A condition whose timestamps only move when its status (or reason/message) does."""
        now = self._now()
        old = previous.get(kind) or {}
        is_same_status = old.get("status") == status
        is_same_update = is_same_status and old.get("reason") == reason
        is_same_update = is_same_update and old.get("message") == message
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": old.get("lastUpdateTime", now) if is_same_update else now,
            "lastTransitionTime": old.get("lastTransitionTime", now) if is_same_status else now,
            "reason": reason,
            "message": message,
        }
