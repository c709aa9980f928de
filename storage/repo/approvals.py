"""Approval votes on rollbacks and the approval request message."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.models import Approval, Rollback
from storage.repo.base import RepositoryBase, _get_or_raise
from storage.repo.records import RecordNotFound


class ApprovalsMixin(RepositoryBase):
    """One vote a person per rollback, and the message that asks for them."""

    if TYPE_CHECKING:  # defined by RollbacksMixin, which Repository also has

        def get_rollback(self, rollback_id: int) -> Rollback | None: ...

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
