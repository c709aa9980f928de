"""Rollbacks: creation with their plan, status transitions, worker leases."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.rollback.lifecycle import ACTIVE, IN_ENGINE, TERMINAL, RollbackKind, RollbackStatus
from storage.models import OPEN_WORK, AuditEvent, DueWork, Rollback
from storage.repo.base import RepositoryBase, _get_or_raise
from storage.repo.records import ActiveRollbackExists, NewStep, NewWork, RecordNotFound
from storage.repo.steps import _step_rows
from storage.repo.work import _work_row, cancelled

# approved, whether it starts now or waits for its window
_APPROVED = (RollbackStatus.APPROVED, RollbackStatus.SCHEDULED)


class RollbacksMixin(RepositoryBase):
    """Rollback rows, one active per service, and the lease of the worker running one."""

    def create_rollback(
        self,
        *,
        service: str,
        kind: str,
        strategy: str,
        requested_by: str,
        status: str,
        now: datetime,
        reason: str = "",
        target_revision: str | None = None,
        assessment_id: int | None = None,
        channel_id: str | None = None,
        scheduled_at: datetime | None = None,
        required_approvals: int = 1,
        expires_at: datetime | None = None,
        phases: Sequence[str] | None = None,
        steps: Sequence[NewStep] = (),
        schedule: Callable[[int], Sequence[NewWork]] | None = None,
    ) -> Rollback:
        """Persist a rollback with its plan's steps in one transaction (a crash never leaves an
        active rollback without a plan); `ActiveRollbackExists` if the service has one."""
        if kind not in tuple(RollbackKind):
            raise ValueError(f"unknown rollback kind {kind!r}")
        _check_rollback_status(status)
        started_at = now if status == RollbackStatus.RUNNING else None  # immediate: at once
        for attempt in range(3):
            rollback = Rollback(
                service=service,
                status=status,
                kind=kind,
                strategy=strategy,
                requested_by=requested_by,
                reason=reason,
                target_revision=target_revision,
                assessment_id=assessment_id,
                channel_id=channel_id,
                scheduled_at=scheduled_at,
                required_approvals=required_approvals,
                expires_at=expires_at,
                phases=list(phases) if phases is not None else None,
                created_at=now,
                started_at=started_at,
            )
            try:
                with self._write() as session:
                    session.add(rollback)
                    session.flush()
                    assert rollback.id is not None
                    session.add_all(_step_rows(rollback.id, steps))
                    for work in schedule(rollback.id) if schedule else ():
                        session.add(_work_row(work, now))
                return rollback
            except IntegrityError:
                if status not in ACTIVE:
                    raise
                self._raise_if_active(service)
                if attempt == 2:  # not the active-slot index (e.g. a foreign key): give up
                    raise
        raise AssertionError("unreachable")

    def _raise_if_active(self, service: str) -> None:
        existing = self.get_active_rollback(service)
        if existing is not None:
            assert existing.id is not None
            raise ActiveRollbackExists(service, existing.id) from None

    def get_rollback(self, rollback_id: int) -> Rollback | None:
        """One rollback, or None."""
        with self._read() as session:
            return session.get(Rollback, rollback_id)

    def get_active_rollback(self, service: str) -> Rollback | None:
        """The service's active rollback, if any."""
        query = select(Rollback).where(
            Rollback.service == service, col(Rollback.status).in_(ACTIVE)
        )
        with self._read() as session:
            return session.exec(query).first()

    def list_rollbacks(
        self,
        *,
        service: str | None = None,
        statuses: Collection[str] | None = None,
        limit: int = 50,
    ) -> list[Rollback]:
        """Newest first, optionally for one service and/or some statuses."""
        query = select(Rollback).order_by(col(Rollback.id).desc()).limit(limit)
        if service is not None:
            query = query.where(Rollback.service == service)
        if statuses is not None:
            query = query.where(col(Rollback.status).in_(list(statuses)))
        with self._read() as session:
            return list(session.exec(query).all())

    def set_rollback_status(
        self,
        rollback_id: int,
        status: str,
        now: datetime,
        error: str | None = None,
        *,
        expected: Collection[str] | None = None,
        schedule: Sequence[NewWork] = (),
        cancel: Sequence[str] = (),
        audit: AuditEvent | None = None,
    ) -> Rollback | None:
        """Move a rollback to `status`, stamping started_at/finished_at, and return it.

        With `expected`, the change is a compare-and-set: it happens only if the current status is
        one of `expected`, else None is returned (e.g. two people clicking Approve and Reject).
        In the same transaction, `schedule` adds due work (once per key) and `cancel` cancels
        open due work by key, so a crash can never separate a transition from what follows it;
        `audit` is appended with it.
        Raises `RecordNotFound`, or `ActiveRollbackExists` when re-activating would make two.
        """
        _check_rollback_status(status)
        service: str | None = None
        try:
            with self._write() as session:
                query = select(Rollback).where(Rollback.id == rollback_id).with_for_update()
                rollback = session.exec(query).first()
                if rollback is None:
                    raise RecordNotFound(f"rollback {rollback_id} not found")
                if expected is not None and rollback.status not in expected:
                    return None
                rollback.status = status
                if status == RollbackStatus.RUNNING and rollback.started_at is None:
                    rollback.started_at = now
                if status in _APPROVED and rollback.approved_at is None:
                    rollback.approved_at = now
                if status in TERMINAL:
                    rollback.finished_at = now
                if error is not None:
                    rollback.error = error
                service = rollback.service
                if audit is not None:
                    session.add(audit)
                for work in schedule:
                    if session.exec(select(DueWork).where(DueWork.key == work.key)).first() is None:
                        session.add(_work_row(work, now))
                if cancel:
                    session.exec(
                        sa.update(DueWork)
                        .where(col(DueWork.key).in_(list(cancel)))
                        .where(col(DueWork.status).in_(OPEN_WORK))
                        .values(**cancelled(now))
                    )
            return rollback
        except IntegrityError:
            if service is not None and status in ACTIVE:
                self._raise_if_active(service)
            raise

    def set_rollback_progress_ts(self, rollback_id: int, progress_ts: str) -> None:
        """Remember the ts of the rollback's progress message (edited in place)."""
        with self._write() as session:
            _get_or_raise(session, Rollback, rollback_id).progress_ts = progress_ts

    def claim_rollback(
        self, rollback_id: int, worker: str, now: datetime, lease: timedelta
    ) -> bool:
        """Lease an active rollback to `worker` (or renew its lease); False if held elsewhere."""
        free = sa.or_(
            col(Rollback.claimed_by).is_(None),
            col(Rollback.claimed_by) == worker,
            col(Rollback.claimed_until).is_(None),
            col(Rollback.claimed_until) <= now,
        )
        statement = (
            sa.update(Rollback)
            .where(col(Rollback.id) == rollback_id, col(Rollback.status).in_(ACTIVE))
            .where(free)
            .values(claimed_by=worker, claimed_until=now + lease)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def release_rollback(self, rollback_id: int, worker: str) -> bool:
        """Give the lease back; False if `worker` did not hold it."""
        statement = (
            sa.update(Rollback)
            .where(col(Rollback.id) == rollback_id, col(Rollback.claimed_by) == worker)
            .values(claimed_by=None, claimed_until=None)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def list_unclaimed_rollbacks(
        self,
        now: datetime,
        statuses: Collection[str] = (RollbackStatus.APPROVED, *IN_ENGINE),
    ) -> list[Rollback]:
        """Rollbacks in `statuses` whose lease is free or expired (to resume after a restart)."""
        query = (
            select(Rollback)
            .where(col(Rollback.status).in_(list(statuses)))
            .where(
                sa.or_(col(Rollback.claimed_until).is_(None), col(Rollback.claimed_until) <= now)
            )
            .order_by(col(Rollback.id))
        )
        with self._read() as session:
            return list(session.exec(query).all())

    def set_incident_channel(self, rollback_id: int, channel_id: str) -> bool:
        """Record the rollback's incident channel once; False if another one was recorded first."""
        statement = (
            sa.update(Rollback)
            .where(col(Rollback.id) == rollback_id, col(Rollback.incident_channel_id).is_(None))
            .values(incident_channel_id=channel_id)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1


def _check_rollback_status(status: str) -> None:
    if status not in ACTIVE and status not in TERMINAL:
        raise ValueError(f"unknown rollback status {status!r}")
