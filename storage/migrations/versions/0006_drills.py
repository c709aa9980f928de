"""Readiness drills: one row per drill with every check's outcome.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create drills."""
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", _string(), nullable=False),
        sa.Column("trigger", _string(), nullable=False),
        sa.Column("requested_by", _string(), nullable=True),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("target_revision", _string(), nullable=True),
        sa.Column("schedule_key", _string(), nullable=True),
        sa.Column("status", _string(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("failed_checks", sa.Integer(), nullable=False),
        sa.Column("error", _string(), nullable=True),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("message_ts", _string(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drills")),
        sa.UniqueConstraint("schedule_key", name=op.f("uq_drills_schedule_key")),
    )
    op.create_index(
        "ix_drills_service_started_at", "drills", ["service", "started_at"], unique=False
    )


def downgrade() -> None:
    """Drop drills."""
    op.drop_index("ix_drills_service_started_at", table_name="drills")
    op.drop_table("drills")
