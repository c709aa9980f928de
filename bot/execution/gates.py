"""A manual gate's **Continue** button: only the incident's owners (responders, approvers) may
let a paused rollback go on, and only while the gate waits."""

from __future__ import annotations

from bot.approvals.shared import approver_members
from bot.deps import Deps
from bot.notify.reply import Reply
from bot.rollback import policy
from bot.rollback.lifecycle import StepStatus


def continue_gate(
    deps: Deps, step_id: int, user: str, channel_id: str | None, message_ts: str | None
) -> Reply:
    step = deps.repo.get_step(step_id)
    rollback = deps.repo.get_rollback(step.rollback_id) if step else None
    # target_of: a rehearsal's row is keyed <service>@staging, and its gate is pressed as well
    service = deps.catalog.target_of(rollback.service) if rollback else None
    if step is None or rollback is None or service is None:
        return Reply("This gate no longer exists.")
    members = approver_members(deps, service)  # group approvers
    if not policy.may_continue(service, user, members):
        deps.audit("gate.refused", rollback, user)
        return Reply(
            ":no_entry: Only responders and approvers may continue"
            f" this rollback. Responders: {policy.who_may_run(service)}; approvers:"
            f" {policy.who_may_approve(service)}."
        )
    if step.status != StepStatus.RUNNING or step.detail.get("continued_by"):
        return Reply("This gate is not waiting any more.")
    deps.repo.record_step_detail(step_id, {"continued_by": user})
    deps.audit("gate.continued", rollback, user, channel_id=channel_id, message_ts=message_ts)
    return Reply(f":white_check_mark: Continued by <@{user}>.", replace_original=True)
