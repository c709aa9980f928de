"""``/rollback review <id>`` and the "Root cause written" button under a review's link."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.deps import Deps
from bot.notify.blocks import escape_keeping_mentions
from bot.review.publish import REMIND, ROOT_CAUSE_WRITTEN_ACTION, link_message
from bot.rollback import policy
from bot.rollback.command import Command
from storage.models import TERMINAL_STATUSES, Rollback

log = logging.getLogger(__name__)

# Why a finished rollback never ran. Reviews are written only for rollbacks that ran (succeeded,
# failed or aborted: the engine's end schedules them); these ended before anything was done.
NEVER_RAN = {
    "rejected": "was rejected",
    "expired": "expired before it started",
    "cancelled": "was cancelled before it started",
}


def never_ran(rollback: Rollback) -> str | None:
    """Why a finished rollback never ran (and so has no review), or None if it ran or runs."""
    if rollback.status in NEVER_RAN:
        return NEVER_RAN[rollback.status]
    if rollback.status == "failed" and rollback.started_at is None:
        return "failed before it started"  # its start kept failing, or its service left
    return None


def review_command(deps: Deps, cmd: Command, command: dict[str, Any], ack: Ack) -> None:
    """Re-post the review's link to the person who asked (ephemeral)."""
    assert cmd.rollback_id is not None
    rollback_id = cmd.rollback_id
    rollback = deps.repo.get_rollback(rollback_id)
    if rollback is None:
        ack(text=f":x: There is no rollback #{rollback_id}.", response_type="ephemeral")
        return
    if rollback.status not in TERMINAL_STATUSES:
        ack(
            text=f"Rollback #{rollback_id} of *{rollback.service}* is"
            f" {rollback.status.replace('_', ' ')}: its review is written when it ends."
            f" Follow it with `/rollback status {rollback_id}`.",
            response_type="ephemeral",
        )
        return
    review = deps.repo.get_review(rollback_id)
    why = never_ran(rollback)
    if review is None and why is not None:
        detail = f" ({escape_keeping_mentions(rollback.error)})" if rollback.error else ""
        ack(
            text=f"Rollback #{rollback_id} of *{rollback.service}* {why}{detail}: it never ran,"
            " so it has no review (reviews are written for rollbacks that ran).",
            response_type="ephemeral",
        )
        return
    if review is None or review.published_via is None:
        ack(
            text=f":hourglass_flowing_sand: The review of rollback #{rollback_id} is being"
            " published; it will be linked in the progress thread within a minute.",
            response_type="ephemeral",
        )
        return
    text, blocks = link_message(deps, rollback, review)
    ack(text=text, blocks=blocks, response_type="ephemeral")


def register(app: App, deps: Deps) -> None:
    @app.action(ROOT_CAUSE_WRITTEN_ACTION)
    def root_cause_written(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user = str(body["user"]["id"])
        try:
            rollback_id = int(body["actions"][0]["value"])
        except (KeyError, IndexError, ValueError):
            respond(
                text="This button is broken; use `/rollback review <id>`.", replace_original=False
            )
            return
        rollback = deps.repo.get_rollback(rollback_id)
        review = deps.repo.get_review(rollback_id)
        if rollback is None or review is None:
            respond(text=f"There is no review of rollback #{rollback_id}.", replace_original=False)
            return
        service = deps.catalog.get(rollback.service)
        members = deps.groups.members(policy.approver_groups(service)) if service else set()
        if service is None or not policy.may_abort(service, user, rollback.requested_by, members):
            deps.repo.add_audit_event(  # it silences the reminder: only the incident's owners
                "review.root_cause_refused",
                now=deps.clock(),
                service=rollback.service,
                rollback_id=rollback_id,
                actor=user,
            )
            respond(
                text=":no_entry: Only the requester, responders and approvers of"
                f" {rollback.service} may mark the root cause written (it stops the reminder).",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        if not deps.repo.mark_root_cause_written(rollback_id, user, deps.clock()):
            respond(
                text="The root cause was already marked written.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        deps.repo.add_audit_event(
            "review.root_cause_written",
            now=deps.clock(),
            service=rollback.service,
            rollback_id=rollback_id,
            actor=user,
            channel_id=body.get("channel", {}).get("id"),
            message_ts=body.get("message", {}).get("ts"),
        )
        deps.due.cancel(f"{REMIND}:{rollback_id}")
        fresh = deps.repo.get_review(rollback_id)
        assert fresh is not None
        text, blocks = link_message(deps, rollback, fresh)
        respond(text=text, blocks=blocks, replace_original=True)
