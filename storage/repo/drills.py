"""Readiness drills: started (durable before any check runs), finished with every check, and
the latest ones per service (history, App Home, /metrics, the guard's verify_rollback_tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.rollback.lifecycle import TERMINAL, DrillDueKind, RollbackKind, RollbackStatus
from storage.drill_models import Drill, DrillStatus
from storage.models import DueWork, Rollback, RollbackStep, SlackDelivery
from storage.repo.base import RepositoryBase
from storage.repo.records import RecordNotFound


class DrillsMixin(RepositoryBase):
    """Drills of a service's rollback readiness."""

    def start_drill(
        self,
        service: str,
        now: datetime,
        *,
        trigger: str,
        requested_by: str | None = None,
        channel_id: str | None = None,
        target_revision: str | None = None,
        delivery_key: str | None = None,
        schedule_key: str | None = None,
    ) -> int | None:
        """Record the Slack delivery (or the schedule's occurrence) and a running drill in one
        transaction; None when that delivery or occurrence was seen already."""
        drill = Drill(
            service=service,
            trigger=trigger,
            requested_by=requested_by,
            channel_id=channel_id,
            target_revision=target_revision,
            schedule_key=schedule_key,
            started_at=now,
        )
        try:
            with self._write() as session:
                if delivery_key is not None:
                    session.add(SlackDelivery(key=delivery_key, received_at=now))
                    session.flush()
                session.add(drill)
                session.flush()
        except IntegrityError:
            return None
        assert drill.id is not None
        return drill.id

    def finish_drill(
        self,
        drill_id: int,
        now: datetime,
        *,
        checks: Sequence[Mapping[str, Any]],
        duration_seconds: float,
        error: str | None = None,
    ) -> Drill:
        """Store every check; the drill passed when each one is ``ok`` (and nothing broke)."""
        failed = sum(1 for c in checks if c.get("state") != "ok")
        if error is not None:
            status = DrillStatus.ERROR
        else:
            status = DrillStatus.FAILED if failed or not checks else DrillStatus.PASSED
        with self._write() as session:
            drill = session.get(Drill, drill_id)
            if drill is None:
                raise RecordNotFound(f"Drill {drill_id} not found")
            drill.status = status
            drill.checks = [dict(c) for c in checks]
            drill.failed_checks = failed
            drill.error = error
            drill.finished_at = now
            drill.duration_seconds = duration_seconds
            session.add(drill)
        return drill

    def abandon_drill(self, drill_id: int, now: datetime, error: str) -> Drill | None:
        """End a drill still running as an error (its process died); None when it had ended."""
        with self._write() as session:
            drill = session.get(Drill, drill_id)
            if drill is None or drill.status != DrillStatus.RUNNING:
                return None
            drill.status, drill.error, drill.finished_at = DrillStatus.ERROR, error, now
            drill.duration_seconds = (now - drill.started_at).total_seconds()
            session.add(drill)
        return drill

    def set_drill_message(self, drill_id: int, message_ts: str) -> None:
        with self._write() as session:
            drill = session.get(Drill, drill_id)
            if drill is not None:
                drill.message_ts = message_ts

    def get_drill(self, drill_id: int) -> Drill | None:
        with self._read() as session:
            return session.get(Drill, drill_id)

    def drill_by_schedule_key(self, key: str) -> Drill | None:
        with self._read() as session:
            return session.exec(select(Drill).where(Drill.schedule_key == key)).first()

    def list_drills(self, service: str | None = None, limit: int = 10) -> list[Drill]:
        """Newest first, optionally for one service."""
        query = select(Drill).order_by(col(Drill.id).desc()).limit(limit)
        if service is not None:
            query = query.where(Drill.service == service)
        with self._read() as session:
            return list(session.exec(query).all())

    def last_drill(self, service: str, *, is_passed: bool = False) -> Drill | None:
        """The newest finished drill of ``service`` (only a passed one, if asked)."""
        statuses = [DrillStatus.PASSED] if is_passed else [s for s in DrillStatus if s != "running"]
        query = (
            select(Drill)
            .where(Drill.service == service, col(Drill.status).in_(statuses))
            .order_by(col(Drill.started_at).desc(), col(Drill.id).desc())
            .limit(1)
        )
        with self._read() as session:
            return session.exec(query).first()

    def latest_drills(self, *, is_passed: bool = False) -> dict[str, Drill]:
        """Every service's newest finished (or passed) drill, in one query."""
        statuses = [DrillStatus.PASSED] if is_passed else [s for s in DrillStatus if s != "running"]
        newest = (
            select(sa.func.max(Drill.id))
            .where(col(Drill.status).in_(statuses))
            .group_by(col(Drill.service))
        )
        with self._read() as session:
            rows = session.exec(select(Drill).where(col(Drill.id).in_(newest))).all()
        return {d.service: d for d in rows}

    def latest_rehearsals(self) -> dict[str, Rollback]:
        """Every service key's newest finished rehearsal (``checkout@staging``), in one query."""
        newest = (
            select(sa.func.max(Rollback.id))
            .where(
                Rollback.kind == RollbackKind.REHEARSAL, col(Rollback.status).in_(list(TERMINAL))
            )
            .group_by(col(Rollback.service))
        )
        with self._read() as session:
            rows = session.exec(select(Rollback).where(col(Rollback.id).in_(newest))).all()
        return {r.service: r for r in rows}

    def first_drill_occurrences(self) -> dict[str, datetime]:
        """Each service's first scheduled drill occurrence (due work is kept once done): since
        when it has had a drill schedule, for RollbackDrillOverdue of a never-passed service."""
        # drill_key: ``drill:<service>:<%Y-%m-%dT%H:%MZ>``, the time 18 characters with its colon
        prefix = sa.func.substr(DueWork.key, 7, sa.func.length(DueWork.key) - 24)
        query = (
            select(prefix, sa.func.min(DueWork.due_at))
            .where(DueWork.kind == DrillDueKind.SCHEDULED)
            .group_by(prefix)
        )
        with self._read() as session:
            rows = session.exec(query).all()
        return {str(service): first for service, first in rows}

    def phase_durations(self, service: str, limit: int = 20) -> list[dict[str, float]]:
        """Seconds each phase took in the service's latest ``limit`` succeeded rollbacks
        (first step start to last step end), newest first. A rehearsal's roll-forward steps
        (``roll_forward`` in their params) are timed under ``roll_forward``, apart from the
        rollback's own phases."""
        recent = (
            select(Rollback.id)
            .where(Rollback.service == service, Rollback.status == RollbackStatus.SUCCEEDED)
            .order_by(col(Rollback.id).desc())
            .limit(limit)
        )
        query = select(RollbackStep).where(
            col(RollbackStep.rollback_id).in_(recent),
            col(RollbackStep.started_at).is_not(None),
            col(RollbackStep.finished_at).is_not(None),
        )
        with self._read() as session:
            steps = session.exec(query).all()
        spans: dict[int, dict[str, list[float]]] = {}
        for s in steps:
            assert s.started_at is not None and s.finished_at is not None
            is_forward = bool((s.detail.get("params") or {}).get("roll_forward"))
            span = spans.setdefault(s.rollback_id, {}).setdefault(
                "roll_forward" if is_forward else s.phase,
                [s.started_at.timestamp(), s.finished_at.timestamp()],
            )
            span[0] = min(span[0], s.started_at.timestamp())
            span[1] = max(span[1], s.finished_at.timestamp())
        return [
            {phase: max(0.0, end - start) for phase, (start, end) in spans[rid].items()}
            for rid in sorted(spans, reverse=True)
        ]
