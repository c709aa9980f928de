"""What the Kubernetes step kinds share: API errors in words, polling through API blips, and
the small formatting helpers their notes and dry-run lines use."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.session import TRANSIENT_STATUSES
from bot.adapters.kube.values import PIN_CHANGED, KubeError, KubeTarget
from bot.adapters.kube.workload import Workload, workload
from bot.catalog.load import Service
from bot.execution.steps.base import StepContext, StepFailed, StepRunner, TimedOut

API_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Service": "v1",
    "Job": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
    "Rollout": "argoproj.io/v1alpha1",
}
POLL_SECONDS = 1.0


def kube_errors(fn: StepRunner) -> StepRunner:
    """Every Kubernetes error surfaces as StepFailed with the API's words."""

    @functools.wraps(fn)
    def run(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return fn(ctx, params)
        except KubeError as exc:
            if exc.reason == PIN_CHANGED:  # a rehearsal's conditional write: nothing written
                raise StepFailed(
                    f"{exc} in staging (someone changed staging meanwhile, as this step wrote);"
                    " nothing was changed. Check staging and start a new rehearsal."
                ) from exc
            raise StepFailed(f"Kubernetes: {exc}") from exc

    return run


def deployment(ctx: StepContext, params: Mapping[str, Any]) -> str:
    return str(params.get("deployment") or ctx.service.spec.deployment)


def workload_of(kube: KubernetesClient, service: Service) -> Workload:
    """The service's Deployment or Argo Rollout, with the rules of its kind."""
    return workload(kube, service.workload_kind)


def api_version_of(entry: Any) -> tuple[str, str, str]:
    """(kind, name, api version) of a snapshot entry ``[kind, name]`` or ``[kind, name, api]``."""
    kind, name = str(entry[0]), str(entry[1])
    api_version = str(entry[2]) if len(entry) > 2 else API_VERSIONS.get(kind, "v1")
    return kind, name, api_version


def _is_transient(exc: KubeError) -> bool:
    """Worth waiting out: an overloaded or restarting API server, or one out of reach."""
    return exc.status in TRANSIENT_STATUSES or exc.reason == "Unreachable"


def _in_words(exc: KubeError) -> str:
    return f"{exc} (HTTP {exc.status} {exc.reason})" if exc.status else str(exc)


@dataclass
class Seen:
    """What a Kubernetes wait saw last, for its timeout message."""

    status: str = "no answer yet"
    error: str | None = None  # the last transient API error, in words
    is_failing: bool = False  # the latest poll met that error

    def __str__(self) -> str:
        if self.is_failing:
            return f"the Kubernetes API kept failing, last error: {self.error}"
        recovered = f"; last Kubernetes API error (recovered): {self.error}" if self.error else ""
        return f"last status: {self.status}{recovered}"


def poll_kube(ctx: StepContext, what: str, read: Callable[[], tuple[bool, str]], seen: Seen) -> str:
    """``ctx.poll_until`` for a check that reads Kubernetes; ``read`` gives (is_done, status).

    The client retries an API error for a few seconds only; a control-plane blip during a
    ten-minute rollout must not fail the rollback while the cluster carries on. So a transient
    error (429, 5xx, unreachable, timed out) is "not done yet" until the step's deadline, and
    the timeout names it. Any other API error (403, 404, 422 …) fails at once.
    """

    def check() -> str | None:
        try:
            is_done, status = read()
        except KubeError as exc:
            if not _is_transient(exc):
                raise StepFailed(f"{what}: Kubernetes: {_in_words(exc)}") from exc
            if seen.error is None:  # once per step: an outage must not flood the thread
                ctx.note(
                    f"{what}: the Kubernetes API is failing ({_in_words(exc)});"
                    " still waiting, until the step's timeout"
                )
            seen.error, seen.is_failing = _in_words(exc), True
            return None
        seen.status, seen.is_failing = status, False
        return status if is_done else None

    try:
        return ctx.poll_until(check, POLL_SECONDS, what)
    except TimedOut as exc:
        raise TimedOut(f"{exc}; {seen}") from None


def selector_text(selector: Mapping[str, str]) -> str:
    """A label selector as kubectl takes it: ``app=storefront,version=blue``."""
    return ",".join(f"{k}={v}" for k, v in selector.items()) or "(none)"


def images_text(images: Mapping[str, str]) -> str:
    return ", ".join(f"{c}={i}" for c, i in images.items())


def kubectl_undo(t: KubeTarget, name: str, revision: object, *, is_rollout: bool) -> str:
    """The kubectl command a person runs to roll ``name`` to ``revision`` in ``t``: ``kubectl
    argo rollouts undo …`` for an Argo Rollout, ``kubectl rollout undo deployment/…`` else."""
    if is_rollout:
        where = f"-n {t.namespace}" + (f" --context {t.context}" if t.context else "")
        return f"kubectl argo rollouts undo {name} --to-revision={revision} {where}"
    context = f"--context {t.context} " if t.context else ""
    return (
        f"kubectl {context}-n {t.namespace} rollout undo deployment/{name} --to-revision={revision}"
    )
