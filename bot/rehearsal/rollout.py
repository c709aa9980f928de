"""A rehearsal of an Argo Rollout service (``workload: {kind: Rollout}``): the staging Rollout is
read once, and a rehearsal starts only from a Rollout fully promoted and Healthy at its current
revision — an update in progress is someone's, and the rehearsal would roll it back.

From there the rollback's ``rollout_abort`` has nothing to abort (it changes nothing on a Healthy
Rollout), so the rehearsal leaves it out and says so; the undo and its roll-forward are pinned
to the templates read (``expect_template``), as a Deployment's are. After each undo the Argo
controller walks the canary steps again, pauses included: the ``wait_rollout`` step says how to
promote in staging and waits, as in production (the bot never promotes by itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.adapters.kube import argo
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, UndoPlan
from bot.catalog.load import Service
from bot.execution.steps.kubernetes.common import kubectl_undo
from bot.rehearsal.forward import ROLL_FORWARD
from bot.rollback.plan import Plan, StepSpec
from bot.rollback.rehearsable import LEFT_OUT
from bot.rollback.safety import Refusal

# the step kinds that act on a Rollout service's workload by Argo's rules (never a Deployment)
ROLLOUT_STEPS = frozenset({"rollout_undo", "wait_rollout", "rollout_abort"})


def rollout_title(twin: Service, title: str) -> str:
    """What the start reply says it rehearses: ``its own phases of the Argo Rollout checkout``."""
    return f"{title or 'the undo rollback'} of the Argo Rollout {twin.spec.deployment}"


def only_deployments(twin: Service, steps: list[StepSpec], names: list[str]) -> list[str]:
    """The apps/v1 Deployments among ``names`` (without repeats): on a Rollout service, the
    Rollout and what the Rollout steps name are Argo Rollouts."""
    found = list(dict.fromkeys(names))
    if twin.workload_kind != "Rollout":
        return found
    rollouts = {str(s.params.get("deployment")) for s in steps if s.kind in ROLLOUT_STEPS}
    return [n for n in found if n not in {twin.spec.deployment, *rollouts}]


def where_rollout(twin: Service) -> str:
    """``-n shop --context staging`` (kubectl's flags for the staging target)."""
    return f"-n {twin.namespace}" + (f" --context {twin.context}" if twin.context else "")


def undo_command(twin: Service, name: str, revision: object) -> str:
    """``kubectl argo rollouts undo checkout --to-revision=3 -n shop --context staging``."""
    return kubectl_undo(KubeTarget(twin.context, twin.namespace), name, revision, is_rollout=True)


def rollouts_named(twin: Service, steps: list[StepSpec], kinds: frozenset[str]) -> list[str]:
    """The Rollouts the steps of ``kinds`` act on (without repeats): a step without a
    ``deployment`` acts on the service's own."""
    own = twin.spec.deployment
    named = (str(s.params.get("deployment") or own) for s in steps if s.kind in kinds)
    return list(dict.fromkeys(named))


def promote_command(twin: Service, name: str) -> str:
    """``kubectl argo rollouts promote checkout -n shop --context staging``."""
    return f"kubectl argo rollouts promote {name} {where_rollout(twin)}"


def not_promoted(kube: KubernetesClient, twin: Service, name: str) -> str | None:
    """The phase of staging's Rollout ``name`` while it is not fully promoted and Healthy
    (``Paused: CanaryPauseStep``), else None."""
    rollout = kube.read_rollout(KubeTarget(twin.context, twin.namespace), name)
    phase, message = argo.rollout_phase(rollout)
    if argo.is_mid_update(rollout) or phase != argo.HEALTHY:
        return f"{phase}: {message}" if message else phase
    return None


def refuse_mid_update(
    kube: KubernetesClient, twin: Service, steps: list[StepSpec]
) -> dict[str, int]:
    """Refused unless every Rollout the plan acts on (the service's own, and any other its
    phases name) is fully promoted and Healthy in staging: the abort steps the rehearsal leaves
    out would have had nothing to abort. Each one's revision (``kube``: a reading-once view, so
    the plan reads each Rollout once)."""
    revisions: dict[str, int] = {}
    for name in dict.fromkeys([twin.spec.deployment, *rollouts_named(twin, steps, ROLLOUT_STEPS)]):
        try:
            rollout = kube.read_rollout(KubeTarget(twin.context, twin.namespace), name)
        except KubeError as exc:
            raise Refusal(
                f"cannot read staging's Rollout {name} (context {twin.context or 'current'},"
                f" namespace {twin.namespace}): {exc}"
            ) from None
        if why := mid_update(rollout):
            raise Refusal(why)
        revisions[name] = argo.revision_of((rollout.get("metadata") or {}).get("annotations")) or 0
    return revisions


def mid_update(rollout: Mapping[str, Any]) -> str | None:
    """Why a rehearsal cannot start from this Rollout (with what to do), or None when it is
    fully promoted and Healthy."""
    name = argo.name_of(rollout)
    phase, message = argo.rollout_phase(rollout)
    status, spec = argo.status_of(rollout), argo.spec_of(rollout)
    said = f"{phase}: {message}" if message else phase
    if status.get("abort"):
        return (
            f"staging's Rollout {name} has an aborted update ({said}): undo or retry it in"
            " staging first (`kubectl argo rollouts undo` / `retry rollout`), so that it is"
            " Healthy"
        )
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    index = status.get("currentStepIndex")
    paused = phase == argo.PAUSED or bool(spec.get("paused") or status.get("pauseConditions"))
    if argo.is_mid_update(rollout) or paused:
        at = [f"step {int(index) + 1} of {len(steps)}"] if steps and isinstance(index, int) else []
        # Healthy, yet the template's ReplicaSet not the stable one: say that, not the phase
        ahead = "its template's ReplicaSet is not the stable one yet"
        at += ["paused"] if paused else [ahead if phase == argo.HEALTHY else said]
        return (
            f"staging's Rollout {name} is mid-update ({', '.join(at)}): promote or abort it in"
            " staging first (`kubectl argo rollouts promote` / `abort`)"
        )
    if phase != argo.HEALTHY:
        return (
            f"staging's Rollout {name} is not Healthy ({said}): wait until it is (`kubectl argo"
            " rollouts status`), or fix it in staging first"
        )
    return None


def without_abort(
    steps: list[StepSpec], twin: Service, revisions: Mapping[str, int]
) -> tuple[list[StepSpec], tuple[str, ...]]:
    """The plan without its rollout_abort steps, and a note per Rollout that says why."""
    kept = [s for s in steps if s.kind not in LEFT_OUT]
    return kept, tuple(
        f"{name}'s abort is left out: staging's Rollout is fully promoted and Healthy at"
        f" revision {revisions[name]}, so there is no update to abort"
        for name in rollouts_named(twin, steps, LEFT_OUT)
    )


def rollout_now(kube: KubernetesClient, twin: Service) -> str | None:
    """``Rollout checkout at revision 5: Healthy`` (with the controller's message), for the
    report; None for a Deployment service or when it cannot be read."""
    if twin.workload_kind != "Rollout":
        return None
    name = twin.spec.deployment
    try:
        rollout = kube.read_rollout(KubeTarget(twin.context, twin.namespace), name)
    except KubeError as exc:
        return f"could not read Rollout {name}: {exc}"
    phase, message = argo.rollout_phase(rollout)
    revision = argo.revision_of((rollout.get("metadata") or {}).get("annotations")) or 0
    return f"Rollout {name} at revision {revision}: {phase}" + (f" ({message})" if message else "")


def pin_starts(plan: Plan, undos: Mapping[str, UndoPlan]) -> Plan:
    """Each undo (a Deployment's or a Rollout's) pinned to the release it starts from as well
    (``expect_from_template``):
    the rollback to the one read, the roll-forward to the one the rollback goes to. An update
    started in staging after the plan then stops the rehearsal instead of being rolled back."""

    def pinned(s: StepSpec) -> StepSpec:
        undo = undos.get(str(s.params.get("deployment")))
        if s.kind != "rollout_undo" or undo is None:
            return s
        if not s.params.get(ROLL_FORWARD):
            return replace(s, params={**s.params, "expect_from_template": undo.from_template})
        rolled_back = {  # what its refusal names: the release the rollback put there
            "expect_from_template": undo.to_template,
            "expect_from_revision": undo.to_revision,
            "expect_from_images": undo.images_after,
        }
        return replace(s, params={**s.params, **rolled_back})

    return replace(plan, steps=tuple(pinned(s) for s in plan.steps))
