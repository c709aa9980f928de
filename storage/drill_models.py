"""The readiness drills' table: one row per drill, with every check's outcome.

A separate module so that `storage.models` stays under the size limit; the table registers on
the same `SQLModel.metadata` (the Alembic environment imports this module too).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models import UTCDateTime


class DrillStatus(StrEnum):
    RUNNING = "running"
    PASSED = "passed"  # every check ✓
    FAILED = "failed"  # at least one check ✗ or unknown
    ERROR = "error"  # the drill itself could not finish (the bot's log says why)


class DrillTrigger(StrEnum):
    MANUAL = "manual"  # /rollback drill
    SCHEDULED = "scheduled"  # drills: {schedule: …}


class Drill(SQLModel, table=True):
    """One readiness drill of a service; nothing in the cluster was changed by it."""

    __tablename__ = "drills"
    __table_args__ = (sa.Index("ix_drills_service_started_at", "service", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    service: str
    trigger: str = DrillTrigger.MANUAL
    requested_by: str | None = None
    channel_id: str | None = None
    target_revision: str | None = None  # --to N
    # a scheduled drill's occurrence (its due-work key): the same occurrence never runs twice
    schedule_key: str | None = Field(default=None, unique=True)
    status: str = DrillStatus.RUNNING
    # [{"name", "state": ok|failed|unknown, "reason", "todo"}], in the report's order
    checks: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    failed_checks: int = 0  # ✗ and unknown
    error: str | None = None
    started_at: datetime = Field(sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    duration_seconds: float | None = None
    message_ts: str | None = None  # the report in the channel
