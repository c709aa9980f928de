"""Words people type (reasons) inside texts the bot writes."""

from __future__ import annotations

import re

# <@U123> or <@U123|name> as Slack sends a mention typed in a slash command or a form
_TYPED_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")


def unmentioned(reason: str) -> str:
    """A person's reason with its mentions turned into plain ``@name`` text.

    The bot's own texts keep their mentions (``aborted by <@U…>``) when shown, so a mention
    inside a reason would ping too (``/rollback abort 12 <@U0EVIL>``). Channel pings and links
    need nothing here: every text is escaped for Slack when shown.
    """
    return _TYPED_MENTION.sub(lambda m: "@" + (m.group(2) or m.group(1)), reason)
