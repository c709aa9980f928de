"""Initial schema: assessments, rollbacks, steps, approvals, audit, Slack deliveries, due work.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Timestamps are `DateTime(timezone=True)` (the models wrap it in `UTCDateTime`, a Python-side
TypeDecorator with the same DDL). The active-status list is frozen here on purpose: changing it
later needs a migration that recreates `uq_rollbacks_active_service`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('pending_approval', 'approved', 'scheduled', 'running', 'aborting')"


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create all tables and indexes."""
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", _string(), nullable=False),
        sa.Column("requested_by", _string(), nullable=True),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("status", _string(), nullable=False),
        sa.Column("decision", _string(), nullable=True),
        sa.Column("critical_score", sa.Integer(), nullable=True),
        sa.Column("high_score", sa.Integer(), nullable=True),
        sa.Column("medium_score", sa.Integer(), nullable=True),
        sa.Column("total_score", sa.Integer(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", _string(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("completed_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    op.create_index(op.f("ix_assessments_service"), "assessments", ["service"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("kind", _string(), nullable=False),
        sa.Column("service", _string(), nullable=True),
        sa.Column("rollback_id", sa.Integer(), nullable=True),
        sa.Column("assessment_id", sa.Integer(), nullable=True),
        sa.Column("actor", _string(), nullable=True),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("message_ts", _string(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_kind"), "audit_events", ["kind"], unique=False)
    op.create_index(
        op.f("ix_audit_events_rollback_id"), "audit_events", ["rollback_id"], unique=False
    )

    op.create_table(
        "due_work",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _string(), nullable=False),
        sa.Column("key", _string(), nullable=False),
        sa.Column("due_at", _timestamp(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("claimed_by", _string(), nullable=True),
        sa.Column("claimed_until", _timestamp(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", _string(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("done_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_due_work")),
        sa.UniqueConstraint("key", name=op.f("uq_due_work_key")),
    )
    op.create_index(op.f("ix_due_work_due_at"), "due_work", ["due_at"], unique=False)

    op.create_table(
        "slack_deliveries",
        sa.Column("key", _string(255), nullable=False),
        sa.Column("received_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_slack_deliveries")),
    )

    op.create_table(
        "rollbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("kind", _string(), nullable=False),
        sa.Column("strategy", _string(), nullable=False),
        sa.Column("requested_by", _string(), nullable=False),
        sa.Column("reason", _string(), nullable=False),
        sa.Column("target_revision", _string(), nullable=True),
        sa.Column("assessment_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("progress_ts", _string(), nullable=True),
        sa.Column("scheduled_at", _timestamp(), nullable=True),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("error", _string(), nullable=True),
        sa.Column("claimed_by", _string(), nullable=True),
        sa.Column("claimed_until", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_rollbacks_assessment_id_assessments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollbacks")),
    )
    op.create_index(op.f("ix_rollbacks_service"), "rollbacks", ["service"], unique=False)
    # One active rollback per service (partial unique index, same predicate on both dialects).
    op.create_index(
        "uq_rollbacks_active_service",
        "rollbacks",
        ["service"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE),
        sqlite_where=sa.text(_ACTIVE),
    )

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=False),
        sa.Column("user_id", _string(), nullable=False),
        sa.Column("decision", _string(), nullable=False),
        sa.Column("reason", _string(), nullable=True),
        sa.Column("via", _string(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollback_id"], ["rollbacks.id"], name=op.f("fk_approvals_rollback_id_rollbacks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint(
            "rollback_id", "user_id", name=op.f("uq_approvals_rollback_id_user_id")
        ),
    )

    op.create_table(
        "rollback_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=False),
        sa.Column("phase", _string(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", _string(), nullable=False),
        sa.Column("kind", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("error", _string(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollback_id"],
            ["rollbacks.id"],
            name=op.f("fk_rollback_steps_rollback_id_rollbacks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollback_steps")),
        sa.UniqueConstraint(
            "rollback_id", "position", name=op.f("uq_rollback_steps_rollback_id_position")
        ),
    )


def downgrade() -> None:
    """Drop everything, children first."""
    op.drop_table("rollback_steps")
    op.drop_table("approvals")
    op.drop_index(
        "uq_rollbacks_active_service",
        table_name="rollbacks",
        postgresql_where=sa.text(_ACTIVE),
        sqlite_where=sa.text(_ACTIVE),
    )
    op.drop_index(op.f("ix_rollbacks_service"), table_name="rollbacks")
    op.drop_table("rollbacks")
    op.drop_table("slack_deliveries")
    op.drop_index(op.f("ix_due_work_due_at"), table_name="due_work")
    op.drop_table("due_work")
    op.drop_index(op.f("ix_audit_events_rollback_id"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_kind"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_assessments_service"), table_name="assessments")
    op.drop_table("assessments")
