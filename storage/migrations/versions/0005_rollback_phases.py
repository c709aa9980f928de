"""Partial rollbacks by phase: the phases a rollback runs (``--phases``), stored with it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add rollbacks.phases (NULL: every phase of the plan, as for rows made before)."""
    with op.batch_alter_table("rollbacks") as batch:
        batch.add_column(sa.Column("phases", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop rollbacks.phases."""
    with op.batch_alter_table("rollbacks") as batch:
        batch.drop_column("phases")
