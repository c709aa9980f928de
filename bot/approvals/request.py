"""Planned rollbacks: the request and its votes (``bot.approval_start`` starts them).

Every transition is a compare-and-set on the rollback's status, and every vote is unique per
(rollback, user) in the database, so double clicks, Slack retries, a button and a command, or
several replicas all resolve to one effect. The transition that completes the approval schedules
the start (durable due work) in the same transaction, so a crash cannot separate them; a vote
stored just before a crash is completed by the next vote or retry.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import PERMANENT_ERRORS, SlackError
from bot.approvals import blocks as approval_blocks
from bot.catalog.load import Service
from bot.execution.engine import Engine
from bot.notify.blocks import escape, escape_keeping_mentions, plural, status_verb
from bot.rollback import policy
from bot.rollback.command import local_time
from bot.rollback.plan import Plan
from bot.rollback.text import unmentioned
from bot.runtime.due import RetryLater
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

START = "rollback.start"  # handled by bot.approval_start
EXPIRE = "approval.expire"
POST = "approval.post"
POST_TRIES = 5  # Slack failures that may pass (429 after the client's retries, 5xx, timeouts)
RECENT_ASSESSMENT = timedelta(hours=1)  # older assessments are not shown as the request's basis


@dataclass(frozen=True)
class Answer:
    """What to tell the person who acted (ephemeral)."""

    text: str
    is_ok: bool = True


def install(deps: Deps) -> None:
    deps.due.register(EXPIRE, lambda item: expire_due(deps, item))
    deps.due.register(
        POST, lambda item: post_due(deps, item), lambda i, e: _post_gave_up(deps, i, e)
    )


def _request_of(r: Rollback) -> policy.Request:
    return policy.Request(r.status, r.requested_by, r.expires_at, r.required_approvals)


def approver_members(deps: Deps, service: Service) -> set[str]:
    return deps.groups.members(policy.approver_groups(service))


def audit(
    deps: Deps,
    event: str,
    r: Rollback,
    actor: str | None,
    *,
    message_ts: str | None = None,
    **detail: object,
) -> None:
    """An audit event on the request; ``message_ts`` is the message a button was pressed on
    (Slack sends it, also when the press came before the request's ts was stored)."""
    deps.repo.add_audit_event(
        event,
        now=deps.clock(),
        service=r.service,
        rollback_id=r.id,
        actor=actor,
        channel_id=r.approval_channel_id,
        message_ts=message_ts or r.approval_ts,
        detail=dict(detail),
    )


# --- the request ----------------------------------------------------------------------------


def request(
    deps: Deps,
    service: Service,
    plan: Plan,
    *,
    user: str,
    reason: str,
    target_revision: str | None,
    window: datetime | None,
    assessment_id: int | None = None,
) -> Rollback:
    """Store the request (raises ActiveRollbackExists); ``post_request`` posts its message."""
    now = deps.clock()
    if assessment_id is None:
        recent = deps.repo.list_assessments(service.name, limit=1)
        if recent and recent[0].status == "done" and now - recent[0].created_at < RECENT_ASSESSMENT:
            assessment_id = recent[0].id
    expires_at = now + timedelta(minutes=service.approval.expiry_minutes)
    if window is not None:  # approving after the window (and its grace) has passed is pointless
        expires_at = min(expires_at, window + timedelta(minutes=service.window_grace_minutes))
    rollback = deps.repo.create_rollback(
        service=service.name,
        kind="planned",
        strategy=plan.strategy,
        requested_by=user,
        reason=reason,
        target_revision=target_revision,
        assessment_id=assessment_id,
        channel_id=service.channel,
        status="pending_approval",
        scheduled_at=window,
        required_approvals=service.approval.min_approvals,
        expires_at=expires_at,
        now=now,
        steps=Engine.plan_steps(plan),
        schedule=lambda rid: [
            NewWork(EXPIRE, f"expire:{rid}", expires_at, {"rollback_id": rid}),
            NewWork(POST, f"{POST}:{rid}", now, {"rollback_id": rid}),  # stored with the row
        ],
    )
    assert rollback.id is not None
    audit(
        deps,
        "approval.requested",
        rollback,
        user,
        reason=reason,
        window=window.isoformat() if window else None,
        required=rollback.required_approvals,
        assessment_id=assessment_id,
    )
    return rollback


def post_due(deps: Deps, item: DueWork) -> None:
    """Due work stored with the request: post its message in the service channel (with the
    dry-run plan) and remember where it is. Slack trouble that may pass is retried; a channel
    the bot cannot post in cancels the request and tells the requester."""
    from bot.execution.dry_run import describe_plan

    rollback_id = int(item.payload["rollback_id"])
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None or r.approval_ts or r.status != "pending_approval":
        return  # gone, already posted (a retry), or decided meanwhile
    problems: list[str] = []
    try:
        plan = service.plan(r.target_revision)
        plan_summary = describe_plan(deps, service, plan, r.target_revision, problems=problems)
    except Exception as exc:  # the request is still worth posting: say what could not be read
        log.exception("dry run for request #%d failed", rollback_id)
        plan_summary = (
            f"_The dry run failed ({type(exc).__name__}); the bot's log has the details._"
        )
    if problems:  # nobody should approve what cannot run: say why instead
        _request_would_fail(deps, r, service, problems)
        return
    text, blocks = _request_blocks(deps, r, service, plan_summary)
    try:
        marker = post_marker("request", rollback_id, r.created_at)
        # an earlier run may have posted it and lost the answer: two requests would split votes
        found = find_marked(deps.slack, service.channel, marker) if item.tries > 1 else None
        resp = (
            {"ts": found}
            if found
            else deps.slack.chat_postMessage(
                channel=service.channel, text=text, blocks=blocks, metadata=marker
            )
        )
    except SlackError as exc:
        error = str(exc.error or f"HTTP {exc.status}")
        if error in PERMANENT_ERRORS or item.tries >= POST_TRIES:
            _request_not_posted(deps, r, service, error)
            return
        raise RetryLater(f"Slack: {error}", min(60, 5 * 2 ** (item.tries - 1))) from None
    except OSError as exc:  # connection refused, timeouts: Slack may be back in a moment
        if item.tries >= POST_TRIES:
            _request_not_posted(deps, r, service, type(exc).__name__)
            return
        raise RetryLater(f"Slack unreachable: {exc}", min(60, 5 * 2 ** (item.tries - 1))) from None
    posted = deps.repo.set_approval_message(
        rollback_id, service.channel, str(resp["ts"]), plan_summary
    )
    audit(deps, "approval.posted", posted, None)
    if approval_blocks.reason_is_cut(r.reason):  # the message shows its start: the whole here
        _post_whole_reason(deps, service.channel, str(resp["ts"]), r)
    # a vote that came in before the ts was stored could not edit the message: show it now
    if posted.status != r.status or deps.repo.list_approvals(rollback_id):
        refresh_request(deps, rollback_id)


def _post_whole_reason(deps: Deps, channel: str, ts: str, r: Rollback) -> None:
    from bot.notify.blocks import escape
    from bot.notify.limits import message_text

    try:
        deps.slack.chat_postMessage(
            channel=channel,
            thread_ts=ts,
            text=message_text(f"*Reason* (whole): {escape(r.reason)}"),
            unfurl_links=False,
        )
    except SlackError as exc:
        log.warning("request #%s: whole reason not posted: %s", r.id, exc.error)


def _post_gave_up(deps: Deps, item: DueWork, error: str) -> None:
    """The post kept failing in ways the handler did not expect: cancel and say so."""
    r = deps.repo.get_rollback(int(item.payload["rollback_id"]))
    service = deps.catalog.get(r.service) if r else None
    if r is not None and service is not None and not r.approval_ts:
        _request_not_posted(deps, r, service, error.split(":")[0])


def _request_not_posted(deps: Deps, r: Rollback, service: Service, error: str) -> None:
    """Nobody can approve a request they cannot see: cancel it and tell the requester (unless
    it was decided meanwhile, e.g. by `/rollback approve`)."""
    assert r.id is not None
    cancelled = deps.repo.set_rollback_status(
        r.id,
        "cancelled",
        deps.clock(),
        error=f"the request could not be posted in the channel ({error})",
        expected=("pending_approval",),
        cancel=[f"expire:{r.id}"],
    )
    audit(deps, "approval.not_posted", r, None, error=error)
    if cancelled is None:
        return
    hint = " Invite me with `/invite @rollback-bot`." if error == "not_in_channel" else ""
    try:
        deps.slack.chat_postMessage(
            channel=r.requested_by,
            text=f":x: Your rollback request #{r.id} of *{service.name}* could not be posted in"
            f" <#{service.channel}> (`{error}`), so nobody could approve it; it is cancelled."
            f"{hint} Plan it again once that is fixed.",
        )
    except SlackError:
        log.warning("could not tell %s that request #%d was not posted", r.requested_by, r.id)


def _request_would_fail(deps: Deps, r: Rollback, service: Service, problems: list[str]) -> None:
    """The request's own dry run says a real run would be refused or fail: cancel it before
    anyone is asked to approve it, and tell the requester why."""
    assert r.id is not None
    why = "; ".join(problems)
    cancelled = deps.repo.set_rollback_status(
        r.id,
        "cancelled",
        deps.clock(),
        error=f"not posted for approval: its dry run says {why}",
        expected=("pending_approval",),
        cancel=[f"expire:{r.id}"],
    )
    audit(deps, "approval.refused", r, None, why=why)
    if cancelled is None:
        return
    deps.slack.chat_postMessage(
        channel=r.requested_by,
        text=f":no_entry: Your rollback request #{r.id} of *{service.name}* was not posted for"
        f" approval: its dry run says {escape_keeping_mentions(why)}. Nothing was changed; fix"
        " that and plan it again (`/rollback run"
        f" {service.name} --dry-run` shows the whole plan).",
    )


def _request_blocks(
    deps: Deps, r: Rollback, service: Service, plan_summary: str, note: str | None = None
) -> tuple[str, list[dict[str, object]]]:
    assert r.id is not None
    assessment = deps.repo.get_assessment(r.assessment_id) if r.assessment_id else None
    return approval_blocks.request_message(
        r,
        approvals=deps.repo.list_approvals(r.id),
        assessment=assessment,
        plan_summary=plan_summary,
        approvers=policy.who_may_approve(service),
        two_person_rule=service.approval.two_person_rule,
        note=note,
        tz=service.tz,
    )


def refresh_request(deps: Deps, rollback_id: int, note: str | None = None) -> None:
    """Edit the request message to show the votes and the status (button or command alike).

    In the work pool, so a slow or rate-limited Slack never delays the answer to the voter.
    Edits of one request are serialized and each reads the state when it runs, so the last
    edit always shows the latest state."""
    deps.work.submit(f"refresh of request #{rollback_id}", _refresh_now, deps, rollback_id, note)


_refresh_locks: dict[int, threading.Lock] = defaultdict(threading.Lock)


def _refresh_now(deps: Deps, rollback_id: int, note: str | None) -> None:
    with _refresh_locks[rollback_id]:
        r = deps.repo.get_rollback(rollback_id)
        service = deps.catalog.get(r.service) if r else None
        if r is None or service is None or not r.approval_ts or not r.approval_channel_id:
            return
        text, blocks = _request_blocks(deps, r, service, r.plan_summary or "", note)
        try:
            deps.slack.chat_update(
                channel=r.approval_channel_id, ts=r.approval_ts, text=text, blocks=blocks
            )
        except SlackError as exc:
            log.warning("cannot update request #%d: %s", rollback_id, exc.error)


# --- votes ----------------------------------------------------------------------------------


def approve(
    deps: Deps, rollback_id: int, user: str, *, via: str, message_ts: str | None = None
) -> Answer:
    """One approval vote. The last needed vote moves the request on exactly once."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return Answer(f":x: There is no rollback request #{rollback_id}.", is_ok=False)
    now = deps.clock()
    refusal = policy.approval_refusal(
        service, user, _request_of(r), now, approver_members(deps, service)
    )
    if refusal is not None:
        if r.status == "pending_approval" and policy.is_expired(_request_of(r), now):
            _expire(deps, r)
        audit(deps, "approval.refused", r, user, message_ts=message_ts, why=refusal, via=via)
        return Answer(f":no_entry: You cannot approve rollback #{rollback_id}: {refusal}.", False)
    is_new_vote = deps.repo.record_approval(rollback_id, user, "approve", via=via, now=now)
    if is_new_vote:
        audit(deps, "approval.approved", r, user, message_ts=message_ts, via=via)
    votes = [a.user_id for a in deps.repo.list_approvals(rollback_id) if a.decision == "approve"]
    if not policy.is_approved(votes, r.required_approvals):
        refresh_request(deps, rollback_id)
        if not is_new_vote:
            return Answer(f"You already voted on rollback #{rollback_id}; your vote counts once.")
        missing = r.required_approvals - len(set(votes))
        more = plural(missing, "more approval")
        return Answer(f":white_check_mark: Approved; {more} needed.")
    # Enough votes (perhaps a retry after a crash right after storing the vote): move on once.
    is_later = r.scheduled_at is not None and r.scheduled_at > now
    due_at = r.scheduled_at if is_later and r.scheduled_at is not None else now
    moved = deps.repo.set_rollback_status(
        rollback_id,
        "scheduled" if is_later else "approved",
        now,
        expected=("pending_approval",),
        schedule=[NewWork(START, f"start:{rollback_id}", due_at, {"rollback_id": rollback_id})],
        cancel=[f"expire:{rollback_id}"],
    )
    if moved is None:  # someone else's vote (or a rejection) got there first
        refresh_request(deps, rollback_id)
        state = _status(deps, rollback_id)
        if not is_new_vote:
            return Answer(f"You already voted on rollback #{rollback_id}; it {state}.")
        return Answer(f"Your approval is recorded; rollback #{rollback_id} is already {state}.")
    audit(
        deps,
        "approval.granted",
        moved,
        user,
        message_ts=message_ts,
        approvers=sorted(set(votes)),
    )
    refresh_request(deps, rollback_id)
    if is_later and moved.scheduled_at is not None:
        when = local_time(moved.scheduled_at, service.tz)
        return Answer(f":calendar: Approved. Rollback #{rollback_id} will start at {when}.")
    deps.work.submit("due work", deps.due.tick)  # start now rather than at the next tick
    return Answer(
        f":white_check_mark: Approved. Rollback #{rollback_id} starts after a fresh assessment."
    )


def reject(
    deps: Deps,
    rollback_id: int,
    user: str,
    reason: str,
    *,
    via: str,
    message_ts: str | None = None,
) -> Answer:
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return Answer(f":x: There is no rollback request #{rollback_id}.", is_ok=False)
    refusal = policy.rejection_refusal(
        service, user, _request_of(r), approver_members(deps, service)
    )
    if refusal is not None:
        audit(
            deps,
            "approval.refused",
            r,
            user,
            message_ts=message_ts,
            why=refusal,
            via=via,
            decision="reject",
        )
        return Answer(f":no_entry: You cannot reject rollback #{rollback_id}: {refusal}.", False)
    now = deps.clock()
    is_withdrawal = user == r.requested_by and user not in policy.approver_ids(
        service, approver_members(deps, service)
    )
    if not is_withdrawal and not deps.repo.record_approval(
        rollback_id, user, "reject", via=via, now=now, reason=reason
    ):
        mine = [v for v in deps.repo.list_approvals(rollback_id) if v.user_id == user]
        if not (mine and mine[0].decision == "reject" and r.status == "pending_approval"):
            return Answer(f"You already voted on rollback #{rollback_id}; your vote counts once.")
        # a rejection stored just before a crash, its transition never made: finish it now
        reason = reason or mine[0].reason or ""
    status = "cancelled" if is_withdrawal else "rejected"
    moved = deps.repo.set_rollback_status(
        rollback_id,
        status,
        now,
        error=(
            f"withdrawn by the requester: {unmentioned(reason)}"
            if is_withdrawal
            else unmentioned(reason) or None  # who rejected is in the votes
        ),
        expected=("pending_approval",),
        cancel=[f"expire:{rollback_id}"],
    )
    if moved is None:
        refresh_request(deps, rollback_id)
        return Answer(f"Rollback #{rollback_id} {_status(deps, rollback_id)}; nothing to reject.")
    audit(deps, f"approval.{status}", moved, user, message_ts=message_ts, reason=reason, via=via)
    refresh_request(deps, rollback_id)
    if not is_withdrawal:
        deps.work.submit(
            f"tell the requester of #{rollback_id}",
            _tell_requester_rejected,
            deps,
            moved,
            user,
            reason,
        )
    return Answer(f":no_entry: Rollback #{rollback_id} {status}.")


def _tell_requester_rejected(deps: Deps, r: Rollback, user: str, reason: str) -> None:
    """The requester hears it from the bot, not by finding the request message edited."""
    why = f": {escape(unmentioned(reason))}" if reason else " (no reason given)"
    try:
        deps.slack.chat_postMessage(
            channel=r.requested_by,
            text=f":no_entry: Your rollback request #{r.id} of *{r.service}* was rejected by"
            f" <@{user}>{why}. Nothing will run; plan it again if it is still needed.",
        )
    except SlackError as exc:  # the request message shows the rejection all the same
        log.warning("could not tell %s that #%d was rejected: %s", r.requested_by, r.id, exc)


def _status(deps: Deps, rollback_id: int) -> str:
    """``has succeeded``, ``is waiting for approval``… (``is gone`` when deleted)."""
    r = deps.repo.get_rollback(rollback_id)
    return status_verb(r.status) if r else "is gone"


def _expire(deps: Deps, r: Rollback) -> None:
    assert r.id is not None
    moved = deps.repo.set_rollback_status(
        r.id, "expired", deps.clock(), error="not approved in time", expected=("pending_approval",)
    )
    if moved is not None:
        audit(deps, "approval.expired", moved, None)
        refresh_request(deps, r.id)


def expire_due(deps: Deps, item: DueWork) -> None:
    r = deps.repo.get_rollback(int(item.payload["rollback_id"]))
    if r is not None and r.status == "pending_approval":
        _expire(deps, r)
