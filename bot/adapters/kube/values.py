"""Values the Kubernetes adapter hands out: targets, deployments, revisions, plans, KubeError."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# ── values the adapter hands out ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class KubeTarget:
    context: str | None
    namespace: str


# a conditional write found the object changed since the value its caller pinned: nothing written
PIN_CHANGED = "PinChanged"


class KubeError(Exception):
    """A Kubernetes failure in words. ``status`` is the HTTP status, None for local problems."""

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Revision:
    number: int
    images: dict[str, str]
    replicaset: str
    created: datetime | None
    change_cause: str | None
    template: str = ""  # fingerprint of the pod template (see kubectl.template_fingerprint)


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    revision: int
    images: dict[str, str]
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    is_paused: bool
    generation: int
    observed_generation: int
    selector: dict[str, str]


@dataclass(frozen=True)
class ReleasePods:
    """The pods of one ReplicaSet (one revision) of a Deployment."""

    revision: int
    images: dict[str, str]
    replicas: int  # pods that exist now (status.replicas)
    available: int
    is_current: bool  # the Deployment's template: the release a finished rollout runs


@dataclass(frozen=True)
class ReleaseState:
    """Which pods run which release, per ReplicaSet: availableReplicas alone counts them all."""

    deployment: str
    revision: int
    replicas: int  # wanted (spec.replicas)
    releases: list[ReleasePods]  # the current revision first, then older ones with pods
    rollout: RolloutStatus


@dataclass(frozen=True)
class UndoPlan:
    deployment: str
    from_revision: int
    to_revision: int
    images_before: dict[str, str]
    images_after: dict[str, str]
    is_noop: bool  # the template already matches (kubectl: "skipped rollback")
    # fingerprints of the pod templates (kubectl.template_fingerprint): a release's identity,
    # which revision numbers are not (an undo re-labels the old ReplicaSet with a new number)
    from_template: str = ""
    to_template: str = ""
    # an Argo Rollout's controller has picked up its spec (generation and template), so
    # from_template is what it runs; always so for a Deployment
    is_observed: bool = True


@dataclass(frozen=True)
class RolloutStatus:
    is_complete: bool
    is_failed: bool
    message: str
    is_paused: bool = False  # an Argo Rollout waiting for a promote (phase Paused)


@dataclass(frozen=True)
class JobState:
    phase: Literal["running", "complete", "failed"]
    message: str


@dataclass(frozen=True)
class DeploymentRevision:
    """One Deployment's revision annotation and images, as a list or a watch event saw them;
    ``resource_version`` is where a watch resumes from (the list's, or the event's)."""

    name: str
    revision: int
    images: dict[str, str]
    resource_version: str


@dataclass(frozen=True)
class DeploymentListing:
    """Every Deployment of one namespace from one LIST, and the list's resourceVersion."""

    deployments: dict[str, DeploymentRevision]
    resource_version: str


@dataclass(frozen=True)
class AccessCheck:
    """One request the bot would make, as an authorizer sees it (RBAC's words)."""

    verb: str  # get, list, create, patch …
    group: str  # "" for the core group
    resource: str  # plural, e.g. deployments
    namespace: str
    name: str = ""  # "" for a create (the name is not known to the authorizer then)
    subresource: str = ""  # e.g. scale

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        qualified = f"{resource}.{self.group}" if self.group else resource
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {qualified}{named} in {self.namespace}"


@dataclass(frozen=True)
class AccessDecision:
    """A SelfSubjectAccessReview's answer (authorization.k8s.io/v1 status)."""

    is_allowed: bool
    is_denied: bool
    reason: str
    evaluation_error: str = ""
