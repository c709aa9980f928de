"""Due work: items scheduled once per key, leased to a worker, then finished."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import OPEN_WORK, DueWork, WorkStatus
from storage.repo.base import RepositoryBase
from storage.repo.records import NewWork


class WorkMixin(RepositoryBase):
    """The due-work queue every replica claims from."""

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
            sa.and_(col(DueWork.status) == WorkStatus.PENDING, col(DueWork.due_at) <= now),
            sa.and_(col(DueWork.status) == WorkStatus.CLAIMED, col(DueWork.claimed_until) <= now),
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
                item.status = WorkStatus.CLAIMED
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
            .where(col(DueWork.status) == WorkStatus.CLAIMED, col(DueWork.claimed_by) == worker)
            .values(claimed_until=until)
        )
        with self._write() as session:
            return int(session.exec(statement).rowcount)

    def complete_work(self, work_id: int, worker: str, now: datetime) -> bool:
        """Mark claimed work done; False if `worker` no longer holds it."""
        return self._finish_work(work_id, worker, status=WorkStatus.DONE, done_at=now)

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
                work_id,
                worker,
                status=WorkStatus.PENDING,
                due_at=retry_at,
                last_error=error,
                **counts,
            )
        return self._finish_work(
            work_id, worker, status=WorkStatus.FAILED, done_at=now, last_error=error
        )

    def _finish_work(self, work_id: int, worker: str, **values: Any) -> bool:
        statement = (
            sa.update(DueWork)
            .where(
                col(DueWork.id) == work_id,
                col(DueWork.status) == WorkStatus.CLAIMED,
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
            .where(col(DueWork.key) == key, col(DueWork.status).in_(OPEN_WORK))
            .values(**cancelled(now))
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def cancel_work_with_prefix(self, prefix: str, now: datetime) -> int:
        """Cancel every open work item whose key starts with `prefix`; returns how many."""
        with self._write() as session:
            return _cancel_open_work(session, prefix, now)


def _cancel_open_work(session: Session, prefix: str, now: datetime) -> int:
    """Cancel, within `session`, the open work whose key starts with `prefix`; how many."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    statement = (
        sa.update(DueWork)
        .where(
            col(DueWork.key).like(f"{escaped}%", escape="\\"),
            col(DueWork.status).in_(OPEN_WORK),
        )
        .values(**cancelled(now))
    )
    return int(session.exec(statement).rowcount)


def cancelled(now: datetime) -> dict[str, Any]:
    """The values of open work cancelled at ``now`` (its claim, if any, is dropped)."""
    return {
        "status": WorkStatus.CANCELLED,
        "done_at": now,
        "claimed_by": None,
        "claimed_until": None,
    }


def _work_row(work: NewWork, now: datetime) -> DueWork:
    return DueWork(
        kind=work.kind, key=work.key, due_at=work.due_at, payload=dict(work.payload), created_at=now
    )
