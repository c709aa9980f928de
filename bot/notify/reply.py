"""What the bot says back to the person who asked: a ``Reply`` (ephemeral text and blocks),
returned by the workflows and given to Slack by the handler (``ack`` or ``respond``).

Workflows never import Bolt: the person's ``respond`` is any callable taking Bolt's keyword
arguments (``text``, ``blocks``, ``response_type``, ``replace_original``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.errors import DatabaseNotMigrated, StorageError

Respond = Callable[..., object]

DATABASE_DOWN = (
    ":x: rollback-bot cannot reach its database right now, so it did nothing."
    " Try again in a minute; if it persists, check the bot's DATABASE_URL and /healthz."
)


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer: text (always) and blocks (when the answer has more shape)."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    replace_original: bool = False  # a button's answer that replaces the message it was on
    then: Callable[[], None] | None = None  # work to queue once the answer is given (the ack)


@dataclass(frozen=True)
class Asker:
    """Who asked, where, under which delivery, and how to answer them after the ack."""

    user: str
    channel: str | None
    delivery_key: str | None
    respond: Respond


def tell(respond: Respond, text: str) -> None:
    """Answer privately, leaving the message the person acted on as it is."""
    respond(text=text, response_type="ephemeral", replace_original=False)


def storage_error_text(error: StorageError) -> str:
    """What to tell a person when the database failed them: its trouble and what to do."""
    if isinstance(error, DatabaseNotMigrated):  # reachable, so "try again" would not help
        return f":x: rollback-bot did nothing: {error}."
    return DATABASE_DOWN


def internal_error_text(error: BaseException, doing: str = "this request") -> str:
    if isinstance(error, StorageError):  # the usual cause: say what to do about it
        return storage_error_text(error)
    return (
        f":warning: rollback-bot hit an internal error ({type(error).__name__}) while handling"
        f" {doing}. The bot's log has the details. Nothing more was done by this attempt:"
        " check `/rollback status` before trying again."
    )


def tell_on_error(respond: Respond, doing: str) -> Callable[[BaseException], None]:
    """For ``BackgroundWork.submit(tell=…)``: the person waiting for the work after the ack
    hears it when that work fails (privately, without touching the message they acted on)."""

    def tell_error(exc: BaseException) -> None:
        tell(respond, internal_error_text(exc, doing))

    return tell_error
