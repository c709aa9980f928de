"""Modal submissions: the "Plan rollback" form and the reason for a rejection.

Invalid fields are answered inside the modal (``response_action=errors``); the request is stored
before the modal closes, and the outcome is told to the person privately.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals import request as approvals
from bot.deps import Deps
from bot.execution.preflight import Refusal, check
from bot.rollback.command import UsageError, parse_revision, parse_window
from handlers.approvals import submit_request
from handlers.ids import View

log = logging.getLogger(__name__)


def _field(view: dict[str, Any], block_id: str) -> str:
    value = view.get("state", {}).get("values", {}).get(block_id, {}).get("value", {})
    return str(value.get("value") or "").strip()


def _fit(text: str, limit: int = 300) -> str:
    """A field error Slack shows under the input: keep it short, visibly cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tell_privately(client: WebClient, channel: str, user: str, text: str) -> None:
    """An ephemeral note in the channel, or a direct message when that is not possible."""
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.info("ephemeral to %s in %s failed (%s); sending a DM", user, channel, exc)
        client.chat_postMessage(channel=user, text=text)


def register(app: App, deps: Deps) -> None:
    @app.view(View.PLAN_ROLLBACK)
    def plan_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        user = body["user"]["id"]
        service_name, _, assessment = str(view.get("private_metadata", "")).partition(":")
        service = deps.catalog.get(service_name)
        if service is None:
            ack(response_action="errors", errors={"reason": f"{service_name} left the catalog."})
            return
        errors: dict[str, str] = {}
        reason, target, window_text = (_field(view, b) for b in ("reason", "target", "window"))
        window = None
        try:
            if target:
                parse_revision(target)
                # a tag names a revision only if the cluster says so: ask it while the form is open
                check(deps, service, target, pin=False)
        except UsageError as exc:
            errors["target"] = str(exc).replace("`", "")
        except Refusal as refusal:
            errors["target"] = _fit(str(refusal).replace("`", ""))
        try:
            window = parse_window(window_text, deps.clock(), service.tz) if window_text else None
        except UsageError as exc:
            errors["window"] = str(exc).replace("`", "")
        if not reason:
            errors["reason"] = "Say why the service should be rolled back."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        text = submit_request(
            deps,
            service,
            user=user,
            reason=reason,
            target_revision=target or None,
            window=window,
            assessment_id=int(assessment) if assessment.isdigit() else None,
        )
        ack()
        tell_privately(client, service.channel, user, text)

    @app.view(View.REJECT_ROLLBACK)
    def reject_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        user = body["user"]["id"]
        reason = _field(view, "reason")
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why, for the requester."})
            return
        metadata = str(view.get("private_metadata", ""))
        if not metadata.isdigit():
            ack(response_action="errors", errors={"reason": "This form lost its rollback id."})
            return
        answer = approvals.reject(deps, int(metadata), user, reason, via="button")
        ack()
        r = deps.repo.get_rollback(int(metadata))
        tell_privately(
            client,
            (r.approval_channel_id or r.channel_id or user) if r else user,
            user,
            answer.text,
        )
