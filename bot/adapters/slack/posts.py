"""Posts that must not be doubled or lost: markers to find a post whose answer was lost, and
answers to one person (a form, an ephemeral note or a direct message)."""

from __future__ import annotations

import logging
from typing import Any

from bot.adapters.slack.web import SlackClient, SlackError, why

log = logging.getLogger(__name__)


def post_marker(kind: str, *key: object) -> dict[str, Any]:
    """Message metadata naming what a post is for (``kind`` and the parts of a key unique to it,
    e.g. a rollback's id and start time), so a post whose answer was lost can be found again
    instead of posted twice."""
    return {
        "event_type": f"rollback_bot_{kind}",
        "event_payload": {"key": ":".join(str(part) for part in key)},
    }


def find_marked(
    client: SlackClient, channel: str, marker: dict[str, Any], thread_ts: str | None = None
) -> str | None:
    """The ts of the message carrying ``marker`` among the latest 200 of the channel (or of the
    thread), else None — also when Slack cannot be asked (a duplicate beats a missing post)."""
    try:
        if thread_ts:
            found = client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
            )
        else:
            found = client.conversations_history(
                channel=channel, include_all_metadata=True, limit=200
            )
    except Exception as exc:  # Slack errors, a missing history scope, timeouts alike
        reason = why(exc)
        log.warning("cannot look for an earlier post in %s: %s", channel, reason)
        return None
    for message in found.get("messages") or []:
        if message.get("metadata") == marker:
            return str(message["ts"])
    return None


def open_view(client: SlackClient, trigger_id: str, view: dict[str, Any]) -> str | None:
    """Open a modal; Slack's error code when it refuses (``expired_trigger_id`` when Slack was
    slow to deliver the click), else None."""
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackError as exc:
        error = exc.error
        log.warning("views.open failed: %s", error)
        return error
    return None


def tell_privately(client: SlackClient, channel: str, user: str, text: str) -> None:
    """An ephemeral note in the channel, or a direct message when that is not possible."""
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackError as exc:
        log.info("ephemeral to %s in %s failed (%s); sending a DM", user, channel, exc)
        client.chat_postMessage(channel=user, text=text)
