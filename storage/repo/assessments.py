"""Risk assessments: created pending, then completed or failed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.rollback.lifecycle import AssessmentStatus
from storage.models import Assessment, SlackDelivery
from storage.repo.base import RepositoryBase, _get_or_raise


class AssessmentsMixin(RepositoryBase):
    """Assessments of a service's rollback risk."""

    def create_assessment(
        self, service: str, requested_by: str | None, channel_id: str | None, now: datetime
    ) -> int:
        """Persist a pending assessment and return its id."""
        assessment_id = self.start_assessment(None, service, requested_by, channel_id, now)
        assert assessment_id is not None  # no delivery key: never a repeat
        return assessment_id

    def start_assessment(
        self,
        delivery_key: str | None,
        service: str,
        requested_by: str | None,
        channel_id: str | None,
        now: datetime,
    ) -> int | None:
        """Record the Slack delivery and a pending assessment atomically; None for a repeat.

        One transaction, so a crash cannot leave the delivery recorded without its assessment
        (which would make Slack's retry look like a duplicate and answer nothing).
        """
        assessment = Assessment(
            service=service, requested_by=requested_by, channel_id=channel_id, created_at=now
        )
        try:
            with self._write() as session:
                if delivery_key is not None:
                    session.add(SlackDelivery(key=delivery_key, received_at=now))
                    session.flush()
                session.add(assessment)
                session.flush()
        except IntegrityError:
            return None
        assert assessment.id is not None
        return assessment.id

    def complete_assessment(
        self,
        assessment_id: int,
        *,
        decision: str,
        critical: int,
        high: int,
        medium: int,
        total: int,
        inputs: Mapping[str, Any],
        result: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """Store the decision, scores, signal readings and triggers."""
        with self._write() as session:
            assessment = _get_or_raise(session, Assessment, assessment_id)
            assessment.status = AssessmentStatus.DONE
            assessment.decision = decision
            assessment.critical_score = critical
            assessment.high_score = high
            assessment.medium_score = medium
            assessment.total_score = total
            assessment.inputs = dict(inputs)
            assessment.result = dict(result)
            assessment.completed_at = now

    def fail_assessment(self, assessment_id: int, error: str, now: datetime) -> None:
        """Mark the assessment failed with the reason."""
        with self._write() as session:
            assessment = _get_or_raise(session, Assessment, assessment_id)
            assessment.status = AssessmentStatus.FAILED
            assessment.error = error
            assessment.completed_at = now

    def get_assessment(self, assessment_id: int) -> Assessment | None:
        """One assessment, or None."""
        with self._read() as session:
            return session.get(Assessment, assessment_id)

    def list_assessments(self, service: str | None = None, limit: int = 20) -> list[Assessment]:
        """Newest first, optionally for one service."""
        query = select(Assessment).order_by(col(Assessment.id).desc()).limit(limit)
        if service is not None:
            query = query.where(Assessment.service == service)
        with self._read() as session:
            return list(session.exec(query).all())
