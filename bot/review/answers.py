"""Answers about reviews: ``/rollback review <id>`` (the link again, or why there is none) and
the **Root cause written** button under a review's link."""

from __future__ import annotations

from bot.approvals.shared import approver_members
from bot.deps import Deps
from bot.notify.blocks import escape_keeping_mentions
from bot.notify.reply import Reply
from bot.review.publish import link_message
from bot.rollback import policy
from bot.rollback.command import Command
from bot.rollback.lifecycle import TERMINAL, RollbackKind, RollbackStatus, review_remind_key
from storage.models import Rollback

# Why a finished rollback never ran. Reviews are written only for rollbacks that ran (succeeded,
# failed or aborted: the engine's end schedules them); these ended before anything was done.
NEVER_RAN: dict[str, str] = {
    RollbackStatus.REJECTED: "was rejected",
    RollbackStatus.EXPIRED: "expired before it started",
    RollbackStatus.CANCELLED: "was cancelled before it started",
}


def never_ran(rollback: Rollback) -> str | None:
    """Why a finished rollback never ran (and so has no review), or None if it ran or runs."""
    if rollback.status in NEVER_RAN:
        return NEVER_RAN[rollback.status]
    if rollback.status == RollbackStatus.FAILED and rollback.started_at is None:
        return "failed before it started"  # its start kept failing, or its service left
    return None


def review_command(deps: Deps, cmd: Command) -> Reply:
    """Re-post the review's link to the person who asked (ephemeral)."""
    assert cmd.rollback_id is not None
    rollback_id = cmd.rollback_id
    rollback = deps.repo.get_rollback(rollback_id)
    if rollback is None:
        return Reply(f":x: There is no rollback #{rollback_id}.")
    if rollback.kind == RollbackKind.REHEARSAL:  # staging: no incident, so no review
        return Reply(
            f"#{rollback_id} is a rehearsal in staging: it has no review; its report (timings"
            " against the SLA) is posted in its progress thread when it ends."
        )
    if rollback.status not in TERMINAL:
        return Reply(
            f"Rollback #{rollback_id} of *{rollback.service}* is"
            f" {rollback.status.replace('_', ' ')}: its review is written when it ends."
            f" Follow it with `/rollback status {rollback_id}`."
        )
    review = deps.repo.get_review(rollback_id)
    why = never_ran(rollback)
    if review is None and why is not None:
        detail = f" ({escape_keeping_mentions(rollback.error)})" if rollback.error else ""
        return Reply(
            f"Rollback #{rollback_id} of *{rollback.service}* {why}{detail}: it never ran,"
            " so it has no review (reviews are written for rollbacks that ran)."
        )
    if review is None or review.published_via is None:
        return Reply(
            f":hourglass_flowing_sand: The review of rollback #{rollback_id} is being"
            " published; it will be linked in the progress thread within a minute."
        )
    text, blocks = link_message(deps, rollback, review)
    return Reply(text, blocks)


def mark_root_cause_written(
    deps: Deps, rollback_id: int, user: str, channel_id: str | None, message_ts: str | None
) -> Reply:
    """**Root cause written** under a review's link: it stops the reminder, so only the
    incident's owners (requester, responders, approvers) may press it."""
    rollback = deps.repo.get_rollback(rollback_id)
    review = deps.repo.get_review(rollback_id)
    if rollback is None or review is None:
        return Reply(f"There is no review of rollback #{rollback_id}.")
    service = deps.catalog.get(rollback.service)
    members = approver_members(deps, service) if service else set()
    if service is None or not policy.may_abort(service, user, rollback.requested_by, members):
        deps.audit("review.root_cause_refused", rollback, user)
        return Reply(
            ":no_entry: Only the requester, responders and approvers of"
            f" {rollback.service} may mark the root cause written (it stops the reminder)."
        )
    if not deps.repo.mark_root_cause_written(rollback_id, user, deps.clock()):
        return Reply("The root cause was already marked written.")
    where = {"channel_id": channel_id, "message_ts": message_ts}
    deps.audit("review.root_cause_written", rollback, user, **where)
    deps.due.cancel(review_remind_key(rollback_id))
    fresh = deps.repo.get_review(rollback_id)
    assert fresh is not None
    text, blocks = link_message(deps, rollback, fresh)
    return Reply(text, blocks, replace_original=True)
