"""Immediate rollbacks (``/rollback run … --immediate`` and **Roll back now**) and aborts: the
rules a responder's start passes, the stored row and plan, and the abort transition."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from bot.approvals.request import store_rollback
from bot.approvals.shared import approver_members
from bot.approvals.waiting import cancel_waiting, supersede_pending
from bot.assessment.recent import recent_assessment
from bot.assessment.service import assessed_regions, pressed_assessment, stale_reply
from bot.catalog.load import PlanError, Service
from bot.deps import Deps
from bot.execution.dry_run import describe_plan
from bot.execution.engine import started_work
from bot.execution.preflight import Checked, Refusal, audit_refusal, check, phases_problem
from bot.notify import blocks
from bot.notify.blocks import escape
from bot.notify.reply import Asker, Reply, Respond, tell_on_error
from bot.notify.status import progress_link, progress_url
from bot.regions.text import plan_regions_line
from bot.rollback import policy
from bot.rollback.command import Command
from bot.rollback.lifecycle import WAITING, AssessmentStatus, RollbackKind, RollbackStatus
from bot.rollback.phases import PhaseSelection
from bot.rollback.plan import Plan
from bot.rollback.text import unmentioned
from storage.models import Assessment, Rollback
from storage.repo.records import ActiveRollbackExists

log = logging.getLogger(__name__)


class Started(NamedTuple):
    """What :func:`start_immediate` tells the person, and the rollback's id if one started."""

    text: str
    rollback_id: int | None = None


def run(deps: Deps, cmd: Command, service: Service, asker: Asker) -> Reply:
    """``/rollback run <service> [--immediate] [--dry-run] [--force] [--to N] [--phases p,…]
    [reason]``."""
    user = asker.user
    try:
        service = service.only_regions(cmd.regions)  # --region: a partial rollback
        plan = service.plan(None)
    except PlanError as exc:
        return Reply(f":x: {exc}")
    if (problem := phases_problem(service, cmd.phases)) is not None:
        return Reply(f":x: {escape(problem)}. Nothing was started.")
    if cmd.is_dry_run:
        return Reply(
            f":mag: Dry run of a rollback of *{service.name}*: reading the cluster…",
            then=lambda: _submit_dry_run(deps, service, plan, cmd, asker),
        )
    if not cmd.is_immediate:
        subset = f" --phases {','.join(cmd.phases)}" if cmd.phases else ""
        subset += f" --region {','.join(cmd.regions)}" if cmd.regions else ""
        return Reply(
            f"A planned rollback of *{service.name}* needs approval: `/rollback plan"
            f" {service.name} [--to N] [--at HH:MM]{subset} <reason>`. Responders can run it now"
            f" with `/rollback run {service.name} --immediate{subset} <reason>`."
        )
    if not policy.may_run_immediately(service, user):
        _refused(deps, service, user, "not a responder")  # stored before the answer
        return Reply(
            f":no_entry: Only responders of *{service.name}* may run an immediate rollback:"
            f" {policy.who_may_run(service)}. Ask one of them, or request approval with"
            f" `/rollback plan {service.name}`."
        )
    if cmd.is_forced and not _may_force(deps, service, user):
        _refused(deps, service, user, "--force by a non-approver")
        return Reply(":no_entry: `--force` (past the point of no return) is for approvers only.")
    reason, assessment_id = cmd.reason.strip(), None
    if not reason:  # a recent assessment's decision says why; else the person must
        latest = recent_assessment(deps.repo, service.name, deps.clock())
        if latest is None:
            return Reply(
                f":x: Say why: `/rollback run {service.name} --immediate <reason>` (or assess"
                f" it first: `/rollback assess {service.name}`, whose decision becomes the"
                " reason). Nothing was started."
            )
        reason, assessment_id = assessment_reason(latest), latest.id
    started = start_immediate(
        deps,
        service,
        user=user,
        reason=reason,
        target_revision=cmd.target_revision,
        is_forced=cmd.is_forced,
        assessment_id=assessment_id,
        channel_id=asker.channel,
        phases=cmd.phases,
    )
    return Reply(started.text)


def run_now(deps: Deps, value: str, user: str, where: dict[str, str | None]) -> Reply:
    """**Roll back now** on an assessment (``value`` is ``service:assessment_id``): a responder's
    immediate rollback of the release it assessed, with that assessment as its reason.
    ``where`` holds the button's ``channel_id`` and ``message_ts``."""
    service_name, _, assessment = value.partition(":")
    service = deps.catalog.get(service_name)
    if service is None:
        return Reply(f":x: {service_name} is no longer in the catalog.")
    if not policy.may_run_immediately(service, user):
        why, via = "not a responder", "assessment button"
        deps.audit("rollback.refused", service.name, user, **where, why=why, via=via)
        return Reply(
            f":no_entry: Only responders of *{service.name}* may roll back at once:"
            f" {policy.who_may_run(service)}. Use *Plan rollback* to ask for approval."
        )
    assessment_id = int(assessment) if assessment.isdigit() else None
    found = pressed_assessment(deps, assessment_id)
    service = assessed_regions(service, found)  # before: the same release
    if (stale := stale_reply(deps, service, found)) is not None:
        return stale
    started = start_immediate(
        deps,
        service,
        user=user,
        reason=_reason_of(found, assessment_id),
        target_revision=None,
        assessment_id=assessment_id,
        channel_id=where.get("channel_id"),
    )
    return Reply(started.text)


def _may_force(deps: Deps, service: Service, user: str) -> bool:
    return policy.may_force(service, user, approver_members(deps, service))


def _refused(deps: Deps, service: Service, user: str, why: str) -> None:
    deps.audit("rollback.refused", service.name, user, why=why)


def assessment_reason(a: Assessment) -> str:
    """``assessment #4: IMMEDIATE ROLLBACK (critical 55, total 70)``."""
    return f"assessment #{a.id}: {a.decision} (critical {a.critical_score}, total {a.total_score})"


def _reason_of(found: Assessment | None, assessment_id: int | None) -> str:
    """Roll back now says why with the assessment it was pressed on."""
    if found is None or found.status != AssessmentStatus.DONE:
        return f"from assessment #{assessment_id}" if assessment_id else "from an assessment"
    return assessment_reason(found)


def start_immediate(
    deps: Deps,
    service: Service,
    *,
    user: str,
    reason: str,
    target_revision: str | None,
    is_forced: bool = False,
    assessment_id: int | None = None,
    channel_id: str | None = None,
    phases: Sequence[str] = (),
) -> Started:
    """Check, store and start an immediate rollback (the caller checked the user is a
    responder, and an approver for ``is_forced``); returns what to tell them, and the
    rollback's id when one started. A refusal is audited and said before anything is stored,
    superseded, notified or paged; a planned request still waiting is superseded only by a
    rollback that starts. ``phases``: the subset of the plan to run (``--phases``; empty: all)."""
    try:
        checked = check(deps, service, target_revision, is_forced=is_forced, phases=phases)
    except Refusal as refusal:
        detail: dict[str, object] = {"target": target_revision, "forced": is_forced}
        if phases:
            detail["phases"] = list(phases)
        return Started(_refused_start(deps, service, user, refusal, channel_id, detail))
    plan = _forced(checked.plan) if is_forced else checked.plan
    superseded = supersede_pending(deps, service.name, user)
    try:  # the row and its plan are stored before the ack: a crash after it loses nothing
        rollback = _store(
            deps, service, plan, checked, user=user, reason=reason, assessment_id=assessment_id
        )
    except ActiveRollbackExists as exc:
        active = deps.repo.get_rollback(exc.existing_id)
        return Started(
            f":warning: A rollback of *{service.name}* is already active:"
            f" #{exc.existing_id}{progress_link(progress_url(deps, active))}. Follow it there, or"
            f" `/rollback abort {exc.existing_id}`."
        )
    # The start is audited before anything acts on it, and handed to the engine before the
    # ack, so whoever reads the ack can rely on the rollback being under way.
    assert rollback.id is not None
    selection = _partial(checked)
    deps.audit(
        "rollback.started",
        rollback,
        user,
        channel_id=channel_id,
        kind=RollbackKind.IMMEDIATE,
        approval="skipped: responder",
        reason=reason,
        forced=is_forced,
        assessment_id=assessment_id,
        superseded=superseded,
        warnings=list(checked.warnings),
        **({"phases": selection.describe()} if selection else {}),
    )
    deps.engine.submit(rollback.id)
    deps.engine.kick_due_work()  # the start's notices and pages go out now
    text = _started_text(deps, service, rollback.id, checked, plan, superseded)
    return Started(text, rollback.id)


def _started_text(
    deps: Deps, service: Service, rid: int, checked: Checked, plan: Plan, superseded: int | None
) -> str:
    """What the responder is told: the plan's size (and phases, when partial), a multi-region
    rollback's regions and waves, and where to follow it; what an approver's ``--force``
    overrode is said aloud."""
    note = f" It replaces request #{superseded}, which was waiting." if superseded else ""
    note = _regions_note(deps, service, plan) + note
    note += "".join(f"\n:warning: {escape(w)}." for w in checked.warnings)
    steps = f"{len(plan.steps)} steps"
    if selection := _partial(checked):
        running = sum(s.phase in selection.selected for s in plan.steps)
        steps = f"{running} of {len(plan.steps)} steps; phases {selection.describe()}"
    return (
        f":arrows_counterclockwise: Rollback #{rid} of *{service.name}* started"
        f" ({plan.strategy}, {steps}). Progress in <#{service.channel}>.{note}"
    )


def _regions_note(deps: Deps, service: Service, plan: Plan) -> str:
    """Which regions, in which waves; a partial rollback says which are left as they are."""
    where = plan_regions_line(deps.catalog.get(service.name) or service, plan)
    return f"\n:world_map: {where}." if where else ""


def _refused_start(
    deps: Deps,
    service: Service,
    user: str,
    refusal: Refusal,
    channel_id: str | None,
    detail: Mapping[str, object],
) -> str:
    """Audited before it is said; nothing was stored, superseded, notified or paged."""
    audit_refusal(deps, "rollback.refused", service, user, refusal, channel_id=channel_id, **detail)
    return (
        f":no_entry: No rollback of *{service.name}* was started: {escape(str(refusal))}."
        " Nothing was changed and nobody was paged."
    )


def _store(
    deps: Deps,
    service: Service,
    plan: Plan,
    checked: Checked,
    *,
    user: str,
    reason: str,
    assessment_id: int | None,
) -> Rollback:
    """The running rollback's row, its steps and its start's listeners, in one transaction
    (raises ActiveRollbackExists)."""
    return store_rollback(
        deps,
        service,
        plan,
        RollbackKind.IMMEDIATE,
        RollbackStatus.RUNNING,
        user=user,
        reason=reason,
        target_revision=checked.target_revision,
        assessment_id=assessment_id,
        now=deps.clock(),
        schedule=lambda rid: [started_work(rid, deps.clock())],  # notices, pages, SLA
        selection=checked.selection,
    )


def _partial(checked: Checked) -> PhaseSelection | None:
    """The selection of a partial rollback (``--phases``); None for the whole plan."""
    selection = checked.selection
    return selection if selection is not None and selection.is_partial else None


def _forced(plan: Plan) -> Plan:
    steps = tuple(
        replace(s, params={**s.params, "force": True}) if s.kind == "rollout_undo" else s
        for s in plan.steps
    )
    return replace(plan, steps=steps)


def _dry_run(
    deps: Deps, service: Service, plan: Plan, cmd: Command, is_forced: bool, respond: Respond
) -> None:
    """Say what the rollback would do now, read from the cluster (nothing is changed)."""
    try:
        text = describe_plan(
            deps, service, plan, cmd.target_revision, is_forced=is_forced, phases=cmd.phases
        )
    except Exception as exc:  # Kubernetes errors are in the text; anything else is said here
        log.exception("dry run of %s failed", service.name)
        text = (
            f":x: The dry run of *{service.name}* failed ({type(exc).__name__}); nothing was"
            " changed. The bot's log has the details."
        )
    respond(text=text, response_type="ephemeral")


def abort(deps: Deps, cmd: Command, asker: Asker) -> Reply:
    """``/rollback abort <id> [reason]``: cancel a waiting request, or stop a running rollback
    before its next step (who and why are kept as its end)."""
    user = asker.user
    assert cmd.rollback_id is not None
    rollback = deps.repo.get_rollback(cmd.rollback_id)
    if rollback is None:
        return Reply(f":x: There is no rollback #{cmd.rollback_id}.")
    service = deps.catalog.target_of(rollback.service)  # a rehearsal's: its staging twin
    members = approver_members(deps, service) if service else set()
    if service is None or not policy.may_abort(service, user, rollback.requested_by, members):
        deps.audit("rollback.abort_refused", rollback, user)
        return Reply(":no_entry: Only the requester, responders and approvers may abort it.")
    is_waiting = rollback.status in WAITING
    if is_waiting and cancel_waiting(deps, cmd.rollback_id, user, cmd.reason) is not None:
        return Reply(
            f":heavy_multiplication_x: Rollback #{cmd.rollback_id} cancelled before it ran."
        )
    aborted_by = f"aborted by <@{user}>" + (f": {unmentioned(cmd.reason)}" if cmd.reason else "")
    moved = deps.repo.set_rollback_status(  # who and why, kept as the rollback's end
        cmd.rollback_id,
        RollbackStatus.ABORTING,
        deps.clock(),
        error=aborted_by,
        expected=(RollbackStatus.RUNNING,),
    )
    if moved is None:
        return Reply(
            f"{blocks.status_sentence(cmd.rollback_id, rollback.status)}; nothing to abort."
        )
    deps.audit("rollback.abort_requested", rollback, user, reason=cmd.reason)
    deps.engine.request_abort(cmd.rollback_id)
    return Reply(
        f":octagonal_sign: Abort of rollback #{cmd.rollback_id} requested: it stops before"
        " its next step (a wait is interrupted). The progress message will say which steps ran.",
    )


def _submit_dry_run(deps: Deps, service: Service, plan: Plan, cmd: Command, asker: Asker) -> None:
    is_forced = cmd.is_forced and _may_force(deps, service, asker.user)
    deps.work.submit(
        f"dry run of {service.name}",
        _dry_run,
        deps,
        service,
        plan,
        cmd,
        is_forced,
        asker.respond,
        tell=tell_on_error(asker.respond, f"the dry run of {service.name}"),
        lane="bulk",
    )
