"""The App Home tab: the user's active rollbacks, approvals waiting for them, recent history."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from bot.approvals.blocks import APPROVE_ACTION, REJECT_ACTION
from bot.approvals.shared import approver_members
from bot.catalog.load import Catalog, Service
from bot.deps import Deps
from bot.drills.report import readiness_lines
from bot.notify.blocks import button, escape, message_link, section
from bot.notify.templates import mention
from bot.review.answers import never_ran
from bot.review.publish import review_url
from bot.rollback import policy
from bot.rollback.lifecycle import ACTIVE, TERMINAL, RollbackStatus
from storage.models import Rollback

log = logging.getLogger(__name__)

HISTORY = 10
Members = Callable[[Service], Collection[str]]  # user-group members among a service's approvers


def is_involved(user: str, rollback: Rollback, service: Service | None, members: Members) -> bool:
    """Requested it, or a responder or approver of its service."""
    if rollback.requested_by == user:
        return True
    if service is None:
        return False
    return user in service.spec.responders or user in policy.approver_ids(service, members(service))


def can_approve(
    user: str, rollback: Rollback, service: Service | None, now: datetime, members: Members
) -> bool:
    """A pending request this user may approve now (approver, not expired, two-person rule)."""
    if service is None or rollback.status != RollbackStatus.PENDING_APPROVAL:
        return False
    request = policy.Request(
        status=rollback.status,
        requested_by=rollback.requested_by,
        expires_at=rollback.expires_at,
        required_approvals=rollback.required_approvals,
    )
    return policy.approval_refusal(service, user, request, now, members(service)) is None


def home_view(
    user: str,
    active: Iterable[Rollback],
    recent: Iterable[Rollback],
    catalog: Catalog,
    now: datetime,
    members: Members,
    *,
    team_url: str = "",
    link: Callable[[int], str | None] = lambda _: None,
    readiness: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``home`` view (pure: everything it shows is passed in)."""
    active = list(active)
    pending = [r for r in active if can_approve(user, r, catalog.get(r.service), now, members)]
    mine = [
        r
        for r in active
        if r not in pending and is_involved(user, r, catalog.get(r.service), members)
    ]
    blocks: list[dict[str, Any]] = [_header("Waiting for your approval")]
    blocks += [b for r in pending for b in _pending(r, team_url)] or [
        section("Nothing waits for you.")
    ]
    blocks += [{"type": "divider"}, _header("Your active rollbacks")]
    blocks += [_active(r, team_url) for r in mine] or [
        section("None of the rollbacks running now is yours or of your services.")
    ]
    if readiness:  # each service's last drill ("last drill: 3 days ago ✓")
        blocks += [{"type": "divider"}, _header("Readiness drills"), section("\n".join(readiness))]
    blocks += [{"type": "divider"}, _header("Recent rollbacks")]
    blocks += [_finished(r, link) for r in recent] or [section("No rollback has finished yet.")]
    return {"type": "home", "blocks": blocks[:100]}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _where(r: Rollback, team_url: str, channel: str | None, ts: str | None) -> str:
    return f" · <{message_link(team_url, channel, ts)}|open>" if team_url and channel and ts else ""


def _pending(r: Rollback, team_url: str) -> list[dict[str, Any]]:
    expires = f", expires {r.expires_at:%H:%M} UTC" if r.expires_at else ""
    text = section(
        f"*#{r.id} {r.service}* requested by {mention(r.requested_by)}{expires}:"
        f" {escape(r.reason) if r.reason else 'no reason given'}"
        f"{_where(r, team_url, r.approval_channel_id, r.approval_ts)}\n"
        f"`/rollback approve {r.id}` · `/rollback reject {r.id} <reason>`"
    )
    buttons = {  # the request message's buttons (bot/approvals/blocks.py)
        "type": "actions",
        "block_id": f"home_approval_{r.id}",
        "elements": [
            button("Approve", APPROVE_ACTION, str(r.id), "primary"),
            button("Reject", REJECT_ACTION, str(r.id), "danger"),
        ],
    }
    return [text, buttons]


def _active(r: Rollback, team_url: str) -> dict[str, Any]:
    return section(
        f"*#{r.id} {r.service}* {r.status.replace('_', ' ')} ({r.strategy}),"
        f" requested by {mention(r.requested_by)}{_where(r, team_url, r.channel_id, r.progress_ts)}"
    )


def _finished(r: Rollback, link: Callable[[int], str | None]) -> dict[str, Any]:
    assert r.id is not None
    ended = f"{r.finished_at:%Y-%m-%d %H:%M} UTC" if r.finished_at else "—"
    url = link(r.id)
    if never_ran(r) is not None:  # nothing ran, so there is no review to link
        review = " · never ran"
    else:
        review = f" · <{url}|review>" if url else f" · `/rollback review {r.id}`"
    return section(f"*#{r.id} {r.service}* {r.status} {ended}{review}")


def publish_home(deps: Deps, user: str) -> None:
    """Show ``user`` their App Home tab: what waits for them, what runs, what ended."""
    rows = deps.repo.list_rollbacks(statuses=ACTIVE, limit=100)
    recent = deps.repo.list_rollbacks(statuses=TERMINAL, limit=HISTORY)
    view = home_view(
        user,
        rows,
        recent,
        deps.catalog,
        deps.clock(),
        lambda s: approver_members(deps, s),
        team_url=deps.slack_team_url,
        link=lambda rid: review_url(deps, rid),
        readiness=readiness_lines(deps),
    )
    deps.slack.views_publish(user_id=user, view=view)
