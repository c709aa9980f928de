"""A window missed: an approved rollback whose start time passed, beyond the grace period, while
the bot could not start it (it was down) is expired and reported, never run silently."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.approvals.message import post_in_thread, refresh_request
from bot.approvals.waiting import end_waiting
from bot.rollback.command import local_time
from bot.rollback.lifecycle import (
    STARTABLE,
    DueKind,
    RollbackStatus,
    start_key,
    window_missed_key,
)
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps


def missed_window(deps: Deps, r: Rollback, now: datetime) -> None:
    """Expire it and report why, the report being its own due work so it is never lost."""
    assert r.id is not None and r.scheduled_at is not None
    late = int((now - r.scheduled_at).total_seconds() // 60)
    service = deps.catalog.get(r.service)
    at = local_time(r.scheduled_at, service.tz if service else UTC)
    report = NewWork(DueKind.WINDOW_MISSED, window_missed_key(r.id), now, {"rollback_id": r.id})
    moved = end_waiting(
        deps,
        r.id,
        RollbackStatus.EXPIRED,
        error=f"window {at} missed by {late} min",
        event="rollback.window_missed",
        actor=None,
        expected=STARTABLE,
        running_key=start_key(r.id),  # the caller's
        detail={"late_minutes": late},
        schedule=[report],
    )
    if moved is not None:
        deps.kick_due_work()


def report_missed_window(deps: Deps, item: DueWork) -> None:
    r = deps.repo.get_rollback(int(item.payload["rollback_id"]))
    service = deps.catalog.get(r.service) if r else None
    if r is None or r.id is None or service is None:
        return
    post_in_thread(
        deps,
        r,
        service,
        f":warning: Rollback #{r.id} of *{service.name}* was NOT run: its {r.error} (the bot was"
        f" not running then). That is beyond the {service.window_grace_minutes:g}-minute grace"
        " period, so nothing ran silently. Re-plan it (`/rollback plan"
        f" {service.name} …`) or run it now (`/rollback run {service.name} --immediate …`).",
    )
    refresh_request(deps, r.id)
