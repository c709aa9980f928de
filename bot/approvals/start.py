"""Starting approved rollbacks: at the window, after a fresh assessment, never blindly.

``rollback.start`` is durable due work scheduled in the same transaction as the approval. Just
before starting, the service is assessed again; when the matrix says CONTINUE (or the assessment
fails) the approvers are asked to **Run anyway** or **Cancel**, and an unanswered question expires.
A window missed by more than the grace period (the bot was down) is reported, never run silently.
Every way out of "approved" or "scheduled" (start, cancel, expiry, give-up) is a compare-and-set
that cancels the rest of the due work in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters.slack.web import SlackError
from bot.approvals import blocks as approval_blocks
from bot.approvals.request import START, Answer, approver_members, audit, refresh_request
from bot.assessment.signals import assess_service, store_assessment
from bot.catalog.load import Service
from bot.execution.engine import started_work
from bot.execution.preflight import Refusal, check
from bot.notify.blocks import escape_keeping_mentions, status_sentence
from bot.rollback import policy
from bot.rollback.assess import Decision
from bot.rollback.command import local_time
from bot.rollback.text import unmentioned
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

CONFIRM_EXPIRE = "start.confirm_expire"
WINDOW_MISSED = "start.window_missed"
WAITING = ("pending_approval", "approved", "scheduled")


def confirm_key(rollback_id: int) -> str:
    """The due work that ends an unanswered "run anyway?" (its due time is the deadline)."""
    return f"confirm-expire:{rollback_id}"


def install(deps: Deps) -> None:
    deps.due.register(START, lambda item: start_due(deps, item), lambda i, e: _gave_up(deps, i, e))
    deps.due.register(CONFIRM_EXPIRE, lambda item: _confirm_expired(deps, item))
    deps.due.register(WINDOW_MISSED, lambda item: _report_missed_window(deps, item))


def _open_work(rollback_id: int) -> list[str]:
    """Every due-work key that could still act on a waiting request."""
    return [
        f"expire:{rollback_id}",
        f"start:{rollback_id}",
        f"start:{rollback_id}:confirmed",
        confirm_key(rollback_id),
    ]


def _end(
    deps: Deps,
    rollback_id: int,
    status: str,
    *,
    error: str,
    event: str,
    actor: str | None,
    expected: tuple[str, ...] = WAITING,
    running_key: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Rollback | None:
    """End a waiting request (cancelled, expired, failed) once: the status, and the cancelling
    of its other due work (not ``running_key``, the item calling), in one transaction; then
    the audit event and the edit of the request message. None when it had already moved on."""
    moved = deps.repo.set_rollback_status(
        rollback_id,
        status,
        deps.clock(),
        error=error,
        expected=expected,
        cancel=[key for key in _open_work(rollback_id) if key != running_key],
    )
    if moved is not None:
        audit(deps, event, moved, actor, **(detail or {}))
        refresh_request(deps, rollback_id)
    return moved


def _post(
    deps: Deps,
    r: Rollback,
    service: Service,
    text: str,
    blocks: list[dict[str, object]] | None = None,
) -> None:
    """In the request's thread, also shown in the channel."""
    deps.slack.chat_postMessage(
        channel=r.approval_channel_id or service.channel,
        thread_ts=r.approval_ts,
        reply_broadcast=True,
        text=text,
        blocks=blocks,
    )


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
        deps.repo.set_rollback_status(
            rollback_id, "failed", now, error="the service left the catalog", expected=WAITING
        )
        return
    grace = timedelta(minutes=service.window_grace_minutes)
    if not confirmed_by and r.scheduled_at is not None and now - r.scheduled_at > grace:
        _missed_window(deps, r, now)
        return
    if not confirmed_by:
        decision = _reassess(deps, service, r)
        if decision in (Decision.CONTINUE, None):
            _ask_to_confirm(deps, r, service, decision)
            return
    if _refused_at_start(deps, r, service, item):
        return
    moved = deps.repo.set_rollback_status(
        rollback_id,
        "running",
        now,
        expected=("approved", "scheduled"),
        cancel=[key for key in _open_work(rollback_id) if key != item.key],  # not this one
        schedule=[started_work(rollback_id, now)],  # its listeners: SLA check, metrics
    )
    if moved is None:
        return
    votes = sorted(
        {a.user_id for a in deps.repo.list_approvals(rollback_id) if a.decision == "approve"}
    )
    audit(
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
    deps.engine.kick_due_work()  # its start reaches the listeners now
    refresh_request(deps, rollback_id)


def _refused_at_start(deps: Deps, r: Rollback, service: Service, item: DueWork) -> bool:
    """The checks of an immediate rollback, against the cluster as it is now: the request may
    have waited while the deployment or the bot's history changed. A refusal ends it here,
    before it is running (so before any notice or page), and says why in its thread."""
    assert r.id is not None
    try:
        check(deps, service, r.target_revision, pin=False)
    except Refusal as refusal:
        ended = _end(
            deps,
            r.id,
            "failed",
            error=f"refused at the start: {refusal}",
            event="rollback.refused",
            actor=None,
            expected=("approved", "scheduled"),
            running_key=item.key,
            detail={"why": str(refusal)},
        )
        if ended is not None:
            _post(
                deps,
                r,
                service,
                f":no_entry: Rollback #{r.id} of *{service.name}* did not start:"
                f" {escape_keeping_mentions(str(refusal))}. Nothing was changed; nobody was"
                " paged.",
            )
        return True
    return False


def _reassess(deps: Deps, service: Service, r: Rollback) -> Decision | None:
    """A fresh assessment, stored and audited; None when it could not be made."""
    assessment_id = deps.repo.create_assessment(service.name, None, service.channel, deps.clock())
    try:
        result = assess_service(deps.reader, service)
    except Exception as exc:
        log.exception("re-assessment of %s before rollback #%s failed", service.name, r.id)
        deps.repo.fail_assessment(assessment_id, f"{type(exc).__name__}: {exc}", deps.clock())
        audit(deps, "rollback.reassessed", r, None, assessment_id=assessment_id, error=str(exc))
        return None
    store_assessment(deps.repo, service, assessment_id, result, deps.clock())
    audit(
        deps,
        "rollback.reassessed",
        r,
        None,
        assessment_id=assessment_id,
        decision=result.decision.value,
        total=result.total,
    )
    return result.decision


def _ask_to_confirm(deps: Deps, r: Rollback, service: Service, decision: Decision | None) -> None:
    """Hold the start and ask the approvers; the question expires like a request does."""
    assert r.id is not None
    expires = deps.clock() + timedelta(minutes=service.approval.expiry_minutes)
    held = deps.repo.set_rollback_status(
        r.id,
        "approved",
        deps.clock(),
        expected=("approved", "scheduled"),
        schedule=[NewWork(CONFIRM_EXPIRE, confirm_key(r.id), expires, {"rollback_id": r.id})],
    )
    if held is None:  # aborted, superseded or cancelled meanwhile: nothing left to confirm
        log.info("rollback #%d left approved before its start; not asking to confirm", r.id)
        return
    why = (
        "*CONTINUE* (the service looks healthy)"
        if decision is not None
        else "nothing: the fresh assessment failed (the bot's log has the details)"
    )
    text, blocks = approval_blocks.confirm_start_message(r, why)
    approvers = {a.user_id for a in deps.repo.list_approvals(r.id) if a.decision == "approve"}
    mentions = " ".join(f"<@{u}>" for u in sorted(approvers))
    _post(deps, r, service, f"{mentions} {text}".strip(), blocks=blocks)
    audit(deps, "rollback.confirmation_requested", r, None, approvers=sorted(approvers))
    refresh_request(
        deps,
        r.id,
        note=f"Waiting for an approver to confirm (until {approval_blocks.when(expires)}).",
    )


def confirm(deps: Deps, rollback_id: int, user: str, *, run: bool) -> Answer:
    """An approver's answer to "the service looks healthy, run anyway?"."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return Answer(f":x: There is no rollback #{rollback_id}.", is_ok=False)
    if user not in policy.approver_ids(service, approver_members(deps, service)):
        audit(deps, "rollback.confirm_refused", r, user)
        return Answer(
            f":no_entry: Only approvers of {service.name} may decide:"
            f" {policy.who_may_approve(service)}.",
            False,
        )
    if r.status != "approved":
        return Answer(f"{status_sentence(rollback_id, r.status)}; nothing to confirm.")
    deadline = deps.repo.get_work(confirm_key(rollback_id))
    if run and deadline is not None and deadline.due_at <= deps.clock():
        return Answer(  # the expiry item has not run yet, but the time to decide is over
            f":hourglass: The time to confirm rollback #{rollback_id} has passed. Assess again"
            f" and plan it again if it is still needed.",
            False,
        )
    if run and service.approval.two_person_rule and user == r.requested_by:
        audit(deps, "rollback.confirm_refused", r, user, why="two-person rule")
        return Answer(
            f":no_entry: You requested rollback #{rollback_id}: another approver must confirm"
            f" running it anyway (two-person rule). You can still cancel it.",
            False,
        )
    if not run:
        _end(
            deps,
            rollback_id,
            "cancelled",
            error=f"cancelled by <@{user}> at the start",
            event="rollback.cancelled",
            actor=user,
            expected=("approved",),
            detail={"why": "not confirmed at the start"},
        )
        return Answer(f":heavy_multiplication_x: Rollback #{rollback_id} cancelled.")
    deps.due.schedule(
        START,
        f"start:{rollback_id}:confirmed",
        deps.clock(),
        {"rollback_id": rollback_id, "confirmed_by": user},
    )
    audit(deps, "rollback.confirmed", r, user)
    deps.work.submit("due work", deps.due.tick)
    return Answer(f":arrows_counterclockwise: Confirmed: rollback #{rollback_id} starts now.")


def _confirm_expired(deps: Deps, item: DueWork) -> None:
    _end(
        deps,
        int(item.payload["rollback_id"]),
        "expired",
        error="no approver confirmed the start in time",
        event="rollback.confirmation_expired",
        actor=None,
        expected=("approved",),
        running_key=item.key,
    )


def _missed_window(deps: Deps, r: Rollback, now: datetime) -> None:
    """Expire it and report why, the report being its own due work so it is never lost."""
    assert r.id is not None and r.scheduled_at is not None
    late = int((now - r.scheduled_at).total_seconds() // 60)
    service = deps.catalog.get(r.service)
    at = local_time(r.scheduled_at, service.tz if service else UTC)
    error = f"window {at} missed by {late} min"
    moved = deps.repo.set_rollback_status(
        r.id,
        "expired",
        now,
        error=error,
        expected=("approved", "scheduled"),
        cancel=[key for key in _open_work(r.id) if key != f"start:{r.id}"],  # the caller's
        schedule=[NewWork(WINDOW_MISSED, f"window-missed:{r.id}", now, {"rollback_id": r.id})],
    )
    if moved is not None:
        audit(deps, "rollback.window_missed", moved, None, late_minutes=late)
        deps.work.submit("due work", deps.due.tick)


def _report_missed_window(deps: Deps, item: DueWork) -> None:
    r = deps.repo.get_rollback(int(item.payload["rollback_id"]))
    service = deps.catalog.get(r.service) if r else None
    if r is None or r.id is None or service is None:
        return
    _post(
        deps,
        r,
        service,
        f":warning: Rollback #{r.id} of *{service.name}* was NOT run: its {r.error} (the bot was"
        f" not running then). That is beyond the {service.window_grace_minutes:g}-minute grace"
        " period, so nothing ran silently. Re-plan it (`/rollback plan"
        f" {service.name} …`) or run it now (`/rollback run {service.name} --immediate …`).",
    )
    refresh_request(deps, r.id)


def _gave_up(deps: Deps, item: DueWork, error: str) -> None:
    """The start kept failing: fail the rollback where people will see it."""
    rollback_id = int(item.payload["rollback_id"])
    moved = _end(
        deps,
        rollback_id,
        "failed",
        error=f"the start kept failing: {error}",
        event="rollback.start_failed",
        actor=None,
        expected=("approved", "scheduled"),
        detail={"error": error},
    )
    service = deps.catalog.get(moved.service) if moved else None
    if moved is None or service is None:
        return
    try:
        _post(
            deps,
            moved,
            service,
            f":x: Approved rollback #{rollback_id} of *{service.name}* could not be started"
            " after several tries; nothing was changed. The bot's log has the details; plan it"
            " again or run it with `--immediate`.",
        )
    except SlackError:
        log.exception("could not report that rollback #%d could not start", rollback_id)


def cancel_waiting(deps: Deps, rollback_id: int, user: str, reason: str) -> Rollback | None:
    """Cancel a request still waiting (for approval, a confirmation or its window)."""
    return _end(
        deps,
        rollback_id,
        "cancelled",
        error=f"cancelled by <@{user}>" + (f": {unmentioned(reason)}" if reason else ""),
        event="rollback.cancelled",
        actor=user,
        detail={"reason": reason},
    )


def supersede_pending(deps: Deps, service: str, user: str) -> int | None:
    """An immediate rollback replaces a request still waiting (for approval or a window);
    returns the superseded request's id, or None when nothing was waiting."""
    active = deps.repo.get_active_rollback(service)
    if active is None or active.id is None or active.status not in WAITING:
        return None
    moved = _end(
        deps,
        active.id,
        "cancelled",
        error=f"superseded by an immediate rollback by <@{user}>",
        event="approval.superseded",
        actor=user,
    )
    return active.id if moved is not None else None
