"""Queries and state transitions: the only SQL in the bot.

Every method runs in its own short transaction and returns detached objects whose attributes
stay readable after the session closes. Methods that stamp time take `now` (aware UTC).
Uniqueness races (Slack retries, double clicks, two replicas) are settled by the database's
unique keys, never by a read-then-insert check.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.db import immediate
from storage.models import (
    ACTIVE_STATUSES,
    ROLLBACK_KINDS,
    TERMINAL_STATUSES,
    Approval,
    Assessment,
    AuditEvent,
    DueWork,
    Page,
    Review,
    Rollback,
    RollbackStep,
    SlackDelivery,
)

_FINISHED_STEP_STATUSES = ("succeeded", "failed", "skipped")
_Row = TypeVar("_Row", Assessment, Rollback, RollbackStep)


class ActiveRollbackExists(Exception):
    """The service already has an active rollback (the partial unique index said no)."""

    def __init__(self, service: str, existing_id: int) -> None:
        super().__init__(f"a rollback of {service} is already active (#{existing_id})")
        self.service = service
        self.existing_id = existing_id


class RecordNotFound(LookupError):
    """The row to update does not exist."""


@dataclass(frozen=True)
class NewStep:
    """A plan step to persist with `Repository.add_steps` (its position is its index)."""

    phase: str
    name: str
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewWork:
    """Due work to schedule together with a status change (`set_rollback_status`)."""

    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


ACK_CODE_MEMORY = timedelta(days=7)  # a page's ack code is not reused for that phone sooner


class Repository:
    """Durable state behind one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writers take SQLite's lock at BEGIN so read-then-write transactions wait, not fail.
        self._writer = immediate(engine)
        # SQLite has one writer at a time and its busy handler waits by sleeping with back-off,
        # which starves unlucky writers under load (seen in benchmarks/ack_latency.py: > 3 s).
        # Queuing this process's writers on a lock first keeps waits short and in order.
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    # --- idempotency ---------------------------------------------------------------------------

    def record_delivery(self, key: str, now: datetime) -> bool:
        """True the first time `key` is seen, False for every repeat (race-safe)."""
        try:
            with self._write() as session:
                session.add(SlackDelivery(key=key, received_at=now))
        except IntegrityError:
            return False
        return True

    # --- assessments ---------------------------------------------------------------------------

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
            assessment.status = "done"
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
            assessment.status = "failed"
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

    # --- rollbacks -----------------------------------------------------------------------------

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
        steps: Sequence[NewStep] = (),
        schedule: Callable[[int], Sequence[NewWork]] | None = None,
    ) -> Rollback:
        """Persist a rollback with its plan's steps in one transaction (a crash can never leave
        an active rollback without a plan); raise `ActiveRollbackExists` if the service already
        has one."""
        if kind not in ROLLBACK_KINDS:
            raise ValueError(f"unknown rollback kind {kind!r}")
        _check_rollback_status(status)
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
                created_at=now,
                started_at=now if status == "running" else None,  # immediate: starts at once
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
                if status not in ACTIVE_STATUSES:
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
            Rollback.service == service, col(Rollback.status).in_(ACTIVE_STATUSES)
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
                if status == "running" and rollback.started_at is None:
                    rollback.started_at = now
                if status in ("approved", "scheduled") and rollback.approved_at is None:
                    rollback.approved_at = now
                if status in TERMINAL_STATUSES:
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
                        .where(col(DueWork.status).in_(("pending", "claimed")))
                        .values(
                            status="cancelled", done_at=now, claimed_by=None, claimed_until=None
                        )
                    )
            return rollback
        except IntegrityError:
            if service is not None and status in ACTIVE_STATUSES:
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
            .where(col(Rollback.id) == rollback_id, col(Rollback.status).in_(ACTIVE_STATUSES))
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
        self, now: datetime, statuses: Collection[str] = ("approved", "running", "aborting")
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

    # --- steps ---------------------------------------------------------------------------------

    def add_steps(self, rollback_id: int, steps: Sequence[NewStep]) -> list[RollbackStep]:
        """Persist the plan's steps once; on a second call return the steps already stored."""
        try:
            with self._write() as session:
                existing = session.exec(
                    select(RollbackStep).where(RollbackStep.rollback_id == rollback_id).limit(1)
                ).first()
                if existing is None:
                    session.add_all(_step_rows(rollback_id, steps))
        except IntegrityError:
            pass  # another replica stored them first
        return self.list_steps(rollback_id)

    def list_steps(self, rollback_id: int) -> list[RollbackStep]:
        """The rollback's steps in plan order."""
        query = (
            select(RollbackStep)
            .where(RollbackStep.rollback_id == rollback_id)
            .order_by(col(RollbackStep.position))
        )
        with self._read() as session:
            return list(session.exec(query).all())

    def get_step(self, step_id: int) -> RollbackStep | None:
        with self._read() as session:
            return session.get(RollbackStep, step_id)

    def start_step(self, step_id: int, now: datetime) -> RollbackStep:
        """Mark a step running and count the attempt."""
        with self._write() as session:
            step = _get_or_raise(session, RollbackStep, step_id)
            step.status = "running"
            step.attempt += 1
            step.started_at = now
            step.finished_at = None
            step.error = None
        return step

    def record_step_detail(self, step_id: int, detail: Mapping[str, Any]) -> RollbackStep:
        """Merge `detail` into a step while it runs (what it is about to do, for a resume)."""
        with self._write() as session:
            step = _get_or_raise(session, RollbackStep, step_id)
            step.detail = {**step.detail, **detail}
        return step

    def finish_step(
        self,
        step_id: int,
        status: str,
        now: datetime,
        *,
        detail: Mapping[str, Any] | None = None,
        error: str | None = None,
        audit: AuditEvent | None = None,
    ) -> RollbackStep:
        """End a step as succeeded/failed/skipped; `detail` is merged into the stored detail.
        `audit` is appended in the same transaction."""
        if status not in _FINISHED_STEP_STATUSES:
            raise ValueError(f"{status!r} is not a finished step status")
        with self._write() as session:
            step = _get_or_raise(session, RollbackStep, step_id)
            step.status = status
            step.finished_at = now
            step.error = error
            if detail:
                step.detail = {**step.detail, **detail}
            if audit is not None:
                session.add(audit)
        return step

    # --- approvals -----------------------------------------------------------------------------

    def record_approval(
        self,
        rollback_id: int,
        user_id: str,
        decision: str,
        *,
        via: str,
        now: datetime,
        reason: str | None = None,
    ) -> bool:
        """Store one person's vote; False if that person already voted on this rollback."""
        if decision not in ("approve", "reject"):
            raise ValueError(f"unknown approval decision {decision!r}")
        approval = Approval(
            rollback_id=rollback_id,
            user_id=user_id,
            decision=decision,
            reason=reason,
            via=via,
            created_at=now,
        )
        try:
            with self._write() as session:
                session.add(approval)
        except IntegrityError:
            if self.get_rollback(rollback_id) is None:
                raise RecordNotFound(f"rollback {rollback_id} not found") from None
            return False
        return True

    def set_approval_message(
        self, rollback_id: int, channel_id: str, ts: str, plan_summary: str
    ) -> Rollback:
        """Remember the approval request message (edited on every vote) and what it showed;
        returns the rollback as it is now."""
        with self._write() as session:
            rollback = _get_or_raise(session, Rollback, rollback_id)
            rollback.approval_channel_id = channel_id
            rollback.approval_ts = ts
            rollback.plan_summary = plan_summary
        return rollback

    def approvers_of(self, rollback_ids: Collection[int]) -> dict[int, list[str]]:
        """Who approved each rollback, in voting order (one query for a whole listing)."""
        query = (
            select(Approval)
            .where(col(Approval.rollback_id).in_(list(rollback_ids)))
            .where(Approval.decision == "approve")
            .order_by(col(Approval.id))
        )
        found: dict[int, list[str]] = {rid: [] for rid in rollback_ids}
        with self._read() as session:
            for vote in session.exec(query):
                found[vote.rollback_id].append(vote.user_id)
        return found

    def list_approvals(self, rollback_id: int) -> list[Approval]:
        """Votes in the order they were cast."""
        query = (
            select(Approval).where(Approval.rollback_id == rollback_id).order_by(col(Approval.id))
        )
        with self._read() as session:
            return list(session.exec(query).all())

    # --- due work ------------------------------------------------------------------------------

    def schedule_work(
        self,
        kind: str,
        key: str,
        due_at: datetime,
        now: datetime,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Schedule work once per `key`; False (and nothing changes) if the key exists."""
        work = DueWork(
            kind=kind, key=key, due_at=due_at, payload=dict(payload or {}), created_at=now
        )
        try:
            with self._write() as session:
                session.add(work)
        except IntegrityError:
            return False
        return True

    def schedule_works(self, works: Sequence[NewWork], now: datetime) -> int:
        """Schedule several items in one transaction, each once per key; how many were new."""
        keys = [work.key for work in works]
        try:
            with self._write() as session:
                taken = set(
                    session.exec(select(DueWork.key).where(col(DueWork.key).in_(keys))).all()
                )
                fresh = [work for work in works if work.key not in taken]
                session.add_all([_work_row(work, now) for work in fresh])
            return len(fresh)
        except IntegrityError:  # another replica scheduled one of them meanwhile: one by one
            return sum(self.schedule_work(w.kind, w.key, w.due_at, now, w.payload) for w in works)

    def get_work(self, key: str) -> DueWork | None:
        """The work item scheduled under `key`, or None."""
        with self._read() as session:
            return session.exec(select(DueWork).where(DueWork.key == key)).first()

    def claim_due_work(
        self,
        worker: str,
        now: datetime,
        lease: timedelta,
        *,
        limit: int = 10,
        kinds: Collection[str] | None = None,
    ) -> list[DueWork]:
        """Lease up to `limit` due items (and items whose lease expired) to `worker`.

        PostgreSQL replicas skip rows another replica is claiming (FOR UPDATE SKIP LOCKED);
        SQLite serializes writers, so the plain select is already exclusive there.
        """
        is_due = sa.or_(
            sa.and_(col(DueWork.status) == "pending", col(DueWork.due_at) <= now),
            sa.and_(col(DueWork.status) == "claimed", col(DueWork.claimed_until) <= now),
        )
        query = select(DueWork).where(is_due)
        if kinds is not None:
            query = query.where(col(DueWork.kind).in_(list(kinds)))
        query = (
            query.order_by(col(DueWork.due_at), col(DueWork.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as session:
            items = list(session.exec(query).all())
            for item in items:
                item.status = "claimed"
                item.claimed_by = worker
                item.claimed_until = now + lease
                item.attempts += 1
        return items

    def renew_work(self, ids: Collection[int], worker: str, until: datetime) -> int:
        """Extend `worker`'s claims on running items (a slow handler keeps its item)."""
        if not ids:
            return 0
        statement = (
            sa.update(DueWork)
            .where(col(DueWork.id).in_(list(ids)))
            .where(col(DueWork.status) == "claimed", col(DueWork.claimed_by) == worker)
            .values(claimed_until=until)
        )
        with self._write() as session:
            return int(session.exec(statement).rowcount)

    def complete_work(self, work_id: int, worker: str, now: datetime) -> bool:
        """Mark claimed work done; False if `worker` no longer holds it."""
        return self._finish_work(work_id, worker, status="done", done_at=now)

    def fail_work(
        self,
        work_id: int,
        worker: str,
        error: str,
        now: datetime,
        *,
        retry_at: datetime | None = None,
        is_wait: bool = False,
    ) -> bool:
        """Record a failure: back to pending at `retry_at`, else failed for good. A wait
        (`is_wait`, the handler's RetryLater) counts in `waits`, not in `attempts`."""
        if retry_at is not None:
            counts: dict[str, Any] = (
                {"attempts": col(DueWork.attempts) - 1, "waits": col(DueWork.waits) + 1}
                if is_wait
                else {}
            )
            return self._finish_work(
                work_id, worker, status="pending", due_at=retry_at, last_error=error, **counts
            )
        return self._finish_work(work_id, worker, status="failed", done_at=now, last_error=error)

    def _finish_work(self, work_id: int, worker: str, **values: Any) -> bool:
        statement = (
            sa.update(DueWork)
            .where(
                col(DueWork.id) == work_id,
                col(DueWork.status) == "claimed",
                col(DueWork.claimed_by) == worker,
            )
            .values(claimed_by=None, claimed_until=None, **values)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def cancel_work(self, key: str, now: datetime) -> bool:
        """Cancel pending or claimed work (e.g. an acknowledged page); False if none was open."""
        statement = (
            sa.update(DueWork)
            .where(col(DueWork.key) == key, col(DueWork.status).in_(("pending", "claimed")))
            .values(status="cancelled", done_at=now, claimed_by=None, claimed_until=None)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    # --- reviews -------------------------------------------------------------------------------

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

    # --- notifications -------------------------------------------------------------------------

    def set_incident_channel(self, rollback_id: int, channel_id: str) -> bool:
        """Record the rollback's incident channel once; False if another one was recorded first."""
        statement = (
            sa.update(Rollback)
            .where(col(Rollback.id) == rollback_id, col(Rollback.incident_channel_id).is_(None))
            .values(incident_channel_id=channel_id)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def cancel_work_with_prefix(self, prefix: str, now: datetime) -> int:
        """Cancel every open work item whose key starts with `prefix`; returns how many."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = (
            sa.update(DueWork)
            .where(
                col(DueWork.key).like(f"{escaped}%", escape="\\"),
                col(DueWork.status).in_(("pending", "claimed")),
            )
            .values(status="cancelled", done_at=now, claimed_by=None, claimed_until=None)
        )
        with self._write() as session:
            return int(session.exec(statement).rowcount)

    # --- pages ---------------------------------------------------------------------------------

    def add_page(
        self,
        *,
        rollback_id: int,
        reason: str,
        level: int,
        position: int,
        contact_name: str,
        phone: str,
        now: datetime,
    ) -> Page:
        """Store a queued page once per (rollback, reason, position) and return the stored row.

        Its 4-digit ack code differs from the codes of the phone's other open pages, so a reply
        ``ACK <code>`` from that phone names exactly one page.
        """
        ladder_slot = (
            col(Page.rollback_id) == rollback_id,
            col(Page.reason) == reason,
            col(Page.position) == position,
        )
        try:
            with self._write() as session:
                existing = session.exec(select(Page).where(*ladder_slot)).first()
                if existing is not None:
                    return existing
                # codes this phone may still reply with: its pages of the last week (a bounded
                # set, however many ladders were never acknowledged)
                recent_codes = select(Page.ack_code).where(
                    Page.phone == phone, col(Page.created_at) >= now - ACK_CODE_MEMORY
                )
                taken = set(session.exec(recent_codes).all())
                free = [f"{1000 + secrets.randbelow(9000)}" for _ in range(64)]
                code = next((c for c in free if c not in taken), None) or next(
                    (c for n in range(1000, 10000) if (c := str(n)) not in taken), free[0]
                )
                page = Page(
                    rollback_id=rollback_id,
                    reason=reason,
                    level=level,
                    position=position,
                    contact_name=contact_name,
                    phone=phone,
                    ack_code=code,
                    created_at=now,
                )
                session.add(page)
            return page
        except IntegrityError:  # another replica stored it between our read and insert
            with self._read() as session:
                return session.exec(select(Page).where(*ladder_slot)).one()

    def list_pages(self, rollback_id: int, reason: str | None = None) -> list[Page]:
        """A rollback's pages (of one ladder when `reason` is given), in ladder order."""
        query = select(Page).where(Page.rollback_id == rollback_id)
        if reason is not None:
            query = query.where(Page.reason == reason)
        with self._read() as session:
            return list(session.exec(query.order_by(col(Page.position), col(Page.id))).all())

    def get_page(self, page_id: int) -> Page | None:
        with self._read() as session:
            return session.get(Page, page_id)

    def find_page_by_sid(self, twilio_sid: str) -> Page | None:
        with self._read() as session:
            return session.exec(select(Page).where(Page.twilio_sid == twilio_sid)).first()

    def find_pages_for_reply(self, phone: str, ack_code: str | None) -> list[Page]:
        """Pages sent to `phone` (with `ack_code` when given), newest first."""
        query = select(Page).where(Page.phone == phone)
        if ack_code is not None:
            query = query.where(Page.ack_code == ack_code)
        with self._read() as session:
            return list(session.exec(query.order_by(col(Page.id).desc()).limit(20)).all())

    def claim_page_for_sending(self, page_id: int, now: datetime) -> bool:
        """queued → sending, unless the page's ladder was acknowledged; True if this caller
        may now send it (exactly one caller ever does).

        One conditional UPDATE; the rollback row is share-locked first so that on PostgreSQL
        an acknowledgement (which locks it for update) is either committed before this check or
        waits until the page is claimed: an acknowledged ladder never starts another SMS.
        """
        acked = sa.inspect(Page).local_table.alias("acked")
        with self._write() as session:
            page = session.get(Page, page_id)
            if page is None or page.status != "queued":
                return False
            session.exec(
                select(Rollback.id)
                .where(Rollback.id == page.rollback_id)
                .with_for_update(read=True)
            ).one()
            is_acknowledged = (
                sa.select(acked.c.id)
                .where(
                    acked.c.rollback_id == page.rollback_id,
                    acked.c.reason == page.reason,
                    acked.c.acknowledged_at.is_not(None),
                )
                .exists()
            )
            statement = (
                sa.update(Page)
                .where(col(Page.id) == page_id, col(Page.status) == "queued", ~is_acknowledged)
                .values(status="sending", status_at=now)
            )
            return session.exec(statement).rowcount == 1

    def mark_page_sent(self, page_id: int, twilio_sid: str | None, now: datetime) -> bool:
        """sending (or queued) → sent: Twilio took it. False if a delivery report got there
        first (it saved the SID too) or the page was never being sent."""
        return self._update_page(
            page_id,
            ("sending", "queued"),
            status="sent",
            twilio_sid=twilio_sid,
            sent_at=now,
            status_at=now,
        )

    def release_page(self, page_id: int, now: datetime) -> bool:
        """sending → queued: Twilio certainly did not take it (5xx, no connection); retry."""
        return self._update_page(page_id, ("sending",), status="queued", status_at=now)

    def mark_page_failed(
        self,
        page_id: int,
        error: str,
        now: datetime,
        *,
        error_code: int | None = None,
        status: str = "failed",
    ) -> bool:
        """queued or sending → failed (or skipped: SMS disabled); False if it had moved on."""
        return self._update_page(
            page_id,
            ("queued", "sending"),
            status=status,
            error=error,
            error_code=error_code,
            status_at=now,
        )

    def _update_page(self, page_id: int, statuses: tuple[str, ...], **values: Any) -> bool:
        statement = (
            sa.update(Page)
            .where(col(Page.id) == page_id, col(Page.status).in_(statuses))
            .values(**values)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def record_page_delivery(
        self,
        twilio_sid: str,
        status: str,
        error_code: int | None,
        now: datetime,
        *,
        page_id: int | None = None,
    ) -> Page | None:
        """Apply a delivery status callback; the page if its status moved on, else None.

        Callbacks can arrive twice, out of order, or before the sender recorded the SID (the
        callback URL then names the page): a status only replaces an earlier one (queued → sent
        → delivered | undelivered | failed), never a final one.
        """
        rank = {"queued": 0, "accepted": 0, "sending": 1, "sent": 2}
        with self._write() as session:
            if page_id is not None:
                page = session.get(Page, page_id)
                if page is not None and page.twilio_sid not in (None, twilio_sid):
                    page = None  # a callback naming a page but another message: ignore it
            else:
                page = session.exec(select(Page).where(Page.twilio_sid == twilio_sid)).first()
            if page is None or rank.get(page.status, 3) >= rank.get(status, 3):
                return None
            page.status, page.status_at = status, now
            page.twilio_sid = page.twilio_sid or twilio_sid
            page.sent_at = page.sent_at or now
            if error_code is not None:
                page.error_code = error_code
        return page

    def set_page_notice(self, page_ids: Sequence[int], channel: str, ts: str) -> None:
        """Remember the Slack notice that announced these pages (its button acknowledges)."""
        statement = (
            sa.update(Page)
            .where(col(Page.id).in_(list(page_ids)))
            .values(notice_channel=channel, notice_ts=ts)
        )
        with self._write() as session:
            session.exec(statement)

    def acknowledge_ladder(
        self,
        page_id: int,
        by: str,
        now: datetime,
        *,
        cancel_prefix: str | None = None,
        audit: AuditEvent | None = None,
        schedule: Sequence[NewWork] = (),
    ) -> bool:
        """Acknowledge `page_id`'s ladder (rollback, reason) and the rollback, once.

        False when someone acknowledged the ladder first: the rollback row is locked while
        checking, so two acknowledgements racing on PostgreSQL resolve to one.
        In the same transaction, so a crash cannot separate the acknowledgement from what
        follows it: open due work whose key starts with `cancel_prefix` (the rest of the ladder)
        is cancelled, `audit` is appended with how many items that was in
        ``detail["cancelled"]``, and `schedule` is added (once per key).
        """
        with self._write() as session:
            page = session.get(Page, page_id)
            if page is None:
                raise RecordNotFound(f"page {page_id} not found")
            rollback = session.exec(
                select(Rollback).where(Rollback.id == page.rollback_id).with_for_update()
            ).one()
            already = session.exec(
                select(Page.id).where(
                    Page.rollback_id == page.rollback_id,
                    Page.reason == page.reason,
                    col(Page.acknowledged_at).is_not(None),
                )
            ).first()
            if already is not None:
                return False
            page.acknowledged_at, page.acknowledged_by = now, by
            if rollback.acknowledged_at is None:
                rollback.acknowledged_at, rollback.acknowledged_by = now, by
            cancelled = (
                0 if cancel_prefix is None else _cancel_open_work(session, cancel_prefix, now)
            )
            if audit is not None:
                audit.detail = {**audit.detail, "cancelled": cancelled}
                session.add(audit)
            for work in schedule:
                if session.exec(select(DueWork).where(DueWork.key == work.key)).first() is None:
                    session.add(_work_row(work, now))
        return True


def _cancel_open_work(session: Session, prefix: str, now: datetime) -> int:
    """Cancel, within `session`, the open work whose key starts with `prefix`; how many."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    statement = (
        sa.update(DueWork)
        .where(
            col(DueWork.key).like(f"{escaped}%", escape="\\"),
            col(DueWork.status).in_(("pending", "claimed")),
        )
        .values(status="cancelled", done_at=now, claimed_by=None, claimed_until=None)
    )
    return int(session.exec(statement).rowcount)


def _work_row(work: NewWork, now: datetime) -> DueWork:
    return DueWork(
        kind=work.kind, key=work.key, due_at=work.due_at, payload=dict(work.payload), created_at=now
    )


def _step_rows(rollback_id: int, steps: Sequence[NewStep]) -> list[RollbackStep]:
    return [
        RollbackStep(
            rollback_id=rollback_id,
            phase=step.phase,
            position=position,
            name=step.name,
            kind=step.kind,
            detail=dict(step.detail),
        )
        for position, step in enumerate(steps)
    ]


def _get_or_raise(session: Session, model: type[_Row], row_id: int) -> _Row:
    row = session.get(model, row_id)
    if row is None:
        raise RecordNotFound(f"{model.__name__} {row_id} not found")
    return row


def _check_rollback_status(status: str) -> None:
    if status not in ACTIVE_STATUSES and status not in TERMINAL_STATUSES:
        raise ValueError(f"unknown rollback status {status!r}")
