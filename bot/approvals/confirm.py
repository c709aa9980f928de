""" "Run anyway?": an approved rollback whose fresh assessment says the service looks healthy (or
could not be made) waits for an approver to confirm or cancel it; the question expires."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.approvals import blocks as approval_blocks
from bot.approvals.message import post_in_thread, refresh_request
from bot.approvals.shared import Answer, approver_members, approving_voters, audit
from bot.approvals.waiting import end_waiting
from bot.catalog.load import Service
from bot.notify.blocks import status_sentence
from bot.rollback import policy
from bot.rollback.assess import Decision
from bot.rollback.lifecycle import (
    STARTABLE,
    DueKind,
    RollbackStatus,
    confirm_key,
    start_key,
)
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

_ASKED = (RollbackStatus.APPROVED,)  # held at "approved" while the question is open


def ask_to_confirm(deps: Deps, r: Rollback, service: Service, decision: Decision | None) -> None:
    """Hold the start and ask the approvers; the question expires like a request does."""
    assert r.id is not None
    expires = deps.clock() + timedelta(minutes=service.approval.expiry_minutes)
    held = deps.repo.set_rollback_status(
        r.id,
        RollbackStatus.APPROVED,
        deps.clock(),
        expected=STARTABLE,
        schedule=[
            NewWork(DueKind.CONFIRM_EXPIRE, confirm_key(r.id), expires, {"rollback_id": r.id})
        ],
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
    approvers = approving_voters(deps, r.id)
    mentions = " ".join(f"<@{u}>" for u in approvers)
    post_in_thread(deps, r, service, f"{mentions} {text}".strip(), blocks=blocks)
    audit(deps, "rollback.confirmation_requested", r, None, approvers=approvers)
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
    refusal = _refusal(deps, r, service, user, run=run)
    if refusal is not None:
        return refusal
    if not run:
        end_waiting(
            deps,
            rollback_id,
            RollbackStatus.CANCELLED,
            error=f"cancelled by <@{user}> at the start",
            event="rollback.cancelled",
            actor=user,
            expected=_ASKED,
            detail={"why": "not confirmed at the start"},
        )
        return Answer(f":heavy_multiplication_x: Rollback #{rollback_id} cancelled.")
    deps.due.schedule(
        DueKind.ROLLBACK_START,
        start_key(rollback_id, is_confirmed=True),
        deps.clock(),
        {"rollback_id": rollback_id, "confirmed_by": user},
    )
    audit(deps, "rollback.confirmed", r, user)
    deps.kick_due_work()
    return Answer(f":arrows_counterclockwise: Confirmed: rollback #{rollback_id} starts now.")


def _refusal(deps: Deps, r: Rollback, service: Service, user: str, *, run: bool) -> Answer | None:
    """Why ``user`` may not give this answer now (audited where it is a person's refusal)."""
    assert r.id is not None
    if user not in policy.approver_ids(service, approver_members(deps, service)):
        audit(deps, "rollback.confirm_refused", r, user)
        return Answer(
            f":no_entry: Only approvers of {service.name} may decide:"
            f" {policy.who_may_approve(service)}.",
            False,
        )
    if r.status != RollbackStatus.APPROVED:
        return Answer(f"{status_sentence(r.id, r.status)}; nothing to confirm.")
    deadline = deps.repo.get_work(confirm_key(r.id))
    if run and deadline is not None and deadline.due_at <= deps.clock():
        return Answer(  # the expiry item has not run yet, but the time to decide is over
            f":hourglass: The time to confirm rollback #{r.id} has passed. Assess again"
            f" and plan it again if it is still needed.",
            False,
        )
    if run and service.approval.two_person_rule and user == r.requested_by:
        audit(deps, "rollback.confirm_refused", r, user, why="two-person rule")
        return Answer(
            f":no_entry: You requested rollback #{r.id}: another approver must confirm"
            f" running it anyway (two-person rule). You can still cancel it.",
            False,
        )
    return None


def confirm_expired(deps: Deps, item: DueWork) -> None:
    end_waiting(
        deps,
        int(item.payload["rollback_id"]),
        RollbackStatus.EXPIRED,
        error="no approver confirmed the start in time",
        event="rollback.confirmation_expired",
        actor=None,
        expected=_ASKED,
        running_key=item.key,
    )
