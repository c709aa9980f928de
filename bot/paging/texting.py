"""The ladder's SMS: a level's pages, and the news texted later to phones already paged.

A page moves ``queued`` → ``sending`` in one UPDATE right before its SMS, which fails once the
ladder is acknowledged or stopped; a page found in ``sending`` may be at Twilio and is never
resent: its status callback settles it. Twilio down: the due work is retried (and a notice says
so); still down after SEND_TRIES, the channel is told to call the people themselves.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NoReturn

from bot.adapters.twilio import SmsError, TwilioSMS
from bot.paging.levels import (
    EVENT_RANK,
    TOLD,
    audit,
    contact_of,
    event_summary,
    page_detail,
    paged_work,
    shown_contacts,
    summary_of,
)
from bot.paging.messages import (
    ended_sms,
    joined_notice,
    reason_label,
    shown_in_slack,
    twilio_down,
    twilio_misconfigured,
    twilio_slow,
    update_sms,
)
from bot.paging.notices import channel_of, notice_key, notify
from bot.paging.subjects import Subject
from bot.runtime.due import RetryLater
from bot.runtime.logs import mask_phone
from storage.models import DueWork, Page, Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

SEND_TRIES = 4  # Twilio down: the first try and three more, 5 s, 15 s and 45 s apart
# One level's phones are paged at once (a level is rarely larger); more would only queue.
SEND_PARALLEL = 32


def _retry_while_young(item: DueWork, why: str) -> None:
    """Twilio is down: raise RetryLater unless this item had its SEND_TRIES."""
    if item.tries < SEND_TRIES:
        _retry(item, why)


def _retry(item: DueWork, why: str) -> NoReturn:
    raise RetryLater(f"Twilio unavailable: {why}", 5 * 3 ** (item.tries - 1))


class Texter:
    """Sends the ladder's SMS (None ``sms``: SMS paging is disabled, pages are skipped)."""

    def __init__(self, deps: Deps, sms: TwilioSMS | None) -> None:
        self.deps, self.sms = deps, sms
        self._pool = ThreadPoolExecutor(max_workers=SEND_PARALLEL, thread_name_prefix="sms")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self.sms is not None:
            self.sms.close()

    # --- a level's pages -----------------------------------------------------------------------

    def send_queued(
        self,
        item: DueWork,
        subject: Subject,
        event: str,
        summary: str,
        number: int,
        pages: list[Page],
    ) -> None:
        """Send level ``number``'s pages still queued, all at once."""
        queued = [p for p in pages if p.status == "queued"]
        if not queued:
            return
        if self.sms is None:
            for page in queued:
                assert page.id is not None
                self.deps.repo.mark_page_failed(
                    page.id, "SMS disabled", self.deps.clock(), status="skipped"
                )
                subject.audit(self.deps, "page.skipped", page_detail(page, "SMS disabled"))
            return
        results = list(self._pool.map(lambda p: self.send(subject, event, summary, p), queued))
        errors = [(page, err) for page, err in zip(queued, results, strict=True) if err]
        misconfigured = next((err for _, err in errors if err.is_misconfigured), None)
        if misconfigured is not None:
            self.warn_misconfigured(subject, queued[0].reason, misconfigured)
        down = [(page, err) for page, err in errors if err.is_retryable]
        if down:
            self._level_down(item, subject, number, queued[0].reason, down)

    def _level_down(
        self,
        item: DueWork,
        subject: Subject,
        number: int,
        reason: str,
        down: list[tuple[Page, SmsError]],
    ) -> None:
        """Twilio did not take these pages: retry the level, or give them up after SEND_TRIES."""
        who, why = shown_contacts([p for p, _ in down]), down[0][1].summary
        channel = subject.channel
        if item.tries < SEND_TRIES:
            slow = notice_key(subject.owner, reason, number, "twilio-slow")
            notify(self.deps, slow, channel, twilio_slow(why, who))
            _retry(item, why)
        for page, err in down:
            assert page.id is not None
            error = f"Twilio unavailable after {item.tries} tries: {err.summary}"
            self.deps.repo.mark_page_failed(page.id, error, self.deps.clock(), error_code=err.code)
            self.deps.metrics.pages_sent.labels(subject.service, "failed").inc()
            subject.audit(self.deps, "page.failed", page_detail(page, error))
        text = twilio_down(why, who, item.tries)
        notify(self.deps, notice_key(subject.owner, reason, number, "twilio-down"), channel, text)

    def send(self, subject: Subject, event: str, summary: str, page: Page) -> SmsError | None:
        """Send one page (announcing ``event``) unless its ladder was acknowledged or stopped;
        the error if Twilio refused it."""
        assert self.sms is not None and page.id is not None
        deps = self.deps
        if not deps.repo.claim_page_for_sending(page.id, deps.clock(), told=event):
            log.info("page to %s not sent: acknowledged or ended meanwhile", mask_phone(page.phone))
            return None
        body = subject.body(event, summary, page.ack_code)
        public = deps.settings.public_url
        callback = f"{public.rstrip('/')}/twilio/status?page={page.id}" if public else None
        try:
            sid = self.sms.send_sms(page.phone, body, callback)
        except SmsError as err:
            log.warning("page to %s: %s", mask_phone(page.phone), err.summary)
            if err.is_retryable:
                deps.repo.release_page(page.id, deps.clock())
            elif err.is_maybe_sent:
                self.outcome_unknown(subject, page, err.summary)
            else:
                deps.repo.mark_page_failed(page.id, err.summary, deps.clock(), error_code=err.code)
                deps.metrics.pages_sent.labels(subject.service, "failed").inc()
                subject.audit(deps, "page.failed", page_detail(page, err.summary))
            return err
        deps.repo.mark_page_sent(page.id, sid, deps.clock())
        deps.metrics.pages_sent.labels(subject.service, "sent").inc()
        subject.audit(deps, "page.sent", {**page_detail(page), "sid": sid})
        return None

    def outcome_unknown(self, subject: Subject, page: Page, why: str) -> None:
        """A page Twilio may have taken: never resent; its status callback settles it."""
        assert page.id is not None
        if self.deps.repo.record_delivery(f"page-unknown:{page.id}", self.deps.clock()):
            log.warning(
                "page to %s: outcome unknown (%s); not resending", mask_phone(page.phone), why
            )
            subject.audit(self.deps, "page.unknown", page_detail(page, why))

    def warn_misconfigured(self, subject: Subject, reason: str, err: SmsError) -> None:
        """One loud warning per ladder: no SMS can go out until someone fixes TWILIO_*."""
        label = subject.label
        if subject.rollback is not None:
            label += f" {reason_label(reason)}"
        text = twilio_misconfigured(err.summary, label)
        key = notice_key(subject.owner, reason, "twilio-config")
        if notify(self.deps, key, subject.channel, text):
            log.error("Twilio refused to send (%s): SMS paging is not working", err.summary)

    # --- one incident: news for the phones already paged ------------------------------------

    def tell(self, item: DueWork, rollback: Rollback, ladder: str, event: str) -> None:
        """Text ``event`` (FAILED, SLA BREACH, or how the rollback ended) once to each phone the
        ``ladder`` paged, with that page's code. After an acknowledgement an SLA breach texts
        nobody (its owner has it; Slack says it); a failure still texts everyone paged (it got
        worse: the owner must know, and who was woken too); so does the end (go back to sleep).
        Twilio down: raises RetryLater, and what was sent is not sent again."""
        assert rollback.id is not None
        pages = self.deps.repo.list_pages(rollback.id, ladder)
        acked = next((p for p in pages if p.acknowledged_at), None)
        if self.sms is None or (event == "sla" and acked is not None):
            return
        by_phone: dict[str, list[Page]] = {}
        for page in pages:
            if page.status in TOLD:
                by_phone.setdefault(page.phone, []).append(page)
        texted: list[Page] = []
        down: list[tuple[Page, SmsError]] = []
        for mine in by_phone.values():
            err = self._tell_one(rollback, event, mine, acked)
            if isinstance(err, SmsError):
                down.append((mine[0], err))
            elif err:
                texted.append(mine[0])
        channel = channel_of(self.deps, rollback)
        if texted and event in EVENT_RANK:
            text, blocks = joined_notice(
                rollback_id=rollback.id,
                service=rollback.service,
                ladder=ladder,
                event=event,
                texted=[contact_of(p) for p in texted],
                acknowledged_by=shown_in_slack(acked.acknowledged_by or "?") if acked else None,
            )
            told = ",".join(str(p.id) for p in texted)
            key = notice_key(rollback.id, ladder, "told", event, told)
            notify(self.deps, key, channel, text, blocks)
        if not down:
            return
        who, why = shown_contacts([p for p, _ in down]), down[0][1].summary
        _retry_while_young(item, why)
        text = twilio_down(why, who, item.tries)
        notify(
            self.deps, notice_key(rollback.id, ladder, "told", event, "twilio-down"), channel, text
        )

    def _tell_one(
        self, rollback: Rollback, event: str, mine: list[Page], acked: Page | None
    ) -> bool | SmsError:
        """Text ``event`` to one phone (its pages ``mine``): True if texted now, False if told
        already or refused for good, the error if Twilio is down (to be retried)."""
        assert self.sms is not None
        deps, page = self.deps, mine[0]
        ids = [p.id for p in mine if p.id is not None]
        if not deps.repo.claim_tell(ids, event, deps.clock()):
            return False  # told already (by its page, or an earlier run)
        body = self._tell_body(rollback, event, page, acked)
        try:
            sid = self.sms.send_sms(page.phone, body)
        except SmsError as err:
            log.warning("telling %s of %s: %s", mask_phone(page.phone), event, err.summary)
            if err.is_retryable:
                deps.repo.release_tell(ids, event)
                return err
            # refused for good, or maybe sent: never resent
            audit(deps, "page.tell_failed", rollback, page_detail(page, err.summary))
            return False
        audit(deps, "page.told", rollback, {**page_detail(page), "event": event, "sid": sid})
        return True

    def _tell_body(self, rollback: Rollback, event: str, page: Page, acked: Page | None) -> str:
        assert rollback.id is not None
        if event not in EVENT_RANK:  # how the rollback ended
            at = rollback.finished_at or self.deps.clock()
            return ended_sms(rollback.id, rollback.service, event, at)
        given = summary_of(paged_work(self.deps, rollback.id, event))
        summary = event_summary(rollback, event, given)
        owner = None
        if acked is not None:
            by_sms = acked.acknowledged_by == acked.contact_name  # else a Slack user
            if not by_sms:
                owner = "Someone in Slack"
            else:
                owner = "You" if acked.phone == page.phone else acked.contact_name
        return update_sms(rollback.id, rollback.service, event, summary, page.ack_code, owner)
