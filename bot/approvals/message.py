"""The request message in the service channel: built from the stored request, edited whenever
its votes or status change, and its thread, where the start's questions and reports go."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import TYPE_CHECKING

from bot.adapters.slack.web import SlackError
from bot.approvals import blocks as approval_blocks
from bot.catalog.load import Service
from bot.regions.text import steps_regions_line
from bot.rollback import policy
from bot.rollback.phases import stored_selection
from storage.models import Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger(__name__)


def request_blocks(
    deps: Deps, r: Rollback, service: Service, plan_summary: str, note: str | None = None
) -> tuple[str, list[dict[str, object]]]:
    assert r.id is not None
    assessment = deps.repo.get_assessment(r.assessment_id) if r.assessment_id else None
    steps = deps.repo.list_steps(r.id)
    selection = stored_selection(r.phases, (s.phase for s in steps))
    return approval_blocks.request_message(
        r,
        approvals=deps.repo.list_approvals(r.id),
        assessment=assessment,
        plan_summary=plan_summary,
        approvers=policy.who_may_approve(service),
        two_person_rule=service.approval.two_person_rule,
        note=note,
        tz=service.tz,
        regions=steps_regions_line(service, steps),
        phases=selection.describe() if selection else None,
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
        text, blocks = request_blocks(deps, r, service, r.plan_summary or "", note)
        try:
            deps.slack.chat_update(
                channel=r.approval_channel_id, ts=r.approval_ts, text=text, blocks=blocks
            )
        except SlackError as exc:
            log.warning("cannot update request #%d: %s", rollback_id, exc.error)


def post_in_thread(
    deps: Deps,
    r: Rollback,
    service: Service,
    text: str,
    blocks: list[dict[str, object]] | None = None,
) -> None:
    """In the request's thread, also shown in the channel."""
    deps.slack.chat_postMessage(
        channel=r.approval_channel_id or service.channel,
        thread_ts=r.approval_ts,
        reply_broadcast=True,
        text=text,
        blocks=blocks,
    )
