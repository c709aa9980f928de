"""Customer updates: the drafts the bot writes for a status page, and every attempt to publish one.

A separate module so that `storage.models` stays under the size limit; the tables register on the
same `SQLModel.metadata` (the Alembic environment imports this module).

A draft (one per rollback and moment: ``started``, ``finished``) is edited in place (its
``version`` counts the edits) and moves ``draft`` → ``publishing`` → ``published``; an attempt
that fails moves it back to ``draft``. A newer draft of the same rollback supersedes an older one
nobody published. Each Publish press that got through stores a `StatusPagePost` with its
idempotency key before anything is sent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models import UTCDateTime


class UpdateState(StrEnum):
    DRAFT = "draft"  # waits for a person: Publish or Edit
    PUBLISHING = "publishing"  # one press is sending it (the others are told so)
    PUBLISHED = "published"
    SUPERSEDED = "superseded"  # a newer draft of the rollback replaced it unpublished


class PostOutcome(StrEnum):
    SENDING = "sending"  # stored before the POST; a crash leaves it so
    SENT = "sent"  # the status page answered 2xx
    FAILED = "failed"  # refused or unanswered after the retries


class CustomerUpdate(SQLModel, table=True):
    """One draft customer update of a rollback, shown in Slack with Publish / Edit."""

    __tablename__ = "customer_updates"
    __table_args__ = (sa.UniqueConstraint("rollback_id", "moment"),)

    id: int | None = Field(default=None, primary_key=True)
    rollback_id: int = Field(foreign_key="rollbacks.id")
    service: str
    moment: str  # "started" | "finished"
    status: str  # investigating | identified | monitoring | resolved
    title: str
    message: str = Field(sa_type=sa.Text)
    state: str = UpdateState.DRAFT
    version: int = 1  # counts the edits; the buttons and the form carry it
    channel_id: str | None = None  # the draft's Slack message, edited in place
    message_ts: str | None = None
    edited_by: str | None = None
    edited_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    publishing_by: str | None = None
    publishing_since: datetime | None = Field(default=None, sa_type=UTCDateTime())
    published_by: str | None = None
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())


class StatusPagePost(SQLModel, table=True):
    """One Publish press sent to the status page: what was sent, under which key, and how it
    went. Stored before the POST, so a crash in between leaves a ``sending`` row."""

    __tablename__ = "status_page_posts"

    id: int | None = Field(default=None, primary_key=True)
    update_id: int = Field(foreign_key="customer_updates.id", index=True)
    version: int
    idempotency_key: str = Field(max_length=200)
    status: str
    title: str
    message: str = Field(sa_type=sa.Text)
    requested_by: str
    requested_at: datetime = Field(sa_type=UTCDateTime())
    outcome: str = PostOutcome.SENDING
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
