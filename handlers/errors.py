"""The last line of defence: an exception no listener caught still gets the user an answer.

Bolt would answer Slack with HTTP 500 (shown as a failed dispatch, and retried) and the person
who pressed the button or typed the command would hear nothing. Here the error is logged with
its stack trace, Slack gets its ack, and the person gets a short, actionable message — never the
stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from sqlalchemy.exc import DBAPIError

from handlers.delivery import DATABASE_DOWN

log = logging.getLogger(__name__)


def internal_error_text(error: BaseException, doing: str = "this request") -> str:
    if isinstance(error, DBAPIError):  # the usual cause: say what to do about it
        return DATABASE_DOWN
    return (
        f":warning: rollback-bot hit an internal error ({type(error).__name__}) while handling"
        f" {doing}. The bot's log has the details. Nothing more was done by this attempt:"
        " check `/rollback status` before trying again."
    )


def tell_on_error(respond: Callable[..., object], doing: str) -> Callable[[BaseException], None]:
    """For ``BackgroundWork.submit(tell=…)``: the person waiting for the work after the ack
    hears it when that work fails (privately, without touching the message they acted on)."""

    def tell(exc: BaseException) -> None:
        text = internal_error_text(exc, doing)
        respond(text=text, response_type="ephemeral", replace_original=False)

    return tell


def _what(body: dict[str, Any]) -> str:
    if body.get("command"):
        return f"`{body['command']} {str(body.get('text', '')).split(' ')[0]}`".replace(" `", "`")
    if body.get("type") == "block_actions":
        actions = body.get("actions") or [{}]
        return f"the button `{actions[0].get('action_id', '?')}`"
    if body.get("type") == "view_submission":
        return "the form"
    return "this request"


def _user(body: dict[str, Any]) -> str | None:
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    return str(user) if user else None


def register(app: App) -> None:
    @app.error
    def on_error(
        error: Exception,
        body: dict[str, Any],
        response: BoltResponse | None,
        respond: Respond | None,
        client: WebClient | None,
    ) -> BoltResponse | None:
        doing = _what(body)
        log.error("unhandled error while handling %s", doing, exc_info=error)
        text = internal_error_text(error, doing)
        try:
            if respond is not None:
                respond(text=text, response_type="ephemeral", replace_original=False)
            elif client is not None and (user := _user(body)):
                client.chat_postMessage(channel=user, text=text)
        except Exception:  # Slack itself failing: the log above is all we can do
            log.warning("could not tell the user about the error while handling %s", doing)
        if response is not None:  # not acked yet: ack, so Slack neither retries nor says failed
            return BoltResponse(status=200, body="")
        return None
