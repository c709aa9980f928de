"""Block Kit for approvals: the request message, its modals and the start confirmation (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.notify import limits
from bot.notify.blocks import (
    FREE_TEXT_CHARS,
    button,
    context,
    free_text,
    header,
    person,
    section,
)
from bot.rollback.command import local_time
from bot.rollback.lifecycle import RollbackStatus, Vote
from storage.models import Approval, Assessment, Rollback

Block = dict[str, Any]

# Action and callback ids; handlers/ids.py re-exports them (the buttons are built here).
APPROVE_ACTION = "approval_approve"
REJECT_ACTION = "approval_reject"
PLAN_ACTION = "assessment_plan_rollback"
ASSESS_AGAIN_ACTION = "assess_again"
RUN_NOW_ACTION = "assessment_run_now"
CONFIRM_RUN_ACTION = "start_confirm_run"
CONFIRM_CANCEL_ACTION = "start_confirm_cancel"
PLAN_VIEW = "plan_rollback_modal"
REJECT_VIEW = "reject_rollback_modal"

REASON_IN_THREAD = "_(the whole reason is in this message's thread)_"

STATUS_LINES: dict[str, str] = {
    RollbackStatus.PENDING_APPROVAL: ":hourglass_flowing_sand: Waiting for approval",
    RollbackStatus.APPROVED: ":white_check_mark: Approved — starting after a fresh assessment",
    RollbackStatus.SCHEDULED: ":calendar: Approved — scheduled",
    RollbackStatus.RUNNING: ":arrows_counterclockwise: Approved — running",
    RollbackStatus.ABORTING: ":octagonal_sign: Aborting",
    RollbackStatus.SUCCEEDED: ":white_check_mark: Rolled back",
    RollbackStatus.FAILED: ":x: Rollback failed",
    RollbackStatus.ABORTED: ":octagonal_sign: Aborted",
    RollbackStatus.REJECTED: ":no_entry: Rejected",
    RollbackStatus.EXPIRED: ":alarm_clock: Expired",
    RollbackStatus.CANCELLED: ":heavy_multiplication_x: Cancelled",
}


def when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _vote_line(v: Approval) -> str:
    via = "" if v.via == "button" else f" (via {v.via})"
    if v.decision == Vote.APPROVE:
        return f":white_check_mark: Approved by <@{v.user_id}> at {when(v.created_at)}{via}"
    reason = f": {free_text(v.reason)}" if v.reason else ""
    return f":no_entry: Rejected by <@{v.user_id}> at {when(v.created_at)}{via}{reason}"


def assessment_line(assessment: Assessment | None) -> str:
    if assessment is None or assessment.decision is None:
        return "Based on: no assessment yet (`/rollback assess <service>` before approving)."
    return (
        f"Based on assessment #{assessment.id} ({when(assessment.created_at)}):"
        f" *{assessment.decision}* — critical {assessment.critical_score}, high"
        f" {assessment.high_score}, medium {assessment.medium_score}, total"
        f" {assessment.total_score}."
    )


# Ended requests whose status line says why (their stored error).
_SAYS_WHY = (RollbackStatus.EXPIRED, RollbackStatus.CANCELLED, RollbackStatus.FAILED)


def _status_line(r: Rollback, tz: tzinfo) -> str:
    """``Approved — scheduled for …``, ``Cancelled by <@U…>: …`` (an ended request says why)."""
    status = STATUS_LINES.get(r.status, r.status)
    if r.status == RollbackStatus.SCHEDULED and r.scheduled_at is not None:
        status += f" for {local_time(r.scheduled_at, tz)}"
    if r.error and r.status in _SAYS_WHY:
        error = free_text(r.error, keep_mentions=True)
        word = r.status if r.status != RollbackStatus.FAILED else ""
        if word and error.lower().startswith(word):  # not "Cancelled: cancelled by <@U…>"
            status = f"{status.split(' ', 1)[0]} {error[:1].upper()}{error[1:]}"
        else:
            status += f": {error}"
    return status


def request_message(
    r: Rollback,
    *,
    approvals: Sequence[Approval],
    assessment: Assessment | None,
    plan_summary: str,
    approvers: str,
    two_person_rule: bool,
    note: str | None = None,
    tz: tzinfo = UTC,
    more: str | None = REASON_IN_THREAD,
    phases: str | None = None,
    regions: str = "",
) -> tuple[str, list[Block]]:
    """The approval request: what will change, why, who asked, the votes and the buttons.
    A reason too long to show whole is cut, with ``more`` saying where it can be read."""
    assert r.id is not None
    approved = sum(1 for v in approvals if v.decision == Vote.APPROVE)
    status = _status_line(r, tz)
    facts = [
        f"*Requested by* {person(r.requested_by)} at {when(r.created_at)}",
        f"*Reason* {free_text(r.reason, more) or '_none given_'}",
        f"*Strategy* {r.strategy}"
        + (f" · *target revision* {r.target_revision}" if r.target_revision else ""),
        f"*Window* {local_time(r.scheduled_at, tz)}"
        if r.scheduled_at
        else "*Window* as soon as approved",
        f"*Approvals* {approved}/{r.required_approvals} from {approvers}"
        + (" · the requester cannot approve (two-person rule)" if two_person_rule else ""),
    ]
    if phases:  # a partial rollback (--phases): what it runs and what it skips
        facts.insert(3, f"*Phases* {phases}")
    if regions:  # a multi-region service: which regions, in which waves (partial: said)
        facts.append(f"*Regions* {regions}")
    is_open = r.status == RollbackStatus.PENDING_APPROVAL
    if r.expires_at is not None and is_open:
        facts.append(f"*Expires* {when(r.expires_at)}")
    blocks: list[Block] = [
        header(f"Rollback request #{r.id} — {r.service}"),
        section("\n".join(facts)),
        section(assessment_line(assessment)),
        section(f"*What will change*\n{plan_summary}"),
    ]
    votes = [_vote_line(v) for v in approvals]
    if votes:
        blocks.append(context("\n".join(votes)))
    blocks.append(section(f"*{status}*"))
    if note:
        blocks.append(context(note))
    if is_open:
        blocks.append(_vote_buttons(r.id))
    text = f"Rollback request #{r.id} of {r.service}: {status} ({approved}/{r.required_approvals})"
    return limits.fit_message(text, blocks, more=more)


def _vote_buttons(rollback_id: int) -> Block:
    value = str(rollback_id)
    return {
        "type": "actions",
        "block_id": f"approval_{rollback_id}",
        "elements": [
            button("Approve", APPROVE_ACTION, value, "primary"),
            button("Reject", REJECT_ACTION, value, "danger"),
        ],
    }


def reason_is_cut(reason: str) -> bool:
    """The request message shows only part of this reason: its thread gets the whole."""
    return len(reason) > FREE_TEXT_CHARS


def assessment_buttons(service: str, assessment_id: int, *, offer_run_now: bool) -> Block:
    """Buttons under an assessment: plan a rollback, and run one now when the matrix says so."""
    value = f"{service}:{assessment_id}"
    elements = [button("Plan rollback", PLAN_ACTION, value)]
    if offer_run_now:
        elements.append(button("Roll back now", RUN_NOW_ACTION, value, "danger"))
    return limits.fit_block(
        {"type": "actions", "block_id": f"assessment_{assessment_id}", "elements": elements}
    )


def assess_again_button(service: str) -> Block:
    """Under a refusal of a stale assessment's button: the fresh assessment it asks for."""
    return limits.fit_block(
        {
            "type": "actions",
            "block_id": f"assess_again_{service}",
            "elements": [button("Assess again", ASSESS_AGAIN_ACTION, service, "primary")],
        }
    )


def _input(block_id: str, label: str, hint: str, *, optional: bool, multiline: bool) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "hint": {"type": "plain_text", "text": hint},
        "element": {"type": "plain_text_input", "action_id": "value", "multiline": multiline},
    }


def plan_modal(
    service: str,
    assessment_id: int | None,
    timezone: str = "UTC",
    phases: Sequence[str] = (),
    *,
    regions: Sequence[str] = (),
    regions_line: str = "",
) -> Block:
    """The "Plan rollback" modal: reason, target revision, optional window and phases.
    ``regions``: the narrowed assessment's regions (``assess --region``), carried in the
    form's metadata to the request; ``regions_line`` says so on the form."""
    listed = ", ".join(phases) or "the plan's phase names"
    metadata = f"{service}:{assessment_id or ''}" + (f":{','.join(regions)}" if regions else "")
    intro = f"Planned rollback of *{service}*." + (
        f"\n:world_map: {regions_line}." if regions_line else ""
    )
    return limits.fit_view(
        {
            "type": "modal",
            "callback_id": PLAN_VIEW,
            "private_metadata": metadata,
            "title": {"type": "plain_text", "text": "Plan a rollback"},
            "submit": {"type": "plain_text", "text": "Request approval"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": intro}},
                _input("reason", "Reason", "Why roll back?", optional=False, multiline=True),
                _input(
                    "target",
                    "Target revision",
                    "Empty: the previous one",
                    optional=True,
                    multiline=False,
                ),
                _input(
                    "window",
                    "Window",
                    f"Empty: as soon as approved. HH:MM ({timezone}) or ISO 8601",
                    optional=True,
                    multiline=False,
                ),
                _input(
                    "phases",
                    "Phases",
                    f"Empty: the whole plan. Or some of: {listed} (comma-separated)",
                    optional=True,
                    multiline=False,
                ),
            ],
        }
    )


def reject_modal(rollback_id: int, service: str) -> Block:
    return limits.fit_view(
        {
            "type": "modal",
            "callback_id": REJECT_VIEW,
            "private_metadata": str(rollback_id),
            "title": {"type": "plain_text", "text": "Reject the rollback"},
            "submit": {"type": "plain_text", "text": "Reject"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"Reject rollback request #{rollback_id} of *{service}*.",
                    },
                },
                _input("reason", "Reason", "Told to the requester", optional=False, multiline=True),
            ],
        }
    )


def confirm_start_message(r: Rollback, decision_line: str) -> tuple[str, list[Block]]:
    """The service looks healthy again: ask an approver before running the approved rollback."""
    assert r.id is not None
    text = (
        f":thinking_face: Rollback #{r.id} of *{r.service}* was approved, but a fresh assessment"
        f" says {decision_line}. Run it anyway?"
    )
    value = str(r.id)
    return limits.message_text(text), [
        section(text),
        {
            "type": "actions",
            "block_id": f"confirm_{r.id}",
            "elements": [
                button("Run anyway", CONFIRM_RUN_ACTION, value, "danger"),
                button("Cancel rollback", CONFIRM_CANCEL_ACTION, value),
            ],
        },
    ]
