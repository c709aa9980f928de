"""The workload a service runs as — an apps/v1 Deployment or an Argo Rollout — behind one
interface, so that the undo, the wait, the checks before a rollback and the guard run the same
code for both: :func:`workload` picks kubectl's rules or ``kubectl argo rollouts``' ones."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.adapters.kube import argo
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import (
    DeploymentInfo,
    DeploymentListing,
    DeploymentRevision,
    KubeTarget,
    ReleaseState,
    Revision,
    RolloutStatus,
    UndoPlan,
)

WorkloadKind = Literal["Deployment", "Rollout"]
DEPLOYMENT: WorkloadKind = "Deployment"
ROLLOUT: WorkloadKind = "Rollout"
API_VERSIONS: dict[str, str] = {DEPLOYMENT: "apps/v1", ROLLOUT: argo.API_VERSION}
Pick = Callable[[list[Revision], int], "int | None"]


class Workload(Protocol):
    """What the bot does to the workload of a service, whatever its kind."""

    @property
    def kind(self) -> WorkloadKind: ...

    @property
    def noun(self) -> str:
        """The kind in a sentence: ``deployment`` or ``rollout``."""
        ...

    def info(self, t: KubeTarget, name: str) -> DeploymentInfo: ...

    def history(self, t: KubeTarget, name: str) -> list[Revision]: ...

    def preview_undo(
        self, t: KubeTarget, name: str, pick: Pick
    ) -> tuple[UndoPlan, list[Revision], int]: ...

    def undo(
        self,
        t: KubeTarget,
        name: str,
        to_revision: int | None,
        *,
        dry_run: bool = False,
        before_patch: Callable[[UndoPlan], None] | None = None,
    ) -> UndoPlan: ...

    def rollout_status(self, t: KubeTarget, name: str) -> RolloutStatus: ...

    def release_state(self, t: KubeTarget, name: str) -> ReleaseState: ...

    def revisions(self, t: KubeTarget) -> DeploymentListing:
        """Every workload of this kind in ``t.namespace``: name → revision and images."""
        ...

    def watch(
        self, t: KubeTarget, resource_version: str, *, timeout_seconds: int, stop: threading.Event
    ) -> Iterator[DeploymentRevision]:
        """One watch request on the workloads of this kind in ``t.namespace``."""
        ...


@dataclass(frozen=True)
class Deployments:
    """kubectl's rules: ``rollout undo``, ``rollout status`` (apps/v1 Deployments)."""

    kube: KubernetesClient
    kind: WorkloadKind = DEPLOYMENT
    noun: str = "deployment"

    def info(self, t: KubeTarget, name: str) -> DeploymentInfo:
        return self.kube.deployment(t, name)

    def history(self, t: KubeTarget, name: str) -> list[Revision]:
        return self.kube.history(t, name)

    def preview_undo(
        self, t: KubeTarget, name: str, pick: Pick
    ) -> tuple[UndoPlan, list[Revision], int]:
        return self.kube.preview_undo(t, name, pick)

    def undo(
        self,
        t: KubeTarget,
        name: str,
        to_revision: int | None,
        *,
        dry_run: bool = False,
        before_patch: Callable[[UndoPlan], None] | None = None,
    ) -> UndoPlan:
        return self.kube.undo(t, name, to_revision, dry_run=dry_run, before_patch=before_patch)

    def rollout_status(self, t: KubeTarget, name: str) -> RolloutStatus:
        return self.kube.rollout_status(t, name)

    def release_state(self, t: KubeTarget, name: str) -> ReleaseState:
        return self.kube.release_state(t, name)

    def revisions(self, t: KubeTarget) -> DeploymentListing:
        return self.kube.deployment_revisions(t)

    def watch(
        self, t: KubeTarget, resource_version: str, *, timeout_seconds: int, stop: threading.Event
    ) -> Iterator[DeploymentRevision]:
        return self.kube.watch_deployments(
            t, resource_version, timeout_seconds=timeout_seconds, stop=stop
        )


@dataclass(frozen=True)
class Rollouts:
    """``kubectl argo rollouts``' rules: ``undo``, ``status`` (argoproj.io/v1alpha1 Rollouts)."""

    kube: KubernetesClient
    kind: WorkloadKind = ROLLOUT
    noun: str = "rollout"

    def info(self, t: KubeTarget, name: str) -> DeploymentInfo:
        return self.kube.rollout_info(t, name)

    def history(self, t: KubeTarget, name: str) -> list[Revision]:
        return self.kube.rollout_history(t, name)

    def preview_undo(
        self, t: KubeTarget, name: str, pick: Pick
    ) -> tuple[UndoPlan, list[Revision], int]:
        return self.kube.rollout_preview_undo(t, name, pick)

    def undo(
        self,
        t: KubeTarget,
        name: str,
        to_revision: int | None,
        *,
        dry_run: bool = False,
        before_patch: Callable[[UndoPlan], None] | None = None,
    ) -> UndoPlan:
        return self.kube.rollout_undo(
            t, name, to_revision, dry_run=dry_run, before_patch=before_patch
        )

    def rollout_status(self, t: KubeTarget, name: str) -> RolloutStatus:
        return self.kube.rollout_phase(t, name)

    def release_state(self, t: KubeTarget, name: str) -> ReleaseState:
        return self.kube.rollout_release_state(t, name)

    def revisions(self, t: KubeTarget) -> DeploymentListing:
        return self.kube.rollout_revisions(t)

    def watch(
        self, t: KubeTarget, resource_version: str, *, timeout_seconds: int, stop: threading.Event
    ) -> Iterator[DeploymentRevision]:
        return self.kube.watch_rollouts(
            t, resource_version, timeout_seconds=timeout_seconds, stop=stop
        )


def workload(kube: KubernetesClient, kind: str) -> Workload:
    """The workload interface for ``kind`` (the catalog's ``workload.kind``)."""
    return Rollouts(kube) if kind == ROLLOUT else Deployments(kube)
