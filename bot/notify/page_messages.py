"""Pure builders for paging: the SMS text and the Slack page notices (Block Kit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.logs import mask_phone, redact
from bot.notify.blocks import button, context, escape, section

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


def gsm_text(text: str) -> str:
    """``text`` in the plain GSM-7 characters (one unit each), secrets and numbers masked."""
    cleaned = redact(text).translate(_GSM_SAFE).replace("•••", "...")
    return " ".join("".join(c if c in _GSM_PLAIN else "?" for c in cleaned).split())


def sms_body(rollback_id: int, service: str, reason: str, summary: str, ack_code: str) -> str:
    """One-segment page: ``ROLLBACK #12 checkout CRITICAL: <summary>. Reply ACK 4821 to take it.``

    The summary is shortened to fit in 160 GSM-7 characters; it never carries tokens or phone
    numbers (they are masked).
    """
    head = gsm_text(f"ROLLBACK #{rollback_id} {service[:40]} {reason_label(reason)}")
    tail = f" Reply ACK {ack_code} to take it."
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
) -> tuple[str, list[Block]]:
    """The channel notice of one ladder level, with its Acknowledge button."""
    who = ", ".join(c.shown for c in paged) or "nobody"
    head = (
        f":pager: Paging level {level}/{levels} for *ROLLBACK #{rollback_id} {escape(service)}"
        f" {reason_label(reason)}*: {escape(who)}"
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
    if next_level:
        hint += f" If nobody does, {escape(next_level)} is paged next."
    text = "\n".join(lines)
    return text, [section(text), context(hint), ack_button(rollback_id, reason)]


def acknowledged_notice(text: str, by: str) -> list[Block]:
    """A page notice after acknowledgement: the button replaced by who took it."""
    return [section(text), context(f":white_check_mark: Acknowledged by {by}")]


def unacknowledged_warning(
    rollback_id: int, service: str, reason: str, paged: Sequence[Contact]
) -> tuple[str, list[Block]]:
    who = ", ".join(c.shown for c in paged) or "nobody"
    text = (
        f":rotating_light: *Nobody acknowledged* the page for *ROLLBACK #{rollback_id}"
        f" {escape(service)} {reason_label(reason)}*. Every level of the on-call ladder was"
        f" paged ({escape(who)}). Someone here must take it now."
    )
    return text, [section(text), ack_button(rollback_id, reason)]


def twilio_slow(summary: str, who: str) -> str:
    return f":warning: Twilio is not answering ({summary}); retrying the page to {who}."


def twilio_down(summary: str, who: str, tries: int) -> str:
    return (
        f":rotating_light: *Twilio is down*: could not page {who} after {tries} tries"
        f" ({summary}). Call them yourself!"
    )


def twilio_misconfigured(summary: str, rollback_id: int, service: str, reason: str) -> str:
    """Twilio refused the request itself (credentials, From number): no SMS goes out at all."""
    return (
        f":rotating_light: *Twilio is misconfigured* ({mask_phone(summary)}): nobody is being"
        f" paged by SMS for ROLLBACK #{rollback_id} {escape(service)} {reason_label(reason)} —"
        " page the on-call by phone. Check TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and"
        " TWILIO_FROM_NUMBER."
    )


def no_ladder_warning(rollback_id: int, service: str, reason: str) -> str:
    return (
        f":warning: ROLLBACK #{rollback_id} {service} is {reason_label(reason)} but {service}"
        " has no `oncall:` ladder in the catalog: *nobody was paged*."
    )
