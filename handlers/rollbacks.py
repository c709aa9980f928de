"""``/rollback run | status | abort``: the rollback row and its plan are stored before the ack."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from typing import Any

from slack_bolt import Ack, Respond

from bot.approvals.blocks import when
from bot.catalog.load import PlanError, Service
from bot.deps import Deps
from bot.execution.engine import Engine, started_work
from bot.execution.preflight import Refusal, audit_refusal, check
from bot.notify import blocks, limits
from bot.notify.blocks import escape
from bot.rollback import policy
from bot.rollback.command import Command, local_time
from bot.rollback.plan import Plan
from bot.rollback.text import unmentioned
from handlers.errors import tell_on_error
from storage.models import Assessment, Rollback
from storage.repository import ActiveRollbackExists

log = logging.getLogger(__name__)


def _say(ack: Ack, text: str) -> None:
    ack(text=text, response_type="ephemeral")


def run(
    deps: Deps, cmd: Command, service: Service, command: dict[str, Any], ack: Ack, respond: Respond
) -> None:
    user = str(command.get("user_id", ""))
    try:
        plan = service.plan(None)
    except PlanError as exc:
        _say(ack, f":x: {exc}")
        return
    if cmd.is_dry_run:
        _say(ack, f":mag: Dry run of a rollback of *{service.name}*: reading the cluster…")
        is_forced = cmd.is_forced and policy.may_force(
            service, user, deps.groups.members(policy.approver_groups(service))
        )
        deps.work.submit(
            f"dry run of {service.name}",
            _dry_run,
            deps,
            service,
            plan,
            cmd,
            is_forced,
            respond,
            tell=tell_on_error(respond, f"the dry run of {service.name}"),
            lane="bulk",
        )
        return
    if not cmd.is_immediate:
        _say(
            ack,
            f"A planned rollback of *{service.name}* needs approval: `/rollback plan"
            f" {service.name} [--to N] [--at HH:MM] <reason>`. Responders can run it now with"
            f" `/rollback run {service.name} --immediate <reason>`.",
        )
        return
    if not policy.may_run_immediately(service, user):
        deps.repo.add_audit_event(  # stored before the answer: whoever reads it can rely on it
            "rollback.refused",
            now=deps.clock(),
            service=service.name,
            actor=user,
            detail={"why": "not a responder"},
        )
        _say(
            ack,
            f":no_entry: Only responders of *{service.name}* may run an immediate rollback:"
            f" {policy.who_may_run(service)}. Ask one of them, or request approval with"
            f" `/rollback plan {service.name}`.",
        )
        return
    if cmd.is_forced and not policy.may_force(
        service, user, deps.groups.members(policy.approver_groups(service))
    ):
        deps.repo.add_audit_event(
            "rollback.refused",
            now=deps.clock(),
            service=service.name,
            actor=user,
            detail={"why": "--force by a non-approver"},
        )
        _say(ack, ":no_entry: `--force` (past the point of no return) is for approvers only.")
        return
    _start(deps, cmd, service, user, command, ack)


def _start(
    deps: Deps,
    cmd: Command,
    service: Service,
    user: str,
    command: dict[str, Any],
    ack: Ack,
) -> None:
    reason, assessment_id = cmd.reason.strip(), None
    if not reason:  # a recent assessment's decision says why; else the person must
        latest = recent_assessment(deps, service)
        if latest is None:
            _say(
                ack,
                f":x: Say why: `/rollback run {service.name} --immediate <reason>` (or assess"
                f" it first: `/rollback assess {service.name}`, whose decision becomes the"
                " reason). Nothing was started.",
            )
            return
        reason, assessment_id = assessment_reason(latest), latest.id
    _say(
        ack,
        start_immediate(
            deps,
            service,
            user=user,
            reason=reason,
            target_revision=cmd.target_revision,
            is_forced=cmd.is_forced,
            assessment_id=assessment_id,
            channel_id=command.get("channel_id"),
        ),
    )


RECENT_ASSESSMENT = timedelta(minutes=60)


def recent_assessment(deps: Deps, service: Service) -> Assessment | None:
    """The service's latest completed assessment of the last hour, if any."""
    for a in deps.repo.list_assessments(service=service.name, limit=5):
        done = a.completed_at or a.created_at
        if a.status == "done" and deps.clock() - done <= RECENT_ASSESSMENT:
            return a
    return None


def assessment_reason(a: Assessment) -> str:
    """``assessment #4: IMMEDIATE ROLLBACK (critical 55, total 70)``."""
    return f"assessment #{a.id}: {a.decision} (critical {a.critical_score}, total {a.total_score})"


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
) -> str:
    """Check, store and start an immediate rollback (the caller checked the user is a
    responder, and an approver for ``is_forced``); returns what to tell them. A refusal is
    audited and said before anything is stored, superseded, notified or paged; a planned
    request still waiting is superseded only by a rollback that starts."""
    from bot.approvals.start import supersede_pending

    try:
        checked = check(deps, service, target_revision, is_forced=is_forced)
    except Refusal as refusal:
        audit_refusal(
            deps,
            "rollback.refused",
            service,
            user,
            refusal,
            channel_id=channel_id,
            target=target_revision,
            forced=is_forced,
        )
        return (
            f":no_entry: No rollback of *{service.name}* was started: {escape(str(refusal))}."
            " Nothing was changed and nobody was paged."
        )
    plan, target_revision = checked.plan, checked.target_revision
    channel = service.channel  # progress lives in the service's channel
    if is_forced:
        plan = _forced(plan)
    superseded = supersede_pending(deps, service.name, user)
    try:  # the row and its plan are stored before the ack: a crash after it loses nothing
        rollback = deps.repo.create_rollback(
            service=service.name,
            kind="immediate",
            strategy=plan.strategy,
            requested_by=user,
            reason=reason,
            target_revision=target_revision,
            assessment_id=assessment_id,
            channel_id=channel,
            status="running",
            now=deps.clock(),
            steps=Engine.plan_steps(plan),
            schedule=lambda rid: [started_work(rid, deps.clock())],  # notices, pages, SLA
        )
    except ActiveRollbackExists as exc:
        return (
            f":warning: A rollback of *{service.name}* is already active:"
            f" #{exc.existing_id}{_link(deps, exc.existing_id)}. Follow it there, or"
            f" `/rollback abort {exc.existing_id}`."
        )
    assert rollback.id is not None
    # The start is audited before anything acts on it, and handed to the engine before the
    # ack, so whoever reads the ack can rely on the rollback being under way.
    deps.repo.add_audit_event(
        "rollback.started",
        now=deps.clock(),
        service=service.name,
        rollback_id=rollback.id,
        actor=user,
        channel_id=channel_id,
        detail={
            "kind": "immediate",
            "approval": "skipped: responder",
            "reason": reason,
            "forced": is_forced,
            "assessment_id": assessment_id,
            "superseded": superseded,
            "warnings": list(checked.warnings),
        },
    )
    deps.engine.submit(rollback.id)
    deps.engine.kick_due_work()  # the start's notices and pages go out now
    note = f" It replaces request #{superseded}, which was waiting." if superseded else ""
    note += "".join(f"\n:warning: {escape(w)}." for w in checked.warnings)
    return (
        f":arrows_counterclockwise: Rollback #{rollback.id} of *{service.name}* started"
        f" ({plan.strategy}, {len(plan.steps)} steps). Progress in <#{channel}>.{note}"
    )


def _forced(plan: Plan) -> Plan:
    from dataclasses import replace

    steps = tuple(
        replace(s, params={**s.params, "force": True}) if s.kind == "rollout_undo" else s
        for s in plan.steps
    )
    return replace(plan, steps=steps)


def _progress_url(deps: Deps, rollback_id: int) -> str | None:
    """The progress message's address, built locally: no Slack call on the ack path."""
    rollback = deps.repo.get_rollback(rollback_id)
    if rollback is None or not rollback.progress_ts or not rollback.channel_id:
        return None
    return blocks.message_link(deps.slack_team_url, rollback.channel_id, rollback.progress_ts)


def _link(deps: Deps, rollback_id: int) -> str:
    url = _progress_url(deps, rollback_id)
    return f" (<{url}|progress>)" if url else ""


def waiting_state(deps: Deps, r: Rollback) -> str:
    """What a request that has not started waits for, true for each status."""
    from bot.approvals.start import confirm_key

    service = deps.catalog.get(r.service)
    tz = service.tz if service else UTC
    if r.status == "scheduled" and r.scheduled_at is not None:
        return f"approved, scheduled for {local_time(r.scheduled_at, tz)}"
    if r.status == "pending_approval":
        assert r.id is not None
        votes = sum(1 for a in deps.repo.list_approvals(r.id) if a.decision == "approve")
        state = f"waiting for approval ({votes} of {r.required_approvals})"
        if r.expires_at is not None:
            state += f" until {when(r.expires_at)}"
        if r.scheduled_at is not None:
            state += f", window {local_time(r.scheduled_at, tz)}"
        return state
    if r.status == "approved":
        assert r.id is not None
        question = deps.repo.get_work(confirm_key(r.id))
        if question is not None and question.status in ("pending", "claimed"):
            return (
                "approved, but a fresh assessment says the service looks healthy: waiting for"
                f" an approver to press *Run anyway* or *Cancel rollback* (until"
                f" {when(question.due_at)})"
            )
        return "approved, starting after a fresh assessment"
    return blocks.status_words(r.status)


def _dry_run(
    deps: Deps, service: Service, plan: Plan, cmd: Command, is_forced: bool, respond: Respond
) -> None:
    from bot.execution.dry_run import describe_plan

    try:
        text = describe_plan(deps, service, plan, cmd.target_revision, is_forced=is_forced)
    except Exception as exc:  # Kubernetes errors are in the text; anything else is said here
        log.exception("dry run of %s failed", service.name)
        text = (
            f":x: The dry run of *{service.name}* failed ({type(exc).__name__}); nothing was"
            " changed. The bot's log has the details."
        )
    respond(text=text, response_type="ephemeral")


def status(deps: Deps, cmd: Command, ack: Ack) -> None:
    waiting: list[str] = []
    if cmd.rollback_id is not None:
        rollback = deps.repo.get_rollback(cmd.rollback_id)
        if rollback is None:
            _say(ack, f":x: There is no rollback #{cmd.rollback_id}.")
            return
        rows = [rollback]
    elif cmd.service is not None:
        service = deps.catalog.get(cmd.service)
        if service is None:
            text, bl = blocks.unknown_service_message(cmd.service, deps.catalog.names)
            ack(text=text, blocks=bl, response_type="ephemeral")
            return
        rows = deps.repo.list_rollbacks(service=service.name, limit=1)
        if not rows:
            _say(ack, f"No rollbacks of *{service.name}* yet.")
            return
    else:
        from handlers.approvals import waiting_lines

        rows = deps.repo.list_rollbacks(statuses=("running", "aborting"), limit=20)
        waiting = waiting_lines(deps)
        if not rows:
            _say(ack, "\n".join(["No rollback is running.", *_waiting_section(waiting)]))
            return
    texts: list[str] = []
    all_blocks: list[dict[str, Any]] = []
    for r in rows:
        assert r.id is not None
        service = deps.catalog.get(r.service)
        url = _progress_url(deps, r.id)
        is_waiting = r.status in ("pending_approval", "approved", "scheduled")
        state = waiting_state(deps, r) if is_waiting else None
        text, bl = blocks.progress_message(
            r,
            deps.repo.list_steps(r.id),
            sla_minutes=service.sla_minutes if service else 15,
            now=deps.clock(),
            more=limits.link(url) if url else None,
            state_note=f":hourglass_flowing_sand: {state[:1].upper()}{state[1:]}."
            if state
            else None,
        )
        link = _link(deps, r.id)
        texts.append(text + link)
        if link:
            bl.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
        all_blocks += [*bl, {"type": "divider"}]
    if cmd.rollback_id is None and cmd.service is None and (section := _waiting_section(waiting)):
        texts += section
        all_blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(section)}}
        )
    if all_blocks and all_blocks[-1]["type"] == "divider":
        all_blocks.pop()
    text, fitted = limits.fit_message("\n".join(texts), all_blocks)
    ack(text=text, blocks=fitted, response_type="ephemeral")


def _waiting_section(lines: list[str]) -> list[str]:
    return ["*Waiting for approval or a window*", *lines] if lines else []


def abort(deps: Deps, cmd: Command, command: dict[str, Any], ack: Ack) -> None:
    user = str(command.get("user_id", ""))
    assert cmd.rollback_id is not None
    rollback = deps.repo.get_rollback(cmd.rollback_id)
    if rollback is None:
        _say(ack, f":x: There is no rollback #{cmd.rollback_id}.")
        return
    service = deps.catalog.get(rollback.service)
    members = deps.groups.members(policy.approver_groups(service)) if service else set()
    if service is None or not policy.may_abort(service, user, rollback.requested_by, members):
        _say(ack, ":no_entry: Only the requester, responders and approvers may abort it.")
        deps.repo.add_audit_event(
            "rollback.abort_refused",
            now=deps.clock(),
            service=rollback.service,
            rollback_id=rollback.id,
            actor=user,
        )
        return
    if rollback.status in ("pending_approval", "approved", "scheduled"):
        from bot.approvals.start import cancel_waiting

        if cancel_waiting(deps, cmd.rollback_id, user, cmd.reason) is not None:
            _say(
                ack,
                f":heavy_multiplication_x: Rollback #{cmd.rollback_id} cancelled before it ran.",
            )
            return
    aborted_by = f"aborted by <@{user}>" + (f": {unmentioned(cmd.reason)}" if cmd.reason else "")
    moved = deps.repo.set_rollback_status(  # who and why, kept as the rollback's end
        cmd.rollback_id, "aborting", deps.clock(), error=aborted_by, expected=("running",)
    )
    if moved is None:
        _say(ack, f"{blocks.status_sentence(cmd.rollback_id, rollback.status)}; nothing to abort.")
        return
    deps.repo.add_audit_event(
        "rollback.abort_requested",
        now=deps.clock(),
        service=rollback.service,
        rollback_id=rollback.id,
        actor=user,
        detail={"reason": cmd.reason},
    )
    deps.engine.request_abort(cmd.rollback_id)
    _say(
        ack,
        f":octagonal_sign: Abort of rollback #{cmd.rollback_id} requested: it stops before"
        " its next step (a wait is interrupted). The progress message will say which steps ran.",
    )
