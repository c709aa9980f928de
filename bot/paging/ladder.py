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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import PERMANENT_ERRORS, SlackError
from bot.adapters.twilio import BAD_NUMBER_CODES, SmsError, TwilioSMS, sms_sender
from bot.catalog.load import Service
from bot.notify.notifications import page_key
from bot.paging.messages import (
    Contact,
    closed_notice,
    ended_sms,
    joined_notice,
    no_ladder_warning,
    page_notice,
    reason_label,
    shown_in_slack,
    sms_body,
    stopped_footer,
    twilio_down,
    twilio_misconfigured,
    twilio_slow,
    unacknowledged_warning,
    update_sms,
)
from bot.runtime.due import RetryLater
from bot.runtime.logs import mask_phone
from storage.models import AuditEvent, DueWork, Page, Rollback
from storage.repo.pages import LADDER_STOPPING
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

SEND_TRIES = 4  # Twilio down: the first try and three more, 5 s, 15 s and 45 s apart
ACK_WAIT_MINUTES = 5.0  # after the last level, how long before "nobody acknowledged"
# One level's phones are paged at once (a level is rarely larger); more would only queue.
SEND_PARALLEL = 32
UNREACHED = ("failed", "undelivered")
NOT_PAGED = ("failed", "queued")
POST_KIND = "page.post"
POST_TRIES = 12  # 5 s doubling to 5 min: about 45 minutes of Slack trouble
FINISH_KIND = "page.finish"  # the rollback ended: stop its ladder, tell who was paged
STOP_NOTICES_KIND = "page.stop_notices"  # replaces the Acknowledge buttons of a stopped ladder
# How grave each paging event is: a graver one joining a ladder is news to text; a milder one
# (or the same) adds nothing.
EVENT_RANK = {"critical": 0, "sla": 1, "failed": 2}
TOLD = ("sending", "sent", "delivered")  # the phone got (or may have got) this page's SMS


@dataclass(frozen=True)
class Level:
    number: int
    after_minutes: int
    contacts: tuple[tuple[int, Contact], ...]  # (position in the oncall list, contact)


def ladder_levels(service: Service) -> list[Level]:
    """The service's on-call list grouped into levels (same ``after_minutes`` = one level)."""
    grouped: dict[int, list[tuple[int, Contact]]] = {}
    for position, person in enumerate(service.spec.oncall):
        grouped.setdefault(person.after_minutes, []).append(
            (position, Contact(person.name, person.phone))
        )
    return [
        Level(number, after, tuple(contacts))
        for number, (after, contacts) in enumerate(sorted(grouped.items()), start=1)
    ]


def ladder_prefix(rollback_id: int, reason: str) -> str:
    """Every due-work key of one ladder starts with this (acknowledging cancels them all)."""
    return f"page:{rollback_id}:{reason}:"


def is_unreachable(page: Page) -> bool:
    """The contact cannot get this page: a bad number, or Twilio reported it undelivered.

    A page that failed because Twilio was down or refused our credentials says nothing about
    the contact, so it does not make the ladder skip ahead.
    """
    if page.status not in UNREACHED:
        return False
    return page.twilio_sid is not None or page.error_code in BAD_NUMBER_CODES


def is_stopped(rollback: Rollback) -> bool:
    """The rollback ended (other than failed): its ladder pages nobody any more."""
    return rollback.status in LADDER_STOPPING


def event_summary(rollback: Rollback, event: str, summary: str) -> str:
    """What an SMS about ``event`` says after the label: a failure says what failed."""
    if event == "failed" and rollback.error:
        return rollback.error
    return summary


def headline(deps: Deps, rollback: Rollback, ladder: str, summary: str) -> tuple[str, str]:
    """What the ladder's SMS and notices announce now, and its summary: the gravest news of the
    rollback so far (it failed; its SLA breach joined the ladder), else the ladder's own."""
    assert rollback.id is not None
    if rollback.status == "failed":  # known here even before its page.start runs
        return "failed", event_summary(rollback, "failed", f"Rollback of {rollback.service} FAILED")
    if EVENT_RANK.get(ladder, 0) < EVENT_RANK["sla"]:
        work = deps.repo.get_work(page_key(rollback.id, "sla"))
        if work is not None and work.status != "cancelled":
            return "sla", str(work.payload.get("summary") or "")
    return ladder, summary


def ladder_of(pages: Sequence[Page]) -> str | None:
    """The reason of the rollback's ladder: that of its first page (one ladder a rollback)."""
    first = min(pages, key=lambda p: p.id or 0, default=None)
    return first.reason if first is not None else None


def replace_notice_buttons(
    deps: Deps, rollback_id: int, reason: str, label: str, footer: str
) -> None:
    """Replace the Acknowledge buttons of a ladder's notices with ``footer`` (best effort: a
    button left behind only answers "already acknowledged")."""
    pages = deps.repo.list_pages(rollback_id, reason)
    notices = {(p.notice_channel, p.notice_ts) for p in pages if p.notice_channel and p.notice_ts}
    for channel, ts in sorted(notices, key=lambda n: str(n[1])):
        paged = ", ".join(
            Contact(p.contact_name, p.phone).shown
            for p in pages
            if p.notice_ts == ts and p.status not in NOT_PAGED  # as the notice itself said
        )
        text = f":pager: Paged for *{label}*: {paged}"
        try:
            deps.slack.chat_update(
                channel=channel, ts=ts, text=text, blocks=closed_notice(text, footer)
            )
        except Exception as exc:  # the button merely stays; pressing it says "already"
            log.warning("page notice %s not updated: %s", ts, mask_phone(str(exc)))


def channel_of(deps: Deps, rollback: Rollback) -> str | None:
    service = deps.catalog.get(rollback.service)
    return rollback.channel_id or (service.channel if service else None)


def notify(
    deps: Deps,
    key: str,
    channel: str | None,
    text: str,
    blocks: list[Any] | None = None,
    page_ids: Sequence[int] = (),
) -> bool:
    """Post ``text`` durably: stored as ``page.post`` due work under ``key`` (once; False for a
    repeat), posted right away in the background and retried until Slack takes it."""
    if channel is None:
        return False
    if not deps.due.schedule_all([post_work(key, channel, text, deps.clock(), blocks, page_ids)]):
        return False
    deps.work.submit("page-post", deps.due.tick)
    return True


def post_work(
    key: str,
    channel: str,
    text: str,
    now: datetime,
    blocks: list[Any] | None = None,
    page_ids: Sequence[int] = (),
) -> NewWork:
    """The ``page.post`` item :func:`notify` stores (also scheduled inside other transactions)."""
    payload = {"channel": channel, "text": text, "blocks": blocks, "page_ids": list(page_ids)}
    return NewWork(POST_KIND, f"page-post:{key}", now, payload)


def _notice_thread(deps: Deps, key: str, channel: str) -> tuple[str | None, bool]:
    """A paging notice goes in the thread of its rollback's progress message (keys read
    ``page-post:<rollback id>:…``); one saying nobody answered is also shown in the channel."""
    from bot.notify.progress import anchor_of

    rollback_id = key.removeprefix("page-post:").split(":", 1)[0]
    rollback = deps.repo.get_rollback(int(rollback_id)) if rollback_id.isdigit() else None
    if rollback is None:
        return None, False
    thread_ts = anchor_of(deps, rollback, channel)
    return thread_ts, bool(thread_ts) and key.endswith(":unacknowledged")


class Pager:
    """Runs the ladder's due work. Built by :func:`install`."""

    def __init__(self, deps: Deps, sms: TwilioSMS | None) -> None:
        self.deps, self.sms = deps, sms
        self._pool = ThreadPoolExecutor(max_workers=SEND_PARALLEL, thread_name_prefix="sms")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self.sms is not None:
            self.sms.close()

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
            FINISH_KIND, f"page-finish:{rollback.id}", self.deps.clock(), payload
        )
        self.deps.work.submit("page-finish", self.deps.due.tick)

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
            key = f"page-stop-notices:{rollback_id}"
            follow_up.append(NewWork(STOP_NOTICES_KIND, key, now, {**notices, "footer": footer}))
        audit = AuditEvent(
            created_at=now,
            kind="page.stopped",
            service=rollback.service,
            rollback_id=rollback_id,
            channel_id=rollback.channel_id,
            detail={"reason": ladder, "status": rollback.status},
        )
        prefix = f"page:{rollback_id}:"  # every ladder of the rollback (older data had several)
        if deps.repo.stop_ladder(
            rollback_id, now, cancel_prefix=prefix, audit=audit, schedule=follow_up
        ):
            deps.work.submit("page-stopped", deps.due.tick)
        self._tell(item, rollback, ladder, rollback.status)

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
        rollback_id, reason = int(item.payload["rollback_id"]), str(item.payload["reason"])
        rollback = self.deps.repo.get_rollback(rollback_id)
        pages = self.deps.repo.list_pages(rollback_id, reason)
        if rollback is None or is_stopped(rollback) or any(p.acknowledged_at for p in pages):
            return
        contacts = [Contact(p.contact_name, p.phone) for p in pages]
        event, _ = headline(self.deps, rollback, reason, "")
        text, blocks = unacknowledged_warning(
            rollback_id, rollback.service, reason, contacts, headline=event
        )
        key = f"{rollback_id}:{reason}:unacknowledged"
        if notify(self.deps, key, channel_of(self.deps, rollback), text, blocks):
            self._audit(
                "page.unacknowledged", rollback, {"reason": reason, "levels": pages[-1].level}
            )

    def post_notice(self, item: DueWork) -> None:
        """``page.post``: one paging notice to Slack; raises RetryLater until Slack takes it."""
        payload, deps = item.payload, self.deps
        channel = str(payload["channel"])
        thread_ts, broadcast = _notice_thread(deps, item.key, channel)
        marker = post_marker("page_notice", item.key)
        # an earlier run may have posted it and lost the answer (a 500, a crash): look first
        found = find_marked(deps.slack, channel, marker, thread_ts) if item.tries > 1 else None
        try:
            answer = (
                {"ts": found}
                if found
                else deps.slack.chat_postMessage(
                    channel=channel,
                    text=str(payload["text"]),
                    blocks=payload.get("blocks"),
                    unfurl_links=False,
                    thread_ts=thread_ts,
                    reply_broadcast=broadcast or None,
                    metadata=marker,
                )
            )
        except Exception as exc:
            error = exc.error if isinstance(exc, SlackError) else None
            why = str(error or type(exc).__name__)
            if error in PERMANENT_ERRORS or item.tries >= POST_TRIES:
                log.error("paging notice %s never posted in %s: %s", item.key, channel, why)
                return
            log.warning("paging notice %s not posted yet (%s); retrying", item.key, why)
            raise RetryLater(f"Slack: {why}", min(300, 5 * 2 ** (item.tries - 1))) from None
        page_ids = [int(i) for i in payload.get("page_ids") or ()]
        ts = str(answer.get("ts") or "")
        if page_ids and ts:
            deps.repo.set_page_notice(page_ids, channel, ts)

    # --- one level ------------------------------------------------------------------------------

    def _run_level(self, item: DueWork, payload: dict[str, Any], number: int) -> None:
        deps = self.deps
        rollback_id, reason = int(payload["rollback_id"]), str(payload["reason"])
        rollback = deps.repo.get_rollback(rollback_id)
        service = deps.catalog.get(rollback.service) if rollback else None
        if rollback is None or service is None:
            log.warning("page for rollback #%s: rollback or service gone; not paging", rollback_id)
            return
        levels = ladder_levels(service)
        if not levels:
            self._warn_no_ladder(rollback, service, reason)
            return
        if is_stopped(rollback):
            log.info("rollback #%s ended (%s): not paging", rollback_id, rollback.status)
            return
        if any(p.acknowledged_at for p in deps.repo.list_pages(rollback_id, reason)):
            return  # acknowledged while this step waited
        level = levels[number - 1]
        ladder, pages = deps.repo.add_level_pages(
            rollback_id=rollback_id,
            reason=reason,
            level=number,
            contacts=[(position, c.name, c.phone) for position, c in level.contacts],
            now=deps.clock(),
        )
        if ladder != reason:  # the rollback has its ladder already: this event joins it
            self._join(item, rollback, ladder, reason)
            return
        # the ladder started when level 1's pages were first stored (a retry moves due_at)
        payload.setdefault("started_at", min(p.created_at for p in pages).isoformat())
        for page in pages:
            if page.status == "sending":  # an earlier run handed it to Twilio, then was lost
                self._outcome_unknown(rollback, page, "the run sending it was interrupted")
        event, summary = headline(
            deps, rollback, reason, str(payload.get("summary") or rollback.reason or "")
        )
        self._send_queued(item, rollback, event, summary, number, pages)
        pages = [p for p in deps.repo.list_pages(rollback_id, reason) if p.level == number]
        is_last = number == len(levels)
        started_at = datetime.fromisoformat(str(payload["started_at"]))
        if is_stopped(deps.repo.get_rollback(rollback_id) or rollback):
            # it ended while this level was being sent: who got the SMS is told (page.finish)
            if any(p.status in TOLD for p in pages):
                self._post_notice(rollback, reason, event, summary, number, levels, pages, None)
            return
        next_name = None
        if not is_last:
            at = started_at + timedelta(minutes=levels[number].after_minutes)
            next_name = f"{_names(levels[number])} at {at:%H:%M} UTC"
        self._post_notice(rollback, reason, event, summary, number, levels, pages, next_name)
        prefix = ladder_prefix(rollback_id, reason)
        if not is_last and all(is_unreachable(p) for p in pages):
            self._run_level(item, payload, number + 1)  # nobody here can be reached: next, now
            return
        if is_last:
            due = deps.clock() + timedelta(minutes=ACK_WAIT_MINUTES)
            deps.due.schedule("page.end", f"{prefix}end", due, payload)
        else:
            due = max(deps.clock(), started_at + timedelta(minutes=levels[number].after_minutes))
            nxt = {**payload, "level": number + 1}
            deps.due.schedule("page.level", f"{prefix}level:{number + 1}", due, nxt)
            # A delivery report may have failed this level since the pages were read; it could
            # not see the next level's work yet, so moving on now is decided here.
            level_now = [p for p in deps.repo.list_pages(rollback_id, reason) if p.level == number]
            if all(is_unreachable(p) for p in level_now):
                now_key = f"{prefix}level:{number + 1}:now"
                deps.due.schedule("page.level", now_key, deps.clock(), nxt)

    def _send_queued(
        self,
        item: DueWork,
        rollback: Rollback,
        event: str,
        summary: str,
        number: int,
        pages: list[Page],
    ) -> None:
        queued = [p for p in pages if p.status == "queued"]
        if not queued:
            return
        if self.sms is None:
            for page in queued:
                assert page.id is not None
                self.deps.repo.mark_page_failed(
                    page.id, "SMS disabled", self.deps.clock(), status="skipped"
                )
                self._audit("page.skipped", rollback, _page_detail(page, "SMS disabled"))
            return
        results = list(self._pool.map(lambda p: self._send(rollback, event, summary, p), queued))
        errors = [(page, err) for page, err in zip(queued, results, strict=True) if err]
        misconfigured = next((err for _, err in errors if err.is_misconfigured), None)
        if misconfigured is not None:
            self._warn_misconfigured(rollback, queued[0].reason, misconfigured)
        down = [(page, err) for page, err in errors if err.is_retryable]
        if not down:
            return
        who, why = ", ".join(Contact(p.contact_name, p.phone).shown for p, _ in down), down[0][1]
        channel, key = channel_of(self.deps, rollback), f"{rollback.id}:{queued[0].reason}:{number}"
        if item.tries < SEND_TRIES:
            notify(self.deps, f"{key}:twilio-slow", channel, twilio_slow(why.summary, who))
            raise RetryLater(f"Twilio unavailable: {why.summary}", 5 * 3 ** (item.tries - 1))
        for page, err in down:
            assert page.id is not None
            error = f"Twilio unavailable after {item.tries} tries: {err.summary}"
            self.deps.repo.mark_page_failed(page.id, error, self.deps.clock(), error_code=err.code)
            self.deps.metrics.pages_sent.labels(rollback.service, "failed").inc()
            self._audit("page.failed", rollback, _page_detail(page, error))
        text = twilio_down(why.summary, who, item.tries)
        notify(self.deps, f"{key}:twilio-down", channel, text)

    def _send(self, rollback: Rollback, event: str, summary: str, page: Page) -> SmsError | None:
        """Send one page (announcing ``event``) unless its ladder was acknowledged or stopped;
        the error if Twilio refused it."""
        assert self.sms is not None and page.id is not None and rollback.id is not None
        deps = self.deps
        if not deps.repo.claim_page_for_sending(page.id, deps.clock(), told=event):
            log.info("page to %s not sent: acknowledged or ended meanwhile", mask_phone(page.phone))
            return None
        body = sms_body(rollback.id, rollback.service, event, summary, page.ack_code)
        public = deps.settings.public_url
        callback = f"{public.rstrip('/')}/twilio/status?page={page.id}" if public else None
        try:
            sid = self.sms.send_sms(page.phone, body, callback)
        except SmsError as err:
            log.warning("page to %s: %s", mask_phone(page.phone), err.summary)
            if err.is_retryable:
                deps.repo.release_page(page.id, deps.clock())
            elif err.is_maybe_sent:
                self._outcome_unknown(rollback, page, err.summary)
            else:
                deps.repo.mark_page_failed(page.id, err.summary, deps.clock(), error_code=err.code)
                deps.metrics.pages_sent.labels(rollback.service, "failed").inc()
                self._audit("page.failed", rollback, _page_detail(page, err.summary))
            return err
        deps.repo.mark_page_sent(page.id, sid, deps.clock())
        deps.metrics.pages_sent.labels(rollback.service, "sent").inc()
        self._audit("page.sent", rollback, {**_page_detail(page), "sid": sid})
        return None

    def _outcome_unknown(self, rollback: Rollback, page: Page, why: str) -> None:
        """A page Twilio may have taken: never resent; its status callback settles it."""
        assert page.id is not None
        if self.deps.repo.record_delivery(f"page-unknown:{page.id}", self.deps.clock()):
            log.warning(
                "page to %s: outcome unknown (%s); not resending", mask_phone(page.phone), why
            )
            self._audit("page.unknown", rollback, _page_detail(page, why))

    def _post_notice(
        self,
        rollback: Rollback,
        reason: str,
        event: str,
        summary: str,
        number: int,
        levels: list[Level],
        pages: list[Page],
        next_name: str | None,
    ) -> None:
        assert rollback.id is not None
        # a page still queued was never sent: the ladder was acknowledged while it waited
        paged = [Contact(p.contact_name, p.phone) for p in pages if p.status not in NOT_PAGED]
        failed = [
            (Contact(p.contact_name, p.phone), p.error or p.status)
            for p in pages
            if p.status == "failed"
        ]
        if next_name and pages and all(is_unreachable(p) for p in pages):
            next_name = next_name.split(" at ")[0] + " right now"
        text, blocks = page_notice(
            rollback_id=rollback.id,
            service=rollback.service,
            reason=reason,
            summary=summary,
            level=number,
            levels=len(levels),
            paged=paged,
            failed=failed,
            next_level=next_name,
            is_sms_enabled=self.sms is not None,
            headline=event,
        )
        page_ids = [p.id for p in pages if p.id is not None]
        key = f"{rollback.id}:{reason}:{number}:notice"
        notify(self.deps, key, channel_of(self.deps, rollback), text, blocks, page_ids)

    # --- one incident: news for the phones already paged ------------------------------------

    def _join(self, item: DueWork, rollback: Rollback, ladder: str, event: str) -> None:
        """``event`` (FAILED, SLA BREACH) joins the rollback's ``ladder``: no new ladder and no
        new codes. The phones it paged are texted the news; phones it pages later get it in
        their page (:func:`headline`); the ladder keeps its timing until acknowledged."""
        if EVENT_RANK.get(event, 0) <= EVENT_RANK.get(ladder, 0):
            return  # no graver than what the ladder announces already
        if self.deps.repo.record_delivery(f"page-joined:{rollback.id}:{event}", self.deps.clock()):
            self._audit("page.joined", rollback, {"reason": ladder, "event": event})
        self._tell(item, rollback, ladder, event)

    def _tell(self, item: DueWork, rollback: Rollback, ladder: str, event: str) -> None:
        """Text ``event`` (FAILED, SLA BREACH, or how the rollback ended) once to each phone the
        ``ladder`` paged, with that page's code. After an acknowledgement an SLA breach texts
        nobody (its owner has it; Slack says it); a failure still texts everyone paged (it got
        worse: the owner must know, and who was woken too); so does the end (go back to sleep).
        Twilio down: raises RetryLater, and what was sent is not sent again."""
        assert rollback.id is not None
        deps = self.deps
        pages = deps.repo.list_pages(rollback.id, ladder)
        acked = next((p for p in pages if p.acknowledged_at), None)
        if self.sms is None or (event == "sla" and acked is not None):
            return
        by_phone: dict[str, list[Page]] = {}
        for page in pages:
            if page.status in TOLD:
                by_phone.setdefault(page.phone, []).append(page)
        texted: list[Page] = []
        down: list[tuple[Page, SmsError]] = []
        for phone, mine in by_phone.items():
            ids = [p.id for p in mine if p.id is not None]
            if not deps.repo.claim_tell(ids, event, deps.clock()):
                continue  # told already (by its page, or an earlier run)
            page = mine[0]
            body = self._tell_body(rollback, event, page, acked)
            try:
                sid = self.sms.send_sms(phone, body)
            except SmsError as err:
                log.warning("telling %s of %s: %s", mask_phone(phone), event, err.summary)
                if err.is_retryable:
                    deps.repo.release_tell(ids, event)
                    down.append((page, err))
                else:  # refused for good, or maybe sent: never resent
                    self._audit("page.tell_failed", rollback, _page_detail(page, err.summary))
                continue
            texted.append(page)
            self._audit("page.told", rollback, {**_page_detail(page), "event": event, "sid": sid})
        channel = channel_of(deps, rollback)
        if texted and event in EVENT_RANK:
            text, blocks = joined_notice(
                rollback_id=rollback.id,
                service=rollback.service,
                ladder=ladder,
                event=event,
                texted=[Contact(p.contact_name, p.phone) for p in texted],
                acknowledged_by=shown_in_slack(acked.acknowledged_by or "?") if acked else None,
            )
            told = ",".join(str(p.id) for p in texted)
            notify(deps, f"{rollback.id}:{ladder}:told:{event}:{told}", channel, text, blocks)
        if not down:
            return
        who = ", ".join(Contact(p.contact_name, p.phone).shown for p, _ in down)
        why = down[0][1].summary
        if item.tries < SEND_TRIES:
            raise RetryLater(f"Twilio unavailable: {why}", 5 * 3 ** (item.tries - 1))
        text = twilio_down(why, who, item.tries)
        notify(deps, f"{rollback.id}:{ladder}:told:{event}:twilio-down", channel, text)

    def _tell_body(self, rollback: Rollback, event: str, page: Page, acked: Page | None) -> str:
        assert rollback.id is not None
        if event not in EVENT_RANK:  # how the rollback ended
            at = rollback.finished_at or self.deps.clock()
            return ended_sms(rollback.id, rollback.service, event, at)
        given = self.deps.repo.get_work(page_key(rollback.id, event))
        summary = event_summary(
            rollback, event, str(given.payload.get("summary") or "") if given else ""
        )
        owner = None
        if acked is not None:
            by_sms = acked.acknowledged_by == acked.contact_name  # else a Slack user
            if not by_sms:
                owner = "Someone in Slack"
            else:
                owner = "You" if acked.phone == page.phone else acked.contact_name
        return update_sms(rollback.id, rollback.service, event, summary, page.ack_code, owner)

    def _warn_misconfigured(self, rollback: Rollback, reason: str, err: SmsError) -> None:
        """One loud warning per ladder: no SMS can go out until someone fixes TWILIO_*."""
        assert rollback.id is not None
        text = twilio_misconfigured(err.summary, rollback.id, rollback.service, reason)
        key = f"{rollback.id}:{reason}:twilio-config"
        if notify(self.deps, key, channel_of(self.deps, rollback), text):
            log.error("Twilio refused to send (%s): SMS paging is not working", err.summary)

    def _warn_no_ladder(self, rollback: Rollback, service: Service, reason: str) -> None:
        assert rollback.id is not None
        text = no_ladder_warning(rollback.id, service.name, reason)
        key = f"{rollback.id}:{reason}:no-ladder"
        if notify(self.deps, key, channel_of(self.deps, rollback), text):
            self._audit("page.failed", rollback, {"reason": reason, "error": "no oncall ladder"})

    def _audit(self, kind: str, rollback: Rollback, detail: dict[str, Any]) -> None:
        self.deps.repo.add_audit_event(
            kind,
            now=self.deps.clock(),
            service=rollback.service,
            rollback_id=rollback.id,
            channel_id=rollback.channel_id,
            detail=detail,
        )


def _names(level: Level) -> str:
    return ", ".join(contact.name for _, contact in level.contacts)


def _page_detail(page: Page, error: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "reason": page.reason,
        "level": page.level,
        "contact": page.contact_name,
        "phone": mask_phone(page.phone),
    }
    if error:
        detail["error"] = mask_phone(error)
    return detail


def install(deps: Deps) -> Pager:
    """Register the paging due work (``page.start|level|end|finish``, ``page.post`` and
    ``page.stop_notices``) and listen to the engine for rollbacks that end."""
    sms = sms_sender(deps.settings)
    if sms is None:
        log.warning("SMS paging is DISABLED (TWILIO_* not set): pages are posted in Slack only")
    pager = Pager(deps, sms)
    handlers: dict[str, Callable[[DueWork], None]] = {
        "page.start": pager.start,
        "page.level": pager.level,
        "page.end": pager.end,
        POST_KIND: pager.post_notice,
        FINISH_KIND: pager.finish,
        STOP_NOTICES_KIND: pager.stop_notices,
    }
    for kind, handler in handlers.items():
        deps.due.register(kind, handler)
    deps.engine.listeners.append(pager)  # a rollback that ends stops its ladder
    deps.closers.append(pager.close)
    return pager
