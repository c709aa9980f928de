"""A Deployment service's built-in undo rehearsal (strategy undo, no phases): the undo read in
staging, then its plan — snapshot, the rollback and its verification, the roll-forward and its
own. Also what every rehearsal plan shares: where staging is, its health-check steps."""

from __future__ import annotations

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, Revision, UndoPlan
from bot.adapters.kube.workload import workload
from bot.catalog.load import Service
from bot.rehearsal.forward import forward_step
from bot.rollback.plan import StepSpec, step
from bot.rollback.safety import KnownRevision, Refusal, release_label, resolve_target


def where(twin: Service) -> str:
    """``context staging, namespace shop, deployment checkout-api``."""
    context = f"context {twin.context}, " if twin.context else ""
    noun = "rollout" if twin.workload_kind == "Rollout" else "deployment"
    return f"{context}namespace {twin.namespace}, {noun} {twin.spec.deployment}"


def read_undo(kube: KubernetesClient, twin: Service, name: str, target: str | None) -> UndoPlan:
    """The undo the rollback makes in staging (one read of the deployment and its ReplicaSets);
    refused when it would change nothing."""

    def pick(listed: list[Revision], current: int) -> int | None:
        if not target:
            return None  # kubectl's "the previous one", as the production rollback does
        known = [KnownRevision(r.number, r.images, r.template) for r in listed]
        return resolve_target(target, known, deployment=name, current=current)

    try:
        undos = workload(kube, twin.workload_kind)  # a Rollout service's undos are Rollouts'
        undo, _, _ = undos.preview_undo(KubeTarget(twin.context, twin.namespace), name, pick)
    except KubeError as exc:
        raise Refusal(f"cannot plan the rollback in staging ({where(twin)}): {exc}") from None
    if undo.is_noop:
        raise Refusal(
            f"revision {undo.to_revision} of {name} in staging runs the same template as the"
            f" current revision {undo.from_revision}: rolling back would change nothing."
            " Choose another revision with `--to N`"
        )
    return undo


def rehearsal_steps(twin: Service, undo: UndoPlan) -> list[StepSpec]:
    """Strategy undo: snapshot, the rollback and its verification, then the roll-forward and
    its own."""
    d = twin.spec.deployment
    back, forth = release_label(undo.images_after), release_label(undo.images_before)
    return [
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
        *health_steps("verification", twin, "Health check after the rollback"),
        forward_step(
            "rollout_undo",
            f"Roll {d} forward to revision {undo.from_revision}, where it started ({forth})",
            deployment=d,
            to_revision=undo.from_revision,
            expect_template=undo.from_template,
        ),
        forward_step("wait_rollout", "Wait for the roll-forward", deployment=d),
        *forward_health(twin),
    ]


def health_steps(phase: str, twin: Service, name: str) -> list[StepSpec]:
    url = twin.spec.health_url  # the staging health URL (the twin never has production's)
    return [step(phase, "http_check", name, url=url)] if url else []


def forward_health(twin: Service) -> list[StepSpec]:
    url = twin.spec.health_url
    name = "Health check after the roll-forward"
    return [forward_step("http_check", name, url=url)] if url else []
