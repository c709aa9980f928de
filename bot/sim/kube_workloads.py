"""The workloads next to Deployments: the job controller and the pods of ReplicaSets.

Jobs run (status.active=1) until the outcome chosen at their creation — by the most recent
matching `JobRule`, else "complete" after the default delay — is due on the clock; then they
complete or fail with the conditions the real job controller writes. A finished Job with
`ttlSecondsAfterFinished` is deleted that many seconds later, as the TTL-after-finished
controller does.

Pods are not stored: they are generated on every read from the ReplicaSets' status, named
`<replicaset>-<5 chars>` with the template's labels (pod-template-hash included), Ready as the
ReplicaSet's readyReplicas say, and crash-looping where set never-ready.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.sim.kube_controller import REPLICASETS, DeploymentController, owner_reference
from bot.sim.kube_schema import ResourceType
from bot.sim.kube_store import ObjectStore

__all__ = ["JOBS", "PODS", "JobController", "JobOutcome", "JobRule", "generated_pods"]

JSON = Any
JobOutcome = Literal["complete", "failed"]

JOBS = ResourceType("batch", "v1", "jobs", "Job")
PODS = ResourceType("", "v1", "pods", "Pod")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class JobRule:
    namespace: str
    name_prefix: str
    outcome: JobOutcome
    after_seconds: float


class JobController:
    """Runs Jobs to their planned outcome; `rules` are consulted newest first."""

    def __init__(
        self,
        store: ObjectStore,
        clock: Callable[[], float],
        wall_now: Callable[[], str],
        *,
        default_delay_seconds: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._now = wall_now
        self.default_delay_seconds = default_delay_seconds
        self.rules: list[JobRule] = []
        self._plans: dict[str, tuple[JobOutcome, float]] = {}  # job uid → (outcome, due)

    def sync(self) -> None:
        for job in self._store.list(JOBS, None):
            self._sync(job)

    def has_pending(self) -> bool:
        """A Job that has not finished yet, or waits for its TTL (both wait on the clock)."""
        return any(
            not _is_finished(job) or job["spec"].get("ttlSecondsAfterFinished") is not None
            for job in self._store.list(JOBS, None)
        )

    def _sync(self, job: JSON) -> None:
        status = job.get("status") or {}
        if _is_finished(job):
            self._expire(job)
            return
        if job["spec"].get("suspend"):
            return
        uid = job["metadata"]["uid"]
        if uid not in self._plans:
            rule = self._rule(job["metadata"]["namespace"], job["metadata"]["name"])
            self._plans[uid] = (rule.outcome, self._clock() + rule.after_seconds)
        outcome, due = self._plans[uid]
        running: dict[str, JSON] = {
            "startTime": status.get("startTime") or self._now(),
            "active": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        if self._clock() >= due:
            running = _finished_status(self._now(), job, running, outcome)
        self._store.write(JOBS, {**job, "status": running})

    def _expire(self, job: JSON) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        metadata = job["metadata"]
        plan = self._plans.get(metadata["uid"])
        if ttl is None or plan is None or self._clock() < plan[1] + ttl:
            return
        self._store.delete(JOBS, metadata["namespace"], metadata["name"])
        del self._plans[metadata["uid"]]

    def _rule(self, namespace: str, name: str) -> JobRule:
        for rule in reversed(self.rules):
            if rule.namespace == namespace and name.startswith(rule.name_prefix):
                return rule
        return JobRule(namespace, "", "complete", self.default_delay_seconds)


def _is_finished(job: JSON) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") for c in conditions)


def _finished_status(now: str, job: JSON, running: JSON, outcome: JobOutcome) -> JSON:
    """The status a Job ends with, conditions as the job controller (1.31+) writes them."""
    status = {k: v for k, v in running.items() if k != "active"}
    if outcome == "complete":
        reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
        types = ("SuccessCriteriaMet", "Complete")
        status |= {"completionTime": now, "succeeded": job["spec"].get("completions", 1)}
    else:
        reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        types = ("FailureTarget", "Failed")
        status["failed"] = job["spec"].get("backoffLimit", 6) + 1
    status["conditions"] = [
        {
            "type": kind,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
        for kind in types
    ]
    return status


def generated_pods(
    store: ObjectStore, deployments: DeploymentController, namespace: str | None
) -> list[JSON]:
    """The pods the ReplicaSets' status promises, sorted like a list from the server."""
    pods = []
    for replica_set in store.list(REPLICASETS, namespace):
        status = replica_set.get("status") or {}
        ready = status.get("readyReplicas", 0)
        is_crashing = deployments.is_never_ready(replica_set)
        for index in range(status.get("replicas", 0)):
            pods.append(_pod(replica_set, index, index < ready, is_crashing))
    return sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


def _pod(replica_set: JSON, index: int, is_ready: bool, is_crashing: bool) -> JSON:
    metadata = replica_set["metadata"]
    uid = uuid.uuid5(uuid.NAMESPACE_URL, f"{metadata['uid']}/{index}")
    suffix = "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in uid.bytes[:5])
    template = replica_set["spec"]["template"]
    spec = {**copy.deepcopy(template.get("spec") or {}), "nodeName": "sim-node-1"}
    started = metadata["creationTimestamp"]
    containers = spec.get("containers") or []
    ready = "True" if is_ready else "False"
    not_ready = {
        "reason": "ContainersNotReady",
        "message": f"containers with unready status: [{' '.join(c['name'] for c in containers)}]",
    }

    def condition(kind: str, status: str) -> JSON:
        extra = not_ready if status == "False" else {}
        return {"type": kind, "status": status, "lastTransitionTime": started, **extra}

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{metadata['name']}-{suffix}",
            "generateName": f"{metadata['name']}-",
            "namespace": metadata["namespace"],
            "uid": str(uid),
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": started,
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
            "ownerReferences": [owner_reference(replica_set)],
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [
                condition("PodReadyToStartContainers", "True"),
                condition("Initialized", "True"),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", "True"),
            ],
            "hostIP": "10.0.0.10",
            "podIP": f"10.244.{uid.bytes[5]}.{uid.bytes[6] % 250 + 2}",
            "startTime": started,
            "containerStatuses": [
                _container_status(c, is_ready, is_crashing, started) for c in containers
            ],
            "qosClass": "BestEffort",
        },
    }


def _container_status(container: JSON, is_ready: bool, is_crashing: bool, started: str) -> JSON:
    if is_crashing:
        state: JSON = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 5m0s restarting failed container={container['name']}",
            }
        }
    else:
        state = {"running": {"startedAt": started}}
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": is_ready,
        "restartCount": 5 if is_crashing else 0,
        "started": not is_crashing,
        "state": state,
    }
