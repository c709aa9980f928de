"""Buttons. Each checks who pressed it against the catalog and audits refusals."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.deps import Deps
from bot.rollback import policy
from handlers.ids import Action

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    @app.action(Action.MANUAL_GATE_CONTINUE)
    def continue_gate(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        step_id = int(body["actions"][0]["value"])
        step = deps.repo.get_step(step_id)
        rollback = deps.repo.get_rollback(step.rollback_id) if step else None
        service = deps.catalog.get(rollback.service) if rollback else None
        if step is None or rollback is None or service is None:
            respond(
                text="This gate no longer exists.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        members = deps.groups.members(policy.approver_groups(service))  # group approvers
        if not policy.may_continue(service, user, members):
            deps.repo.add_audit_event(
                "gate.refused",
                now=deps.clock(),
                service=service.name,
                rollback_id=rollback.id,
                actor=user,
            )
            respond(
                text=":no_entry: Only responders and approvers may continue"
                f" this rollback. Responders: {policy.who_may_run(service)}; approvers:"
                f" {policy.who_may_approve(service)}.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        if step.status != "running" or step.detail.get("continued_by"):
            respond(
                text="This gate is not waiting any more.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        deps.repo.record_step_detail(step_id, {"continued_by": user})
        deps.repo.add_audit_event(
            "gate.continued",
            now=deps.clock(),
            service=service.name,
            rollback_id=rollback.id,
            actor=user,
            channel_id=body.get("channel", {}).get("id"),
            message_ts=body.get("message", {}).get("ts"),
        )
        respond(text=f":white_check_mark: Continued by <@{user}>.", replace_original=True)
