"""Paging the service's on-call when the guard asks "Roll back now / Keep release" (issue 14).

The paging ladder (``bot.paging``) belongs to a rollback: its pages are rows keyed by the
rollback, acknowledged with a code and stopped when the rollback ends. A guard question has no
rollback yet, so it pages the ladder's first level only, through the same Twilio adapter and the
same levels and SMS wording rules, and nobody acknowledges by SMS: the answer is the question's
button in Slack. The page is due work scheduled once the question is posted (never for a question
that was not), sent at most once per question: a marker is claimed in the database right before
the SMS, so a duplicate ask, a second replica or a rerun after a crash texts nobody twice. What
happened is said in the question's thread (who was paged, SMS disabled, Twilio refused) with
names only: phone numbers never reach Slack, and logs and the audit get them masked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.adapters.twilio import SmsError, TwilioSMS, sms_sender
from bot.guard.firing import say
from bot.paging.levels import ladder_levels
from bot.paging.messages import SMS_LIMIT, Contact, gsm_text
from bot.rollback.lifecycle import GuardDueKind, guard_confirm_key, guard_page_key
from bot.runtime.logs import mask_phone
from storage.models import OPEN_WORK, DueWork

if TYPE_CHECKING:
    from bot.catalog.load import Service
    from bot.deps import Deps
    from storage.guard_models import GuardedRelease

log = logging.getLogger(__name__)


def question_sms(service: str, reason: str, channel: str) -> str:
    """One segment: ``rollback-bot GUARD checkout: <reason>. Roll back or keep the release?
    Answer in Slack, channel C0CHECKOUT.`` (the reason is shortened to fit, never the rest)."""
    head = gsm_text(f"rollback-bot GUARD {service[:40]}")
    tail = " " + gsm_text(
        f"Roll back or keep the release? Answer in Slack, channel {channel[:40]}."
    )
    room = SMS_LIMIT - len(head) - len(tail) - 3  # ": " and "."
    text = gsm_text(reason).rstrip(".")
    if len(text) > room:
        text = text[: max(0, room - 3)].rstrip() + "..." if room > 3 else ""
    return f"{head}: {text}.{tail}" if text else f"{head}.{tail}"


class QuestionPager:
    """The ``guard.page`` due work (None ``sms``: SMS paging is disabled)."""

    def __init__(self, deps: Deps, sms: TwilioSMS | None) -> None:
        self.deps, self.sms = deps, sms

    def close(self) -> None:
        if self.sms is not None:
            self.sms.close()

    def page(self, item: DueWork) -> None:
        deps = self.deps
        name, release_id = str(item.payload["service"]), int(item.payload["release_id"])
        service = deps.catalog.get(name)
        release = deps.repo.guarded_release(release_id)
        if service is None or release is None or release.service != name:
            return
        question = deps.repo.get_work(guard_confirm_key(release_id))
        if question is None or question.status not in OPEN_WORK:
            log.info("guard question of %s answered before its page: nobody paged", name)
            return
        # claimed before any SMS: whatever happens next, this question never pages again
        if not deps.repo.record_delivery(guard_page_key(release_id), deps.clock()):
            return
        levels = ladder_levels(service)
        if not levels:
            self._note(service, release, "no_ladder", "it has no `oncall:` list")
        elif self.sms is None:
            self._note(service, release, "sms_disabled", "SMS paging is disabled")
        else:
            contacts = [contact for _, contact in levels[0].contacts]
            self._send(service, release, str(item.payload.get("reason") or ""), contacts)

    def _note(self, service: Service, release: GuardedRelease, why: str, text: str) -> None:
        self.deps.audit("guard.page_skipped", service.name, why=why, revision=release.revision)
        say(
            self.deps,
            service,
            release,
            f":no_bell: {text}: nobody was paged about this question. Answer it here.",
        )

    def _send(
        self, service: Service, release: GuardedRelease, reason: str, contacts: list[Contact]
    ) -> None:
        assert self.sms is not None
        body = question_sms(service.name, reason, service.channel)
        paged: list[Contact] = []
        failed: list[tuple[Contact, str]] = []
        for contact in contacts:
            try:
                sid = self.sms.send_sms(contact.phone, body)
            except SmsError as err:
                log.warning("guard page to %s: %s", mask_phone(contact.phone), err.summary)
                failed.append((contact, _why(err)))
                continue
            log.info("guard page to %s sent (%s)", mask_phone(contact.phone), sid)
            paged.append(contact)
        shown = [c.shown for c in paged]  # masked: "Primary on-call (+1555•••0001)"
        errors = {c.shown: why for c, why in failed}
        self.deps.audit(
            "guard.paged", service.name, revision=release.revision, paged=shown, failed=errors
        )
        lines = []
        if paged:
            names = ", ".join(c.name for c in paged)
            lines.append(f":pager: Paged {names} by SMS about this question.")
        for contact, why in failed:
            lines.append(
                f":warning: The SMS to {contact.name} was not sent ({why}): call them yourself."
            )
        say(self.deps, service, release, "\n".join(lines))


def _why(err: SmsError) -> str:
    """Why Twilio did not take it, for Slack: never its message (it may hold the number)."""
    if err.is_maybe_sent:
        return "Twilio did not answer; it may have arrived"
    if err.is_retryable:
        return "Twilio unavailable"
    if err.is_bad_number:
        return f"Twilio {err.code}: the number cannot receive SMS"
    return f"Twilio {err.code}: check TWILIO_*" if err.code else "Twilio refused it"


def install(deps: Deps) -> QuestionPager:
    """Register ``guard.page``; its Twilio client is closed with the app."""
    pager = QuestionPager(deps, sms_sender(deps.settings))
    deps.due.register(GuardDueKind.PAGE, pager.page)
    deps.closers.append(pager.close)
    return pager
