"""The last line of defence: an exception no listener caught still gets the user an answer.

Bolt would answer Slack with HTTP 500 (shown as a failed dispatch, and retried) and the person
who pressed the button or typed the command would hear nothing. Here the error is logged with
its stack trace, Slack gets its ack, and the person gets a short, actionable message — never the
stack trace.

Only a request Slack signed (or a Socket Mode envelope) is answered: an error raised while the
signature was still unchecked — Bolt's own check raises on a malformed timestamp — is a 401 with
no outbound call, since the body, its ``response_url`` and its user are the sender's choice.
Answers go through ``CheckedRespond``, which posts only to Slack's hooks URLs.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

from bot.adapters.slack.respond import CheckedRespond
from bot.adapters.slack.web import SlackClient
from bot.deps import Deps
from bot.notify.reply import internal_error_text
from bot.runtime.request_trust import is_bolt_request_signed

log = logging.getLogger(__name__)


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


def install(app: App, deps: Deps) -> None:
    secret = deps.settings.slack_signing_secret
    assert secret is not None  # build_app refuses to build without it
    signing_secret, slack_api_url = secret.get_secret_value(), deps.settings.slack_api_url

    @app.error
    def on_error(
        error: Exception,
        request: BoltRequest,
        body: dict[str, Any],
        response: BoltResponse | None,
        client: SlackClient | None,
    ) -> BoltResponse | None:
        if not is_bolt_request_signed(
            signing_secret, request.mode, request.raw_body, request.headers
        ):
            log.warning(
                "refused a request that is not signed by Slack (%s while checking it)",
                type(error).__name__,
            )
            if response is not None:
                return BoltResponse(status=401, body={"error": "invalid request"})
            return None
        doing = _what(body)
        log.error("unhandled error while handling %s", doing, exc_info=error)
        text = internal_error_text(error, doing)
        url = request.context.response_url
        respond = CheckedRespond(url, slack_api_url) if isinstance(url, str) and url else None
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
