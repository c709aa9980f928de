"""SMS pages of the escalation ladders: ack codes, sending, delivery, acknowledgement."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.rollback.lifecycle import TERMINAL, RollbackStatus, guard_confirm_key
from storage.guard_models import GuardedRelease
from storage.models import OPEN_WORK, AuditEvent, DueWork, Page, PageStatus, Rollback, SlackDelivery
from storage.repo.base import RepositoryBase
from storage.repo.records import NewWork, RecordNotFound
from storage.repo.work import _cancel_open_work, _work_row

ACK_CODE_MEMORY = timedelta(days=7)  # a page's ack code is not reused for that phone sooner
# A rollback that ended this way stops its ladder; a failed one keeps it (things got worse).
LADDER_STOPPING = tuple(status for status in TERMINAL if status != RollbackStatus.FAILED)


def told_key(page_id: int, event: str) -> str:
    """The idempotency key saying this page's phone was texted about ``event`` (once)."""
    return f"page-told:{page_id}:{event}"


class PagesMixin(RepositoryBase):
    """Pages to on-call phones, each acknowledged once a ladder."""

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
                page = Page(
                    rollback_id=rollback_id,
                    reason=reason,
                    level=level,
                    position=position,
                    contact_name=contact_name,
                    phone=phone,
                    ack_code=_free_code(session, phone, now, set()),
                    created_at=now,
                )
                session.add(page)
            return page
        except IntegrityError:  # another replica stored it between our read and insert
            with self._read() as session:
                return session.exec(select(Page).where(*ladder_slot)).one()

    def add_level_pages(
        self,
        *,
        rollback_id: int | None = None,
        question_id: int | None = None,
        reason: str,
        level: int,
        contacts: Sequence[tuple[int, str, str]],
        now: datetime,
    ) -> tuple[str, list[Page]]:
        """The ladder's pages of one level, stored queued once (see :meth:`add_page`), for a
        rollback or (``question_id``) a guard question.

        One rollback is one incident with one ladder: if the rollback already has pages under
        another reason (a ladder another event opened first), nothing is stored and that
        ladder's reason and pages of this level are returned, for the caller to join it.
        ``contacts`` are (position, name, phone). The owner's row is locked while deciding, so
        two events opening a ladder at once (PostgreSQL) make one; SQLite writes one at a time.
        Returns the ladder's reason and its pages of ``level``.
        """
        mine = _owned_by(rollback_id, question_id)
        with self._write() as session:
            _lock_owner(session, rollback_id, question_id)
            first = session.exec(select(Page).where(mine).order_by(col(Page.id))).first()
            ladder = first.reason if first is not None else reason
            rows = session.exec(select(Page).where(mine, Page.reason == ladder)).all()
            if ladder == reason:
                stored = {p.position for p in rows}
                fresh: set[str] = set()
                for position, name, phone in contacts:
                    if position in stored:
                        continue
                    code = _free_code(session, phone, now, fresh)
                    fresh.add(code)
                    page = Page(
                        rollback_id=rollback_id,
                        question_id=question_id,
                        reason=reason,
                        level=level,
                        position=position,
                        contact_name=name,
                        phone=phone,
                        ack_code=code,
                        created_at=now,
                    )
                    session.add(page)
                    rows = [*rows, page]
        pages = sorted((p for p in rows if p.level == level), key=lambda p: p.position)
        return ladder, pages

    def list_pages(self, rollback_id: int, reason: str | None = None) -> list[Page]:
        """A rollback's pages (of one ladder when `reason` is given), in ladder order."""
        query = select(Page).where(Page.rollback_id == rollback_id)
        if reason is not None:
            query = query.where(Page.reason == reason)
        with self._read() as session:
            return list(session.exec(query.order_by(col(Page.position), col(Page.id))).all())

    def list_question_pages(self, question_id: int) -> list[Page]:
        """A guard question's pages (its one ladder), in ladder order."""
        query = select(Page).where(Page.question_id == question_id)
        with self._read() as session:
            return list(session.exec(query.order_by(col(Page.position), col(Page.id))).all())

    def get_page(self, page_id: int) -> Page | None:
        with self._read() as session:
            return session.get(Page, page_id)

    def find_pages_for_reply(self, phone: str, ack_code: str | None) -> list[Page]:
        """Pages sent to `phone` (with `ack_code` when given), newest first."""
        query = select(Page).where(Page.phone == phone)
        if ack_code is not None:
            query = query.where(Page.ack_code == ack_code)
        with self._read() as session:
            return list(session.exec(query.order_by(col(Page.id).desc()).limit(20)).all())

    def claim_page_for_sending(self, page_id: int, now: datetime, told: str | None = None) -> bool:
        """queued → sending, unless the page's ladder was acknowledged or stopped (its rollback
        ended other than failed, its guard question was answered or timed out); True if this
        caller may now send it (exactly one caller ever does). ``told`` is the event the SMS
        announces: remembered (:func:`told_key`) with the claim, so that event is never texted
        to this page's phone again.

        One conditional UPDATE; the owner's row is share-locked first so that on PostgreSQL
        an acknowledgement or the rollback's end (which lock it for update) is either committed
        before this check or waits until the page is claimed: an acknowledged or stopped ladder
        never starts another SMS.
        """
        acked = sa.inspect(Page).local_table.alias("acked")
        with self._write() as session:
            page = session.get(Page, page_id)
            if page is None or page.status != PageStatus.QUEUED:
                return False
            if not _is_owner_open(session, page):
                return False
            same_owner = (
                acked.c.rollback_id == page.rollback_id
                if page.rollback_id is not None
                else acked.c.question_id == page.question_id
            )
            is_acknowledged = (
                sa.select(acked.c.id)
                .where(
                    same_owner, acked.c.reason == page.reason, acked.c.acknowledged_at.is_not(None)
                )
                .exists()
            )
            statement = (
                sa.update(Page)
                .where(
                    col(Page.id) == page_id, col(Page.status) == PageStatus.QUEUED, ~is_acknowledged
                )
                .values(status=PageStatus.SENDING, status_at=now)
            )
            if session.exec(statement).rowcount != 1:
                return False
            if told is not None and session.get(SlackDelivery, told_key(page_id, told)) is None:
                session.add(SlackDelivery(key=told_key(page_id, told), received_at=now))
            return True

    def claim_tell(self, page_ids: Sequence[int], event: str, now: datetime) -> bool:
        """Claim texting ``event`` to the phone of these pages (one person's pages of a ladder):
        True once, False if any of them was already texted about it (by its page or a tell).
        A claimed tell is never sent twice; :meth:`release_tell` gives it back when the SMS
        certainly did not leave."""
        keys = [told_key(page_id, event) for page_id in page_ids]
        with self._write() as session:
            seen = session.exec(select(SlackDelivery.key).where(col(SlackDelivery.key).in_(keys)))
            if seen.first() is not None:
                return False
            for key in keys:
                session.add(SlackDelivery(key=key, received_at=now))
        return True

    def release_tell(self, page_ids: Sequence[int], event: str) -> None:
        """Undo :meth:`claim_tell`: Twilio refused the SMS before taking it; try again later."""
        keys = [told_key(page_id, event) for page_id in page_ids]
        with self._write() as session:
            session.exec(sa.delete(SlackDelivery).where(col(SlackDelivery.key).in_(keys)))

    def stop_ladder(
        self,
        rollback_id: int,
        now: datetime,
        *,
        cancel_prefix: str,
        audit: AuditEvent,
        schedule: Sequence[NewWork] = (),
    ) -> bool:
        """The rollback ended: stop its ladder, once (False when it was stopped before).

        In one transaction: the open due work whose key starts with `cancel_prefix` (the levels
        still to page, the final warning) is cancelled, `audit` is appended with how many items
        that was in ``detail["cancelled"]``, and `schedule` is added (once per key).
        """
        marker = f"page-stopped:{rollback_id}"
        with self._write() as session:
            session.exec(
                select(Rollback.id).where(Rollback.id == rollback_id).with_for_update()
            ).one()
            if session.get(SlackDelivery, marker) is not None:
                return False
            session.add(SlackDelivery(key=marker, received_at=now))
            cancelled = _cancel_open_work(session, cancel_prefix, now)
            audit.detail = {**audit.detail, "cancelled": cancelled}
            session.add(audit)
            for work in schedule:
                if session.exec(select(DueWork).where(DueWork.key == work.key)).first() is None:
                    session.add(_work_row(work, now))
        return True

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
        """Acknowledge `page_id`'s ladder (rollback or question, reason) and the rollback, once.

        False when someone acknowledged the ladder first: the owner's row is locked while
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
            rollback = _lock_owner(session, page.rollback_id, page.question_id)
            already = session.exec(
                select(Page.id).where(
                    _owned_by(page.rollback_id, page.question_id),
                    Page.reason == page.reason,
                    col(Page.acknowledged_at).is_not(None),
                )
            ).first()
            if already is not None:
                return False
            page.acknowledged_at, page.acknowledged_by = now, by
            if rollback is not None and rollback.acknowledged_at is None:
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


def _free_code(session: Session, phone: str, now: datetime, also_taken: set[str]) -> str:
    """A 4-digit code `phone` had in none of its pages of the last week (a bounded set, however
    many ladders were never acknowledged), nor in `also_taken`."""
    recent_codes = select(Page.ack_code).where(
        Page.phone == phone, col(Page.created_at) >= now - ACK_CODE_MEMORY
    )
    taken = set(session.exec(recent_codes).all()) | also_taken
    free = [f"{1000 + secrets.randbelow(9000)}" for _ in range(64)]
    return next((c for c in free if c not in taken), None) or next(
        (c for n in range(1000, 10000) if (c := str(n)) not in taken), free[0]
    )


def _owned_by(rollback_id: int | None, question_id: int | None) -> sa.ColumnElement[bool]:
    """The pages of one owner: a rollback, or a guard question."""
    if rollback_id is not None:
        return col(Page.rollback_id) == rollback_id
    if question_id is None:
        raise ValueError("a ladder belongs to a rollback or a guard question")
    return col(Page.question_id) == question_id


def _lock_owner(
    session: Session, rollback_id: int | None, question_id: int | None
) -> Rollback | None:
    """Lock the ladder owner's row for update; the rollback (None for a question)."""
    if rollback_id is not None:
        return session.exec(
            select(Rollback).where(Rollback.id == rollback_id).with_for_update()
        ).one()
    session.exec(
        select(GuardedRelease.id).where(GuardedRelease.id == question_id).with_for_update()
    ).one()
    return None


def _is_owner_open(session: Session, page: Page) -> bool:
    """Share-locks the page's owner: False once its rollback ended (other than failed) or its
    guard question is no longer open (answered, timed out)."""
    if page.rollback_id is not None:
        status = session.exec(
            select(Rollback.status)
            .where(Rollback.id == page.rollback_id)
            .with_for_update(read=True)
        ).one()
        return status not in LADDER_STOPPING
    session.exec(
        select(GuardedRelease.id)
        .where(GuardedRelease.id == page.question_id)
        .with_for_update(read=True)
    ).one()
    assert page.question_id is not None
    question = session.exec(
        select(DueWork.status).where(DueWork.key == guard_confirm_key(page.question_id))
    ).first()
    return question in OPEN_WORK
