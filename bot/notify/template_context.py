"""What a notification template sees: the context built from a stored rollback record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.catalog.load import Service
from bot.notify.blocks import plural
from bot.notify.templates import channel_link, mention
from bot.regions.status import region_finished, region_started
from bot.review.text import when
from bot.rollback.lifecycle import (
    ACTIVE,
    AssessmentStatus,
    RollbackKind,
    RollbackStatus,
    StepStatus,
)
from bot.rollback.phases import stored_selection
from storage.models import Approval, Assessment, Rollback, RollbackStep
from storage.repository import Repository

# --- context --------------------------------------------------------------------------------

_STATUS_TEXT: dict[str, str] = {
    RollbackStatus.PENDING_APPROVAL: "Waiting for approval",
    RollbackStatus.APPROVED: "Approved, about to start",
    RollbackStatus.SCHEDULED: "Scheduled",
    RollbackStatus.RUNNING: "Rollback in progress",
    RollbackStatus.ABORTING: "Aborting",
    RollbackStatus.SUCCEEDED: "Rollback completed",
    RollbackStatus.FAILED: "Rollback FAILED",
    RollbackStatus.ABORTED: "Rollback aborted",
}
_RESULTS: dict[str, tuple[str, str]] = {
    StepStatus.SUCCEEDED: (":white_check_mark:", "PASSED"),
    StepStatus.FAILED: (":x:", "FAILED"),
    StepStatus.SKIPPED: (":heavy_minus_sign:", "SKIPPED"),
    StepStatus.RUNNING: (":hourglass_flowing_sand:", "RUNNING"),
    StepStatus.PENDING: (":white_circle:", "PENDING"),
}
_VALIDATION_KINDS = ("http_check", "prometheus_gate", "wait_rollout")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _target_version(rollback: Rollback, steps: Iterable[RollbackStep]) -> str:
    for step in steps:
        undo = step.detail.get("undo")
        if isinstance(undo, Mapping) and "to_revision" in undo:
            images = undo.get("images_after") or {}
            shown = ", ".join(f"{c}={i}" for c, i in dict(images).items())
            return f"revision {undo['to_revision']}" + (f" ({shown})" if shown else "")
        if "image_after" in step.detail:
            return str(step.detail["image_after"])
        if "selector" in step.detail and step.kind == "switch_selector":
            return ",".join(f"{k}={v}" for k, v in dict(step.detail["selector"]).items())
    if rollback.target_revision:
        return f"revision {rollback.target_revision}"
    return "the previous version"


def paging_text(service: Service, is_sms_enabled: bool | None) -> str:
    """Whether the page that a failure (or an SLA breach) starts reaches anyone, in words.

    ``is_sms_enabled`` None: not known to the caller (the text then makes no promise of SMS).
    """
    first = [p.name for p in service.spec.oncall if p.after_minutes == 0] or [
        p.name for p in service.spec.oncall[:1]
    ]
    if not first:
        return (
            f"Nobody is being paged: {service.name} has no `oncall:` ladder in the catalog."
            " Call the on-call yourself"
        )
    who = ", ".join(first)
    if is_sms_enabled is False:
        return (
            f"SMS paging is disabled (Twilio is not configured): nobody is texted. Call the"
            f" on-call ({who}) yourself"
        )
    if is_sms_enabled is None:
        return f"The on-call ladder ({who} first) is paged"
    return f"The on-call ({who}) is being paged by SMS"


def context_from(
    rollback: Rollback,
    steps: list[RollbackStep],
    approvals: list[Approval],
    assessment: Assessment | None,
    service: Service,
    now: datetime,
    *,
    is_sms_enabled: bool | None = None,
    service_state: str | None = None,
) -> dict[str, Any]:
    """The variables every template sees (pure: the caller reads the records). A partial
    rollback (``--phases``) is about its own steps: the skipped phases' are left out. For a
    ``service`` that stands for one region (an SLA breach there), the clock and the steps are
    that region's."""
    selection = stored_selection(rollback.phases, (s.phase for s in steps))
    if selection is not None:
        steps = [s for s in steps if s.phase not in selection.skipped]
    context = {
        **_rollback_context(rollback, now),
        **_service_context(rollback, service),
        **_impact_context(rollback, steps, service, is_sms_enabled, service_state),
        **_steps_context(rollback, steps),
        "phases": selection.describe() if selection else None,
        "approvers_voted": [mention(a.user_id) for a in approvals if a.decision == "approve"],
        "responders": [mention(u) for u in service.spec.responders],
        "assessment": _assessment_context(assessment),
        "region": None,
    }
    if service.region is not None:
        own = [s for s in steps if s.region == service.region.name]
        started = region_started(own) or now
        context |= {
            **_steps_context(rollback, own),
            "region": service.region.name,
            "duration": format_duration(((region_finished(own) or now) - started).total_seconds()),
        }
    return context


def _rollback_context(rollback: Rollback, now: datetime) -> dict[str, Any]:
    started = rollback.started_at or rollback.created_at
    ended = rollback.finished_at or now
    return {
        "rollback_id": rollback.id,
        "service": rollback.service,
        "kind": rollback.kind,
        "strategy": rollback.strategy,
        "status": rollback.status,
        "status_text": _STATUS_TEXT.get(rollback.status, rollback.status),
        "is_final": rollback.status not in ACTIVE,
        "reason": rollback.reason or "no reason given",
        "coordinator": mention(rollback.requested_by),
        "requested_by": mention(rollback.requested_by),
        "started_at": when(started),
        "finished_at": when(rollback.finished_at),
        "now": when(now),
        "duration": format_duration((ended - started).total_seconds()),
        "duration_minutes": round((ended - started).total_seconds() / 60, 1),
    }


def _service_context(rollback: Rollback, service: Service) -> dict[str, Any]:
    notifications = service.notifications
    return {
        "estimated_downtime_minutes": service.sla_minutes,  # kept for catalogs' own templates
        "sla_minutes": service.sla_minutes,
        "sla": plural(service.sla_minutes, "minute"),  # "15 minutes", "1 minute"
        "update_every_minutes": f"{notifications.update_every_minutes:g}",
        "status_page_url": notifications.status_page_url,
        "review_reminder_hours": f"{service.review_reminder_hours:g}",
        "incident_channel": channel_link(rollback.incident_channel_id),
        # customer updates (bot/customer): what customers call it, and when it should be back
        "customer_name": service.customer_name or service.name,
        "resume_by": _resume_by(rollback, service),
    }


def _resume_by(rollback: Rollback, service: Service) -> str:
    """The rollback's start plus its SLA, as a clock time in the service's time zone."""
    due = (rollback.started_at or rollback.created_at) + timedelta(minutes=service.sla_minutes)
    return f"{due.astimezone(service.tz):%H:%M %Z}"


def _impact_context(
    rollback: Rollback,
    steps: list[RollbackStep],
    service: Service,
    is_sms_enabled: bool | None,
    service_state: str | None,
) -> dict[str, Any]:
    is_critical = rollback.kind == RollbackKind.IMMEDIATE
    has_database = any(s.phase == "database" for s in steps)
    return {
        "user_impact": "HIGH — users may see a service interruption"
        if is_critical
        else "LOW — planned rollback",
        # the catalog's `impact:` line, or None (the default templates then leave it out)
        "business_impact": service.spec.impact,
        "data_impact": "AT RISK — the plan changes the database; verify data integrity"
        if has_database
        else "MINIMAL — the plan does not touch the database",
        "target_version": _target_version(rollback, steps),
        "paging": paging_text(service, is_sms_enabled),
        # which pods run which release now (failure and abort notices only; None elsewhere)
        "service_state": service_state,
    }


def _steps_context(rollback: Rollback, steps: list[RollbackStep]) -> dict[str, Any]:
    running = next((s for s in steps if s.status == StepStatus.RUNNING), None)
    failed = next((s for s in steps if s.status == StepStatus.FAILED), None)
    validation = [
        {"name": s.name, "icon": _RESULTS[s.status][0], "result": _RESULTS[s.status][1]}
        for s in steps
        if s.phase == "verification" or s.kind in _VALIDATION_KINDS
    ]
    return {
        "steps": [
            {"name": s.name, "phase": s.phase, "status": s.status, "error": s.error} for s in steps
        ],
        "steps_total": len(steps),
        "steps_done": sum(1 for s in steps if s.status == StepStatus.SUCCEEDED),
        "current_step": running.name if running else None,
        "current_phase": running.phase if running else None,
        "validation": validation,
        "failed_phase": failed.phase if failed else "n/a",
        "failed_step": failed.name if failed else "n/a",
        "error": (failed.error if failed else None) or rollback.error,
    }


def _assessment_context(assessment: Assessment | None) -> dict[str, Any] | None:
    if assessment is None:
        return None
    return {
        "decision": assessment.decision,
        "critical": assessment.critical_score,
        "high": assessment.high_score,
        "medium": assessment.medium_score,
        "total": assessment.total_score,
    }


def build_context(
    repo: Repository,
    rollback: Rollback,
    service: Service,
    now: datetime,
    *,
    is_sms_enabled: bool | None = None,
    service_state: str | None = None,
) -> dict[str, Any]:
    """The template context of a stored rollback: its steps, votes and assessment."""
    assert rollback.id is not None
    assessment = (
        repo.get_assessment(rollback.assessment_id) if rollback.assessment_id is not None else None
    )
    return context_from(
        rollback,
        repo.list_steps(rollback.id),
        repo.list_approvals(rollback.id),
        assessment,
        service,
        now,
        is_sms_enabled=is_sms_enabled,
        service_state=service_state,
    )


def sample_context(service: Service) -> dict[str, Any]:
    """A realistic context (a failed, approved rollback) for check-config's trial renders."""
    now = datetime(2025, 1, 1, 12, 30, tzinfo=UTC)
    start = now - timedelta(minutes=7)
    rollback = Rollback(
        id=42,
        service=service.name,
        status=RollbackStatus.FAILED,
        kind=RollbackKind.IMMEDIATE,
        strategy=service.spec.strategy,
        requested_by="U0SAMPLE",
        reason="error rate above 10 % after v3",
        created_at=start,
        started_at=start,
        finished_at=now,
        incident_channel_id="C0INCIDENT",
        error="Wait for rollout: timed out",
    )
    steps = [
        RollbackStep(
            rollback_id=42,
            phase="application",
            position=0,
            name="Roll back the Deployment",
            kind="rollout_undo",
            status=StepStatus.SUCCEEDED,
            detail={"undo": {"to_revision": 2, "images_after": {"app": "shop/app:v2"}}},
        ),
        RollbackStep(
            rollback_id=42,
            phase="verification",
            position=1,
            name="Health check",
            kind="http_check",
            status=StepStatus.FAILED,
            error="timed out",
        ),
    ]
    approvals = [
        Approval(
            rollback_id=42, user_id="U0APPROVER", decision="approve", via="slack", created_at=now
        )
    ]
    assessment = Assessment(
        id=7,
        service=service.name,
        status=AssessmentStatus.DONE,
        decision="IMMEDIATE ROLLBACK",
        critical_score=55,
        high_score=0,
        medium_score=10,
        total_score=65,
        created_at=start,
    )
    state = (
        f"{service.spec.deployment}: revision 5 (app=shop/app:v3) 0/3 available · revision 2"
        " (app=shop/app:v2) 3/3 available — the rollout has not finished"
    )
    return context_from(rollback, steps, approvals, assessment, service, now, service_state=state)
