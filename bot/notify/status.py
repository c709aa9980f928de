"""What ``/rollback status`` and ``/rollback history`` say: running rollbacks with their progress,
requests waiting for approval, a confirmation or their window, and the last rollbacks."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from bot.approvals.blocks import when
from bot.catalog.load import staging_key
from bot.deps import Deps
from bot.notify import blocks, limits
from bot.notify.blocks import escape_keeping_mentions, person
from bot.notify.reply import Reply
from bot.regions.progress import region_blocks
from bot.rehearsal.history import rehearsal_history
from bot.rollback.command import Command, local_time
from bot.rollback.lifecycle import IN_ENGINE, WAITING, RollbackKind, RollbackStatus, confirm_key
from storage.guard_models import GUARD_ACTOR
from storage.models import Rollback


def progress_url(deps: Deps, rollback: Rollback | None) -> str | None:
    """The progress message's address, built locally: no Slack call on the ack path."""
    if rollback is None or not rollback.progress_ts or not rollback.channel_id:
        return None
    return blocks.message_link(deps.slack_team_url, rollback.channel_id, rollback.progress_ts)


def progress_link(url: str | None) -> str:
    """`` (<url|progress>)`` after a rollback's number, or nothing when it has no message yet."""
    return f" (<{url}|progress>)" if url else ""


def waiting_state(deps: Deps, r: Rollback) -> str:
    """What a request that has not started waits for, true for each status."""
    service = deps.catalog.get(r.service)
    tz = service.tz if service else UTC
    if r.status == RollbackStatus.SCHEDULED and r.scheduled_at is not None:
        return f"approved, scheduled for {local_time(r.scheduled_at, tz)}"
    if r.status == RollbackStatus.PENDING_APPROVAL:
        assert r.id is not None
        votes = sum(1 for a in deps.repo.list_approvals(r.id) if a.decision == "approve")
        state = f"waiting for approval ({votes} of {r.required_approvals})"
        if r.expires_at is not None:
            state += f" until {when(r.expires_at)}"
        if r.scheduled_at is not None:
            state += f", window {local_time(r.scheduled_at, tz)}"
        return state
    if r.status == RollbackStatus.APPROVED:
        assert r.id is not None
        question = deps.repo.get_work(confirm_key(r.id))
        if question is not None and question.status in ("pending", "claimed"):
            return (
                "approved, but a fresh assessment says the service looks healthy: waiting for"
                f" an approver to press *Run anyway* or *Cancel rollback* (until"
                f" {when(question.due_at)})"
            )
        return "approved, starting after a fresh assessment"
    return blocks.status_words(r.status)


def status(deps: Deps, cmd: Command) -> Reply:
    """``/rollback status [id | service]``: running rollbacks and waiting requests."""
    waiting: list[str] = []
    if cmd.rollback_id is not None:
        rollback = deps.repo.get_rollback(cmd.rollback_id)
        if rollback is None:
            return Reply(f":x: There is no rollback #{cmd.rollback_id}.")
        rows = [rollback]
    elif cmd.service is not None:
        service = deps.catalog.get(cmd.service)
        if service is None:
            text, bl = blocks.unknown_service_message(cmd.service, deps.catalog.names)
            return Reply(text, bl)
        # its last production rollback and its last rehearsal in staging (titled "Rehearsal")
        rows = deps.repo.list_rollbacks(service=service.name, limit=1)
        rows += deps.repo.list_rollbacks(service=staging_key(service.name), limit=1)
        if not rows:
            return Reply(f"No rollbacks of *{service.name}* yet.")
    else:
        rows = deps.repo.list_rollbacks(statuses=IN_ENGINE, limit=20)
        waiting = waiting_lines(deps)
        if not rows:
            return Reply("\n".join(["No rollback is running.", *_waiting_section(waiting)]))
    texts: list[str] = []
    all_blocks: list[dict[str, Any]] = []
    for r in rows:
        assert r.id is not None
        service = deps.catalog.target_of(r.service)  # a rehearsal: the staging twin
        url = progress_url(deps, r)
        is_waiting = r.status in WAITING
        state = waiting_state(deps, r) if is_waiting else None
        steps = deps.repo.list_steps(r.id)
        text, bl = blocks.progress_message(
            r,
            steps,
            sla_minutes=service.sla_minutes if service else 15,
            now=deps.clock(),
            region_blocks=region_blocks(steps, service, deps.clock()),
            more=limits.link(url) if url else None,
            state_note=f":hourglass_flowing_sand: {state[:1].upper()}{state[1:]}."
            if state
            else None,
        )
        link = progress_link(url)
        texts.append(text + link)
        if link:
            bl.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
        all_blocks += [*bl, {"type": "divider"}]
    if cmd.rollback_id is None and cmd.service is None and (section := _waiting_section(waiting)):
        texts += section
        all_blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(section)}}
        )
    if all_blocks and all_blocks[-1]["type"] == "divider":
        all_blocks.pop()
    text, fitted = limits.fit_message("\n".join(texts), all_blocks)
    return Reply(text, fitted)


def _waiting_section(lines: list[str]) -> list[str]:
    return ["*Waiting for approval or a window*", *lines] if lines else []


def history(deps: Deps, cmd: Command) -> Reply:
    """``/rollback history [service]``: the last 20 rollbacks, newest first."""
    if cmd.service is not None and deps.catalog.get(cmd.service) is None:
        text, bl = blocks.unknown_service_message(cmd.service, deps.catalog.names)
        return Reply(text, bl)
    rows = deps.repo.list_rollbacks(service=cmd.service, limit=20)
    rehearsals = rehearsal_history(deps, cmd.service) if cmd.service is not None else ""
    if not rows:
        none = (
            "No rollbacks yet." if cmd.service is None else f"No rollbacks of *{cmd.service}* yet."
        )
        return Reply("\n\n".join(filter(None, [none, rehearsals])))
    lines = [f"*Rollback history{' of ' + cmd.service if cmd.service else ''}* (newest first)"]
    approvers = deps.repo.approvers_of([r.id for r in rows if r.id is not None])
    for r in rows:
        assert r.id is not None
        voters = approvers[r.id]
        approved = ", ".join(f"<@{u}>" for u in voters) or _no_votes(r)
        took = ""
        if r.started_at and r.finished_at:
            seconds = int((r.finished_at - r.started_at).total_seconds())
            took = f" · {seconds // 60}m {seconds % 60:02d}s"
        lines.append(
            f"• #{r.id} *{r.service}* {r.status.replace('_', ' ')} · {r.kind} {r.strategy}"
            f" · {when(r.created_at)} · by {person(r.requested_by)} · approved: {approved}{took}"
            + (
                f" · {escape_keeping_mentions(r.error)}"
                if r.error and r.status != RollbackStatus.SUCCEEDED
                else ""
            )
        )
    return Reply("\n\n".join(filter(None, ["\n".join(lines), rehearsals])))


def waiting_lines(deps: Deps) -> list[str]:
    """Requests waiting for approval, a confirmation or their window (for ``status``)."""
    rows = deps.repo.list_rollbacks(statuses=WAITING)
    lines = []
    for r in reversed(rows):
        state = waiting_state(deps, r)
        lines.append(f"• #{r.id} *{r.service}* {state} — requested by {person(r.requested_by)}")
    return lines


def _no_votes(r: Rollback) -> str:
    if r.kind != RollbackKind.IMMEDIATE:
        return "not approved"
    if r.requested_by == GUARD_ACTOR:
        return "no approval needed (the automatic guard)"
    return "no approval needed (responder)"
