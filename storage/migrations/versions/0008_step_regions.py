"""Multi-region rollbacks: each step names its region and wave (NULL: a single-region service).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollback_steps") as batch:
        batch.add_column(sa.Column("region", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column("wave", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollback_steps") as batch:
        batch.drop_column("wave")
        batch.drop_column("region")
