"""Edit: a responder changes a draft's text and status in a form; the change is stored (the
draft's version one up) and its Slack message updated in place. Saving never publishes."""

from __future__ import annotations

from typing import Any

from bot.adapters.status_page import STATUSES
from bot.customer.blocks import edit_modal
from bot.customer.drafts import refresh
from bot.customer.publish import load_pressed, stale_reason
from bot.customer.text import MESSAGE_LIMIT
from bot.deps import Deps
from bot.notify.reply import Reply
from storage.customer_models import CustomerUpdate


def edit_form(deps: Deps, value: str, user: str) -> Reply | dict[str, Any]:
    """**Edit** under a draft: the form, or why it does not open."""
    pressed = load_pressed(deps, value, user, "edit")
    if isinstance(pressed, Reply):
        return pressed
    update, version = pressed.update, pressed.version
    if (why := stale_reason(deps, update, version)) is not None:
        return Reply(why.replace("press Publish again", "press Edit again"))
    return edit_modal(update)


def submit_edit(
    deps: Deps, metadata: str, user: str, message: str, status: str
) -> dict[str, str] | CustomerUpdate:
    """The Edit form sent, before the ack: field errors (shown under the inputs), or the draft
    as stored and audited. Its Slack message is updated after the ack (:func:`show_edit`)."""
    if not message.strip():
        return {"message": "Write the message customers will read."}
    if len(message) > MESSAGE_LIMIT:
        return {"message": f"At most {MESSAGE_LIMIT} characters."}
    pressed = load_pressed(deps, metadata, user, "edit")
    if isinstance(pressed, Reply):
        return {"message": pressed.text}
    update, version = pressed.update, pressed.version
    status = status or update.status  # Slack always sends the select; the console may not
    if status not in STATUSES:
        return {"status": f"Choose one of: {', '.join(STATUSES)}."}
    if (why := stale_reason(deps, update, version)) is not None:
        return {"message": why.replace("press Publish again", "press Edit again")}
    assert update.id is not None
    edited = deps.repo.edit_customer_update(
        update.id, version, message=message.strip(), status=status, user=user, now=deps.clock()
    )
    if edited is None:  # edited, published or superseded between the read and the write
        fresh = deps.repo.get_customer_update(update.id) or update
        return {"message": stale_reason(deps, fresh, version) or "This draft changed meanwhile."}
    deps.audit(
        "customer_update.edited",
        pressed.rollback,
        user,
        channel_id=edited.channel_id,
        message_ts=edited.message_ts,
        update_id=edited.id,
        version=edited.version,
        status=status,
    )
    return edited


def show_edit(deps: Deps, edited: CustomerUpdate, user: str) -> tuple[str, str]:
    """After the ack: the draft's message updated in place; what to tell the editor, and where
    (the draft's channel)."""
    error = refresh(deps, edited)
    where = edited.channel_id or user
    if error:
        return (
            f":warning: Saved, but Slack did not update the draft message (`{error}`): the"
            " stored text is what Publish sends.",
            where,
        )
    return "Saved. The draft is not published: press *Publish* under it when it is right.", where
