"""Forms (``view_submission``): the Plan rollback and Reject forms. Field errors are shown under
the inputs (``response_action: errors``); the outcome is told privately in the channel."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.adapters.slack.posts import tell_privately
from bot.approvals import submit
from bot.deps import Deps
from handlers.ids import View


def _field(view: dict[str, Any], block_id: str) -> str:
    value = view.get("state", {}).get("values", {}).get(block_id, {}).get("value", {})
    return str(value.get("value") or "").strip()


def install(app: App, deps: Deps) -> None:
    @app.view(View.PLAN_ROLLBACK)
    def plan_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        found = submit.form_service(deps, str(view.get("private_metadata", "")))
        if isinstance(found, str):
            ack(response_action="errors", errors={"reason": found})
            return
        service, assessment_id = found  # narrowed to its assessment's regions, if it was
        reason, target, window_text, phases_text = (
            _field(view, b) for b in ("reason", "target", "window", "phases")
        )
        errors, window, phases = submit.check_plan_form(
            deps, service, reason, target, window_text, phases_text
        )
        if errors:
            ack(response_action="errors", errors=errors)
            return
        text = submit.submit_request(
            deps,
            service,
            user=user,
            reason=reason,
            target_revision=target or None,
            window=window,
            assessment_id=assessment_id,
            phases=phases,
        )
        ack()
        tell_privately(deps.slack, service.channel, user, text)

    @app.view(View.REJECT_ROLLBACK)
    def reject_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        reason = _field(view, "reason")
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why, for the requester."})
            return
        metadata = str(view.get("private_metadata", ""))
        if not metadata.isdigit():
            ack(response_action="errors", errors={"reason": "This form lost its rollback id."})
            return
        text, where = submit.submit_reject_form(deps, metadata, user, reason)
        ack()
        tell_privately(deps.slack, where, user, text)
