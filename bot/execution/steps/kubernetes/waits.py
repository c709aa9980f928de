"""Step kinds that wait on the cluster: a rollout to complete, a Job to end."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from bot.adapters.kube.values import KubeError, KubeTarget
from bot.execution.steps.base import ACCEPTED, Aborted, DryRun, StepContext, StepFailed, TimedOut
from bot.execution.steps.kubernetes.common import (
    Seen,
    deployment,
    kube_errors,
    poll_kube,
    workload_of,
)
from bot.notify.blocks import escape
from bot.rollback.plan import StepSpec

ROLLBACK_LABEL = "rollback-bot/rollback"
RUN_LABEL = "rollback-bot/run"  # a random id per run_job step: the Job's identity
DEFAULT_JOB_TTL_SECONDS = 3600  # Kubernetes removes a finished Job after this
MIN_JOB_TTL_SECONDS = 60


@kube_errors
def wait_rollout(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Wait until the rollout is complete by kubectl's rules; fail on its progress deadline.
    An Argo Rollout is waited for as ``kubectl argo rollouts status`` does: done when its
    status.phase is Healthy, failed when Degraded (Paused and Progressing wait, with the
    controller's message).

    kubectl counts a deployment of 0 replicas as rolled out. ``min_available`` (for a
    deployment about to take traffic, e.g. blue-green's stable colour) also asks for that many
    available pods, and fails at once when the deployment is scaled to 0.
    """
    name = deployment(ctx, params)
    kind = workload_of(ctx.kube, ctx.service)
    min_available = int(params.get("min_available", 0))
    seen = Seen()
    short_of: int | None = None  # available pods, while fewer than min_available
    is_paused_noted = False

    def read() -> tuple[bool, str]:
        nonlocal short_of, is_paused_noted
        short_of = None
        status = kind.rollout_status(ctx.target, name)
        if status.is_failed:
            raise StepFailed(status.message)
        if status.is_paused and not is_paused_noted:  # once: a canary pause waits for a person
            is_paused_noted = True
            ctx.note(_paused(ctx, name, status.message))
        if not status.is_complete or min_available <= 0:
            return status.is_complete, status.message
        info = kind.info(ctx.target, name)
        if info.replicas == 0:  # nothing will bring pods back by itself
            raise StepFailed(
                f"{_too_few_pods(kind.noun, name, 0, min_available)} (scaled to 0 replicas)"
            )
        if info.available_replicas < min_available:
            short_of = info.available_replicas
            return False, f"{short_of} available pods, {min_available} needed"
        return True, status.message

    try:
        return {"status": poll_kube(ctx, f"rollout of {name}", read, seen)}
    except TimedOut as exc:
        if short_of is not None and not seen.is_failing:
            too_few = _too_few_pods(kind.noun, name, short_of, min_available)
            raise StepFailed(f"{too_few} ({exc})") from None
        raise


def _paused(ctx: StepContext, name: str, message: str) -> str:
    t = ctx.target
    where = f"{f'--context {t.context} ' if t.context else ''}-n {t.namespace}"
    return (
        f":double_vertical_bar: {message}: the rollout goes on when someone promotes it"
        f" (`kubectl argo rollouts promote {name} {where}`, `--full` to skip the remaining"
        f" steps); this step waits until its timeout ({ctx.timeout_seconds:g} s)"
    )


def _too_few_pods(noun: str, name: str, available: int, wanted: int) -> str:
    have = "no available pods" if available == 0 else f"only {available} available pods"
    return f"{noun} {name} has {have} ({wanted} needed); scale it up before switching traffic to it"


def describe_wait_rollout(dry: DryRun, s: StepSpec) -> str:
    name = dry.deployment(s.params)
    kind = workload_of(dry.kube, dry.service)
    status = kind.rollout_status(dry.target, name)
    rules = "kubectl argo rollouts status" if kind.noun == "rollout" else "kubectl's rules"
    return (
        f"waits until {name} is rolled out by {rules} (≤ {s.timeout_seconds:g} s);"
        f" now: {escape(status.message)}"
    )


@kube_errors
def run_job(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Run a Job from the catalog's template (user-supplied container) and wait for its end.

    The Job is ours only if it carries this step's run id: a random id remembered with the step
    before the create, so a resumed attempt knows its own Job and nothing else is taken for it
    (rollback ids restart with a new database and repeat across installations sharing a
    namespace). The default name carries the run id too. A finished Job is removed by
    Kubernetes after ``ttl_seconds_after_finished`` (the bot has no delete permission).

    A timeout or an abort leaves the Job running, and says so: it is often a database
    migration, and stopping one half-way can be worse than letting it finish.
    """
    ttl = job_ttl(params)
    run_id = str(ctx.previous.get("run_id") or secrets.token_hex(4))
    job = str(
        ctx.previous.get("job")
        or params.get("job_name")
        or f"rollback-{ctx.rollback_id}-{ctx.position}-{run_id}"
    )
    spec = {**dict(params["job"]), "ttlSecondsAfterFinished": ttl}
    ctx.remember({"job": job, "run_id": run_id})  # before the create: a resume knows its Job
    labels = {ROLLBACK_LABEL: str(ctx.rollback_id), RUN_LABEL: run_id}
    ctx.kube.create_job(ctx.target, job, spec, labels=labels)
    seen = Seen()

    def read() -> tuple[bool, str]:
        try:
            state = ctx.kube.job_state(ctx.target, job)
        except KubeError as exc:
            if exc.status != 404:
                raise
            raise StepFailed(
                f"Job {job} is gone before the bot saw it end: deleted by someone, or removed"
                f" {ttl} s after it finished (ttl_seconds_after_finished); its result is unknown"
            ) from None
        if state.phase == "failed":
            raise StepFailed(f"Job {job} failed: {state.message}")
        return state.phase == "complete", state.message

    try:
        status = poll_kube(ctx, f"Job {job}", read, seen)
    except TimedOut as exc:
        left = _left_running(ctx.target, job, seen)
        ctx.remember({"left_running": left})
        raise StepFailed(f"{exc}. {left}") from None
    except Aborted:
        left = _left_running(ctx.target, job, seen)
        ctx.remember({"left_running": left})
        ctx.note(f":warning: {left}")
        raise Aborted(left) from None
    return {"job": job, "run_id": run_id, "status": status}


def job_ttl(params: Mapping[str, Any]) -> int:
    """Seconds Kubernetes keeps a finished Job: the step's parameter, the template's, or 1 h."""
    raw = params.get("ttl_seconds_after_finished")
    if raw is None:
        raw = dict(params["job"]).get("ttlSecondsAfterFinished", DEFAULT_JOB_TTL_SECONDS)
    try:
        ttl = int(raw)
    except (TypeError, ValueError):
        ttl = -1
    if ttl < MIN_JOB_TTL_SECONDS or isinstance(raw, bool):
        raise StepFailed(
            f"ttl_seconds_after_finished must be a whole number of seconds of at least"
            f" {MIN_JOB_TTL_SECONDS} (the bot must see the Job end before it goes), not {raw!r}"
        )
    return ttl


def _left_running(t: KubeTarget, job: str, seen: Seen) -> str:
    kubectl = " ".join(
        ["kubectl", *(["--context", t.context] if t.context else []), "-n", t.namespace]
    )
    state = "may still be running" if seen.is_failing else "is still running"
    return (
        f"Job {job} {state} in namespace {t.namespace}; it was not stopped"
        f" (check it with `{kubectl} get job {job}`)"
    )


def describe_run_job(dry: DryRun, s: StepSpec) -> str:
    p = s.params
    spec = {**dict(p["job"]), "ttlSecondsAfterFinished": job_ttl(p)}
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    images = ", ".join(str(c.get("image")) for c in containers)
    run_id = secrets.token_hex(4)
    name = str(p.get("job_name") or f"rollback-dry-run-{run_id}")
    labels = {ROLLBACK_LABEL: "dry-run", RUN_LABEL: run_id}
    dry.kube.create_job(dry.target, name, spec, labels=labels, dry_run=True)
    job = f"Job {escape(name)}" if p.get("job_name") else "a Job"
    return (
        f"creates {job} from the catalog's template ({escape(images)}) and waits for it to end"
        f" (≤ {s.timeout_seconds:g} s); {ACCEPTED}"
    )
