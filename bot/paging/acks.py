"""What comes back from a page: acknowledgements (Slack button, SMS reply) and delivery reports.

The first acknowledgement of a ladder wins (decided in the database), cancels what is left of
the ladder (a level already sending sends no further SMS: see ``claim_page_for_sending``) and is
announced once, durably; repeats answer "already acknowledged". The Slack button is for the
rollback's owners (requester, responders, approvers); the SMS reply for the paged phone, by its
code. A delivery report that says a page never arrived warns in the channel and, when nobody
of that level can be reached, pages the next level now instead of waiting for its time.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from bot.approvals.shared import approver_members
from bot.paging.levels import (
    UNREACHED,
    contact_of,
    is_unreachable,
    ladder_levels,
    page_detail,
)
from bot.paging.messages import acknowledged_footer, reason_label, shown_in_slack
from bot.paging.notices import notice_key, notify, post_work, replace_notice_buttons
from bot.paging.subjects import Subject, subject_of_page
from bot.rollback import policy
from bot.rollback.lifecycle import DueKind, ladder_prefix, page_ack_notices_key, page_level_key
from storage.models import AuditEvent, DueWork, Page, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

_ACK = re.compile(r"ack\s*#?\s*(\d{4})?[\s.!]*", re.IGNORECASE)
# Twilio's delivery error codes people meet most (www.twilio.com/docs/api/errors).
DELIVERY_ERRORS = {
    30003: "unreachable handset",
    30004: "message blocked",
    30005: "unknown or inactive number",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown delivery error",
}


def install(deps: Deps) -> None:
    """Register the due work an acknowledgement leaves (its announcement is ``page.post``)."""
    deps.due.register(DueKind.PAGE_ACK_NOTICES, lambda item: _update_notices(deps, item))


def acknowledge(deps: Deps, page: Page, *, by: str, via: str) -> bool:
    """Acknowledge ``page``'s ladder as ``by`` (a Slack user id or the contact's name).

    True for the first acknowledgement; False if the ladder was already acknowledged. The rest
    of the ladder is cancelled, and the audit event, the announcement and the notice updates
    are stored as due work, all in the acknowledgement's transaction: a crash right after it
    loses none of them (a retry answers "already acknowledged" and posts nothing twice).
    A guard question's page is acknowledged the same way (its paging stops; the question
    still waits for its answer).
    """
    assert page.id is not None
    now = deps.clock()
    subject = subject_of_page(deps, page)
    service = subject.service if subject else "?"
    audit = AuditEvent(
        created_at=now,
        kind="page.acknowledged",
        service=service,
        rollback_id=page.rollback_id,
        actor=by,
        detail={"reason": page.reason, "level": page.level, "via": via},
    )
    follow_up: list[NewWork] = []
    owner: int | str = page.rollback_id or 0
    if subject is not None:
        owner = subject.owner
        shown = shown_in_slack(by) + (" by SMS" if via == "sms" else "")
        label = _label(subject, page.reason)
        if subject.channel is not None:
            text = (
                f":white_check_mark: The page for *{label}* was acknowledged by {shown}."
                " Escalation stopped."
            )
            if subject.question_id is not None:
                text += " The question still waits for its answer."
            key = notice_key(owner, page.reason, "acknowledged")
            follow_up.append(post_work(key, subject.channel, text, now))
        if page.rollback_id is not None:
            notices = {"rollback_id": page.rollback_id, "reason": page.reason, "label": label}
            key = page_ack_notices_key(page.rollback_id, page.reason)
            payload = {**notices, "shown": shown}
            follow_up.append(NewWork(DueKind.PAGE_ACK_NOTICES, key, now, payload))
    prefix = ladder_prefix(owner, page.reason)
    if not deps.repo.acknowledge_ladder(
        page.id, by, now, cancel_prefix=prefix, audit=audit, schedule=follow_up
    ):
        return False
    deps.metrics.pages_acknowledged.labels(service, via).inc()
    deps.kick_due_work()  # now rather than at the next tick
    return True


def _label(subject: Subject, reason: str) -> str:
    if subject.rollback is None:
        return subject.label
    return f"{subject.label} {reason_label(reason)}"


def _update_notices(deps: Deps, item: DueWork) -> None:
    """``page.ack_notices``: replace the Acknowledge buttons of the ladder's notices with who
    took it (best effort: a button left behind only answers "already acknowledged")."""
    rollback_id, reason = int(item.payload["rollback_id"]), str(item.payload["reason"])
    label, shown = str(item.payload["label"]), str(item.payload["shown"])
    replace_notice_buttons(deps, rollback_id, reason, label, acknowledged_footer(shown))


def acknowledge_from_slack(
    deps: Deps,
    rollback_id: int,
    reason: str,
    user: str,
    *,
    channel_id: str | None = None,
    message_ts: str | None = None,
) -> str:
    """The Acknowledge button; returns what to tell the user who pressed it.

    Only the rollback's owners may stop its escalation with it (see :func:`may_acknowledge`);
    anyone else is told who can, and the refusal is audited. ``message_ts`` is the notice the
    button was pressed on (for the audit).
    """
    pages = deps.repo.list_pages(rollback_id, reason)
    rollback = deps.repo.get_rollback(rollback_id)
    if not pages or rollback is None:
        return "This page no longer exists."
    done = next((p for p in pages if p.acknowledged_at), None)
    if done is None:
        if not may_acknowledge(deps, rollback, user):
            refusal = _refusal(deps, rollback, reason)
            why = "not an owner of the rollback"
            where = {"channel_id": channel_id, "message_ts": message_ts}
            deps.audit(
                "page.ack_refused", rollback, user, **where, reason=reason, via="slack", why=why
            )
            return refusal
        latest = max(pages, key=lambda p: p.id or 0)
        if acknowledge(deps, latest, by=user, via="slack"):
            return f":white_check_mark: You took ROLLBACK #{rollback_id}; escalation stopped."
        done = next(p for p in deps.repo.list_pages(rollback_id, reason) if p.acknowledged_at)
    return f"Already acknowledged by {shown_in_slack(done.acknowledged_by or '?')}."


def may_acknowledge(deps: Deps, rollback: Rollback, user: str) -> bool:
    """Whether ``user`` owns the rollback: its requester, or a responder or an approver (a user
    or a member of an approver user group) of its service; the people who may also abort it.
    The same people :func:`bot.rollback.policy.may_abort` lets abort it."""
    service = deps.catalog.get(rollback.service)
    if service is None:
        return user == rollback.requested_by
    members = approver_members(deps, service)  # a warm cache
    return policy.may_abort(service, user, rollback.requested_by, members)


def _refusal(deps: Deps, rollback: Rollback, reason: str) -> str:
    service = deps.catalog.get(rollback.service)
    users = [rollback.requested_by]
    groups: list[str] = []
    if service is not None:
        users += [*service.spec.responders, *sorted(policy.approver_ids(service))]
        groups = policy.approver_groups(service)
    owners = [f"<@{u}>" for u in dict.fromkeys(users)] + [f"<!subteam^{g}>" for g in groups]
    label = f"ROLLBACK #{rollback.id} {rollback.service} {reason_label(reason)}"
    return (
        f":no_entry: Only the people who own *{label}* can acknowledge its page here:"
        f" {', '.join(owners)} (its requester, responders and approvers). Nothing was"
        " acknowledged; escalation goes on. If the page reached your phone by SMS, reply"
        " *ACK* and the 4-digit code from it (e.g. `ACK 4821`): that acknowledges too."
    )


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
    subject = subject_of_page(deps, page)
    label = subject.label if subject else "the page"
    if acknowledge(deps, page, by=page.contact_name, via="sms"):
        if subject is not None and subject.question_id is not None:
            return f"Thanks {page.contact_name}: paging stopped. Answer {label} in Slack."
        return f"Thanks {page.contact_name}: {label} is yours. Escalation stopped."
    return f"{label} was already acknowledged. Nothing to do."


def _is_open(deps: Deps, page: Page) -> bool:
    subject = subject_of_page(deps, page)
    if subject is None:
        return False
    return not any(p.acknowledged_at for p in subject.pages(deps, page.reason))


def record_delivery_status(
    deps: Deps, sid: str, status: str, error_code: int | None, page_id: int | None = None
) -> None:
    """A Twilio status callback. Duplicates and stale reports change nothing."""
    page = deps.repo.record_page_delivery(sid, status, error_code, deps.clock(), page_id=page_id)
    if page is None or status not in UNREACHED:
        return
    subject = subject_of_page(deps, page)
    if subject is None:
        return
    why = DELIVERY_ERRORS.get(error_code or 0, "no reason given")
    code = f"Twilio {error_code}: " if error_code else ""
    subject.audit(deps, "page.failed", page_detail(page, f"{status}: {code}{why}"))
    ladder = subject.pages(deps, page.reason)
    service = deps.catalog.get(subject.service)
    has_next = service is not None and page.level < len(ladder_levels(service))
    moves_on = (
        has_next
        and not subject.is_stopped
        and not any(p.acknowledged_at for p in ladder)
        and all(is_unreachable(p) for p in ladder if p.level == page.level)
    )
    text = (
        f":warning: The page to {contact_of(page).shown} for {subject.label} was"
        f" *{status}* ({code}{why})."
    )
    if moves_on:
        following, owner = page.level + 1, subject.owner
        upcoming = deps.repo.get_work(page_level_key(owner, page.reason, following))
        # not scheduled yet: the level's own run checks again right after scheduling it
        if upcoming is not None:
            key = page_level_key(owner, page.reason, following, is_now=True)
            deps.due.schedule(DueKind.PAGE_LEVEL, key, deps.clock(), upcoming.payload)
        text += " Paging the next level now."
    key = notice_key(subject.owner, page.reason, "undelivered", page.id)
    notify(deps, key, subject.channel, text)
