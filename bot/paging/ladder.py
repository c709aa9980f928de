"""SMS paging with an escalation ladder, until someone acknowledges.

A ladder is the service's ``oncall`` list; contacts with the same ``after_minutes`` form one
level, paged together: ``page.start`` pages level 1 at once, each next level is due work at ladder
start + its ``after_minutes``, then ``page.end`` warns that nobody acknowledged. A page is a row
stored before its SMS, keyed by (rollback, reason, position). Right before its SMS it moves
``queued`` → ``sending`` in one UPDATE that fails once the ladder is acknowledged (so an ack
stops a running level too); a page found in ``sending`` may be at Twilio and is never resent:
its status callback settles it. Only the contact's own failure (a bad number, undelivered)
skips ahead at once; Twilio down or misconfigured is reported loudly and the ladder keeps its
timing. Each Slack post is ``page.post`` due work keyed per notice: once, retried until posted.

One rollback is one incident with one ladder and one ACK code per person. The first event that
pages (critical start, SLA breach, failure) opens the ladder; a later, graver one (SLA BREACH,
FAILED) joins it: phones already paged are texted the news with their code, phones paged later
get the news in their page, and one acknowledgement covers it all. A rollback that ends (except
failed: that is worse news) stops its ladder (``page.finish``): no further level is paged, the
phones already paged are told how it ended, and the notices lose their button. What each phone
was texted is remembered per page and event, so nobody is told the same thing twice.

This module is the :class:`Pager`, the ladder's due-work handlers. The ladder's levels and what
a page's status means are in ``levels``, sending the SMS in ``texting``, the Slack notices in
``notices``, their words in ``messages``, and what comes back (acknowledgements, delivery
reports) in ``acks``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters.slack.lookups import ChannelNames
from bot.adapters.twilio import sms_sender
from bot.catalog.load import Service
from bot.paging.levels import (
    EVENT_RANK,
    NOT_PAGED,
    TOLD,
    Level,
    audit,
    contact_of,
    headline,
    is_stopped,
    is_unreachable,
    ladder_levels,
    ladder_of,
)
from bot.paging.messages import (
    no_ladder_warning,
    page_notice,
    reason_label,
    stopped_footer,
    unacknowledged_warning,
)
from bot.paging.notices import notice_key, notify, post_notice, replace_notice_buttons
from bot.paging.subjects import Subject, subject_of
from bot.paging.texting import Texter
from bot.rollback.lifecycle import (
    DueKind,
    ladder_prefix,
    page_end_key,
    page_finish_key,
    page_level_key,
    page_stop_notices_key,
)
from storage.models import AuditEvent, DueWork, Page, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

ACK_WAIT_MINUTES = 5.0  # after the last level, how long before "nobody acknowledged"


class Pager:
    """Runs the ladder's due work. Built by :func:`install`."""

    def __init__(self, deps: Deps, texter: Texter, shown: Callable[[str], str] = str) -> None:
        self.deps, self.texter = deps, texter
        self.shown = shown  # a channel id as the guard question's SMS names it

    def close(self) -> None:
        self.texter.close()

    # --- the engine's listener (quick, idempotent) -----------------------------------------------

    def rollback_started(self, rollback: Rollback) -> None:
        """Nothing: the notifications decide what pages (``page.start``)."""

    def rollback_finished(self, rollback: Rollback) -> None:
        """A rollback that ended stops its ladder (a failed one joins it instead: the
        notifications page ``failed``)."""
        if rollback.id is None or not is_stopped(rollback):
            return
        payload = {"rollback_id": rollback.id}
        self.deps.due.schedule(
            DueKind.PAGE_FINISH, page_finish_key(rollback.id), self.deps.clock(), payload
        )
        self.deps.kick_due_work()

    # --- due work handlers ----------------------------------------------------------------------

    def finish(self, item: DueWork) -> None:
        """``page.finish``: the rollback ended; its ladder stops and whoever it paged is told."""
        deps, rollback_id = self.deps, int(item.payload["rollback_id"])
        rollback = deps.repo.get_rollback(rollback_id)
        pages = deps.repo.list_pages(rollback_id)
        ladder = ladder_of(pages)
        if rollback is None or ladder is None or not is_stopped(rollback):
            return  # nobody was paged (a ladder starting later sees the rollback ended)
        now, at = deps.clock(), rollback.finished_at or deps.clock()
        follow_up: list[NewWork] = []
        if not any(p.acknowledged_at for p in pages):  # an acknowledged one says who has it
            label = f"ROLLBACK #{rollback_id} {rollback.service} {reason_label(ladder)}"
            footer = stopped_footer(rollback_id, rollback.status, at)
            notices = {"rollback_id": rollback_id, "reason": ladder, "label": label}
            key = page_stop_notices_key(rollback_id)
            payload = {**notices, "footer": footer}
            follow_up.append(NewWork(DueKind.PAGE_STOP_NOTICES, key, now, payload))
        audit_event = AuditEvent(
            created_at=now,
            kind="page.stopped",
            service=rollback.service,
            rollback_id=rollback_id,
            channel_id=rollback.channel_id,
            detail={"reason": ladder, "status": rollback.status},
        )
        prefix = ladder_prefix(rollback_id)  # every ladder of the rollback (older data had several)
        if deps.repo.stop_ladder(
            rollback_id, now, cancel_prefix=prefix, audit=audit_event, schedule=follow_up
        ):
            deps.kick_due_work()
        self.texter.tell(item, rollback, ladder, rollback.status)

    def stop_notices(self, item: DueWork) -> None:
        """``page.stop_notices``: the notices of a stopped ladder say why, without a button."""
        payload = item.payload
        replace_notice_buttons(
            self.deps,
            int(payload["rollback_id"]),
            str(payload["reason"]),
            str(payload["label"]),
            str(payload["footer"]),
        )

    def start(self, item: DueWork) -> None:
        """``page.start``: the ladder begins now; page level 1."""
        self._run_level(item, dict(item.payload), 1)

    def level(self, item: DueWork) -> None:
        """``page.level``: page level ``payload["level"]`` unless acknowledged meanwhile."""
        self._run_level(item, dict(item.payload), int(item.payload["level"]))

    def end(self, item: DueWork) -> None:
        """``page.end``: the last level had its time and nobody acknowledged."""
        reason = str(item.payload["reason"])
        subject = subject_of(self.deps, item.payload, self.shown)
        if subject is None or subject.is_stopped:
            return
        pages = subject.pages(self.deps, reason)
        if any(p.acknowledged_at for p in pages):
            return
        contacts = [contact_of(p) for p in pages]
        event = reason
        if subject.rollback is not None:
            event, _ = headline(self.deps, subject.rollback, reason, "")
        text, blocks = unacknowledged_warning(
            subject.rollback_id or 0,
            subject.service,
            reason,
            contacts,
            headline=event,
            question=None if subject.rollback else subject.label,
        )
        key = notice_key(subject.owner, reason, "unacknowledged")
        if notify(self.deps, key, subject.channel, text, blocks):
            subject.audit(
                self.deps, "page.unacknowledged", {"reason": reason, "levels": pages[-1].level}
            )

    def post_notice(self, item: DueWork) -> None:
        """``page.post``: one paging notice to Slack; raises RetryLater until Slack takes it."""
        post_notice(self.deps, item)

    # --- one level ------------------------------------------------------------------------------

    def _run_level(self, item: DueWork, payload: dict[str, Any], number: int) -> None:
        deps, reason = self.deps, str(payload["reason"])
        found = self._pageable(payload, reason)
        if found is None:
            return
        subject, levels = found
        ladder, pages = deps.repo.add_level_pages(
            rollback_id=subject.rollback_id,
            question_id=subject.question_id,
            reason=reason,
            level=number,
            contacts=[(position, c.name, c.phone) for position, c in levels[number - 1].contacts],
            now=deps.clock(),
        )
        if ladder != reason and subject.rollback is not None:
            self._join(item, subject.rollback, ladder, reason)  # the rollback's ladder: join it
            return
        # the ladder started when level 1's pages were first stored (a retry moves due_at)
        payload.setdefault("started_at", min(p.created_at for p in pages).isoformat())
        for page in pages:
            if page.status == "sending":  # an earlier run handed it to Twilio, then was lost
                self.texter.outcome_unknown(subject, page, "the run sending it was interrupted")
        event, summary = reason, str(payload.get("summary") or "")
        if subject.rollback is not None:
            rollback = subject.rollback
            event, summary = headline(deps, rollback, reason, summary or rollback.reason or "")
        self.texter.send_queued(item, subject, event, summary, number, pages)
        pages = [p for p in subject.pages(deps, reason) if p.level == number]
        news = (event, summary, number, levels, pages)
        now_subject = subject_of(deps, payload, self.shown)
        if now_subject is None or now_subject.is_stopped:
            # it ended while this level was being sent: who got the SMS is told (page.finish)
            if any(p.status in TOLD for p in pages):
                self._post_notice(subject, reason, *news, None)
            return
        started_at = datetime.fromisoformat(str(payload["started_at"]))
        self._post_notice(subject, reason, *news, _next_name(levels, number, started_at))
        self._next_step(item, payload, subject, number, levels, pages)

    def _pageable(self, payload: dict[str, Any], reason: str) -> tuple[Subject, list[Level]] | None:
        """The ladder's subject and levels, or None when there is nobody to page now."""
        deps = self.deps
        subject = subject_of(deps, payload, self.shown)
        service = deps.catalog.get(subject.service) if subject else None
        if subject is None or service is None:
            log.warning(
                "page for %s: its rollback, question or service is gone; not paging", payload
            )
            return None
        levels = ladder_levels(service)
        if not levels:
            self._warn_no_ladder(subject, service, reason)
            return None
        if subject.is_stopped:
            log.info("%s ended or was answered: not paging", subject.label)
            return None
        if any(p.acknowledged_at for p in subject.pages(deps, reason)):
            return None  # acknowledged while this step waited
        return subject, levels

    def _next_step(
        self,
        item: DueWork,
        payload: dict[str, Any],
        subject: Subject,
        number: int,
        levels: list[Level],
        pages: list[Page],
    ) -> None:
        """After level ``number``: the next level at its time (now when nobody here can be
        reached), or, after the last, the "nobody acknowledged" warning."""
        deps, owner, reason = self.deps, subject.owner, str(payload["reason"])
        is_last = number == len(levels)
        if not is_last and all(is_unreachable(p) for p in pages):
            self._run_level(item, payload, number + 1)  # nobody here can be reached: next, now
            return
        if is_last:
            due = deps.clock() + timedelta(minutes=ACK_WAIT_MINUTES)
            deps.due.schedule(DueKind.PAGE_END, page_end_key(owner, reason), due, payload)
            return
        started_at = datetime.fromisoformat(str(payload["started_at"]))
        due = max(deps.clock(), started_at + timedelta(minutes=levels[number].after_minutes))
        nxt = {**payload, "level": number + 1}
        deps.due.schedule(DueKind.PAGE_LEVEL, page_level_key(owner, reason, number + 1), due, nxt)
        # A delivery report may have failed this level since the pages were read; it could
        # not see the next level's work yet, so moving on now is decided here.
        level_now = [p for p in subject.pages(deps, reason) if p.level == number]
        if all(is_unreachable(p) for p in level_now):
            now_key = page_level_key(owner, reason, number + 1, is_now=True)
            deps.due.schedule(DueKind.PAGE_LEVEL, now_key, deps.clock(), nxt)

    def _post_notice(
        self,
        subject: Subject,
        reason: str,
        event: str,
        summary: str,
        number: int,
        levels: list[Level],
        pages: list[Page],
        next_name: str | None,
    ) -> None:
        # a page still queued was never sent: the ladder was acknowledged while it waited
        paged = [contact_of(p) for p in pages if p.status not in NOT_PAGED]
        failed = [(contact_of(p), p.error or p.status) for p in pages if p.status == "failed"]
        if next_name and pages and all(is_unreachable(p) for p in pages):
            next_name = next_name.split(" at ")[0] + " right now"
        text, blocks = page_notice(
            rollback_id=subject.rollback_id or 0,
            service=subject.service,
            reason=reason,
            summary=summary,
            level=number,
            levels=len(levels),
            paged=paged,
            failed=failed,
            next_level=next_name,
            is_sms_enabled=self.texter.sms is not None,
            headline=event,
            question=None if subject.rollback else subject.label,
        )
        page_ids = [p.id for p in pages if p.id is not None]
        key = notice_key(subject.owner, reason, number, "notice")
        notify(self.deps, key, subject.channel, text, blocks, page_ids)

    def _join(self, item: DueWork, rollback: Rollback, ladder: str, event: str) -> None:
        """``event`` (FAILED, SLA BREACH) joins the rollback's ``ladder``: no new ladder and no
        new codes. The phones it paged are texted the news; phones it pages later get it in
        their page (:func:`headline`); the ladder keeps its timing until acknowledged."""
        if EVENT_RANK.get(event, 0) <= EVENT_RANK.get(ladder, 0):
            return  # no graver than what the ladder announces already
        if self.deps.repo.record_delivery(f"page-joined:{rollback.id}:{event}", self.deps.clock()):
            audit(self.deps, "page.joined", rollback, {"reason": ladder, "event": event})
        self.texter.tell(item, rollback, ladder, event)

    def _warn_no_ladder(self, subject: Subject, service: Service, reason: str) -> None:
        text = no_ladder_warning(subject.label, service.name, reason)
        key = notice_key(subject.owner, reason, "no-ladder")
        if notify(self.deps, key, subject.channel, text):
            subject.audit(self.deps, "page.failed", {"reason": reason, "error": "no oncall ladder"})


def _next_name(levels: list[Level], number: int, started_at: datetime) -> str | None:
    """Who level ``number + 1`` pages and when (None after the last level)."""
    if number == len(levels):
        return None
    at = started_at + timedelta(minutes=levels[number].after_minutes)
    return f"{levels[number].names} at {at:%H:%M} UTC"


def install(deps: Deps) -> Pager:
    """Register the paging due work (``page.start|level|end|finish``, ``page.post`` and
    ``page.stop_notices``) and listen to the engine for rollbacks that end."""
    sms = sms_sender(deps.settings)
    if sms is None:
        log.warning("SMS paging is DISABLED (TWILIO_* not set): pages are posted in Slack only")
    # a guard question's SMS names its channel as people know it: #checkout-alerts
    names = ChannelNames(deps.slack, clock=lambda: deps.clock().timestamp())
    pager = Pager(deps, Texter(deps, sms), names.shown)
    handlers: dict[DueKind, Callable[[DueWork], None]] = {
        DueKind.PAGE_START: pager.start,
        DueKind.PAGE_LEVEL: pager.level,
        DueKind.PAGE_END: pager.end,
        DueKind.PAGE_POST: pager.post_notice,
        DueKind.PAGE_FINISH: pager.finish,
        DueKind.PAGE_STOP_NOTICES: pager.stop_notices,
    }
    for kind, handler in handlers.items():
        deps.due.register(kind, handler)
    deps.engine.listeners.append(pager)  # a rollback that ends stops its ladder
    deps.closers.append(pager.close)
    return pager
