"""Pages may belong to a guard question: ``pages.question_id`` (a guarded release), exactly one
of ``rollback_id`` / ``question_id`` set, unique (question_id, reason, position); and
``guarded_releases.blind_told`` goes (whether the channel was told is the stored trigger states'
own "blind" of the evaluation before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add pages.question_id; rollback_id becomes optional (one of the two is set)."""
    with op.batch_alter_table("pages") as batch:
        batch.add_column(sa.Column("question_id", sa.Integer(), nullable=True))
        batch.alter_column("rollback_id", existing_type=sa.Integer(), nullable=True)
        batch.create_foreign_key(
            op.f("fk_pages_question_id_guarded_releases"),
            "guarded_releases",
            ["question_id"],
            ["id"],
        )
        batch.create_unique_constraint(
            op.f("uq_pages_question_id_reason_position"), ["question_id", "reason", "position"]
        )
        batch.create_check_constraint(
            "ck_pages_one_owner", "(rollback_id IS NULL) <> (question_id IS NULL)"
        )
    with op.batch_alter_table("guarded_releases") as batch:
        batch.drop_column("blind_told")


def downgrade() -> None:
    """Drop the guard questions' pages, then the column; blind_told comes back (false)."""
    with op.batch_alter_table("guarded_releases") as batch:
        batch.add_column(
            sa.Column("blind_told", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("DELETE FROM pages WHERE question_id IS NOT NULL")
    with op.batch_alter_table("pages") as batch:
        batch.drop_constraint("ck_pages_one_owner", type_="check")
        batch.drop_constraint(op.f("uq_pages_question_id_reason_position"), type_="unique")
        batch.drop_constraint(op.f("fk_pages_question_id_guarded_releases"), type_="foreignkey")
        batch.alter_column("rollback_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("question_id")
