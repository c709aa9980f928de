"""Approvals, paging and reviews: request-message columns on rollbacks, pages, reviews.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLBACK_COLUMNS = (
    ("approval_channel_id", "string"),
    ("approval_ts", "string"),
    ("plan_summary", "string"),
    ("expires_at", "timestamp"),
    ("approved_at", "timestamp"),
    ("incident_channel_id", "string"),
    ("acknowledged_by", "string"),
    ("acknowledged_at", "timestamp"),
)


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the new rollback columns and the pages and reviews tables."""
    with op.batch_alter_table("rollbacks") as batch:
        batch.add_column(
            sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="1")
        )
        for name, kind in _ROLLBACK_COLUMNS:
            column_type = _timestamp() if kind == "timestamp" else _string()
            batch.add_column(sa.Column(name, column_type, nullable=True))
    with op.batch_alter_table("rollbacks") as batch:
        batch.alter_column("required_approvals", server_default=None)

    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=False),
        sa.Column("reason", _string(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("contact_name", _string(), nullable=False),
        sa.Column("phone", _string(), nullable=False),
        sa.Column("ack_code", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("twilio_sid", _string(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error", _string(), nullable=True),
        sa.Column("notice_channel", _string(), nullable=True),
        sa.Column("notice_ts", _string(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("sent_at", _timestamp(), nullable=True),
        sa.Column("status_at", _timestamp(), nullable=True),
        sa.Column("acknowledged_at", _timestamp(), nullable=True),
        sa.Column("acknowledged_by", _string(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollback_id"], ["rollbacks.id"], name=op.f("fk_pages_rollback_id_rollbacks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint(
            "rollback_id", "reason", "position", name=op.f("uq_pages_rollback_id_reason_position")
        ),
        sa.UniqueConstraint("twilio_sid", name=op.f("uq_pages_twilio_sid")),
    )
    op.create_index(op.f("ix_pages_ack_code"), "pages", ["ack_code"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=False),
        sa.Column("markdown", _string(), nullable=False),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("thread_ts", _string(), nullable=True),
        sa.Column("published_via", _string(), nullable=True),
        sa.Column("canvas_id", _string(), nullable=True),
        sa.Column("file_id", _string(), nullable=True),
        sa.Column("permalink", _string(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.Column("reminded_at", _timestamp(), nullable=True),
        sa.Column("announced_at", _timestamp(), nullable=True),
        sa.Column("root_cause_by", _string(), nullable=True),
        sa.Column("root_cause_at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollback_id"], ["rollbacks.id"], name=op.f("fk_reviews_rollback_id_rollbacks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("rollback_id", name=op.f("uq_reviews_rollback_id")),
    )


def downgrade() -> None:
    """Drop the new tables and columns."""
    op.drop_table("reviews")
    op.drop_index(op.f("ix_pages_ack_code"), table_name="pages")
    op.drop_table("pages")
    with op.batch_alter_table("rollbacks") as batch:
        for name, _ in reversed(_ROLLBACK_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("required_approvals")
