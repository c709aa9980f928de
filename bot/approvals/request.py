"""Planned rollbacks: the request (``posting`` posts it, ``votes`` decides it, ``start`` starts it).

Every transition is a compare-and-set on the rollback's status, and every vote is unique per
(rollback, user) in the database, so double clicks, Slack retries, a button and a command, or
several replicas all resolve to one effect. The transition that completes the approval schedules
the start (durable due work) in the same transaction, so a crash cannot separate them; a vote
stored just before a crash is completed by the next vote or retry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.approvals.posting import post_due, post_gave_up
from bot.approvals.shared import audit
from bot.approvals.votes import expire_due
from bot.assessment.recent import recent_assessment
from bot.catalog.load import Service
from bot.execution.steps.table import plan_rows
from bot.rollback.lifecycle import (
    DueKind,
    RollbackKind,
    RollbackStatus,
    approval_post_key,
    expire_key,
)
from bot.rollback.phases import PhaseSelection
from bot.rollback.plan import Plan
from storage.models import Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps


def install(deps: Deps) -> None:
    deps.due.register(DueKind.APPROVAL_EXPIRE, lambda item: expire_due(deps, item))
    deps.due.register(
        DueKind.APPROVAL_POST,
        lambda item: post_due(deps, item),
        lambda i, e: post_gave_up(deps, i, e),
    )


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
    selection: PhaseSelection | None = None,
) -> Rollback:
    """Store the request (raises ActiveRollbackExists); ``posting.post_due`` posts its message."""
    now = deps.clock()
    if assessment_id is None and (recent := recent_assessment(deps.repo, service.name, now)):
        assessment_id = recent.id
    expires_at = now + timedelta(minutes=service.approval.expiry_minutes)
    if window is not None:  # approving after the window (and its grace) has passed is pointless
        expires_at = min(expires_at, window + timedelta(minutes=service.window_grace_minutes))
    rollback = store_rollback(
        deps,
        service,
        plan,
        RollbackKind.PLANNED,
        RollbackStatus.PENDING_APPROVAL,
        user=user,
        reason=reason,
        target_revision=target_revision,
        assessment_id=assessment_id,
        scheduled_at=window,
        required_approvals=service.approval.min_approvals,
        expires_at=expires_at,
        now=now,
        selection=selection,
        schedule=lambda rid: [
            NewWork(DueKind.APPROVAL_EXPIRE, expire_key(rid), expires_at, {"rollback_id": rid}),
            # stored with the row: a crash cannot leave a request nobody was shown
            NewWork(DueKind.APPROVAL_POST, approval_post_key(rid), now, {"rollback_id": rid}),
        ],
    )
    assert rollback.id is not None
    audit(
        deps,
        "approval.requested",
        rollback,
        user,
        reason=reason,
        window=window.isoformat() if window else None,
        required=rollback.required_approvals,
        assessment_id=assessment_id,
        **({"phases": selection.describe()} if selection and selection.is_partial else {}),
    )
    return rollback


def store_rollback(
    deps: Deps,
    service: Service,
    plan: Plan,
    kind: RollbackKind,
    status: RollbackStatus,
    *,
    user: str,
    reason: str,
    target_revision: str | None,
    assessment_id: int | None,
    now: datetime,
    schedule: Callable[[int], Sequence[NewWork]],
    selection: PhaseSelection | None = None,
    **request: Any,
) -> Rollback:
    """A service's rollback row with its plan's steps and its due work, in one transaction
    (raises ActiveRollbackExists); its messages live in the service's channel. ``request``:
    what only a planned request has (window, approvals needed, expiry). A partial
    ``selection`` (``--phases``) is stored with the row, and its skipped phases' steps as
    skipped, before anything acts on it."""
    is_partial = selection is not None and selection.is_partial
    return deps.repo.create_rollback(
        service=service.name,
        kind=kind,
        strategy=plan.strategy,
        requested_by=user,
        reason=reason,
        target_revision=target_revision,
        assessment_id=assessment_id,
        channel_id=service.channel,
        status=status,
        now=now,
        phases=list(selection.selected) if selection and is_partial else None,
        steps=plan_rows(plan, selection.skipped if selection else ()),
        schedule=schedule,
        **request,
    )
