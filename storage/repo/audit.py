"""Slack delivery keys (idempotency) and the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.models import AuditEvent, SlackDelivery
from storage.repo.base import RepositoryBase


class AuditMixin(RepositoryBase):
    """Repeat detection for Slack deliveries, and audit events."""

    # --- idempotency ---------------------------------------------------------------------------

    def record_delivery(self, key: str, now: datetime) -> bool:
        """True the first time `key` is seen, False for every repeat (race-safe)."""
        try:
            with self._write() as session:
                session.add(SlackDelivery(key=key, received_at=now))
        except IntegrityError:
            return False
        return True

    # --- audit ---------------------------------------------------------------------------------

    def add_audit_event(
        self,
        kind: str,
        *,
        now: datetime,
        service: str | None = None,
        rollback_id: int | None = None,
        assessment_id: int | None = None,
        actor: str | None = None,
        channel_id: str | None = None,
        message_ts: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one audit event and return its id."""
        event = AuditEvent(
            created_at=now,
            kind=kind,
            service=service,
            rollback_id=rollback_id,
            assessment_id=assessment_id,
            actor=actor,
            channel_id=channel_id,
            message_ts=message_ts,
            detail=dict(detail or {}),
        )
        with self._write() as session:
            session.add(event)
            session.flush()
            assert event.id is not None
            return event.id

    def list_audit_events(
        self,
        kind: str | None = None,
        service: str | None = None,
        rollback_id: int | None = None,
        assessment_id: int | None = None,
    ) -> list[AuditEvent]:
        """Oldest first, filtered by every argument that is not None."""
        query = select(AuditEvent).order_by(col(AuditEvent.id))
        if kind is not None:
            query = query.where(AuditEvent.kind == kind)
        if service is not None:
            query = query.where(AuditEvent.service == service)
        if rollback_id is not None:
            query = query.where(AuditEvent.rollback_id == rollback_id)
        if assessment_id is not None:
            query = query.where(AuditEvent.assessment_id == assessment_id)
        with self._read() as session:
            return list(session.exec(query).all())
