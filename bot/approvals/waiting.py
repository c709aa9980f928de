"""Ending a planned request that still waits (for votes, a confirmation or its window): cancelled,
rejected, expired, failed or superseded by an immediate rollback, once, with the rest of its due
work. Every such end goes through :func:`end_waiting`, so none skips the audit or the cancel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.approvals.message import refresh_request
from bot.approvals.shared import audit
from bot.rollback.lifecycle import WAITING, RollbackStatus, waiting_work
from bot.rollback.text import unmentioned
from storage.models import Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps


def end_waiting(
    deps: Deps,
    rollback_id: int,
    status: RollbackStatus,
    *,
    error: str | None,
    event: str,
    actor: str | None,
    expected: tuple[RollbackStatus, ...] = WAITING,
    running_key: str | None = None,
    detail: dict[str, Any] | None = None,
    schedule: Sequence[NewWork] = (),
    message_ts: str | None = None,
) -> Rollback | None:
    """End a waiting request (cancelled, rejected, expired, failed) once: the status, the
    cancelling of its other due work (not ``running_key``, the item calling) and ``schedule``
    (a report of the end), in one transaction; then the audit event and the edit of the request
    message. None when it had already moved on."""
    moved = deps.repo.set_rollback_status(
        rollback_id,
        status,
        deps.clock(),
        error=error,
        expected=expected,
        cancel=[key for key in waiting_work(rollback_id) if key != running_key],
        schedule=schedule,
    )
    if moved is not None:
        audit(deps, event, moved, actor, message_ts=message_ts, **(detail or {}))
        refresh_request(deps, rollback_id)
    return moved


def cancel_waiting(deps: Deps, rollback_id: int, user: str, reason: str) -> Rollback | None:
    """Cancel a request still waiting (for approval, a confirmation or its window)."""
    return end_waiting(
        deps,
        rollback_id,
        RollbackStatus.CANCELLED,
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
    moved = end_waiting(
        deps,
        active.id,
        RollbackStatus.CANCELLED,
        error=f"superseded by an immediate rollback by <@{user}>",
        event="approval.superseded",
        actor=user,
    )
    return active.id if moved is not None else None
