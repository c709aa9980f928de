"""Pure builders for paging: the SMS text and the Slack page notices (Block Kit)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.notify.blocks import button, context, escape, section
from bot.rollback.lifecycle import RollbackStatus
from bot.runtime.logs import mask_phone, redact

PAGE_ACK_ACTION = "page_acknowledge"
SMS_LIMIT = 160  # one GSM-7 segment
REASON_LABELS = {"critical": "CRITICAL", "failed": "FAILED", "sla": "SLA BREACH"}
# Characters outside GSM-7 (or costing two units in it) would make the SMS UCS-2 or longer.
_GSM_SAFE = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "…": "...",
        "\n": " ",
        "\r": " ",
        "\t": " ",
        "[": "(",
        "]": ")",
        "{": "(",
        "}": ")",
        "~": "-",
        "|": "/",
        "^": "'",
        "\\": "/",
        "€": "EUR",
    }
)
_GSM_PLAIN = frozenset(
    " !\"#%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz$£¥"
)
Block = dict[str, Any]
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


@dataclass(frozen=True)
class Contact:
    """One person of a ladder level, as the notices show them."""

    name: str
    phone: str

    @property
    def shown(self) -> str:
        """``Primary on-call (+1555•••0001)``: enough to recognise, never enough to dial."""
        return f"{self.name} ({mask_phone(self.phone)})"


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, reason.upper())


def shown_in_slack(by: str) -> str:
    """Who acknowledged, for Slack: a user id becomes a mention, a contact's name stays."""
    return f"<@{by}>" if _SLACK_USER.fullmatch(by) else by


def gsm_text(text: str) -> str:
    """``text`` in the plain GSM-7 characters (one unit each), secrets and numbers masked."""
    cleaned = redact(text).translate(_GSM_SAFE).replace("•••", "...")
    return " ".join("".join(c if c in _GSM_PLAIN else "?" for c in cleaned).split())


def sms_body(rollback_id: int, service: str, reason: str, summary: str, ack_code: str) -> str:
    """One-segment page: ``ROLLBACK #12 checkout CRITICAL: <summary>. Reply ACK 4821 to take it.``

    The summary is shortened to fit in 160 GSM-7 characters; it never carries tokens or phone
    numbers (they are masked).
    """
    return _one_segment(rollback_id, service, reason, summary, f" Reply ACK {ack_code} to take it.")


def update_sms(
    rollback_id: int, service: str, reason: str, summary: str, ack_code: str, owner: str | None
) -> str:
    """The same incident got worse (FAILED, SLA BREACH): told to a phone it already paged, with
    that page's code. Before anyone acknowledged, it asks for the ACK like the page did;
    after, it says who has it (``owner`` is "You" for the person who acknowledged)."""
    if owner is None:
        return sms_body(rollback_id, service, reason, summary, ack_code)
    has = "You have it" if owner == "You" else f"{gsm_text(owner)[:30]} has it"
    return _one_segment(rollback_id, service, reason, summary, f" {has} (ACK {ack_code}).")


def ended_sms(rollback_id: int, service: str, status: str, at: datetime) -> str:
    """``Rollback #2 of checkout SUCCEEDED at 16:37 UTC; no action needed.``: the rollback that
    paged this phone ended, so its paging stopped."""
    head = f"Rollback #{rollback_id} of {service[:40]}"
    when = f"at {at:%H:%M} UTC"
    if status == RollbackStatus.SUCCEEDED:
        text = f"{head} SUCCEEDED {when}; no action needed."
    elif status == RollbackStatus.ABORTED:
        text = f"{head} was ABORTED {when}; paging stopped, see Slack."
    else:
        text = f"{head} ended ({status.upper()}) {when}; paging stopped, see Slack."
    return gsm_text(text)


def question_sms(service: str, reason: str, channel: str, ack_code: str) -> str:
    """A guard question's page, one segment: ``GUARD checkout: <reason>. Roll back or keep the
    release? Answer in Slack #checkout-alerts. Reply ACK 4821 to stop paging.``"""
    tail = (
        f" Roll back or keep the release? Answer in Slack {gsm_text(channel)[:30]}."
        f" Reply ACK {ack_code} to stop paging."
    )
    return _fit(gsm_text(f"GUARD {service[:40]}"), reason, tail)


def _one_segment(rollback_id: int, service: str, reason: str, summary: str, tail: str) -> str:
    head = gsm_text(f"ROLLBACK #{rollback_id} {service[:40]} {reason_label(reason)}")
    return _fit(head, summary, tail)


def _fit(head: str, summary: str, tail: str) -> str:
    """``head: summary.tail`` in one segment, the summary shortened to fit."""
    room = SMS_LIMIT - len(head) - len(tail) - 3  # ": " and "."
    text = gsm_text(summary).rstrip(".")
    if len(text) > room:
        text = text[: max(0, room - 3)].rstrip() + "..." if room > 3 else ""
    return f"{head}: {text}.{tail}" if text else f"{head}.{tail}"


def ack_button(rollback_id: int, reason: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"page-ack-{rollback_id}-{reason}",
        "elements": [button("Acknowledge", PAGE_ACK_ACTION, f"{rollback_id}:{reason}", "primary")],
    }


def page_notice(
    *,
    rollback_id: int,
    service: str,
    reason: str,
    summary: str,
    level: int,
    levels: int,
    paged: Sequence[Contact],
    failed: Sequence[tuple[Contact, str]],
    next_level: str | None,
    is_sms_enabled: bool,
    headline: str | None = None,
    question: str | None = None,
) -> tuple[str, list[Block]]:
    """The channel notice of one ladder level, with its Acknowledge button (for the ladder
    ``reason``; ``headline`` is what the incident is now, e.g. FAILED, when it got worse).
    For a guard ``question`` (its label) the question's own buttons answer: no button here."""
    who = ", ".join(c.shown for c in paged) or "nobody"
    label = escape(question) if question else f"ROLLBACK #{rollback_id} {escape(service)}"
    head = (
        f":pager: Paging level {level}/{levels} for *{label}"
        f"{'' if question else ' ' + reason_label(headline or reason)}*: {escape(who)}"
    )
    lines = [head]
    if summary:
        lines.append(f">{escape(summary)}")
    if not is_sms_enabled:
        lines.append(
            ":warning: *SMS paging is DISABLED* (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and"
            " TWILIO_FROM_NUMBER are not set): nobody was texted. Call them yourself."
        )
    for contact, why in failed:
        lines.append(f":warning: Could not page {escape(contact.shown)}: {escape(mask_phone(why))}")
    hint = "Press *Acknowledge* to take it (or reply `ACK <code>` to the SMS)."
    if question:
        hint = "Answer the question (or reply `ACK <code>` to the SMS) to stop the paging."
    if next_level:
        hint += f" If nobody does, {escape(next_level)} is paged next."
    text = "\n".join(lines)
    if question:
        return text, [section(text), context(hint)]
    return text, [section(text), context(hint), ack_button(rollback_id, reason)]


def acknowledged_notice(text: str, by: str) -> list[Block]:
    """A page notice after acknowledgement: the button replaced by who took it."""
    return closed_notice(text, acknowledged_footer(by))


def acknowledged_footer(by: str) -> str:
    return f":white_check_mark: Acknowledged by {by}"


def closed_notice(text: str, footer: str) -> list[Block]:
    """A page notice whose ladder is over: the button replaced by why."""
    return [section(text), context(footer)]


def stopped_footer(rollback_id: int, status: str, at: datetime) -> str:
    """Why an unacknowledged ladder stopped: its rollback ended."""
    return (
        f":octagonal_sign: Escalation stopped: ROLLBACK #{rollback_id} {status.upper()} at"
        f" {at:%H:%M} UTC. Nobody else is paged; whoever was paged is told by SMS."
    )


def joined_notice(
    *,
    rollback_id: int,
    service: str,
    ladder: str,
    event: str,
    texted: Sequence[Contact],
    acknowledged_by: str | None,
) -> tuple[str, list[Block]]:
    """The incident got worse (FAILED, SLA BREACH): it joined the rollback's open page."""
    who = ", ".join(c.shown for c in texted)
    text = (
        f":pager: *ROLLBACK #{rollback_id} {escape(service)} {reason_label(event)}*: same page"
        f" as before, same ACK codes. Texted {escape(who)}."
    )
    if acknowledged_by is not None:
        text += f" Acknowledged by {acknowledged_by}: escalation stays stopped."
        return text, [section(text)]
    text += " Nobody has acknowledged yet: escalation goes on."
    return text, [section(text), ack_button(rollback_id, ladder)]


def unacknowledged_warning(
    rollback_id: int,
    service: str,
    reason: str,
    paged: Sequence[Contact],
    headline: str | None = None,
    question: str | None = None,
) -> tuple[str, list[Block]]:
    who = ", ".join(c.shown for c in paged) or "nobody"
    if question:
        text = (
            f":rotating_light: *Nobody acknowledged* the page for *{escape(question)}*. Every"
            f" level of the on-call ladder was paged ({escape(who)}). Someone here must answer"
            " the question now."
        )
        return text, [section(text)]
    text = (
        f":rotating_light: *Nobody acknowledged* the page for *ROLLBACK #{rollback_id}"
        f" {escape(service)} {reason_label(headline or reason)}*. Every level of the on-call"
        f" ladder was paged ({escape(who)}). Someone here must take it now."
    )
    return text, [section(text), ack_button(rollback_id, reason)]


def twilio_slow(summary: str, who: str) -> str:
    return f":warning: Twilio is not answering ({summary}); retrying the page to {who}."


def twilio_down(summary: str, who: str, tries: int) -> str:
    return (
        f":rotating_light: *Twilio is down*: could not page {who} after {tries} tries"
        f" ({summary}). Call them yourself!"
    )


def twilio_misconfigured(summary: str, label: str) -> str:
    """Twilio refused the request itself (credentials, From number): no SMS goes out at all."""
    return (
        f":rotating_light: *Twilio is misconfigured* ({mask_phone(summary)}): nobody is being"
        f" paged by SMS for {escape(label)} —"
        " page the on-call by phone. Check TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and"
        " TWILIO_FROM_NUMBER."
    )


def no_ladder_warning(label: str, service: str, reason: str) -> str:
    what = f"{label} is {reason_label(reason)}" if label.startswith("ROLLBACK") else label
    return (
        f":warning: {what} but {service} has no `oncall:` ladder in the catalog:"
        " *nobody was paged*."
    )
