"""Customer updates: drafts (created once per rollback and moment, edited in place) and their
publication (claimed with a compare-and-set, so that a double click publishes once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.customer_models import CustomerUpdate, PostOutcome, StatusPagePost, UpdateState
from storage.repo.base import RepositoryBase
from storage.repo.records import RecordNotFound


@dataclass(frozen=True)
class NewCustomerUpdate:
    rollback_id: int
    service: str
    moment: str
    status: str
    title: str
    message: str


class CustomerMixin(RepositoryBase):
    """The drafts of customer updates and what was sent to the status page."""

    def create_customer_update(
        self, new: NewCustomerUpdate, now: datetime
    ) -> tuple[CustomerUpdate, bool]:
        """The draft of ``new``'s rollback and moment, stored now or (False) stored before."""
        is_new = True
        try:
            with self._write() as session:
                session.add(CustomerUpdate(**vars(new), created_at=now, updated_at=now))
        except IntegrityError:
            is_new = False  # a retried due item, or another replica, stored it first
        found = self.customer_update_of(new.rollback_id, new.moment)
        if found is None:
            raise RecordNotFound(f"rollback {new.rollback_id} not found")
        return found, is_new

    def get_customer_update(self, update_id: int) -> CustomerUpdate | None:
        with self._read() as session:
            return session.get(CustomerUpdate, update_id)

    def customer_update_of(self, rollback_id: int, moment: str) -> CustomerUpdate | None:
        with self._read() as session:
            return session.exec(
                select(CustomerUpdate).where(
                    CustomerUpdate.rollback_id == rollback_id, CustomerUpdate.moment == moment
                )
            ).first()

    def list_customer_updates(self, rollback_id: int) -> list[CustomerUpdate]:
        with self._read() as session:
            statement = (
                select(CustomerUpdate)
                .where(CustomerUpdate.rollback_id == rollback_id)
                .order_by(col(CustomerUpdate.id))
            )
            return list(session.exec(statement).all())

    def set_customer_update_message(
        self, update_id: int, channel_id: str, message_ts: str, now: datetime
    ) -> bool:
        """Remember the draft's Slack message; False when one was remembered already."""
        statement = (
            sa.update(CustomerUpdate)
            .where(col(CustomerUpdate.id) == update_id, col(CustomerUpdate.message_ts).is_(None))
            .values(channel_id=channel_id, message_ts=message_ts, updated_at=now)
        )
        with self._write() as session:
            return session.exec(statement).rowcount == 1

    def edit_customer_update(
        self, update_id: int, version: int, *, message: str, status: str, user: str, now: datetime
    ) -> CustomerUpdate | None:
        """The draft with the new text and status (its version one up); None when it is no
        longer the draft at ``version`` (edited, published or superseded meanwhile)."""
        statement = (
            sa.update(CustomerUpdate)
            .where(
                col(CustomerUpdate.id) == update_id,
                col(CustomerUpdate.version) == version,
                col(CustomerUpdate.state) == UpdateState.DRAFT,
            )
            .values(
                message=message,
                status=status,
                version=version + 1,
                edited_by=user,
                edited_at=now,
                updated_at=now,
            )
        )
        with self._write() as session:
            if session.exec(statement).rowcount != 1:
                return None
        return self.get_customer_update(update_id)

    def supersede_customer_updates(
        self, rollback_id: int, newer_id: int, now: datetime
    ) -> list[CustomerUpdate]:
        """Mark the rollback's unpublished drafts older than ``newer_id`` superseded; returns
        them (their Slack messages then say so)."""
        where = (
            col(CustomerUpdate.rollback_id) == rollback_id,
            col(CustomerUpdate.id) < newer_id,
            col(CustomerUpdate.state) == UpdateState.DRAFT,
        )
        with self._write() as session:
            rows = list(session.exec(select(CustomerUpdate).where(*where)).all())
            session.exec(
                sa.update(CustomerUpdate)
                .where(*where)
                .values(state=UpdateState.SUPERSEDED, updated_at=now)
            )
        return [self.get_customer_update(r.id) or r for r in rows if r.id is not None]

    def claim_publication(
        self,
        update_id: int,
        version: int,
        *,
        user: str,
        key: str,
        now: datetime,
        stale_before: datetime,
    ) -> StatusPagePost | None:
        """Take the draft at ``version`` for publishing and store the post (with its
        idempotency key) in the same transaction; None when another press has it, or it is no
        longer that draft. A ``publishing`` left since before ``stale_before`` (a crash) may be
        taken again: the same key lets the status page see the repeat."""
        claimable = sa.or_(
            col(CustomerUpdate.state) == UpdateState.DRAFT,
            sa.and_(
                col(CustomerUpdate.state) == UpdateState.PUBLISHING,
                col(CustomerUpdate.publishing_since) < stale_before,
            ),
        )
        claim = (
            sa.update(CustomerUpdate)
            .where(
                col(CustomerUpdate.id) == update_id,
                col(CustomerUpdate.version) == version,
                claimable,
            )
            .values(
                state=UpdateState.PUBLISHING,
                publishing_by=user,
                publishing_since=now,
                updated_at=now,
            )
        )
        with self._write() as session:
            if session.exec(claim).rowcount != 1:
                return None
            update = session.get(CustomerUpdate, update_id)
            assert update is not None
            post = StatusPagePost(
                update_id=update_id,
                version=version,
                idempotency_key=key,
                status=update.status,
                title=update.title,
                message=update.message,
                requested_by=user,
                requested_at=now,
            )
            session.add(post)
            session.flush()
            return post

    def finish_publication(
        self,
        post_id: int,
        *,
        is_sent: bool,
        attempts: int,
        http_status: int | None,
        error: str | None,
        now: datetime,
    ) -> CustomerUpdate:
        """Record how the post went: the draft is published, or back to ``draft`` (with the
        error) so that it can be published again."""
        with self._write() as session:
            post = session.get(StatusPagePost, post_id)
            if post is None:
                raise RecordNotFound(f"status page post {post_id} not found")
            post.outcome = PostOutcome.SENT if is_sent else PostOutcome.FAILED
            post.attempts, post.http_status, post.error = attempts, http_status, error
            post.finished_at = now
            update = session.get(CustomerUpdate, post.update_id)
            assert update is not None
            if is_sent:
                update.state = UpdateState.PUBLISHED
                update.published_by, update.published_at = post.requested_by, now
                update.last_error = None
            else:
                update.state = UpdateState.DRAFT
                update.last_error = error
            update.publishing_by = update.publishing_since = None
            update.updated_at = now
            session.add_all([post, update])
            session.flush()
            return update

    def list_status_page_posts(self, update_id: int) -> list[StatusPagePost]:
        with self._read() as session:
            statement = (
                select(StatusPagePost)
                .where(StatusPagePost.update_id == update_id)
                .order_by(col(StatusPagePost.id))
            )
            return list(session.exec(statement).all())
