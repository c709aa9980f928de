"""The automatic guard: the revision each service was last seen at, and the releases watched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create guard_services and guarded_releases."""
    op.create_table(
        "guard_services",
        sa.Column("service", _string(), nullable=False),
        sa.Column("last_revision", _string(), nullable=True),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("paused_by", _string(), nullable=True),
        sa.Column("changed_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_guard_services")),
    )

    op.create_table(
        "guarded_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", _string(), nullable=False),
        sa.Column("revision", _string(), nullable=False),
        sa.Column("release", _string(), nullable=False),
        sa.Column("detected_at", _timestamp(), nullable=False),
        sa.Column("watch_until", _timestamp(), nullable=False),
        sa.Column("next_at", _timestamp(), nullable=False),
        sa.Column("status", _string(), nullable=False),
        sa.Column("baseline", sa.JSON(), nullable=False),
        sa.Column("states", sa.JSON(), nullable=False),
        sa.Column("evaluations", sa.Integer(), nullable=False),
        sa.Column("blind_told", sa.Boolean(), nullable=False),
        sa.Column("fired_trigger", _string(), nullable=True),
        sa.Column("fired_reason", _string(), nullable=True),
        sa.Column("rollback_id", sa.Integer(), nullable=True),
        sa.Column("ended_at", _timestamp(), nullable=True),
        sa.Column("channel_id", _string(), nullable=True),
        sa.Column("message_ts", _string(), nullable=True),
        sa.Column("claimed_by", _string(), nullable=True),
        sa.Column("claimed_until", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollback_id"],
            ["rollbacks.id"],
            name=op.f("fk_guarded_releases_rollback_id_rollbacks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guarded_releases")),
        sa.UniqueConstraint(
            "service", "revision", name=op.f("uq_guarded_releases_service_revision")
        ),
    )
    op.create_index(
        op.f("ix_guarded_releases_next_at"), "guarded_releases", ["next_at"], unique=False
    )


def downgrade() -> None:
    """Drop the guard's tables."""
    op.drop_index(op.f("ix_guarded_releases_next_at"), table_name="guarded_releases")
    op.drop_table("guarded_releases")
    op.drop_table("guard_services")
