"""A rollback's plan steps and their runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.rollback.lifecycle import StepStatus
from storage.models import AuditEvent, Rollback, RollbackStep
from storage.repo.base import RepositoryBase, _get_or_raise
from storage.repo.records import NewStep

_FINISHED_STEP_STATUSES = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED)


class StepsMixin(RepositoryBase):
    """The steps of a rollback's plan, in order, and how each run went."""

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
            step.status = StepStatus.RUNNING
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

    def finished_undos(self, service: str) -> list[tuple[Rollback, RollbackStep]]:
        """Every `rollout_undo` of the service whose patch went out (the step succeeded and was
        not a no-op), newest first: the releases this bot rolled the service back FROM."""
        query = (
            select(Rollback, RollbackStep)
            .join(RollbackStep, col(RollbackStep.rollback_id) == col(Rollback.id))
            .where(Rollback.service == service)
            .where(RollbackStep.kind == "rollout_undo")
            .where(RollbackStep.status == StepStatus.SUCCEEDED)
            .order_by(col(RollbackStep.finished_at).desc())
        )
        with self._read() as session:
            rows = session.exec(query).all()
        return [
            (rollback, step)
            for rollback, step in rows
            if step.detail.get("undo") and not step.detail.get("is_noop")
        ]


def _step_rows(rollback_id: int, steps: Sequence[NewStep]) -> list[RollbackStep]:
    return [
        RollbackStep(
            rollback_id=rollback_id,
            phase=step.phase,
            position=position,
            name=step.name,
            kind=step.kind,
            detail=dict(step.detail),
            status=step.status,
            error=step.error,
            region=step.region,
            wave=step.wave,
        )
        for position, step in enumerate(steps)
    ]
