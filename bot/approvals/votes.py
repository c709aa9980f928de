"""Votes on a planned rollback's request: approve, reject (or withdraw), and its expiry.

The last needed vote moves the request on exactly once: a compare-and-set on its status that
schedules the start in the same transaction (``bot.approvals.start`` runs it)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from bot.adapters.slack.web import SlackError
from bot.approvals.message import refresh_request
from bot.approvals.shared import Answer, approver_members, audit, request_of
from bot.approvals.waiting import end_waiting
from bot.catalog.load import Service
from bot.notify.blocks import escape, plural
from bot.rollback import policy
from bot.rollback.command import local_time
from bot.rollback.lifecycle import DueKind, RollbackStatus, Vote, expire_key, start_key
from bot.rollback.text import status_verb, unmentioned
from storage.models import DueWork, Rollback
from storage.repo.records import NewWork

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

_WAITING_FOR_VOTES = (RollbackStatus.PENDING_APPROVAL,)


def _no_request(rollback_id: int) -> Answer:
    return Answer(f":x: There is no rollback request #{rollback_id}.", is_ok=False)


def _voted_once(rollback_id: int) -> Answer:
    return Answer(f"You already voted on rollback #{rollback_id}; your vote counts once.")


def approve(
    deps: Deps, rollback_id: int, user: str, *, via: str, message_ts: str | None = None
) -> Answer:
    """One approval vote. The last needed vote moves the request on exactly once."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return _no_request(rollback_id)
    now = deps.clock()
    refusal = policy.approval_refusal(
        service, user, request_of(r), now, approver_members(deps, service)
    )
    if refusal is not None:
        if r.status == RollbackStatus.PENDING_APPROVAL and policy.is_expired(request_of(r), now):
            _expire(deps, rollback_id)  # its expiry item need not run any more
        audit(deps, "approval.refused", r, user, message_ts=message_ts, why=refusal, via=via)
        return Answer(f":no_entry: You cannot approve rollback #{rollback_id}: {refusal}.", False)
    is_new_vote = deps.repo.record_approval(rollback_id, user, Vote.APPROVE, via=via, now=now)
    if is_new_vote:
        audit(deps, "approval.approved", r, user, message_ts=message_ts, via=via)
    votes = [a.user_id for a in deps.repo.list_approvals(rollback_id) if a.decision == Vote.APPROVE]
    if not policy.is_approved(votes, r.required_approvals):
        refresh_request(deps, rollback_id)
        if not is_new_vote:
            return _voted_once(rollback_id)
        missing = r.required_approvals - len(set(votes))
        more = plural(missing, "more approval")
        return Answer(f":white_check_mark: Approved; {more} needed.")
    # Enough votes (perhaps a retry after a crash right after storing the vote): move on once.
    return _grant(
        deps, r, service, user, now, votes, is_new_vote=is_new_vote, message_ts=message_ts
    )


def _grant(
    deps: Deps,
    r: Rollback,
    service: Service,
    user: str,
    now: datetime,
    votes: list[str],
    *,
    is_new_vote: bool,
    message_ts: str | None,
) -> Answer:
    """Enough votes: approved (or scheduled for its window), its start scheduled with it."""
    assert r.id is not None
    rollback_id = r.id
    is_later = r.scheduled_at is not None and r.scheduled_at > now
    due_at = r.scheduled_at if is_later and r.scheduled_at is not None else now
    start = NewWork(
        DueKind.ROLLBACK_START, start_key(rollback_id), due_at, {"rollback_id": rollback_id}
    )
    moved = deps.repo.set_rollback_status(
        rollback_id,
        RollbackStatus.SCHEDULED if is_later else RollbackStatus.APPROVED,
        now,
        expected=_WAITING_FOR_VOTES,
        schedule=[start],
        cancel=[expire_key(rollback_id)],
    )
    if moved is None:  # someone else's vote (or a rejection) got there first
        refresh_request(deps, rollback_id)
        state = _status(deps, rollback_id)
        if not is_new_vote:
            return Answer(f"You already voted on rollback #{rollback_id}; it {state}.")
        return Answer(f"Your approval is recorded; rollback #{rollback_id} is already {state}.")
    audit(
        deps, "approval.granted", moved, user, message_ts=message_ts, approvers=sorted(set(votes))
    )
    refresh_request(deps, rollback_id)
    if is_later and moved.scheduled_at is not None:
        when = local_time(moved.scheduled_at, service.tz)
        return Answer(f":calendar: Approved. Rollback #{rollback_id} will start at {when}.")
    deps.kick_due_work()  # start now rather than at the next tick
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
    """A rejection by an approver, or the requester's withdrawal (who is not an approver)."""
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None:
        return _no_request(rollback_id)
    members = approver_members(deps, service)
    refusal = policy.rejection_refusal(service, user, request_of(r), members)
    if refusal is not None:
        detail = {"why": refusal, "via": via, "decision": Vote.REJECT}
        audit(deps, "approval.refused", r, user, message_ts=message_ts, **detail)
        return Answer(f":no_entry: You cannot reject rollback #{rollback_id}: {refusal}.", False)
    now = deps.clock()
    is_withdrawal = user == r.requested_by and user not in policy.approver_ids(service, members)
    if not is_withdrawal:
        stored = _record_rejection(deps, r, user, reason, via=via, now=now)
        if stored is None:
            return _voted_once(rollback_id)
        reason = stored
    status = RollbackStatus.CANCELLED if is_withdrawal else RollbackStatus.REJECTED
    moved = end_waiting(
        deps,
        rollback_id,
        status,
        error=(
            f"withdrawn by the requester: {unmentioned(reason)}"
            if is_withdrawal
            else unmentioned(reason) or None  # who rejected is in the votes
        ),
        event=f"approval.{status}",
        actor=user,
        expected=_WAITING_FOR_VOTES,
        detail={"reason": reason, "via": via},
        message_ts=message_ts,
    )
    if moved is None:
        refresh_request(deps, rollback_id)
        return Answer(f"Rollback #{rollback_id} {_status(deps, rollback_id)}; nothing to reject.")
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


def _record_rejection(
    deps: Deps, r: Rollback, user: str, reason: str, *, via: str, now: datetime
) -> str | None:
    """Store the rejection vote; the reason to end the request with, or None when this person
    already voted and there is nothing left to finish."""
    assert r.id is not None
    if deps.repo.record_approval(r.id, user, Vote.REJECT, via=via, now=now, reason=reason):
        return reason
    mine = [v for v in deps.repo.list_approvals(r.id) if v.user_id == user]
    if not (
        mine and mine[0].decision == Vote.REJECT and r.status == RollbackStatus.PENDING_APPROVAL
    ):
        return None
    # a rejection stored just before a crash, its transition never made: finish it now
    return reason or mine[0].reason or ""


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


def _expire(deps: Deps, rollback_id: int, running_key: str | None = None) -> None:
    end_waiting(
        deps,
        rollback_id,
        RollbackStatus.EXPIRED,
        error="not approved in time",
        event="approval.expired",
        actor=None,
        expected=_WAITING_FOR_VOTES,
        running_key=running_key,
    )


def expire_due(deps: Deps, item: DueWork) -> None:
    _expire(deps, int(item.payload["rollback_id"]), item.key)
