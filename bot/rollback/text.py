"""Words people type (reasons) inside texts the bot writes."""

from __future__ import annotations

import re

from bot.rollback.lifecycle import RollbackStatus

# <@U123> or <@U123|name> as Slack sends a mention typed in a slash command or a form
_TYPED_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")


def unmentioned(reason: str) -> str:
    """A person's reason with its mentions turned into plain ``@name`` text.

    The bot's own texts keep their mentions (``aborted by <@U…>``) when shown, so a mention
    inside a reason would ping too (``/rollback abort 12 <@U0EVIL>``). Channel pings and links
    need nothing here: every text is escaped for Slack when shown.
    """
    return _TYPED_MENTION.sub(lambda m: "@" + (m.group(2) or m.group(1)), reason)


# What a status says of a rollback, as a verb phrase ("Rollback #4 has succeeded"): the rules
# word their refusals with it, so it lives with the domain rather than in notify.
STATUS_VERBS: dict[str, str] = {
    RollbackStatus.PENDING_APPROVAL: "is waiting for approval",
    RollbackStatus.APPROVED: "is approved but has not started",
    RollbackStatus.SCHEDULED: "is scheduled",
    RollbackStatus.RUNNING: "is running",
    RollbackStatus.ABORTING: "is being aborted",
    RollbackStatus.SUCCEEDED: "has succeeded",
    RollbackStatus.FAILED: "has failed",
    RollbackStatus.ABORTED: "was aborted",
    RollbackStatus.REJECTED: "was rejected",
    RollbackStatus.EXPIRED: "has expired",
    RollbackStatus.CANCELLED: "was cancelled",
}


def status_verb(status: str) -> str:
    """``has succeeded`` / ``was cancelled`` / ``is running`` (never ``is succeeded``)."""
    return STATUS_VERBS.get(status, f"is {status.replace('_', ' ')}")
