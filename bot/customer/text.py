"""What a draft customer update says: rendered from the service's templates (overridable like
the notices), as plain text for a status page.

The notification templates render to Slack mrkdwn, escaping every value (``&``, ``<``, ``>``).
A status page shows text, not mrkdwn, so the rendered text is unescaped once; Slack shows it
escaped again (:func:`bot.notify.blocks.escape`) wherever the bot posts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.adapters.status_page import STATUSES
from bot.catalog.load import Service
from bot.notify import templates
from bot.rollback.lifecycle import RollbackStatus

MESSAGE_LIMIT = 3000  # a modal's text input holds at most this much
TITLE_LIMIT = 150
STARTED, FINISHED = "started", "finished"
STATUS_WORDS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}
assert tuple(STATUS_WORDS) == STATUSES


@dataclass(frozen=True)
class Draft:
    status: str
    title: str
    message: str


def plain(text: str) -> str:
    """Rendered mrkdwn back to the text a person reads (the escaping undone once)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def outcome_of(rollback_status: str) -> tuple[str, str]:
    """(status-page status, template) of the update drafted when a rollback ends: resolved
    when it succeeded; identified (the cause is known, the service not yet back) otherwise."""
    if rollback_status == RollbackStatus.SUCCEEDED:
        return "resolved", "customer_resolved"
    return "identified", "customer_unresolved"


def draft_for(
    service: Service, moment: str, rollback_status: str, context: Mapping[str, Any]
) -> Draft:
    """The draft of ``moment`` (``started``: investigating; ``finished``: by the outcome)."""
    status, name = ("investigating", "customer_started")
    if moment == FINISHED:
        status, name = outcome_of(rollback_status)
    title = plain(templates.render(service, "customer_title", context)).replace("\n", " ")
    message = plain(templates.render(service, name, context))
    return Draft(status, _clip(title, TITLE_LIMIT), _clip(message, MESSAGE_LIMIT))
