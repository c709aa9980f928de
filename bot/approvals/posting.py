"""Posting a planned rollback's request in the service channel (durable due work stored with
the request): with its dry-run plan, once, and never a request nobody could approve."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.adapters.slack.posts import find_marked, post_marker
from bot.adapters.slack.web import PERMANENT_ERRORS, SlackError
from bot.approvals import blocks as approval_blocks
from bot.approvals.message import refresh_request, request_blocks
from bot.approvals.shared import audit
from bot.approvals.waiting import end_waiting
from bot.catalog.load import Service
from bot.execution.dry_run import describe_plan
from bot.notify.blocks import escape, escape_keeping_mentions
from bot.notify.limits import message_text
from bot.regions.text import stored_service
from bot.rollback.lifecycle import RollbackStatus
from bot.runtime.due import RetryLater
from storage.models import DueWork, Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)

POST_TRIES = 5  # Slack failures that may pass (429 after the client's retries, 5xx, timeouts)


def post_due(deps: Deps, item: DueWork) -> None:
    """Due work stored with the request: post its message in the service channel (with the
    dry-run plan) and remember where it is. Slack trouble that may pass is retried; a channel
    the bot cannot post in cancels the request and tells the requester."""
    rollback_id = int(item.payload["rollback_id"])
    r = deps.repo.get_rollback(rollback_id)
    service = deps.catalog.get(r.service) if r else None
    if r is None or service is None or r.approval_ts or r.status != RollbackStatus.PENDING_APPROVAL:
        return  # gone, already posted (a retry), or decided meanwhile
    problems: list[str] = []
    plan_summary = _dry_run(deps, r, service, problems)
    if problems:  # nobody should approve what cannot run: say why instead
        _request_would_fail(deps, r, service, problems)
        return
    ts = _post_once(deps, item, r, service, plan_summary)
    if ts is None:
        return
    posted = deps.repo.set_approval_message(rollback_id, service.channel, ts, plan_summary)
    audit(deps, "approval.posted", posted, None)
    if approval_blocks.reason_is_cut(r.reason):  # the message shows its start: the whole here
        _post_whole_reason(deps, service.channel, ts, r)
    # a vote that came in before the ts was stored could not edit the message: show it now
    if posted.status != r.status or deps.repo.list_approvals(rollback_id):
        refresh_request(deps, rollback_id)


def _dry_run(deps: Deps, r: Rollback, service: Service, problems: list[str]) -> str:
    """The request's plan as a dry run reads it now; what would refuse or fail it goes to
    ``problems``."""
    try:
        assert r.id is not None
        service = stored_service(service, deps.repo.list_steps(r.id))  # its --region, if any
        plan = service.plan(r.target_revision)
        return describe_plan(
            deps, service, plan, r.target_revision, problems=problems, phases=r.phases or ()
        )
    except Exception as exc:  # the request is still worth posting: say what could not be read
        log.exception("dry run for request #%d failed", r.id)
        return f"_The dry run failed ({type(exc).__name__}); the bot's log has the details._"


def _post_once(
    deps: Deps, item: DueWork, r: Rollback, service: Service, plan_summary: str
) -> str | None:
    """The request message's ts; None when it cannot be posted (the request is cancelled).
    Raises RetryLater for Slack trouble that may pass."""
    assert r.id is not None
    text, blocks = request_blocks(deps, r, service, plan_summary)
    delay = min(60, 5 * 2 ** (item.tries - 1))
    try:
        marker = post_marker("request", r.id, r.created_at)
        # an earlier run may have posted it and lost the answer: two requests would split votes
        found = find_marked(deps.slack, service.channel, marker) if item.tries > 1 else None
        if found:
            return str(found)
        resp = deps.slack.chat_postMessage(
            channel=service.channel, text=text, blocks=blocks, metadata=marker
        )
        return str(resp["ts"])
    except SlackError as exc:
        error = str(exc.error or f"HTTP {exc.status}")
        if error in PERMANENT_ERRORS or item.tries >= POST_TRIES:
            _request_not_posted(deps, r, service, error)
            return None
        raise RetryLater(f"Slack: {error}", delay) from None
    except OSError as exc:  # connection refused, timeouts: Slack may be back in a moment
        if item.tries >= POST_TRIES:
            _request_not_posted(deps, r, service, type(exc).__name__)
            return None
        raise RetryLater(f"Slack unreachable: {exc}", delay) from None


def _post_whole_reason(deps: Deps, channel: str, ts: str, r: Rollback) -> None:
    try:
        deps.slack.chat_postMessage(
            channel=channel,
            thread_ts=ts,
            text=message_text(f"*Reason* (whole): {escape(r.reason)}"),
            unfurl_links=False,
        )
    except SlackError as exc:
        log.warning("request #%s: whole reason not posted: %s", r.id, exc.error)


def post_gave_up(deps: Deps, item: DueWork, error: str) -> None:
    """The post kept failing in ways the handler did not expect: cancel and say so."""
    r = deps.repo.get_rollback(int(item.payload["rollback_id"]))
    service = deps.catalog.get(r.service) if r else None
    if r is not None and service is not None and not r.approval_ts:
        _request_not_posted(deps, r, service, error.split(":")[0])


def _cancel_unposted(
    deps: Deps, r: Rollback, ended_because: str, event: str, detail: dict[str, str]
) -> bool:
    """Cancel a request that was not posted, unless it was decided meanwhile (e.g. by
    `/rollback approve`). True when this call cancelled it. ``event`` is audited either way:
    the post failed all the same."""
    assert r.id is not None
    cancelled = end_waiting(
        deps,
        r.id,
        RollbackStatus.CANCELLED,
        error=ended_because,
        event=event,
        actor=None,
        expected=(RollbackStatus.PENDING_APPROVAL,),
        detail=detail,
    )
    if cancelled is None:
        audit(deps, event, r, None, **detail)
    return cancelled is not None


def _request_not_posted(deps: Deps, r: Rollback, service: Service, error: str) -> None:
    """Nobody can approve a request they cannot see: cancel it and tell the requester."""
    why = f"the request could not be posted in the channel ({error})"
    is_cancelled = _cancel_unposted(deps, r, why, "approval.not_posted", {"error": error})
    if not is_cancelled:
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
    why = "; ".join(problems)
    error = f"not posted for approval: its dry run says {why}"
    is_cancelled = _cancel_unposted(deps, r, error, "approval.refused", {"why": why})
    if not is_cancelled:
        return
    deps.slack.chat_postMessage(
        channel=r.requested_by,
        text=f":no_entry: Your rollback request #{r.id} of *{service.name}* was not posted for"
        f" approval: its dry run says {escape_keeping_mentions(why)}. Nothing was changed; fix"
        " that and plan it again (`/rollback run"
        f" {service.name} --dry-run` shows the whole plan).",
    )
