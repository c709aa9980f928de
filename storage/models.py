"""SQLModel tables: the durable state of assessments, rollbacks, approvals, audit and due work.

All timestamps are timezone-aware UTC. They are stored through `UTCDateTime`, which refuses naive
datetimes on write and hands back aware UTC datetimes on read (SQLite itself keeps no zone).
Only plain foreign-key columns are used (no `Relationship()`), so the classes stay compatible
with `from __future__ import annotations`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from bot.rollback.lifecycle import (
    ACTIVE,
    TERMINAL,
    AssessmentStatus,
    RollbackKind,
    RollbackStatus,
    StepStatus,
)

# Named constraints keep future `render_as_batch` migrations on SQLite deterministic.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A `DateTime(timezone=True)` that only accepts aware datetimes and returns aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite gets a naive UTC value because it cannot store a zone."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read naive values as UTC and convert aware ones (session time zone) to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --- assessments -----------------------------------------------------------------------------

ASSESSMENT_STATUSES: tuple[AssessmentStatus, ...] = tuple(AssessmentStatus)
DECISIONS = ("IMMEDIATE ROLLBACK", "ROLLBACK RECOMMENDED", "MONITOR", "CONTINUE")


class Assessment(SQLModel, table=True):
    """One run of the decision matrix for a service."""

    __tablename__ = "assessments"

    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(index=True)
    requested_by: str | None = None
    channel_id: str | None = None
    status: str = AssessmentStatus.PENDING
    decision: str | None = None
    critical_score: int | None = None
    high_score: int | None = None
    medium_score: int | None = None
    total_score: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    result: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime())
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


# --- rollbacks -------------------------------------------------------------------------------

# The statuses and kinds are the life of a rollback's (bot.rollback.lifecycle); stored as text.
ACTIVE_STATUSES: tuple[RollbackStatus, ...] = ACTIVE
TERMINAL_STATUSES: tuple[RollbackStatus, ...] = TERMINAL
ROLLBACK_KINDS: tuple[RollbackKind, ...] = tuple(RollbackKind)

_ACTIVE_SQL = "status IN ({})".format(", ".join(f"'{status}'" for status in ACTIVE_STATUSES))


class Rollback(SQLModel, table=True):
    """A requested rollback of one service; at most one is active per service."""

    __tablename__ = "rollbacks"
    __table_args__ = (
        sa.Index(
            "uq_rollbacks_active_service",
            "service",
            unique=True,
            postgresql_where=sa.text(_ACTIVE_SQL),
            sqlite_where=sa.text(_ACTIVE_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(index=True)
    status: str
    kind: str
    strategy: str
    requested_by: str
    reason: str = ""
    target_revision: str | None = None
    assessment_id: int | None = Field(default=None, foreign_key="assessments.id")
    channel_id: str | None = None
    progress_ts: str | None = None
    scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime())
    error: str | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # approvals (planned rollbacks): the request message, how many votes it needs, its expiry
    approval_channel_id: str | None = None
    approval_ts: str | None = None
    plan_summary: str | None = None  # the dry-run text the request message showed
    # --phases: the plan's phases it runs (the others' steps are stored skipped); None: all
    phases: list[str] | None = Field(default=None, sa_type=sa.JSON)
    required_approvals: int = 1
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # notifications: the incident channel and who acknowledged the page
    incident_channel_id: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime())

    @property
    def is_active(self) -> bool:
        """True while the rollback holds its service's single active slot."""
        return self.status in ACTIVE_STATUSES


STEP_STATUSES: tuple[StepStatus, ...] = tuple(StepStatus)


class RollbackStep(SQLModel, table=True):
    """One step of a rollback plan, persisted on every transition so the engine can resume."""

    __tablename__ = "rollback_steps"
    __table_args__ = (sa.UniqueConstraint("rollback_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    # no separate index: the unique constraint leads with rollback_id
    rollback_id: int = Field(foreign_key="rollbacks.id")
    phase: str
    position: int
    name: str
    kind: str
    status: str = StepStatus.PENDING
    attempt: int = 0
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    error: str | None = None
    # multi-region services: the region whose cluster the step acts on, and its wave (from 0)
    region: str | None = None
    wave: int | None = None


class Approval(SQLModel, table=True):
    """One person's approve/reject vote on a rollback (one vote per person)."""

    __tablename__ = "approvals"
    __table_args__ = (sa.UniqueConstraint("rollback_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    # no separate index: the unique constraint leads with rollback_id
    rollback_id: int = Field(foreign_key="rollbacks.id")
    user_id: str
    decision: str
    reason: str | None = None
    via: str
    created_at: datetime = Field(sa_type=UTCDateTime())


# --- audit, idempotency, due work ------------------------------------------------------------


class AuditEvent(SQLModel, table=True):
    """Append-only record of everything that happened (never updated or deleted)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_type=UTCDateTime())
    kind: str = Field(index=True)
    service: str | None = None
    rollback_id: int | None = Field(default=None, index=True)
    assessment_id: int | None = None
    actor: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class SlackDelivery(SQLModel, table=True):
    """An idempotency key seen once (Slack retries, double clicks, duplicate webhooks)."""

    __tablename__ = "slack_deliveries"

    key: str = Field(primary_key=True, max_length=255)
    received_at: datetime = Field(sa_type=UTCDateTime())


class WorkStatus(StrEnum):
    PENDING = "pending"  # waits for its due time
    CLAIMED = "claimed"  # a worker runs it (until claimed_until: then another may)
    DONE = "done"
    FAILED = "failed"  # out of attempts
    CANCELLED = "cancelled"  # what it was for ended first


OPEN_WORK: tuple[WorkStatus, ...] = (WorkStatus.PENDING, WorkStatus.CLAIMED)


class DueWork(SQLModel, table=True):
    """Durable scheduled work shared by all replicas; `key` makes scheduling idempotent."""

    __tablename__ = "due_work"

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    key: str = Field(unique=True)
    due_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    status: str = WorkStatus.PENDING
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    attempts: int = 0  # runs that ended in an error (and the run in progress)
    waits: int = 0  # runs that ended in RetryLater: waiting is not failing
    last_error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime())
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime())

    @property
    def tries(self) -> int:
        """Every run so far, this one included, whether it failed or waited."""
        return self.attempts + self.waits


# --- paging and reviews ----------------------------------------------------------------------


class PageStatus(StrEnum):
    """What the bot writes, then Twilio's delivery statuses (a report may name others, stored
    as Twilio says them)."""

    QUEUED = "queued"  # stored, not sent
    # handed to Twilio, outcome not recorded yet (never resent: after a crash the status
    # callback settles it)
    SENDING = "sending"
    ACCEPTED = "accepted"  # Twilio's: taken, not sent yet
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # SMS is disabled


class Page(SQLModel, table=True):
    """One SMS page to one contact of an on-call ladder, written before it is sent.

    A ladder pages about a rollback (``rollback_id``) or about a question of the automatic guard
    (``question_id``: the guarded release whose "Roll back now / Keep release" it is), never both.

    ``reason`` names the ladder (critical start, failure, SLA breach); ``position`` is the
    contact's place in the service's ``oncall`` list (contacts with the same ``after_minutes``
    share a ``level``). ``(rollback_id, reason, position)`` is unique, so a retried or resumed
    escalation step never pages anyone twice. ``status`` is the delivery status; an acknowledged
    page has ``acknowledged_at`` (the first one acknowledges its whole ladder).
    """

    __tablename__ = "pages"
    __table_args__ = (
        sa.UniqueConstraint("rollback_id", "reason", "position"),
        sa.UniqueConstraint("question_id", "reason", "position"),
        sa.CheckConstraint("(rollback_id IS NULL) <> (question_id IS NULL)", name="one_owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rollback_id: int | None = Field(default=None, foreign_key="rollbacks.id")
    question_id: int | None = Field(default=None, foreign_key="guarded_releases.id")
    reason: str
    level: int
    position: int
    contact_name: str
    phone: str
    ack_code: str = Field(index=True)
    status: str = PageStatus.QUEUED
    twilio_sid: str | None = Field(default=None, unique=True)
    error_code: int | None = None
    error: str | None = None
    # the Slack page notice (with the Acknowledge button) that announced this page
    notice_channel: str | None = None
    notice_ts: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime())
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    status_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    acknowledged_by: str | None = None


class Review(SQLModel, table=True):
    """The post-rollback review document of one rollback and where it was published."""

    __tablename__ = "reviews"

    id: int | None = Field(default=None, primary_key=True)
    rollback_id: int = Field(foreign_key="rollbacks.id", unique=True)
    markdown: str
    channel_id: str | None = None
    thread_ts: str | None = None
    published_via: str | None = None  # canvas | file
    canvas_id: str | None = None
    file_id: str | None = None
    permalink: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # links posted in the progress thread and incident channel (a retry does not post again)
    announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # someone said the root cause is written (the reminder stops); also read back from a canvas
    root_cause_by: str | None = None
    root_cause_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
