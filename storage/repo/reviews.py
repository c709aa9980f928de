"""Post-rollback review documents and their publication."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.models import Review
from storage.repo.base import RepositoryBase
from storage.repo.records import RecordNotFound


class ReviewsMixin(RepositoryBase):
    """One review a rollback, published and followed up."""

    def get_review(self, rollback_id: int) -> Review | None:
        """The review document of a rollback, or None."""
        with self._read() as session:
            return session.exec(select(Review).where(Review.rollback_id == rollback_id)).first()

    def create_review(self, rollback_id: int, markdown: str, now: datetime) -> Review:
        """Store the review once per rollback; a second call returns the stored one unchanged."""
        try:
            with self._write() as session:
                row = Review(
                    rollback_id=rollback_id, markdown=markdown, created_at=now, updated_at=now
                )
                session.add(row)
        except IntegrityError:
            pass  # a retry or another replica stored it first
        review = self.get_review(rollback_id)
        if review is None:
            raise RecordNotFound(f"rollback {rollback_id} not found")
        return review

    def update_review(self, rollback_id: int, now: datetime, **values: Any) -> Review:
        """Set publication fields (channel_id, canvas_id, published_via, announced_at, …)."""
        allowed = set(Review.model_fields) - {"id", "rollback_id", "created_at", "updated_at"}
        if unknown := set(values) - allowed:
            raise ValueError(f"not review fields: {', '.join(sorted(unknown))}")
        with self._write() as session:
            review = session.exec(select(Review).where(Review.rollback_id == rollback_id)).first()
            if review is None:
                raise RecordNotFound(f"review of rollback {rollback_id} not found")
            for key, value in values.items():
                setattr(review, key, value)
            review.updated_at = now
        return review

    def mark_root_cause_written(self, rollback_id: int, user: str, now: datetime) -> bool:
        """Record who said the root cause is written; False if it was already recorded."""
        statement = (
            sa.update(Review)
            .where(col(Review.rollback_id) == rollback_id, col(Review.root_cause_at).is_(None))
            .values(root_cause_by=user, root_cause_at=now, updated_at=now)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1
