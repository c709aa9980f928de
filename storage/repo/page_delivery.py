"""What happens to a sent page: Twilio took it (or not), delivery reports, its Slack notice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from storage.models import Page, PageStatus
from storage.repo.base import RepositoryBase


class PageDeliveryMixin(RepositoryBase):
    """A page's way after its claim: sent, released, failed, delivered."""

    def find_page_by_sid(self, twilio_sid: str) -> Page | None:
        with self._read() as session:
            return session.exec(select(Page).where(Page.twilio_sid == twilio_sid)).first()

    def mark_page_sent(self, page_id: int, twilio_sid: str | None, now: datetime) -> bool:
        """sending (or queued) → sent: Twilio took it. False if a delivery report got there
        first (it saved the SID too) or the page was never being sent."""
        return self._update_page(
            page_id,
            (PageStatus.SENDING, PageStatus.QUEUED),
            status=PageStatus.SENT,
            twilio_sid=twilio_sid,
            sent_at=now,
            status_at=now,
        )

    def release_page(self, page_id: int, now: datetime) -> bool:
        """sending → queued: Twilio certainly did not take it (5xx, no connection); retry."""
        return self._update_page(
            page_id, (PageStatus.SENDING,), status=PageStatus.QUEUED, status_at=now
        )

    def mark_page_failed(
        self,
        page_id: int,
        error: str,
        now: datetime,
        *,
        error_code: int | None = None,
        status: str = PageStatus.FAILED,
    ) -> bool:
        """queued or sending → failed (or skipped: SMS disabled); False if it had moved on."""
        return self._update_page(
            page_id,
            (PageStatus.QUEUED, PageStatus.SENDING),
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
        rank: dict[str, int] = {
            PageStatus.QUEUED: 0,
            PageStatus.ACCEPTED: 0,
            PageStatus.SENDING: 1,
            PageStatus.SENT: 2,
        }
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
