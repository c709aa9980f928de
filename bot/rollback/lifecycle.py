"""The life of a rollback in names: its statuses and its steps' (enums whose values are the
strings stored in the database, so no data changes), the engine's step outcomes, and the kinds
of durable due work with the builders of their keys (a key names one piece of work for one
rollback; scheduling the same key twice is one piece of work).

Pure: no I/O, no imports beyond the standard library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum


class RollbackStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"  # a planned request, waiting for votes
    APPROVED = "approved"  # enough votes; starts after a fresh assessment (or Run anyway)
    SCHEDULED = "scheduled"  # approved, waiting for its window
    RUNNING = "running"
    ABORTING = "aborting"  # an abort was asked; the engine stops before the next step
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# At most one active rollback per service (a partial unique index on these).
ACTIVE: tuple[RollbackStatus, ...] = (
    RollbackStatus.PENDING_APPROVAL,
    RollbackStatus.APPROVED,
    RollbackStatus.SCHEDULED,
    RollbackStatus.RUNNING,
    RollbackStatus.ABORTING,
)
TERMINAL: tuple[RollbackStatus, ...] = (
    RollbackStatus.SUCCEEDED,
    RollbackStatus.FAILED,
    RollbackStatus.ABORTED,
    RollbackStatus.REJECTED,
    RollbackStatus.EXPIRED,
    RollbackStatus.CANCELLED,
)
# A request that has not started: cancelling it ends it; nothing ran.
WAITING: tuple[RollbackStatus, ...] = (
    RollbackStatus.PENDING_APPROVAL,
    RollbackStatus.APPROVED,
    RollbackStatus.SCHEDULED,
)
# The engine holds it: steps run (or the abort is being honoured).
IN_ENGINE: tuple[RollbackStatus, ...] = (RollbackStatus.RUNNING, RollbackStatus.ABORTING)
# Ended before anything ran: no review is written for these.
NEVER_RAN: tuple[RollbackStatus, ...] = (
    RollbackStatus.REJECTED,
    RollbackStatus.EXPIRED,
    RollbackStatus.CANCELLED,
)


class RollbackKind(StrEnum):
    IMMEDIATE = "immediate"  # a responder's, no approval
    PLANNED = "planned"  # a request with votes (two-person rule)
    REHEARSAL = "rehearsal"  # a responder's rollback and roll-forward in staging (never production)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class StepOutcome(StrEnum):
    """How the engine's run of one step ended (what it does next depends on it)."""

    SUCCEEDED = "succeeded"  # go on with the next step
    FAILED = "failed"  # the rollback fails here (the step's error says why)
    ABORTED = "aborted"  # an abort was asked: stop, the rollback ends aborted
    LEASE_LOST = "lease-lost"  # another replica holds the rollback now: stop without a word


class AssessmentStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DueKind(StrEnum):
    """Kinds of durable due work, each handled by one registered function."""

    ROLLBACK_STARTED = "rollback.started"  # tell the listeners (notices, pages, SLA check)
    ROLLBACK_FINISHED = "rollback.finished"  # tell the listeners a rollback ended
    ROLLBACK_START = "rollback.start"  # an approved request starts (after a fresh assessment)
    APPROVAL_POST = "approval.post"  # post the request for approval
    APPROVAL_EXPIRE = "approval.expire"  # an unapproved request expires
    CONFIRM_EXPIRE = "start.confirm_expire"  # an unanswered "Run anyway?" ends
    WINDOW_MISSED = "start.window_missed"  # a window passed while the bot could not start it
    SLA_CHECK = "rollback.sla_check"
    NOTIFY_CRITICAL = "notify.critical"
    NOTIFY_FINISHED = "notify.finished"
    INCIDENT_OPEN = "incident.open"
    INCIDENT_UPDATE = "incident.update"
    INCIDENT_TOPIC = "incident.topic"
    PAGE_START = "page.start"
    PAGE_LEVEL = "page.level"
    PAGE_END = "page.end"
    PAGE_POST = "page.post"
    PAGE_FINISH = "page.finish"  # the rollback ended: stop its ladder, tell who was paged
    PAGE_STOP_NOTICES = "page.stop_notices"  # replaces the Acknowledge buttons of a stopped ladder
    PAGE_ACK_NOTICES = "page.ack_notices"  # replaces the Acknowledge buttons once one is taken
    REVIEW_PUBLISH = "review.publish"
    REVIEW_REMIND = "review.remind"
    REHEARSAL_FINISHED = "rehearsal.finished"  # post a rehearsal's report (no notices, no pages)
    CUSTOMER_DRAFT = "customer.draft"  # draft a customer update (started / finished) in Slack


# --- due-work keys: one function per key shape, so that no key is built by hand twice ---------


def started_key(rollback_id: int) -> str:
    return f"started:{rollback_id}"


def finished_key(rollback_id: int) -> str:
    return f"finished:{rollback_id}"


def finished_kind(kind: str) -> DueKind:
    """What the end of a rollback row schedules: a rehearsal's report, or the production
    listeners (notices, pages, review, metrics), which a rehearsal must never reach."""
    if kind == RollbackKind.REHEARSAL:
        return DueKind.REHEARSAL_FINISHED
    return DueKind.ROLLBACK_FINISHED


def start_key(rollback_id: int, *, is_confirmed: bool = False) -> str:
    """An approved request's start (``:confirmed`` once an approver said Run anyway)."""
    return f"start:{rollback_id}" + (":confirmed" if is_confirmed else "")


def expire_key(rollback_id: int) -> str:
    return f"expire:{rollback_id}"


def approval_post_key(rollback_id: int) -> str:
    return f"{DueKind.APPROVAL_POST}:{rollback_id}"


def confirm_key(rollback_id: int) -> str:
    """The due work that ends an unanswered "run anyway?" (its due time is the deadline)."""
    return f"confirm-expire:{rollback_id}"


def window_missed_key(rollback_id: int) -> str:
    return f"window-missed:{rollback_id}"


def waiting_work(rollback_id: int) -> list[str]:
    """Every due-work key that could still act on a waiting request: ending the request
    (cancelled, expired, failed) cancels them in the same transaction."""
    return [
        expire_key(rollback_id),
        start_key(rollback_id),
        start_key(rollback_id, is_confirmed=True),
        confirm_key(rollback_id),
    ]


def sla_key(rollback_id: int) -> str:
    return f"sla-check:{rollback_id}"


def region_sla_prefix(rollback_id: int) -> str:
    return f"sla-check:{rollback_id}:"


def region_sla_key(rollback_id: int, region: str) -> str:
    """A multi-region rollback's SLA check of one region (its clock starts with the region)."""
    return f"{region_sla_prefix(rollback_id)}{region}"


def critical_notice_key(rollback_id: int) -> str:
    return f"notify-critical:{rollback_id}"


def finished_notice_key(rollback_id: int) -> str:
    return f"notify-finished:{rollback_id}"


def incident_open_key(rollback_id: int) -> str:
    return f"incident-open:{rollback_id}"


def customer_draft_key(rollback_id: int, moment: str) -> str:
    """The draft customer update of a rollback's ``moment`` (``started`` or ``finished``)."""
    return f"customer-draft:{rollback_id}:{moment}"


def incident_update_prefix(rollback_id: int) -> str:
    return f"incident-update:{rollback_id}:"


def incident_update_key(rollback_id: int, sequence: int) -> str:
    return f"{incident_update_prefix(rollback_id)}{sequence}"


def incident_topic_prefix(rollback_id: int) -> str:
    return f"incident-topic:{rollback_id}:"


def incident_topic_key(rollback_id: int, phase: str) -> str:
    return f"{incident_topic_prefix(rollback_id)}{phase}"


def page_start_key(rollback_id: int | str, reason: str) -> str:
    return f"page-start:{rollback_id}:{reason}"


def ladder_prefix(rollback_id: int | str, reason: str = "") -> str:
    """Every due-work key of one ladder starts with this (acknowledging cancels them all);
    without a reason, every ladder of the rollback. A guard question's ladder is owned by
    ``question_owner(release_id)`` instead of a rollback id."""
    return f"page:{rollback_id}:" + (f"{reason}:" if reason else "")


def review_publish_key(rollback_id: int) -> str:
    return f"{DueKind.REVIEW_PUBLISH}:{rollback_id}"


def review_remind_key(rollback_id: int) -> str:
    return f"{DueKind.REVIEW_REMIND}:{rollback_id}"


# --- votes, and the requests a start moves on from ---------------------------------------------


class Vote(StrEnum):
    """A vote on a planned request, as stored (one per person and request)."""

    APPROVE = "approve"
    REJECT = "reject"


# Approved and not started yet (now, or at its window): what a start, its confirmation or a
# missed window moves on from.
STARTABLE: tuple[RollbackStatus, ...] = (RollbackStatus.APPROVED, RollbackStatus.SCHEDULED)
# --- paging's due-work keys -----------------------------------------------------------------


def page_level_key(rollback_id: int | str, reason: str, level: int, *, is_now: bool = False) -> str:
    """A ladder's next level (``:now`` when its time is brought forward: nobody reachable)."""
    return f"{ladder_prefix(rollback_id, reason)}level:{level}" + (":now" if is_now else "")


def page_end_key(rollback_id: int | str, reason: str) -> str:
    """The "nobody acknowledged" warning after a ladder's last level."""
    return f"{ladder_prefix(rollback_id, reason)}end"


def page_post_key(notice: str) -> str:
    """One paging notice to Slack; ``notice`` starts with the rollback id (``<id>:…``)."""
    return f"page-post:{notice}"


def page_finish_key(rollback_id: int) -> str:
    return f"page-finish:{rollback_id}"


def page_stop_notices_key(rollback_id: int) -> str:
    return f"page-stop-notices:{rollback_id}"


def page_ack_notices_key(rollback_id: int, reason: str) -> str:
    return f"page-ack-notices:{rollback_id}:{reason}"


# --- the automatic guard ---------------------------------------------------------------------


class GuardDueKind(StrEnum):
    """Due work of the automatic guard."""

    CONFIRM_TIMEOUT = "guard.confirm_timeout"  # an unanswered "Roll back now / Keep release"
    PAGE = "guard.page"  # (older data) page the on-call about a posted question
    ALERT_FIRING = "guard.alert_firing"  # Alertmanager's new firing alerts of one service
    ALERT_ROLLBACK = "guard.alert_rollback"  # their rollback="auto": the guard's fire path
    ALERT_RESOLVED = "guard.alert_resolved"  # a resolved alert: noted in its thread


def guard_confirm_key(release_id: int) -> str:
    return f"guard-confirm:{release_id}"


class DrillDueKind(StrEnum):
    """Due work of the readiness drills."""

    SCHEDULED = "drill.scheduled"  # one occurrence of a service's drills: {schedule: …}
    STALE = "drill.stale"  # a /rollback drill still running long after its start: the bot died


def drill_key(service: str, at: datetime) -> str:
    """One scheduled drill of a service (also the drill row's schedule_key: it runs once)."""
    return f"drill:{service}:{at.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def drill_stale_key(drill_id: int) -> str:
    return f"drill-stale:{drill_id}"


def question_owner(release_id: int) -> str:
    """What owns a guard question's paging ladder in its keys (a rollback's is its id)."""
    return f"q{release_id}"


def alert_work_key(kind: str, alert_keys: Iterable[str]) -> str:
    """The due work of one group of Alertmanager alerts (by their delivery keys)."""
    digest = hashlib.sha256("\n".join(sorted(alert_keys)).encode()).hexdigest()[:32]
    return f"{kind}:{digest}"
