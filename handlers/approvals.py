"""``/rollback plan | approve | reject | history``: planned rollbacks and their votes."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_bolt import Ack

from bot.approvals import request as approvals
from bot.approvals.blocks import when
from bot.catalog.load import Service
from bot.deps import Deps
from bot.execution.preflight import Refusal, audit_refusal, check
from bot.notify.blocks import escape, escape_keeping_mentions, plural
from bot.rollback import policy
from bot.rollback.command import Command, UsageError, local_time, parse_window
from storage.repository import ActiveRollbackExists

log = logging.getLogger(__name__)


def _say(ack: Ack, text: str) -> None:
    ack(text=text, response_type="ephemeral")


def submit_request(
    deps: Deps,
    service: Service,
    *,
    user: str,
    reason: str,
    target_revision: str | None,
    window: datetime | None,
    assessment_id: int | None = None,
) -> str:
    """Store a planned rollback request and post it for approval (in the background); returns
    what to tell the requester."""
    if not service.spec.approvers:
        return (
            f":x: *{service.name}* has no approvers in the catalog, so nobody could approve a"
            " planned rollback. Add `approvers:` to its entry, or ask a responder for"
            f" `/rollback run {service.name} --immediate <reason>`."
        )
    if not reason.strip():
        return f":x: Say why: `/rollback plan {service.name} [--to N] [--at HH:MM] <reason>`."
    try:  # checked again when it starts: the cluster may change while it waits
        checked = check(deps, service, target_revision, pin=False)
    except Refusal as refusal:
        audit_refusal(deps, "approval.refused", service, user, refusal, target=target_revision)
        return (
            f":no_entry: No rollback request for *{service.name}* was made:"
            f" {escape_keeping_mentions(str(refusal))}."
        )
    try:
        r = approvals.request(
            deps,
            service,
            checked.plan,
            user=user,
            reason=reason,
            target_revision=checked.target_revision,
            window=window,
            assessment_id=assessment_id,
        )
    except ActiveRollbackExists as exc:
        return (
            f":warning: A rollback of *{service.name}* is already active (#{exc.existing_id});"
            f" see `/rollback status {exc.existing_id}`."
        )
    assert r.id is not None and r.expires_at is not None
    deps.work.submit("due work", deps.due.tick)  # post it now, not at the next tick
    start = f"at {local_time(window, service.tz)}" if window else "as soon as it is approved"
    return (
        f":clipboard: Rollback request #{r.id} of *{service.name}* is waiting for"
        f" {plural(r.required_approvals, 'approval')} in <#{service.channel}>"
        f" ({policy.who_may_approve(service)}). It starts {start}; the request expires at"
        f" {when(r.expires_at)}."
    )


def plan(deps: Deps, cmd: Command, service: Service, command: dict[str, Any], ack: Ack) -> None:
    window = None
    if cmd.at is not None:
        try:
            window = parse_window(cmd.at, deps.clock(), service.tz)
        except UsageError as exc:  # it quotes what was typed: no ping, no link from it
            _say(ack, f":x: {escape(str(exc))}.")
            return
    _say(
        ack,
        submit_request(
            deps,
            service,
            user=str(command.get("user_id", "")),
            reason=cmd.reason,
            target_revision=cmd.target_revision,
            window=window,
        ),
    )


def vote(deps: Deps, cmd: Command, command: dict[str, Any], ack: Ack) -> None:
    """``approve <id>`` / ``reject <id> [reason]``: the same rules as the buttons."""
    assert cmd.rollback_id is not None
    user = str(command.get("user_id", ""))
    if cmd.verb == "approve":
        answer = approvals.approve(deps, cmd.rollback_id, user, via="command")
    else:
        answer = approvals.reject(deps, cmd.rollback_id, user, cmd.reason, via="command")
    _say(ack, answer.text)


def history(deps: Deps, cmd: Command, ack: Ack) -> None:
    if cmd.service is not None and deps.catalog.get(cmd.service) is None:
        from bot.notify import blocks

        text, bl = blocks.unknown_service_message(cmd.service, deps.catalog.names)
        ack(text=text, blocks=bl, response_type="ephemeral")
        return
    rows = deps.repo.list_rollbacks(service=cmd.service, limit=20)
    if not rows:
        _say(
            ack,
            "No rollbacks yet." if cmd.service is None else f"No rollbacks of *{cmd.service}* yet.",
        )
        return
    lines = [f"*Rollback history{' of ' + cmd.service if cmd.service else ''}* (newest first)"]
    approvers = deps.repo.approvers_of([r.id for r in rows if r.id is not None])
    for r in rows:
        assert r.id is not None
        voters = approvers[r.id]
        approved = ", ".join(f"<@{u}>" for u in voters) or (
            "no approval needed (responder)" if r.kind == "immediate" else "not approved"
        )
        took = ""
        if r.started_at and r.finished_at:
            seconds = int((r.finished_at - r.started_at).total_seconds())
            took = f" · {seconds // 60}m {seconds % 60:02d}s"
        lines.append(
            f"• #{r.id} *{r.service}* {r.status.replace('_', ' ')} · {r.kind} {r.strategy}"
            f" · {when(r.created_at)} · by <@{r.requested_by}> · approved: {approved}{took}"
            + (
                f" · {escape_keeping_mentions(r.error)}"
                if r.error and r.status != "succeeded"
                else ""
            )
        )
    _say(ack, "\n".join(lines))


def waiting_lines(deps: Deps) -> list[str]:
    """Requests waiting for approval, a confirmation or their window (for ``status``)."""
    from handlers.rollbacks import waiting_state

    rows = deps.repo.list_rollbacks(statuses=("pending_approval", "approved", "scheduled"))
    lines = []
    for r in reversed(rows):
        state = waiting_state(deps, r)
        lines.append(f"• #{r.id} *{r.service}* {state} — requested by <@{r.requested_by}>")
    return lines
