"""A rehearsal's plan: the undo the real rollback would make, run in staging, then the undo
back to the release it started from. Both undos are pinned to the templates read here, so a
deploy to staging in between stops the rehearsal instead of rolling somewhere else."""

from __future__ import annotations

from dataclasses import dataclass

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, Revision, UndoPlan
from bot.catalog.load import Service
from bot.rollback.plan import Plan, StepSpec, step
from bot.rollback.safety import KnownRevision, Refusal, release_label, resolve_target

# The phase of the roll-forward: the rehearsal's timings tell it from the rollback by it.
ROLL_FORWARD_PHASE = "cleanup"


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal will do: its plan, and the undo it rehearses (from → to)."""

    plan: Plan
    undo: UndoPlan


def where(twin: Service) -> str:
    """``context staging, namespace shop, deployment checkout-api``."""
    context = f"context {twin.context}, " if twin.context else ""
    return f"{context}namespace {twin.namespace}, deployment {twin.spec.deployment}"


def plan_rehearsal(kube: KubernetesClient, twin: Service, target: str | None) -> Rehearsal:
    """Read the staging deployment (one read of it and its ReplicaSets) and plan the rehearsal,
    or :class:`Refusal` saying why it cannot run. ``twin`` is the service's staging twin."""
    name = twin.spec.deployment

    def pick(listed: list[Revision], current: int) -> int | None:
        if not target:
            return None  # kubectl's "the previous one", as the production rollback does
        known = [KnownRevision(r.number, r.images, r.template) for r in listed]
        return resolve_target(target, known, deployment=name, current=current)

    try:
        undo, _, _ = kube.preview_undo(KubeTarget(twin.context, twin.namespace), name, pick)
    except KubeError as exc:
        raise Refusal(f"cannot plan the rollback in staging ({where(twin)}): {exc}") from None
    if undo.is_noop:
        raise Refusal(
            f"revision {undo.to_revision} of {name} in staging runs the same template as the"
            f" current revision {undo.from_revision}: rolling back would change nothing."
            " Choose another revision with `--to N`"
        )
    return Rehearsal(Plan("undo", tuple(rehearsal_steps(twin, undo))), undo)


def rehearsal_steps(twin: Service, undo: UndoPlan) -> list[StepSpec]:
    """Snapshot, the rollback and its verification, then the roll-forward and its own."""
    d = twin.spec.deployment
    back, forth = release_label(undo.images_after), release_label(undo.images_before)
    steps = [
        step("preparation", "snapshot", f"Snapshot {d}", objects=[["Deployment", d]]),
        step(
            "application",
            "rollout_undo",
            f"Roll {d} back to revision {undo.to_revision} ({back})",
            deployment=d,
            to_revision=undo.to_revision,
            expect_template=undo.to_template,
        ),
        step("application", "wait_rollout", "Wait for the rollback to roll out", deployment=d),
        *_health("verification", twin, "Health check after the rollback"),
        step(
            ROLL_FORWARD_PHASE,
            "rollout_undo",
            f"Roll {d} forward to revision {undo.from_revision}, where it started ({forth})",
            deployment=d,
            to_revision=undo.from_revision,
            expect_template=undo.from_template,
        ),
        step(ROLL_FORWARD_PHASE, "wait_rollout", "Wait for the roll-forward", deployment=d),
        *_health(ROLL_FORWARD_PHASE, twin, "Health check after the roll-forward"),
    ]
    return steps


def _health(phase: str, twin: Service, name: str) -> list[StepSpec]:
    url = twin.spec.health_url  # the staging health URL (the twin never has production's)
    return [step(phase, "http_check", name, url=url)] if url else []
