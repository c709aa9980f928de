"""SMS paging with an escalation ladder, until someone acknowledges.

A ladder is the service's ``oncall`` list; contacts with the same ``after_minutes`` form one
level, paged together. ``page.start`` (scheduled by the notifications code with a rollback id,
a reason and a short summary) pages level 1 at once; every next level is durable due work at
ladder start + its ``after_minutes``; after the last one, ``page.end`` warns that nobody
acknowledged. Every page is a row written *before* its SMS goes out and keyed by (rollback,
reason, position), so a retried or resumed step never pages anyone twice. A level whose every
contact failed (an invalid number, say) moves on to the next level at once; Twilio being down
is retried with back-off, then reported loudly. Acknowledging (Slack button or ``ACK <code>``
by SMS, see ``bot.notify.page_acks``) cancels what is left of the ladder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters.twilio import SmsError, TwilioSMS, sms_sender
from bot.catalog import Service
from bot.due import RetryLater
from bot.logs import mask_phone
from bot.notify.page_messages import (
    Contact,
    page_notice,
    reason_label,
    sms_body,
    unacknowledged_warning,
)
from storage.models import DueWork, Page, Rollback

if TYPE_CHECKING:
    from bot.app import Deps

log = logging.getLogger(__name__)

SEND_TRIES = 4  # Twilio down: the first try and three more, 5 s, 15 s and 45 s apart
ACK_WAIT_MINUTES = 5.0  # after the last level, how long before "nobody acknowledged"
# One level's phones are paged at once (a level is rarely larger); more would only queue.
SEND_PARALLEL = 32
UNREACHED = ("failed", "undelivered")


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


def channel_of(deps: Deps, rollback: Rollback) -> str | None:
    service = deps.catalog.get(rollback.service)
    return rollback.channel_id or (service.channel if service else None)


def post(deps: Deps, channel: str | None, text: str, blocks: list[Any] | None = None) -> str | None:
    """Post to Slack; a Slack failure is logged, never raised (paging goes on without it)."""
    if channel is None:
        return None
    try:
        answer = deps.slack.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False
        )
    except Exception as exc:
        log.warning("paging notice not posted in %s: %s", channel, mask_phone(str(exc)))
        return None
    return str(answer.get("ts") or "") or None


class Pager:
    """Runs the ladder's due work. Built by :func:`install`."""

    def __init__(self, deps: Deps, sms: TwilioSMS | None) -> None:
        self.deps, self.sms = deps, sms
        self._pool = ThreadPoolExecutor(max_workers=SEND_PARALLEL, thread_name_prefix="sms")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self.sms is not None:
            self.sms.close()

    # --- due work handlers ----------------------------------------------------------------------

    def start(self, item: DueWork) -> None:
        """``page.start``: the ladder begins now; page level 1."""
        payload = dict(item.payload)
        payload.setdefault("started_at", item.due_at.isoformat())
        self._run_level(item, payload, 1)

    def level(self, item: DueWork) -> None:
        """``page.level``: page level ``payload["level"]`` unless acknowledged meanwhile."""
        self._run_level(item, dict(item.payload), int(item.payload["level"]))

    def end(self, item: DueWork) -> None:
        """``page.end``: the last level had its time and nobody acknowledged."""
        rollback_id, reason = int(item.payload["rollback_id"]), str(item.payload["reason"])
        rollback = self.deps.repo.get_rollback(rollback_id)
        pages = self.deps.repo.list_pages(rollback_id, reason)
        if rollback is None or any(p.acknowledged_at for p in pages):
            return
        contacts = [Contact(p.contact_name, p.phone) for p in pages]
        text, blocks = unacknowledged_warning(rollback_id, rollback.service, reason, contacts)
        post(self.deps, channel_of(self.deps, rollback), text, blocks)
        self._audit("page.unacknowledged", rollback, {"reason": reason, "levels": pages[-1].level})

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
        if any(p.acknowledged_at for p in deps.repo.list_pages(rollback_id, reason)):
            return  # acknowledged while this step waited
        level = levels[number - 1]
        pages = [
            deps.repo.add_page(
                rollback_id=rollback_id,
                reason=reason,
                level=number,
                position=position,
                contact_name=contact.name,
                phone=contact.phone,
                now=deps.clock(),
            )
            for position, contact in level.contacts
        ]
        summary = str(payload.get("summary") or rollback.reason or "")
        self._send_queued(item, rollback, summary, pages)
        pages = [p for p in deps.repo.list_pages(rollback_id, reason) if p.level == number]
        is_last = number == len(levels)
        started_at = datetime.fromisoformat(str(payload["started_at"]))
        next_name = None
        if not is_last:
            at = started_at + timedelta(minutes=levels[number].after_minutes)
            next_name = f"{_names(levels[number])} at {at:%H:%M} UTC"
        if any(p.notice_ts is None for p in pages):
            self._post_notice(rollback, reason, summary, number, levels, pages, next_name)
        prefix = ladder_prefix(rollback_id, reason)
        if not is_last and all(p.status in UNREACHED for p in pages):
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
            if all(p.status in UNREACHED for p in level_now):
                now_key = f"{prefix}level:{number + 1}:now"
                deps.due.schedule("page.level", now_key, deps.clock(), nxt)

    def _send_queued(
        self, item: DueWork, rollback: Rollback, summary: str, pages: list[Page]
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
        results = list(self._pool.map(lambda p: self._send(rollback, summary, p), queued))
        down = [(page, err) for page, err in zip(queued, results, strict=True) if err]
        if not down:
            return
        who, why = ", ".join(Contact(p.contact_name, p.phone).shown for p, _ in down), down[0][1]
        if item.attempts < SEND_TRIES:
            if item.attempts == 1:
                channel = channel_of(self.deps, rollback)
                text = f":warning: Twilio is not answering ({why.summary}); retrying the page to"
                post(self.deps, channel, f"{text} {who}.")
            raise RetryLater(f"Twilio unavailable: {why.summary}", 5 * 3 ** (item.attempts - 1))
        for page, err in down:
            assert page.id is not None
            error = f"Twilio unavailable after {item.attempts} tries: {err.summary}"
            self.deps.repo.mark_page_failed(page.id, error, self.deps.clock(), error_code=err.code)
            self.deps.metrics.pages_sent.labels(rollback.service, "failed").inc()
            self._audit("page.failed", rollback, _page_detail(page, error))
        post(
            self.deps,
            channel_of(self.deps, rollback),
            f":rotating_light: *Twilio is down*: could not page {who} after {item.attempts}"
            f" tries ({why.summary}). Call them yourself!",
        )

    def _send(self, rollback: Rollback, summary: str, page: Page) -> SmsError | None:
        """Send one page; None when done (sent, or failed for good), the error to retry on."""
        assert self.sms is not None and page.id is not None and rollback.id is not None
        deps = self.deps
        body = sms_body(rollback.id, rollback.service, page.reason, summary, page.ack_code)
        public = deps.settings.public_url
        callback = f"{public.rstrip('/')}/twilio/status?page={page.id}" if public else None
        try:
            sid = self.sms.send_sms(page.phone, body, callback)
        except SmsError as err:
            if err.is_retryable:
                log.warning("page to %s: %s", mask_phone(page.phone), err.summary)
                return err
            deps.repo.mark_page_failed(page.id, err.summary, deps.clock(), error_code=err.code)
            deps.metrics.pages_sent.labels(rollback.service, "failed").inc()
            self._audit("page.failed", rollback, _page_detail(page, err.summary))
            log.warning("page to %s failed: %s", mask_phone(page.phone), err.summary)
            return None
        deps.repo.mark_page_sent(page.id, sid, deps.clock())
        deps.metrics.pages_sent.labels(rollback.service, "sent").inc()
        self._audit("page.sent", rollback, {**_page_detail(page), "sid": sid})
        return None

    def _post_notice(
        self,
        rollback: Rollback,
        reason: str,
        summary: str,
        number: int,
        levels: list[Level],
        pages: list[Page],
        next_name: str | None,
    ) -> None:
        assert rollback.id is not None
        paged = [Contact(p.contact_name, p.phone) for p in pages if p.status not in ("failed",)]
        failed = [
            (Contact(p.contact_name, p.phone), p.error or p.status)
            for p in pages
            if p.status == "failed"
        ]
        if failed and next_name and len(failed) == len(pages):
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
        )
        channel = channel_of(self.deps, rollback)
        ts = post(self.deps, channel, text, blocks)
        if ts is not None and channel is not None:
            self.deps.repo.set_page_notice([p.id for p in pages if p.id is not None], channel, ts)

    def _warn_no_ladder(self, rollback: Rollback, service: Service, reason: str) -> None:
        if not self.deps.repo.record_delivery(
            f"page-none:{rollback.id}:{reason}", self.deps.clock()
        ):
            return
        post(
            self.deps,
            channel_of(self.deps, rollback),
            f":warning: ROLLBACK #{rollback.id} {service.name} is {reason_label(reason)} but"
            f" {service.name} has no `oncall:` ladder in the catalog: *nobody was paged*.",
        )
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
    """Register the paging due work (``page.start``, ``page.level``, ``page.end``)."""
    sms = sms_sender(deps.settings)
    if sms is None:
        log.warning("SMS paging is DISABLED (TWILIO_* not set): pages are posted in Slack only")
    pager = Pager(deps, sms)
    handlers: dict[str, Callable[[DueWork], None]] = {
        "page.start": pager.start,
        "page.level": pager.level,
        "page.end": pager.end,
    }
    for kind, handler in handlers.items():
        deps.due.register(kind, handler)
    deps.closers.append(pager.close)
    return pager
