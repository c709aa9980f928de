"""Block Kit of customer updates: the draft message (Publish / Edit), its later states, and the
Edit form. Pure: built from a stored ``CustomerUpdate``."""

from __future__ import annotations

from typing import Any

from bot.customer.text import MESSAGE_LIMIT, STATUS_WORDS
from bot.notify import limits
from bot.notify.blocks import Block, button, context, escape, header, person, section
from storage.customer_models import CustomerUpdate, UpdateState

PUBLISH_ACTION = "customer_update_publish"
EDIT_ACTION = "customer_update_edit"
EDIT_VIEW = "customer_update_edit_modal"
_QUOTE_CHARS = 2900  # of a section's 3,000: the message is shown whole, over several sections


def button_value(update: CustomerUpdate) -> str:
    """``<id>:<version>``: a press names the draft and the text it was shown with."""
    return f"{update.id}:{update.version}"


def parse_value(value: str) -> tuple[int, int] | None:
    """(update id, version) of a button value or form metadata; None when malformed."""
    update_id, _, version = value.partition(":")
    if not (update_id.isdigit() and version.isdigit()):
        return None
    return int(update_id), int(version)


def _pieces(line: str) -> list[str]:
    """One line escaped and quoted, cut into pieces a section holds (never inside an entity)."""
    text, pieces, room = escape(line), [], _QUOTE_CHARS - 2
    while len(text) > room:
        amp = text.rfind("&", room - 5, room)
        cut = amp if amp > 0 else room
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return ["> " + p if p.strip() else ">" for p in pieces]


def quoted(message: str) -> list[Block]:
    """The message as block quotes, escaped, over as many sections as it needs (shown whole:
    what a person approves is what customers read)."""
    chunks: list[str] = []
    current = ""
    for line in message.splitlines() or [""]:
        for piece in _pieces(line):
            if current and len(current) + 1 + len(piece) > _QUOTE_CHARS:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n{piece}" if current else piece
    chunks.append(current)
    return [section(chunk) for chunk in chunks if chunk]


def _facts(update: CustomerUpdate, rollback_id: int) -> str:
    status = STATUS_WORDS.get(update.status, update.status)
    return f"*Title:* {escape(update.title)}\n*Status:* {status} · rollback #{rollback_id}"


def _footer(update: CustomerUpdate) -> str:
    parts = [f"Drafted by rollback-bot at {update.created_at:%H:%M:%S} UTC"]
    if update.edited_by and update.edited_at:
        parts.append(f"edited by {person(update.edited_by)} at {update.edited_at:%H:%M:%S} UTC")
    if update.last_error and update.state == UpdateState.DRAFT:
        parts.append(f":warning: the last Publish failed ({escape(update.last_error)})")
    return " · ".join(parts)


def draft_message(
    update: CustomerUpdate, *, has_status_page: bool, publishers: str
) -> tuple[str, list[Block]]:
    """The update as it stands: a draft with its buttons, or what became of it."""
    status = STATUS_WORDS.get(update.status, update.status)
    if update.state == UpdateState.PUBLISHED:
        head = f"Customer update published — {status}"
        when = f"{update.published_at:%H:%M:%S} UTC" if update.published_at else "just now"
        lead = f":white_check_mark: Published to the status page by {person(update.published_by)}"
        lead += f" at {when}."
    elif update.state == UpdateState.SUPERSEDED:
        head = f"Customer update superseded — {status}"
        lead = ":heavy_minus_sign: Not published: a newer draft (below) replaced it."
    else:
        head = f"Draft customer update — {status}"
        lead = (
            "*Not published.* Nothing reaches customers until someone presses *Publish*"
            f" (who may: {publishers})."
        )
        if not has_status_page:
            lead = (
                "*Not published.* No status page is configured for this service"
                " (`status_page:` in the catalog): copy the text to your status page by hand."
            )
    blocks = [
        header(head),
        section(lead),
        section(_facts(update, update.rollback_id)),
        *quoted(update.message),
        context(_footer(update)),
    ]
    if update.state in (UpdateState.DRAFT, UpdateState.PUBLISHING):
        blocks.append(_buttons(update, has_status_page))
    text = f"{head}: {escape(update.title)}\n{escape(update.message)}"  # no pings, no links
    return limits.fit_message(text, blocks)


def _buttons(update: CustomerUpdate, has_status_page: bool) -> Block:
    value = button_value(update)
    elements = []
    if has_status_page:
        publish = button("Publish", PUBLISH_ACTION, value, "primary")
        publish["confirm"] = {
            "title": {"type": "plain_text", "text": "Publish to customers?"},
            "text": {
                "type": "mrkdwn",
                "text": "This posts the text above to the public status page.",
            },
            "confirm": {"type": "plain_text", "text": "Publish"},
            "deny": {"type": "plain_text", "text": "Not yet"},
        }
        elements.append(publish)
    elements.append(button("Edit", EDIT_ACTION, value))
    return {"type": "actions", "block_id": f"customer-update-{update.id}", "elements": elements}


def _option(status: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": STATUS_WORDS[status]}, "value": status}


def edit_modal(update: CustomerUpdate) -> Block:
    """The Edit form: the text and the status, prefilled with the draft's."""
    return limits.fit_view(
        {
            "type": "modal",
            "callback_id": EDIT_VIEW,
            "private_metadata": button_value(update),
            "title": {"type": "plain_text", "text": "Edit customer update"},
            "submit": {"type": "plain_text", "text": "Save draft"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                section(
                    f"*{escape(update.title)}* — saving changes the draft only; it reaches"
                    " customers when someone presses *Publish* under it."
                ),
                {
                    "type": "input",
                    "block_id": "status",
                    "label": {"type": "plain_text", "text": "Status"},
                    "element": {
                        "type": "static_select",
                        "action_id": "value",
                        "options": [_option(s) for s in STATUS_WORDS],
                        "initial_option": _option(update.status),
                    },
                },
                {
                    "type": "input",
                    "block_id": "message",
                    "label": {"type": "plain_text", "text": "Message to customers"},
                    "element": {
                        "type": "plain_text_input",
                        "action_id": "value",
                        "multiline": True,
                        "max_length": MESSAGE_LIMIT,
                        "initial_value": update.message[:MESSAGE_LIMIT],
                    },
                },
            ],
        }
    )
