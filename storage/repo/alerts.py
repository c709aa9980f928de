"""Alertmanager's alerts, durable before the webhook answers: each alert's delivery key and the
due work that acts on it are stored in one transaction, so a crash after the 200 still acts
(the due-work runner picks the work up) and a resend is a duplicate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.models import Assessment, AuditEvent, DueWork, SlackDelivery
from storage.repo.base import RepositoryBase
from storage.repo.records import NewWork
from storage.repo.work import _work_row


class AlertsMixin(RepositoryBase):
    """Alert deliveries and the assessment each group of alerts gets."""

    def accept_alerts(
        self,
        keys: Sequence[str],
        now: datetime,
        schedule: Callable[[set[str]], Sequence[NewWork]],
    ) -> set[str]:
        """Record each delivery key once and, in the same transaction, the work
        ``schedule(new keys)`` returns (each once per key). Returns the keys seen first now."""
        for attempt in (1, 2):
            try:
                with self._write() as session:
                    query = select(SlackDelivery.key).where(col(SlackDelivery.key).in_(keys))
                    seen = set(session.exec(query).all())
                    fresh = {k for k in keys if k not in seen}
                    for key in sorted(fresh):
                        session.add(SlackDelivery(key=key, received_at=now))
                    for work in schedule(fresh):
                        found = session.exec(select(DueWork.id).where(DueWork.key == work.key))
                        if found.first() is None:
                            session.add(_work_row(work, now))
                return fresh
            except IntegrityError:  # another replica took some of them meanwhile: read again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def start_alert_assessment(
        self,
        key: str,
        service: str,
        actor: str,
        channel_id: str | None,
        now: datetime,
        received: Sequence[Mapping[str, Any]],
    ) -> tuple[int, bool]:
        """The assessment of one group of alerts (``key`` once) with an ``alert.received``
        audit event per alert (``received``: their details), in one transaction. Returns its
        id and whether it is new (False: a rerun after a crash found the one stored)."""
        try:
            with self._write() as session:
                session.add(SlackDelivery(key=key, received_at=now))
                assessment = Assessment(
                    service=service, requested_by=actor, channel_id=channel_id, created_at=now
                )
                session.add(assessment)
                session.flush()
                for detail in received:
                    session.add(
                        AuditEvent(
                            created_at=now,
                            kind="alert.received",
                            service=service,
                            assessment_id=assessment.id,
                            actor=actor,
                            detail={**detail, "group": key},
                        )
                    )
            assert assessment.id is not None
            return assessment.id, True
        except IntegrityError:
            pass
        query = select(AuditEvent).where(
            AuditEvent.kind == "alert.received", AuditEvent.service == service
        )
        with self._read() as session:
            events = session.exec(query.order_by(col(AuditEvent.id).desc())).all()
        found = next(e.assessment_id for e in events if e.detail.get("group") == key)
        assert found is not None
        return found, False
