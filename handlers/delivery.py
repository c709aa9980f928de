"""One effect per Slack delivery, whatever Slack or the network repeats.

Slack resends a request it thinks was not answered (``X-Slack-Retry-Num``), users double-click,
and networks duplicate. Every listener records ``delivery_key(body)`` in the database (a unique
key) before it acts, and does nothing when the key was already there. Listeners that answer
quickly do it in the request; slow ones right after ``ack()``, before the first effect.
"""

from __future__ import annotations

from typing import Any

DATABASE_DOWN = (
    ":x: rollback-bot cannot reach its database right now, so it did nothing."
    " Try again in a minute; if it persists, check the bot's DATABASE_URL and /healthz."
)


def delivery_key(body: dict[str, Any]) -> str | None:
    """The id Slack keeps across retries: ``event_id`` for events, ``trigger_id`` otherwise."""
    if event_id := body.get("event_id"):
        return f"event:{event_id}"
    if trigger_id := body.get("trigger_id"):
        return f"trigger:{trigger_id}"
    return None
