"""``/rollback run --dry-run``: the plan with the exact object changes, reading the cluster only.

Every object a step would read is read, and every write a step would make is sent as a
server-side dry run (``dryRun=All``), so a missing object, a refused permission, or an admission
or validation error shows up here rather than in the middle of a real rollback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.adapters.kube.values import KubeError, KubeTarget
from bot.catalog.load import Service
from bot.execution.preflight import Refusal, check
from bot.execution.steps.base import DryRun, StepFailed
from bot.execution.steps.table import STEPS
from bot.notify.blocks import escape
from bot.rollback.command import UsageError
from bot.rollback.phases import PhaseSelection, select_phases
from bot.rollback.plan import PHASE_TITLES, Plan, StepSpec

if TYPE_CHECKING:
    from bot.deps import Deps


def _describe(dry: DryRun, s: StepSpec) -> str:
    kind = STEPS.get(s.kind)
    if kind is None:  # the catalog check refuses unknown kinds; the engine would fail it
        raise StepFailed(f"unknown step kind {s.kind!r}")
    return kind.describe(dry, s)


def describe_plan(
    deps: Deps,
    service: Service,
    plan: Plan,
    target_revision: str | None,
    *,
    is_forced: bool = False,
    problems: list[str] | None = None,
    phases: Sequence[str] = (),
) -> str:
    """The plan as the checks of a real run would resolve it (``plan`` is shown as it is when
    they refuse), with the refusal or the overridden warnings on top. What would refuse or fail
    a real run now is also appended to ``problems``, when given. ``phases`` (``--phases``):
    the skipped phases are listed as such, and nothing of theirs is read."""
    found: list[str] = [] if problems is None else problems
    t = KubeTarget(service.context, service.namespace)
    dry = DryRun(deps.kube, service, t)
    lines = [
        f"*Dry run: rollback of {service.name}* ({plan.strategy}, namespace {t.namespace}"
        + (f", context {t.context}" if t.context else "")
        + ") — nothing was changed."
    ]
    selection = _selection(plan, phases, service)
    if selection.is_partial:
        lines.append(f"Phases: *{selection.describe()}* — only the selected phases would run.")
    try:
        checked = check(
            deps, service, target_revision, is_forced=is_forced, pin=False, phases=phases
        )
    except Refusal as refusal:
        lines.append(f":no_entry: *A real run would be refused now:* {escape(str(refusal))}.")
        found.append(str(refusal))
    else:
        plan = checked.plan
        lines += [f":warning: {escape(w)}." for w in checked.warnings]
    phase, region = None, None
    for n, s in enumerate(plan.steps, 1):
        if s.region != region:  # a multi-region plan: each region read on its own cluster
            region, phase, dry = s.region, None, _region_dry_run(deps, service, s, lines)
        is_skipped = s.phase in selection.skipped
        if s.phase != phase:
            phase = s.phase
            lines.append(f"*{PHASE_TITLES[phase]}*" + (" — skipped" if is_skipped else ""))
        if is_skipped:  # never run, so never read: the dry run reads only what would run
            lines.append(f"  {n}. {escape(s.name)} — skipped (phase not selected)")
            continue
        try:
            what = _describe(dry, s)
        except (KubeError, StepFailed) as exc:
            what = f":warning: would fail now: {escape(str(exc))}"
            found.append(f"step {n} ({s.name}) would fail now: {exc}")
        marker = " :no_entry: *point of no return*" if s.is_irreversible else ""
        lines.append(f"  {n}. {escape(s.name)}{marker} — {what}")
    ponr = plan.point_of_no_return
    lines.append(
        f"Point of no return: step *{escape(ponr.name)}*" if ponr else "Point of no return: none"
    )
    if ponr and ponr.phase in selection.skipped:
        lines[-1] += " — skipped (its phase is not selected)"
    return "\n".join(lines)


def _region_dry_run(deps: Deps, service: Service, s: StepSpec, lines: list[str]) -> DryRun:
    """What reads the cluster of the region ``s`` is in (headed in ``lines``)."""
    regional = service.in_region(s.region) if s.region else service
    lines.append(f":world_map: *{s.region}* (wave {(s.wave or 0) + 1})")
    return DryRun(deps.kube, regional, KubeTarget(regional.context, regional.namespace))


def _selection(plan: Plan, phases: Sequence[str], service: Service) -> PhaseSelection:
    """What ``phases`` selects; the whole plan when it names a phase the plan does not have
    (the checks' refusal, shown on top, says so)."""
    try:
        return select_phases(plan, phases, service.name)
    except UsageError:
        return PhaseSelection(tuple(plan.phases))
