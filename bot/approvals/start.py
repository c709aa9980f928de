"""Starting approved rollbacks: at the window, after a fresh assessment, never blindly.

``rollback.start`` is durable due work scheduled in the same transaction as the approval. Just
before starting, the service is assessed again; when the matrix says CONTINUE (or the assessment
fails) the approvers are asked to **Run anyway** or **Cancel** (``confirm``), and an unanswered
question expires. A window missed by more than the grace period (the bot was down) is reported,
never run silently (``windows``). Every way out of "approved" or "scheduled" (start, cancel,
expiry, give-up) is a compare-and-set that cancels the rest of the due work in the same
transaction (``waiting``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.adapters.slack.web import SlackError
from bot.approvals.confirm import ask_to_confirm, confirm_expired
from bot.approvals.message import post_in_thread, refresh_request
from bot.approvals.shared import approving_voters, audit
from bot.approvals.waiting import end_waiting
from bot.approvals.windows import missed_window, report_missed_window
from bot.assessment.signals import assess_service, store_assessment
from bot.catalog.load import Service
from bot.execution.engine import started_work
from bot.execution.preflight import Refusal, check
from bot.notify.blocks import escape_keeping_mentions
from bot.regions.assess import assess_regions
from bot.regions.text import stored_service
from bot.rollback.assess import Decision
from bot.rollback.lifecycle import (
    STARTABLE,
    DueKind,
    RollbackKind,
    RollbackStatus,
    waiting_work,
)
from storage.models import DueWork, Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)


def install(deps: Deps) -> None:
    deps.due.register(
        DueKind.ROLLBACK_START,
        lambda item: start_due(deps, item),
        lambda i, e: _gave_up(deps, i, e),
    )
    deps.due.register(DueKind.CONFIRM_EXPIRE, lambda item: confirm_expired(deps, item))
    deps.due.register(DueKind.WINDOW_MISSED, lambda item: report_missed_window(deps, item))


def start_due(deps: Deps, item: DueWork) -> None:
    """Start an approved rollback: at its window, after a fresh assessment."""
    rollback_id = int(item.payload["rollback_id"])
    confirmed_by = item.payload.get("confirmed_by")
    r = deps.repo.get_rollback(rollback_id)
    if r is None or r.status not in STARTABLE:
        return
    service = deps.catalog.get(r.service)
    now = deps.clock()
    if service is None:  # nothing to start nor to post in: ended, audited, its work cancelled
        gone = "the service left the catalog"
        end_waiting(
            deps,
            rollback_id,
            RollbackStatus.FAILED,
            error=gone,
            event="rollback.refused",
            actor=None,
            expected=STARTABLE,
            running_key=item.key,
            detail={"why": gone},
        )
        return
    grace = timedelta(minutes=service.window_grace_minutes)
    if not confirmed_by and r.scheduled_at is not None and now - r.scheduled_at > grace:
        missed_window(deps, r, now)
        return
    if not confirmed_by:
        decision = _reassess(deps, service, r)
        if decision in (Decision.CONTINUE, None):
            ask_to_confirm(deps, r, service, decision)
            return
    if _refused_at_start(deps, r, service, item):
        return
    moved = deps.repo.set_rollback_status(
        rollback_id,
        RollbackStatus.RUNNING,
        now,
        expected=STARTABLE,
        cancel=[key for key in waiting_work(rollback_id) if key != item.key],  # not this one
        schedule=[started_work(rollback_id, now)],  # its listeners: SLA check, metrics
    )
    if moved is None:
        return
    audit(
        deps,
        "rollback.started",
        moved,
        confirmed_by or None,
        kind=RollbackKind.PLANNED,
        approvers=approving_voters(deps, rollback_id),
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
    try:  # the regions it was requested for (--region), each against its own cluster
        regional = stored_service(service, deps.repo.list_steps(r.id))
        check(deps, regional, r.target_revision, pin=False, phases=r.phases or ())
    except Refusal as refusal:
        ended = end_waiting(
            deps,
            r.id,
            RollbackStatus.FAILED,
            error=f"refused at the start: {refusal}",
            event="rollback.refused",
            actor=None,
            expected=STARTABLE,
            running_key=item.key,
            detail={"why": str(refusal)},
        )
        if ended is not None:
            post_in_thread(
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
        if service.regions:  # every region at once: the worst one decides
            result = assess_regions(deps.reader, deps.kube, service)[0]
        else:
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


def _gave_up(deps: Deps, item: DueWork, error: str) -> None:
    """The start kept failing: fail the rollback where people will see it."""
    rollback_id = int(item.payload["rollback_id"])
    moved = end_waiting(
        deps,
        rollback_id,
        RollbackStatus.FAILED,
        error=f"the start kept failing: {error}",
        event="rollback.start_failed",
        actor=None,
        expected=STARTABLE,
        detail={"error": error},
    )
    service = deps.catalog.get(moved.service) if moved else None
    if moved is None or service is None:
        return
    try:
        post_in_thread(
            deps,
            moved,
            service,
            f":x: Approved rollback #{rollback_id} of *{service.name}* could not be started"
            " after several tries; nothing was changed. The bot's log has the details; plan it"
            " again or run it with `--immediate`.",
        )
    except SlackError:
        log.exception("could not report that rollback #%d could not start", rollback_id)
