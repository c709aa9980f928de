"""What comes back from a page: acknowledgements (Slack button, SMS reply) and delivery reports.

The first acknowledgement of a ladder wins (decided in the database), cancels what is left of
the ladder (a level already sending sends no further SMS: see ``claim_page_for_sending``) and is
announced once, durably; repeats answer "already acknowledged". A delivery report that
says a page never arrived warns in the channel and, when nobody of that level can be reached,
pages the next level now instead of waiting for its time.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from bot.logs import mask_phone
from bot.notify.page_messages import Contact, acknowledged_notice, reason_label
from bot.notify.paging import (
    UNREACHED,
    channel_of,
    is_unreachable,
    ladder_levels,
    ladder_prefix,
    notify,
)
from storage.models import Page

if TYPE_CHECKING:
    from bot.app import Deps

log = logging.getLogger(__name__)

_ACK = re.compile(r"ack\s*#?\s*(\d{4})?[\s.!]*", re.IGNORECASE)
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
# Twilio's delivery error codes people meet most (www.twilio.com/docs/api/errors).
DELIVERY_ERRORS = {
    30003: "unreachable handset",
    30004: "message blocked",
    30005: "unknown or inactive number",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown delivery error",
}


def shown_in_slack(by: str) -> str:
    return f"<@{by}>" if _SLACK_USER.fullmatch(by) else by


def acknowledge(deps: Deps, page: Page, *, by: str, via: str) -> bool:
    """Acknowledge ``page``'s ladder as ``by`` (a Slack user id or the contact's name).

    True for the first acknowledgement; False if the ladder was already acknowledged.
    """
    assert page.id is not None
    now = deps.clock()
    if not deps.repo.acknowledge_ladder(page.id, by, now):
        return False
    cancelled = deps.repo.cancel_work_with_prefix(ladder_prefix(page.rollback_id, page.reason), now)
    rollback = deps.repo.get_rollback(page.rollback_id)
    service = rollback.service if rollback else "?"
    deps.repo.add_audit_event(
        "page.acknowledged",
        now=now,
        service=service,
        rollback_id=page.rollback_id,
        actor=by,
        detail={"reason": page.reason, "level": page.level, "via": via, "cancelled": cancelled},
    )
    deps.metrics.pages_acknowledged.labels(service, via).inc()
    shown = shown_in_slack(by) + (" by SMS" if via == "sms" else "")
    if rollback is not None:
        label = f"ROLLBACK #{page.rollback_id} {rollback.service} {reason_label(page.reason)}"
        notify(
            deps,
            f"{page.rollback_id}:{page.reason}:acknowledged",
            channel_of(deps, rollback),
            f":white_check_mark: The page for *{label}* was acknowledged by {shown}."
            " Escalation stopped.",
        )
        deps.work.submit("page-acknowledged", _update_notices, deps, page, label, shown)
    return True


def _update_notices(deps: Deps, page: Page, label: str, shown: str) -> None:
    """Replace the Acknowledge buttons of the ladder's notices (best effort: a button left
    behind only answers "already acknowledged")."""
    pages = deps.repo.list_pages(page.rollback_id, page.reason)
    notices = {(p.notice_channel, p.notice_ts) for p in pages if p.notice_channel and p.notice_ts}
    for channel, ts in sorted(notices, key=lambda n: str(n[1])):
        paged = ", ".join(
            Contact(p.contact_name, p.phone).shown for p in pages if p.notice_ts == ts
        )
        text = f":pager: Paged for *{label}*: {paged}"
        try:
            deps.slack.chat_update(
                channel=channel, ts=ts, text=text, blocks=acknowledged_notice(text, shown)
            )
        except Exception as exc:  # the button merely stays; pressing it says "already"
            log.warning("page notice %s not updated: %s", ts, mask_phone(str(exc)))


def acknowledge_from_slack(deps: Deps, rollback_id: int, reason: str, user: str) -> str:
    """The Acknowledge button; returns what to tell the user who pressed it."""
    pages = deps.repo.list_pages(rollback_id, reason)
    if not pages:
        return "This page no longer exists."
    done = next((p for p in pages if p.acknowledged_at), None)
    if done is None:
        latest = max(pages, key=lambda p: p.id or 0)
        if acknowledge(deps, latest, by=user, via="slack"):
            return f":white_check_mark: You took ROLLBACK #{rollback_id}; escalation stopped."
        done = next(p for p in deps.repo.list_pages(rollback_id, reason) if p.acknowledged_at)
    return f"Already acknowledged by {shown_in_slack(done.acknowledged_by or '?')}."


def reply_to_sms(deps: Deps, phone: str, body: str) -> str:
    """An SMS to the bot's number; returns the reply text (sent back as TwiML)."""
    match = _ACK.fullmatch(body.strip())
    if match is None:
        return "rollback-bot: to take a page, reply ACK and the 4-digit code from the page."
    code = match.group(1)
    pages = deps.repo.find_pages_for_reply(phone, code)
    if code is None:  # a bare "ACK" is fine when only one ladder paged this phone is open
        open_ladders = {(p.rollback_id, p.reason): p for p in reversed(pages) if _is_open(deps, p)}
        if len(open_ladders) != 1:
            return "rollback-bot: which page? Reply ACK and the 4-digit code from the page."
        pages = list(open_ladders.values())
    if not pages:
        return f"rollback-bot: unknown code {code}. Reply ACK and the 4-digit code from the page."
    page = pages[0]
    rollback = deps.repo.get_rollback(page.rollback_id)
    label = f"ROLLBACK #{page.rollback_id} {rollback.service if rollback else ''}".strip()
    if acknowledge(deps, page, by=page.contact_name, via="sms"):
        return f"Thanks {page.contact_name}: {label} is yours. Escalation stopped."
    return f"{label} was already acknowledged. Nothing to do."


def _is_open(deps: Deps, page: Page) -> bool:
    return not any(p.acknowledged_at for p in deps.repo.list_pages(page.rollback_id, page.reason))


def record_delivery_status(
    deps: Deps, sid: str, status: str, error_code: int | None, page_id: int | None = None
) -> None:
    """A Twilio status callback. Duplicates and stale reports change nothing."""
    page = deps.repo.record_page_delivery(sid, status, error_code, deps.clock(), page_id=page_id)
    if page is None or status not in UNREACHED:
        return
    rollback = deps.repo.get_rollback(page.rollback_id)
    if rollback is None:
        return
    why = DELIVERY_ERRORS.get(error_code or 0, "no reason given")
    code = f"Twilio {error_code}: " if error_code else ""
    deps.repo.add_audit_event(
        "page.failed",
        now=deps.clock(),
        service=rollback.service,
        rollback_id=page.rollback_id,
        detail={
            "reason": page.reason,
            "level": page.level,
            "contact": page.contact_name,
            "phone": mask_phone(page.phone),
            "error": f"{status}: {code}{why}",
        },
    )
    ladder = deps.repo.list_pages(page.rollback_id, page.reason)
    service = deps.catalog.get(rollback.service)
    has_next = service is not None and page.level < len(ladder_levels(service))
    moves_on = (
        has_next
        and not any(p.acknowledged_at for p in ladder)
        and all(is_unreachable(p) for p in ladder if p.level == page.level)
    )
    text = (
        f":warning: The page to {Contact(page.contact_name, page.phone).shown} for"
        f" ROLLBACK #{page.rollback_id} was *{status}* ({code}{why})."
    )
    if moves_on:
        prefix = ladder_prefix(page.rollback_id, page.reason)
        upcoming = deps.repo.get_work(f"{prefix}level:{page.level + 1}")
        # not scheduled yet: the level's own run checks again right after scheduling it
        if upcoming is not None:
            key = f"{prefix}level:{page.level + 1}:now"
            deps.due.schedule("page.level", key, deps.clock(), upcoming.payload)
        text += " Paging the next level now."
    key = f"{page.rollback_id}:{page.reason}:undelivered:{page.id}"
    notify(deps, key, channel_of(deps, rollback), text)
