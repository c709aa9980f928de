"""Planned rollbacks: the request, the votes, the window and the start.

Every transition is a compare-and-set on the rollback's status, and every vote is unique per
(rollback, user) in the database, so double clicks, Slack retries, a button and a command, or
several replicas all resolve to one effect. The start is durable due work (``rollback.start``):
it runs at once after the last approval or at the window's time, survives restarts, and just
before starting re-assesses the service; if the matrix now says CONTINUE an approver is asked to
confirm instead of running blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.assessor import assess_service, store_assessment
from bot.catalog import Service
from bot.engine import Engine
from bot.notify import approval_blocks
from bot.rollback import policy
from bot.rollback.assess import Decision
from bot.rollback.plan import Plan
from storage.models import DueWork, Rollback

if TYPE_CHECKING:
    from bot.app import Deps

log = logging.getLogger(__name__)

START = "rollback.start"
EXPIRE = "approval.expire"
RECENT_ASSESSMENT = timedelta(hours=1)  # older assessments are not shown as the request's basis


@dataclass(frozen=True)
class Answer:
    """What to tell the person who acted (ephemeral)."""

    text: str
    is_ok: bool = True


def install(deps: Deps) -> None:
    deps.due.register(START, lambda item: start_due(deps, item))
    deps.due.register(EXPIRE, lambda item: expire_due(deps, item))


def _request_of(r: Rollback) -> policy.Request:
    return policy.Request(r.status, r.requested_by, r.expires_at, r.required_approvals)


def _members(deps: Deps, service: Service) -> set[str]:
    return deps.groups.members(policy.approver_groups(service))


def _audit(deps: Deps, event: str, r: Rollback, actor: str | None, **detail: object) -> None:
    deps.repo.add_audit_event(
        event,
        now=deps.clock(),
        service=r.service,
        rollback_id=r.id,
        actor=actor,
        channel_id=r.approval_channel_id,
        message_ts=r.approval_ts,
        detail=dict(detail),
    )


# --- the request ----------------------------------------------------------------------------


def request(
    deps: Deps,
    service: Service,
    plan: Plan,
    *,
    user: str,
    reason: str,
    target_revision: str | None,
    window: datetime | None,
    assessment_id: int | None = None,
) -> Rollback:
    """Store the request (raises ActiveRollbackExists); ``post_request`` posts its message."""
    now = deps.clock()
    if assessment_id is None:
        recent = deps.repo.list_assessments(service.name, limit=1)
        if recent and recent[0].status == "done" and now - recent[0].created_at < RECENT_ASSESSMENT:
            assessment_id = recent[0].id
    rollback = deps.repo.create_rollback(
        service=service.name,
        kind="planned",
        strategy=plan.strategy,
        requested_by=user,
        reason=reason,
        target_revision=target_revision,
        assessment_id=assessment_id,
        channel_id=service.channel,
        status="pending_approval",
        scheduled_at=window,
        required_approvals=service.approval.min_approvals,
        expires_at=now + timedelta(minutes=service.approval.expiry_minutes),
        now=now,
        steps=Engine.plan_steps(plan),
    )
    assert rollback.id is not None and rollback.expires_at is not None
    deps.due.schedule(
        EXPIRE, f"expire:{rollback.id}", rollback.expires_at, {"rollback_id": rollback.id}
    )
    _audit(
        deps,
        "approval.requested",
        rollback,
        user,
        reason=reason,
        window=window.isoformat() if window else None,
        required=rollback.required_approvals,
        assessment_id=assessment_id,
    )
    return rollback


def post_request(deps: Deps, rollback_id: int, plan_summary: str) -> None:
    """Post the request message in the service channel and remember where it is."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return
    text, blocks = _request_blocks(deps, r, service, plan_summary)
    resp = deps.slack.chat_postMessage(channel=service.channel, text=text, blocks=blocks)
    deps.repo.set_approval_message(rollback_id, service.channel, str(resp["ts"]), plan_summary)
    _audit(deps, "approval.posted", deps.repo.get_rollback(rollback_id) or r, None)


def _request_blocks(
    deps: Deps, r: Rollback, service: Service, plan_summary: str, note: str | None = None
) -> tuple[str, list[dict[str, object]]]:
    assert r.id is not None
    assessment = deps.repo.get_assessment(r.assessment_id) if r.assessment_id else None
    return approval_blocks.request_message(
        r,
        approvals=deps.repo.list_approvals(r.id),
        assessment=assessment,
        plan_summary=plan_summary,
        approvers=policy.who_may_approve(service),
        two_person_rule=service.approval.two_person_rule,
        note=note,
    )


def refresh_request(deps: Deps, rollback_id: int, note: str | None = None) -> None:
    """Edit the request message to show the votes and the status (button or command alike)."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None or not r.approval_ts or not r.approval_channel_id:
        return
    text, blocks = _request_blocks(deps, r, service, r.plan_summary or "", note)
    try:
        deps.slack.chat_update(
            channel=r.approval_channel_id, ts=r.approval_ts, text=text, blocks=blocks
        )
    except SlackApiError as exc:
        log.warning("cannot update request #%d: %s", rollback_id, exc.response.get("error"))


# --- votes ----------------------------------------------------------------------------------


def approve(deps: Deps, rollback_id: int, user: str, *, via: str) -> Answer:
    """One approval vote. The last needed vote moves the request on exactly once."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return Answer(f":x: There is no rollback request #{rollback_id}.", is_ok=False)
    now = deps.clock()
    refusal = policy.approval_refusal(service, user, _request_of(r), now, _members(deps, service))
    if refusal is not None:
        if r.status == "pending_approval" and policy.is_expired(_request_of(r), now):
            _expire(deps, r)
        _audit(deps, "approval.refused", r, user, why=refusal, via=via)
        return Answer(f":no_entry: You cannot approve rollback #{rollback_id}: {refusal}.", False)
    if not deps.repo.record_approval(rollback_id, user, "approve", via=via, now=now):
        return Answer(f"You already voted on rollback #{rollback_id}; your vote counts once.")
    _audit(deps, "approval.approved", r, user, via=via)
    votes = [a.user_id for a in deps.repo.list_approvals(rollback_id) if a.decision == "approve"]
    if not policy.is_approved(votes, r.required_approvals):
        refresh_request(deps, rollback_id)
        missing = r.required_approvals - len(set(votes))
        return Answer(f":white_check_mark: Approved; {missing} more approval(s) needed.")
    is_later = r.scheduled_at is not None and r.scheduled_at > now
    moved = deps.repo.set_rollback_status(
        rollback_id, "scheduled" if is_later else "approved", now, expected=("pending_approval",)
    )
    if moved is None:  # someone else's vote (or a rejection) got there first
        refresh_request(deps, rollback_id)
        return Answer(
            f":white_check_mark: Approved (rollback #{rollback_id} is"
            f" {_status(deps, rollback_id)})."
        )
    deps.due.cancel(f"expire:{rollback_id}")
    due_at = moved.scheduled_at if is_later and moved.scheduled_at else now
    deps.due.schedule(START, f"start:{rollback_id}", due_at, {"rollback_id": rollback_id})
    _audit(deps, "approval.granted", moved, user, approvers=sorted(set(votes)))
    refresh_request(deps, rollback_id)
    if is_later and moved.scheduled_at is not None:
        when = approval_blocks.when(moved.scheduled_at)
        return Answer(f":calendar: Approved. Rollback #{rollback_id} will start at {when}.")
    deps.work.submit("due work", deps.due.tick)  # start now rather than at the next tick
    return Answer(
        f":white_check_mark: Approved. Rollback #{rollback_id} starts after a fresh assessment."
    )


def reject(deps: Deps, rollback_id: int, user: str, reason: str, *, via: str) -> Answer:
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return Answer(f":x: There is no rollback request #{rollback_id}.", is_ok=False)
    refusal = policy.rejection_refusal(service, user, _request_of(r), _members(deps, service))
    if refusal is not None:
        _audit(deps, "approval.refused", r, user, why=refusal, via=via, decision="reject")
        return Answer(f":no_entry: You cannot reject rollback #{rollback_id}: {refusal}.", False)
    now = deps.clock()
    is_withdrawal = user == r.requested_by and user not in policy.approver_ids(
        service, _members(deps, service)
    )
    if not is_withdrawal and not deps.repo.record_approval(
        rollback_id, user, "reject", via=via, now=now, reason=reason
    ):
        return Answer(f"You already voted on rollback #{rollback_id}; your vote counts once.")
    status = "cancelled" if is_withdrawal else "rejected"
    moved = deps.repo.set_rollback_status(
        rollback_id,
        status,
        now,
        error=f"withdrawn by the requester: {reason}" if is_withdrawal else reason or None,
        expected=("pending_approval",),
    )
    if moved is None:
        refresh_request(deps, rollback_id)
        return Answer(
            f"Rollback #{rollback_id} is {_status(deps, rollback_id)}; nothing to reject."
        )
    deps.due.cancel(f"expire:{rollback_id}")
    _audit(deps, f"approval.{status}", moved, user, reason=reason, via=via)
    refresh_request(deps, rollback_id)
    return Answer(f":no_entry: Rollback #{rollback_id} {status}.")


def _status(deps: Deps, rollback_id: int) -> str:
    r = deps.repo.get_rollback(rollback_id)
    return r.status.replace("_", " ") if r else "gone"


def _expire(deps: Deps, r: Rollback) -> None:
    assert r.id is not None
    moved = deps.repo.set_rollback_status(
        r.id, "expired", deps.clock(), error="not approved in time", expected=("pending_approval",)
    )
    if moved is not None:
        _audit(deps, "approval.expired", moved, None)
        refresh_request(deps, r.id)


def expire_due(deps: Deps, item: DueWork) -> None:
    r = deps.repo.get_rollback(int(item.payload["rollback_id"]))
    if r is not None and r.status == "pending_approval":
        _expire(deps, r)


# --- the start ------------------------------------------------------------------------------


def start_due(deps: Deps, item: DueWork) -> None:
    """Start an approved rollback: at its window, after a fresh assessment."""
    rollback_id = int(item.payload["rollback_id"])
    confirmed_by = item.payload.get("confirmed_by")
    r = deps.repo.get_rollback(rollback_id)
    if r is None or r.status not in ("approved", "scheduled"):
        return
    service = deps.catalog.get(r.service)
    now = deps.clock()
    if service is None:
        deps.repo.set_rollback_status(rollback_id, "failed", now, error="service left the catalog")
        return
    if r.scheduled_at is not None and now - r.scheduled_at > timedelta(
        minutes=service.window_grace_minutes
    ):
        _missed_window(deps, r, service, now)
        return
    if not confirmed_by:
        decision = _reassess(deps, service, r)
        if decision == Decision.CONTINUE:
            _ask_to_confirm(deps, r, service)
            return
    moved = deps.repo.set_rollback_status(
        rollback_id, "running", now, expected=("approved", "scheduled")
    )
    if moved is None:
        return
    votes = sorted(
        {a.user_id for a in deps.repo.list_approvals(rollback_id) if a.decision == "approve"}
    )
    _audit(
        deps,
        "rollback.started",
        moved,
        confirmed_by or None,
        kind="planned",
        approvers=votes,
        confirmed_by=confirmed_by,
        reason=r.reason,
    )
    deps.engine.submit(rollback_id)
    refresh_request(deps, rollback_id)


def _reassess(deps: Deps, service: Service, r: Rollback) -> Decision | None:
    """A fresh assessment, stored and audited; None when it could not be made."""
    assessment_id = deps.repo.create_assessment(service.name, None, service.channel, deps.clock())
    try:
        result = assess_service(deps.reader, service)
    except Exception as exc:
        log.exception("re-assessment of %s before rollback #%s failed", service.name, r.id)
        deps.repo.fail_assessment(assessment_id, f"{type(exc).__name__}: {exc}", deps.clock())
        _audit(deps, "rollback.reassessed", r, None, assessment_id=assessment_id, error=str(exc))
        return None
    store_assessment(deps.repo, service, assessment_id, result, deps.clock())
    _audit(
        deps,
        "rollback.reassessed",
        r,
        None,
        assessment_id=assessment_id,
        decision=result.decision.value,
        total=result.total,
    )
    return result.decision


def _ask_to_confirm(deps: Deps, r: Rollback, service: Service) -> None:
    assert r.id is not None
    if r.status == "scheduled":
        deps.repo.set_rollback_status(r.id, "approved", deps.clock(), expected=("scheduled",))
    text, blocks = approval_blocks.confirm_start_message(
        r, "*CONTINUE* (the service looks healthy)"
    )
    approvers = {a.user_id for a in deps.repo.list_approvals(r.id) if a.decision == "approve"}
    mentions = " ".join(f"<@{u}>" for u in sorted(approvers))
    deps.slack.chat_postMessage(
        channel=r.approval_channel_id or service.channel,
        thread_ts=r.approval_ts,
        reply_broadcast=True,
        text=f"{mentions} {text}".strip(),
        blocks=blocks,
    )
    _audit(deps, "rollback.confirmation_requested", r, None, approvers=sorted(approvers))
    refresh_request(
        deps, r.id, note="Waiting for an approver to confirm: the service looks healthy."
    )


def confirm(deps: Deps, rollback_id: int, user: str, *, run: bool) -> Answer:
    """An approver's answer to "the service looks healthy, run anyway?"."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return Answer(f":x: There is no rollback #{rollback_id}.", is_ok=False)
    if user not in policy.approver_ids(service, _members(deps, service)):
        _audit(deps, "rollback.confirm_refused", r, user)
        return Answer(
            f":no_entry: Only approvers of {service.name} may decide:"
            f" {policy.who_may_approve(service)}.",
            False,
        )
    if r.status != "approved":
        return Answer(
            f"Rollback #{rollback_id} is {r.status.replace('_', ' ')}; nothing to confirm."
        )
    if not run:
        moved = deps.repo.set_rollback_status(
            rollback_id,
            "cancelled",
            deps.clock(),
            error=f"cancelled by <@{user}>: service healthy",
            expected=("approved",),
        )
        if moved is not None:
            _audit(deps, "rollback.cancelled", moved, user, why="service healthy at start")
            refresh_request(deps, rollback_id)
        return Answer(f":heavy_multiplication_x: Rollback #{rollback_id} cancelled.")
    deps.due.schedule(
        START,
        f"start:{rollback_id}:confirmed",
        deps.clock(),
        {"rollback_id": rollback_id, "confirmed_by": user},
    )
    _audit(deps, "rollback.confirmed", r, user)
    deps.work.submit("due work", deps.due.tick)
    return Answer(f":arrows_counterclockwise: Confirmed: rollback #{rollback_id} starts now.")


def _missed_window(deps: Deps, r: Rollback, service: Service, now: datetime) -> None:
    assert r.id is not None and r.scheduled_at is not None
    late = int((now - r.scheduled_at).total_seconds() // 60)
    error = f"window {approval_blocks.when(r.scheduled_at)} missed by {late} min (bot was down)"
    moved = deps.repo.set_rollback_status(
        r.id, "expired", now, error=error, expected=("approved", "scheduled")
    )
    if moved is None:
        return
    _audit(deps, "rollback.window_missed", moved, None, late_minutes=late)
    deps.slack.chat_postMessage(
        channel=r.approval_channel_id or service.channel,
        thread_ts=r.approval_ts,
        reply_broadcast=True,
        text=(
            f":warning: Rollback #{r.id} of *{service.name}* was NOT run: its {error}. It is"
            f" beyond the {service.window_grace_minutes:g}-minute grace period, so nothing ran"
            f" silently. Re-plan it (`/rollback plan {service.name} …`) or run it now"
            f" (`/rollback run {service.name} --immediate …`)."
        ),
    )
    refresh_request(deps, r.id)


def supersede_pending(
    deps: Deps, service: str, user: str, now_fn: Callable[[], datetime]
) -> int | None:
    """An immediate rollback replaces a request still waiting (for approval or a window);
    returns the superseded request's id, or None when nothing was waiting."""
    active = deps.repo.get_active_rollback(service)
    if (
        active is None
        or active.id is None
        or active.status
        not in (
            "pending_approval",
            "approved",
            "scheduled",
        )
    ):
        return None
    moved = deps.repo.set_rollback_status(
        active.id,
        "cancelled",
        now_fn(),
        error=f"superseded by an immediate rollback by <@{user}>",
        expected=("pending_approval", "approved", "scheduled"),
    )
    if moved is None:
        return None
    deps.due.cancel(f"start:{active.id}")
    deps.due.cancel(f"expire:{active.id}")
    _audit(deps, "approval.superseded", moved, user)
    deps.work.submit("request refresh", refresh_request, deps, active.id)
    return active.id
