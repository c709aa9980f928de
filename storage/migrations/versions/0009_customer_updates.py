"""Customer updates: the drafts for a status page and every attempt to publish one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create customer_updates and status_page_posts."""
    op.create_table(
        "customer_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollback_id", sa.Integer(), nullable=False),
        sa.Column("service", _string(), nullable=False),
        sa.Column("moment", _string(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("title", _string(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", _string(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("message_ts", _string(), nullable=True),
        sa.Column("edited_by", _string(), nullable=True),
        sa.Column("edited_at", _timestamp(), nullable=True),
        sa.Column("publishing_by", _string(), nullable=True),
        sa.Column("publishing_since", _timestamp(), nullable=True),
        sa.Column("published_by", _string(), nullable=True),
        sa.Column("published_at", _timestamp(), nullable=True),
        sa.Column("last_error", _string(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollback_id"],
            ["rollbacks.id"],
            name=op.f("fk_customer_updates_rollback_id_rollbacks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_updates")),
        sa.UniqueConstraint(
            "rollback_id", "moment", name=op.f("uq_customer_updates_rollback_id_moment")
        ),
    )
    op.create_table(
        "status_page_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("update_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", _string(200), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("title", _string(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("requested_by", _string(), nullable=False),
        sa.Column("requested_at", _timestamp(), nullable=False),
        sa.Column("outcome", _string(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", _string(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["update_id"],
            ["customer_updates.id"],
            name=op.f("fk_status_page_posts_update_id_customer_updates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_page_posts")),
    )
    op.create_index(
        op.f("ix_status_page_posts_update_id"), "status_page_posts", ["update_id"], unique=False
    )


def downgrade() -> None:
    """Drop the customer update tables."""
    op.drop_index(op.f("ix_status_page_posts_update_id"), table_name="status_page_posts")
    op.drop_table("status_page_posts")
    op.drop_table("customer_updates")
