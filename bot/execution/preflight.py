"""The checks a rollback passes before anything is stored, posted or paged.

Every way a rollback starts (``run --immediate``, the assessment's *Roll back now*, a planned
request, its approved start, the dry run) calls :func:`check_rollback` first: it builds the
plan, resolves ``--to`` against the deployment's real history, and refuses what would make
things worse (re-deploying a release the bot rolled back from, crossing the point of no return)
with the reason and what to do. So a refused command never notifies or pages anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeError, KubeTarget, Revision, UndoPlan
from bot.adapters.kube.workload import workload
from bot.catalog.load import PlanError, Service
from bot.rollback.command import UsageError
from bot.rollback.phases import PhaseSelection, check_subset, select_phases
from bot.rollback.plan import Plan, StepSpec
from bot.rollback.safety import (
    KnownRevision,
    Refusal,
    RolledBackFrom,
    flip_flop_text,
    release_label,
    resolve_target,
    revisions_text,
    rolled_back_from,
)
from storage.repository import Repository


class Handles(Protocol):
    """What the checks need of the app (bot.deps.Deps has them): the cluster, the database, the
    clock. A protocol, so this module stands below the app rather than importing it."""

    @property
    def kube(self) -> KubernetesClient: ...

    @property
    def repo(self) -> Repository: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def audit(
        self,
        kind: str,
        about: str,
        actor: str | None = None,
        /,
        *,
        channel_id: str | None = None,
        message_ts: str | None = None,
        **detail: Any,
    ) -> None: ...


FORWARD_FIX = (
    "The runbook's answer past the point of no return is a forward fix: deploy a compensating"
    " change (schema migration, data transformation, patch release) instead of rolling back."
)

__all__ = [
    "FORWARD_FIX",
    "Checked",
    "Refusal",
    "audit_refusal",
    "check",
    "check_rollback",
    "crosses_point_of_no_return",
    "phases_problem",
]


@dataclass(frozen=True)
class Checked:
    """A plan that passed the checks, with every undo's target resolved to a number."""

    plan: Plan
    target_revision: str | None  # what the rollback row records: the resolved number, if asked
    warnings: tuple[str, ...] = ()  # overridden refusals (an approver's --force), said aloud
    selection: PhaseSelection | None = None  # the phases it runs (--phases); None: all


def crosses_point_of_no_return(service: Service, from_revision: int, to_revision: int) -> bool:
    ponr = service.spec.point_of_no_return
    return ponr is not None and from_revision >= ponr.revision > to_revision


def point_of_no_return_text(service: Service, from_revision: int, to_revision: int) -> str:
    ponr = service.spec.point_of_no_return
    assert ponr is not None
    return (
        f"going from revision {from_revision} to {to_revision} crosses the point of no return at"
        f" revision {ponr.revision} ({ponr.reason}). {FORWARD_FIX} An approver can override with"
        " `--force`"
    )


def undone_releases(repo: Repository, service: Service) -> list[RolledBackFrom]:
    """The releases earlier rollbacks of ``service`` moved away from, newest first."""
    found = []
    for rollback, step in repo.finished_undos(service.name):
        undo = step.detail.get("undo") or {}
        params = step.detail.get("params") or {}
        assert rollback.id is not None
        found.append(
            RolledBackFrom(
                rollback_id=rollback.id,
                deployment=str(
                    undo.get("deployment") or params.get("deployment") or service.spec.deployment
                ),
                revision=int(undo.get("from_revision") or 0),
                images=dict(undo.get("images_before") or {}),
                template=str(undo.get("from_template") or ""),
                at=step.finished_at,
            )
        )
    return found


def phases_problem(service: Service, names: Sequence[str]) -> str | None:
    """Why ``--phases`` names a phase the service's plan does not have (a usage error, said
    before any check), or None. A plan that cannot be built is the checks' to report."""
    if not names:
        return None
    try:
        select_phases(service.plan(None), names, service.name)
    except PlanError:
        return None
    except UsageError as exc:
        return str(exc)
    return None


def check(
    deps: Handles,
    service: Service,
    target: str | None,
    *,
    is_forced: bool = False,
    pin: bool = True,
    phases: Sequence[str] = (),
) -> Checked:
    """:func:`check_rollback` with the app's cluster, database and clock."""
    return check_rollback(
        deps.kube,
        deps.repo,
        service,
        target,
        now=deps.clock(),
        is_forced=is_forced,
        pin=pin,
        phases=phases,
    )


def audit_refusal(
    deps: Handles,
    event: str,
    service: Service,
    user: str,
    refusal: Refusal,
    *,
    channel_id: str | None = None,
    **detail: Any,
) -> None:
    """A refused start is audited before it is answered: whoever reads the audit can rely on it."""
    deps.audit(event, service.name, user, channel_id=channel_id, why=str(refusal), **detail)


def check_rollback(
    kube: KubernetesClient,
    repo: Repository,
    service: Service,
    target: str | None,
    *,
    now: datetime,
    is_forced: bool = False,
    pin: bool = True,
    phases: Sequence[str] = (),
) -> Checked:
    """The plan to run, or :class:`Refusal`. ``pin`` fixes each undo to the exact revision and
    template checked here (an immediate rollback starts now: the step refuses if the
    deployment changed in between); a planned request is checked again when it starts.
    ``phases`` (``--phases``) selects a subset, checked by ``bot.rollback.phases``'s rules;
    only the undos of the selected phases are checked (and resolved). A multi-region service
    is checked region by region (``_check_regions``), each with the same selection."""
    try:
        plan = service.plan(None)
        selection = select_phases(plan, phases, service.name)
    except (PlanError, UsageError) as exc:
        raise Refusal(str(exc)) from None
    warnings = check_subset(plan, selection, is_forced=is_forced)  # said once, for every region
    if service.regions and service.region is None:
        return _check_regions(
            kube, repo, service, target, now=now, is_forced=is_forced, pin=pin, phases=phases
        )
    undo_steps = [
        s for s in plan.steps if s.kind == "rollout_undo" and s.phase in selection.selected
    ]
    if target and not undo_steps:
        which = "the selected phases of " if selection.is_partial else ""
        raise Refusal(
            f"`--to` chooses the revision a `rollout_undo` step goes back to, and {which}"
            f"{service.name}'s plan ({plan.strategy}) has no such step. Leave out `--to`, or"
            " change the catalog."
        )
    steps: list[StepSpec] = []
    undos: list[UndoPlan] = []
    history = undone_releases(repo, service) if undo_steps else []
    for s in plan.steps:
        if s.kind != "rollout_undo" or s.phase in selection.skipped:  # a skipped undo never runs
            steps.append(s)
            continue
        checked, undo, warning = _check_undo(
            kube, service, s, target, history, now=now, is_forced=is_forced, pin=pin
        )
        steps.append(checked)
        undos.append(undo)
        warnings += warning
    resolved = str(undos[0].to_revision) if target and undos else None
    return Checked(replace(plan, steps=tuple(steps)), resolved, tuple(warnings), selection)


def _check_regions(
    kube: KubernetesClient,
    repo: Repository,
    service: Service,
    target: str | None,
    *,
    now: datetime,
    is_forced: bool,
    pin: bool,
    phases: Sequence[str],
) -> Checked:
    """Every region checked against its own cluster, all at once; the plan is the regions'
    plans in wave order, each step naming its region and wave. The first refusal (in wave
    order) refuses the whole rollback, named with its region. Every region runs the same
    ``--phases`` selection (the regions share the service's plan)."""
    order = [(w, name) for w, wave in enumerate(service.waves) for name in wave]
    with ThreadPoolExecutor(max_workers=max(1, len(order)), thread_name_prefix="check") as pool:
        futures = [
            pool.submit(
                check_rollback,
                *(kube, repo, service.in_region(name), target),
                now=now,
                is_forced=is_forced,
                pin=pin,
                phases=phases,
            )
            for _, name in order
        ]
    steps: list[StepSpec] = []
    said: dict[str, list[str]] = {}  # each warning, and the regions that gave it
    resolved: str | None = None
    selection: PhaseSelection | None = None
    for (w, name), future in zip(order, futures, strict=True):
        try:
            checked = future.result()
        except Refusal as refusal:
            raise Refusal(f"{name}: {refusal}") from None
        steps += [replace(s, region=name, wave=w) for s in checked.plan.steps]
        for x in checked.warnings:
            said.setdefault(x, []).append(name)
        resolved = resolved or checked.target_revision
        selection = selection or checked.selection
    warnings = [x if len(r) == len(order) else f"{', '.join(r)}: {x}" for x, r in said.items()]
    strategy = service.spec.strategy
    return Checked(Plan(strategy, tuple(steps)), resolved, tuple(warnings), selection)


def _check_undo(
    kube: KubernetesClient,
    service: Service,
    s: StepSpec,
    target: str | None,
    history: list[RolledBackFrom],
    *,
    now: datetime,
    is_forced: bool,
    pin: bool,
) -> tuple[StepSpec, UndoPlan, list[str]]:
    deployment = str(s.params.get("deployment") or service.spec.deployment)
    own = s.params.get("to_revision")
    own_text = str(own) if own not in (None, "") else None
    if target and own_text and service.spec.phases is not None and own_text != target:
        raise Refusal(
            f"the catalog's step *{s.name}* always goes back to revision {own_text}; `--to"
            f" {target}` cannot change that. Leave out `--to`, or remove `to_revision` from the"
            " step in the catalog."
        )
    wanted_text = target or own_text
    t = KubeTarget(service.context, service.namespace)

    def pick(listed: list[Revision], current: int) -> int | None:
        if not wanted_text:
            return None  # kubectl's "the previous one"
        known = [KnownRevision(r.number, r.images, r.template) for r in listed]
        return resolve_target(wanted_text, known, deployment=deployment, current=current)

    try:
        undos = workload(kube, service.workload_kind)
        undo, listed, current = undos.preview_undo(t, deployment, pick)
    except KubeError as exc:
        raise Refusal(f"cannot plan the undo of {deployment}: {exc}. Nothing was changed") from None
    revisions = [KnownRevision(r.number, r.images, r.template) for r in listed]
    warnings = _undo_warnings(
        service,
        deployment,
        undo,
        history,
        now=now,
        is_forced=is_forced,
        is_chosen=bool(wanted_text),
        revisions_now=f"revisions of {deployment}: {revisions_text(revisions, current)}",
    )
    if not (pin or wanted_text):  # checked again at the start, against the cluster of then
        return s, undo, warnings
    params = {**s.params, "to_revision": undo.to_revision}
    if pin:
        params["expect_template"] = undo.to_template
    name = s.name
    if service.spec.phases is None:  # the built-in plan names the revision it goes back to
        name = f"Roll {deployment} back to revision {undo.to_revision}"
    return replace(s, name=name, params=params), undo, warnings


def _undo_warnings(
    service: Service,
    deployment: str,
    undo: UndoPlan,
    history: list[RolledBackFrom],
    *,
    now: datetime,
    is_forced: bool,
    is_chosen: bool,
    revisions_now: str,
) -> list[str]:
    """What makes this undo unsafe: a :class:`Refusal`, or the warnings of an approver's
    ``--force`` (re-deploying a rolled-back release also needs the revision chosen, ``--to``)."""
    warnings = []
    if crosses_point_of_no_return(service, undo.from_revision, undo.to_revision):
        if not is_forced:
            raise Refusal(point_of_no_return_text(service, undo.from_revision, undo.to_revision))
        warnings.append(
            f"crosses the point of no return (revision {undo.from_revision} →"
            f" {undo.to_revision}): forced by an approver"
        )
    earlier = rolled_back_from(
        history, deployment=deployment, template=undo.to_template, images=undo.images_after
    )
    if earlier is not None and not undo.is_noop:
        text = flip_flop_text(service.name, earlier, now)
        if not (is_chosen and is_forced):
            raise Refusal(
                f"{text} ({revisions_now}). Re-deploying it on purpose"
                " needs `--to N` and an approver's `--force`."
            )
        warnings.append(
            f"re-deploys {release_label(undo.images_after)}, which #{earlier.rollback_id} rolled"
            " back from: forced by an approver"
        )
    return warnings
