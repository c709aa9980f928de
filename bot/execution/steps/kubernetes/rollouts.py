"""``rollout_abort``: stop an Argo Rollout's running canary or blue-green update, as
``kubectl argo rollouts abort`` does (``status.abort: true`` on the status subresource): the
controller sends all traffic back to the stable ReplicaSet and scales the new one down. The
pod template stays the new one until ``rollout_undo`` puts the previous revision's back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.adapters.kube import argo
from bot.execution.steps.base import ACCEPTED, DryRun, StepContext, StepFailed
from bot.execution.steps.kubernetes.common import deployment, kube_errors
from bot.notify.blocks import escape
from bot.rollback.plan import StepSpec


def _nothing_to_abort(rollout: Mapping[str, Any]) -> str | None:
    """Why there is no update to abort, or None when one is under way."""
    if argo.is_mid_update(rollout):
        return None
    if argo.status_of(rollout).get("abort"):
        return "its update is aborted already"
    return "no update is under way (the stable ReplicaSet runs the current template)"


def _require_rollout(kind: str, name: str) -> None:
    if kind != "Rollout":
        raise StepFailed(
            f"rollout_abort aborts an Argo Rollout's update, and {name} is a {kind}"
            " (set workload: {kind: Rollout} in the catalog)"
        )


@kube_errors
def rollout_abort(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = deployment(ctx, params)
    _require_rollout(ctx.service.workload_kind, name)
    rollout = ctx.kube.read_rollout(ctx.target, name)
    why = _nothing_to_abort(rollout)
    if ctx.previous.get("aborted") and why is not None:  # an earlier attempt's patch went out
        return dict(ctx.previous)
    revision = argo.revision_of((rollout.get("metadata") or {}).get("annotations")) or 0
    if why is not None:
        ctx.note(f"{name}: {why}; nothing to abort")
        return {"aborted": False, "why": why}
    ctx.remember({"aborted": True, "revision": revision})  # before the patch: a resume skips it
    ctx.kube.abort_rollout(ctx.target, name)
    ctx.note(
        f"{name}: update to revision {revision} aborted (`kubectl argo rollouts abort`): the"
        " stable ReplicaSet takes all traffic again"
    )
    return {"aborted": True, "revision": revision}


def describe_rollout_abort(dry: DryRun, s: StepSpec) -> str:
    name = dry.deployment(s.params)
    _require_rollout(dry.service.workload_kind, name)
    rollout = dry.kube.read_rollout(dry.target, name)
    why = _nothing_to_abort(rollout)
    if why is not None:
        return f"{escape(name)}: {escape(why)} — nothing to abort now"
    phase, message = argo.rollout_phase(rollout)
    dry.kube.abort_rollout(dry.target, name, dry_run=True)
    return (
        f"aborts {escape(name)}'s update (now {escape(phase)}"
        + (f": {escape(message)}" if message else "")
        + f"), as `kubectl argo rollouts abort` does; {ACCEPTED}"
    )
