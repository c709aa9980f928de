"""Pure Block Kit builders. Every message has a plain ``text`` fallback whose first line matters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.notify import limits
from bot.rollback.assess import Assessment, Decision, SignalResult
from bot.rollback.command import USAGE, closest
from bot.rollback.lifecycle import (
    IN_ENGINE,
    NEVER_RAN,
    WAITING,
    RollbackKind,
    RollbackStatus,
    StepStatus,
)
from bot.rollback.phases import NOT_SELECTED, stored_selection
from bot.rollback.plan import PHASE_TITLES, PHASES
from bot.rollback.text import status_verb
from storage.guard_models import GUARD_ACTOR

Block = dict[str, Any]

DECISION_ICONS = {
    Decision.IMMEDIATE_ROLLBACK: ":rotating_light:",
    Decision.ROLLBACK_RECOMMENDED: ":warning:",
    Decision.MONITOR: ":eyes:",
    Decision.CONTINUE: ":white_check_mark:",
}
DECISION_MEANING = {
    Decision.IMMEDIATE_ROLLBACK: "critical score ≥ 50: roll back now (runbook: < 5 minutes)",
    Decision.ROLLBACK_RECOMMENDED: "total score ≥ 60: significant issues, rollback recommended",
    Decision.MONITOR: "total score ≥ 30, or signals unknown: monitor and evaluate",
    Decision.CONTINUE: "total score < 30 and every signal read: no rollback needed",
}


def escape(text: str) -> str:
    """Escape user- or system-supplied text for mrkdwn so it cannot ping or forge links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def person(user_id: str | None) -> str:
    """``<@U…>`` for a Slack user; the automatic guard by name; anything else escaped, never
    a mention Slack would show as an unknown user."""
    if user_id == GUARD_ACTOR:
        return "the automatic guard"
    if user_id and _SLACK_USER.match(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "someone")


_USER_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{2,})&gt;")


def escape_keeping_mentions(text: str) -> str:
    """Like `escape`, but `<@U…>` user mentions stay mentions (the bot writes them into error
    texts such as "cancelled by <@U…>"). Channel-wide pings and links are still escaped."""
    return _USER_MENTION.sub(r"<@\1>", escape(text))


def message_link(team_url: str, channel: str, ts: str) -> str:
    """Slack's permalink of a message, built from the workspace URL (as chat.getPermalink does)."""
    return f"{team_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


# Free text a person wrote (a reason) or a system reported (an error) is shown up to this many
# characters in a message; the rest is behind a pointer (see bot/notify/limits.py).
FREE_TEXT_CHARS = 1500


def free_text(text: str, more: str | None = None, *, keep_mentions: bool = False) -> str:
    """Free text escaped for mrkdwn and cut to FREE_TEXT_CHARS, with "…" and ``more`` (where
    the whole text is) when cut. ``keep_mentions``: see `escape_keeping_mentions`."""
    shown = limits.clip_plain(text, FREE_TEXT_CHARS)
    escaped = escape_keeping_mentions(shown) if keep_mentions else escape(shown)
    return f"{escaped} {more}" if more and shown != text else escaped


def section(text: str, more: str | None = None) -> Block:
    """A mrkdwn section, cut to Slack's 3,000 characters (``more``: where the rest is)."""
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": limits.clip(text or " ", limits.SECTION_TEXT, more)},
    }


def header(text: str) -> Block:
    """A header (plain text, at most 150 characters)."""
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": limits.clip_plain(text, limits.HEADER_TEXT)},
    }


def context(*texts: str, more: str | None = None) -> Block:
    """A context line of up to 10 mrkdwn texts, each cut to Slack's 3,000 characters."""
    return limits.fit_block(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": t or " "} for t in texts]},
        more,
    )


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": limits.clip_plain(text, limits.BUTTON_TEXT)},
        "action_id": action_id,
        "value": value[: limits.BUTTON_VALUE],
    }
    if style:
        element["style"] = style
    return element


def _signal_line(r: SignalResult) -> str:
    if r.is_unknown:
        why = f" ({escape(r.note)})" if r.note else ""
        return f":grey_question: *{r.label}* — *unknown*{why}; not counted as healthy"
    fired = r.fired
    icon = {
        "critical": ":red_circle:",
        "high": ":large_orange_circle:",
        "medium": ":large_yellow_circle:",
    }
    note = f" ({escape(r.note)})" if r.note else ""
    head = f"{icon[fired.level] if fired else ':large_green_circle:'} *{r.label}* — {r.shown}{note}"
    rows = " · ".join(
        f"*{t.level} if {t.condition} → +{t.points}*"
        if t.is_fired
        else f"{t.level} if {t.condition}"
        for t in r.triggers
    )
    return f"{head}\n{rows}"


def assessment_message(
    a: Assessment, *, assessment_id: int, requested_by: str | None, at: datetime
) -> tuple[str, list[Block]]:
    """The answer to ``/rollback assess``: text starts with the decision keyword (CONTRACT.md)."""
    s = a.scores
    scores = (
        f"critical *{s['critical']}* · high *{s['high']}* · medium *{s['medium']}*"
        f" · total *{a.total}*"
    )
    blocks: list[Block] = [
        header(f"{a.decision.value} — {a.service}"),
        section(f"{DECISION_ICONS[a.decision]} {scores}\n_{DECISION_MEANING[a.decision]}_"),
        {"type": "divider"},
        *(section(_signal_line(r)) for r in a.results),
    ]
    if not a.results:
        blocks.append(section("No signals are configured for this service in the catalog."))
    notes = [f"Why: {escape('; '.join(a.reasons))}"] if a.reasons else []
    if a.worst_case is not None and a.worst_case is not a.decision:
        notes.append(f"If the unknown signals are failing, the decision would be *{a.worst_case}*.")
    who = f" · requested by {person(requested_by)}" if requested_by else ""
    notes.append(f"Assessment #{assessment_id}{who} · {at:%Y-%m-%d %H:%M:%S} UTC")
    blocks.append(context(*notes))
    lines = [a.headline, *(f"{r.label}: {r.shown}" for r in a.results)]
    return limits.fit_message("\n".join(lines), blocks)


def usage_message(problem: str | None = None) -> tuple[str, list[Block]]:
    problem = escape(problem) if problem else None  # it quotes what the user typed
    head = f":x: {problem}" if problem else "*rollback-bot* — assess, approve and run rollbacks"
    text = f"{problem}\n\n{USAGE}" if problem else USAGE
    return limits.fit_message(text, [section(head), section(f"```{USAGE}```")])


def unknown_service_message(name: str, known: Sequence[str]) -> tuple[str, list[Block]]:
    listing = ", ".join(f"`{n}`" for n in known) or "(the catalog has none)"
    guess = closest(name, list(known))
    hint = f" Did you mean `{guess}`?" if guess else ""
    problem = f"Unknown service `{escape(name)}`.{hint} Known services: {listing}."
    return limits.fit_message(problem, [section(f":x: {problem}")])


def notice(text: str, more: str | None = None) -> tuple[str, list[Block]]:
    """A short ephemeral notice (progress, refusal, failure) with the same text as fallback."""
    return limits.fit_message(text, [section(text, more)], more=more)


# --- rollback progress ------------------------------------------------------------------------

STEP_ICONS: dict[str, str] = {
    StepStatus.SUCCEEDED: ":white_check_mark:",
    StepStatus.RUNNING: ":hourglass_flowing_sand:",
    StepStatus.PENDING: ":white_large_square:",
    StepStatus.FAILED: ":x:",
    StepStatus.SKIPPED: ":black_right_pointing_double_triangle_with_vertical_bar:",
}
ROLLBACK_ICONS: dict[str, str] = {
    RollbackStatus.RUNNING: ":arrows_counterclockwise:",
    RollbackStatus.ABORTING: ":octagonal_sign:",
    RollbackStatus.SUCCEEDED: ":white_check_mark:",
    RollbackStatus.FAILED: ":x:",
    RollbackStatus.ABORTED: ":octagonal_sign:",
}


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _phase_state(statuses: list[str]) -> StepStatus:
    for state in (StepStatus.FAILED, StepStatus.RUNNING):
        if state in statuses:
            return state
    if all(s in (StepStatus.SUCCEEDED, StepStatus.SKIPPED) for s in statuses):
        if all(s == StepStatus.SKIPPED for s in statuses):
            return StepStatus.SKIPPED
        return StepStatus.SUCCEEDED
    return StepStatus.RUNNING if StepStatus.SUCCEEDED in statuses else StepStatus.PENDING


# What a rollback's status means, in words a person reads (never the stored keyword).
STATUS_WORDS: dict[str, str] = {
    RollbackStatus.PENDING_APPROVAL: "waiting for approval",
    RollbackStatus.APPROVED: "approved, not started yet",
    RollbackStatus.SCHEDULED: "scheduled",
    RollbackStatus.RUNNING: "running",
    RollbackStatus.ABORTING: "aborting",
    RollbackStatus.SUCCEEDED: "succeeded",
    RollbackStatus.FAILED: "failed",
    RollbackStatus.ABORTED: "aborted",
    RollbackStatus.REJECTED: "rejected",
    RollbackStatus.EXPIRED: "expired",
    RollbackStatus.CANCELLED: "cancelled",
}
_NOT_STARTED = (*WAITING, *NEVER_RAN)


def status_words(status: str) -> str:
    """``pending_approval`` → ``waiting for approval`` (an unknown status is shown as is)."""
    return STATUS_WORDS.get(status, status.replace("_", " "))


def status_sentence(rollback_id: int, status: str) -> str:
    """``Rollback #4 has succeeded`` / ``… was cancelled`` / ``… is running``."""
    return f"Rollback #{rollback_id} {status_verb(status)}"


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 approval``, ``2 approvals``, ``1 minute``, ``15 minutes``."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _ended_how(rollback: Any) -> str:
    """Why a request that never ran ended (its stored error reads "cancelled by <@U…>: …")."""
    error = free_text(rollback.error or "", keep_mentions=True)
    word = status_words(rollback.status)
    if error.lower().startswith(word):  # "cancelled by <@U1>", not "Cancelled: cancelled by"
        return error[:1].upper() + error[1:]
    return word.capitalize() + (f": {error}" if error else "")


def progress_message(
    rollback: Any,
    steps: Sequence[Any],
    *,
    sla_minutes: int,
    now: datetime,
    more: str | None = None,
    state_note: str | None = None,
    region_blocks: list[Block] | None = None,
) -> tuple[str, list[Block]]:
    """The live progress message: phase checklist, elapsed vs SLA, target, who started it.
    ``region_blocks`` (a multi-region rollback): one checklist per region, each with its SLA.

    Any status reads true: a request that never ran says who asked and what it waits for (or
    how it ended), not "started by" and an SLA clock. ``more`` points to where a long reason can
    be read whole; ``state_note`` says what a waiting request waits for (e.g. "Run anyway")."""
    has_started = rollback.started_at is not None or rollback.status not in _NOT_STARTED
    noun = "Rehearsal" if rollback.kind == RollbackKind.REHEARSAL else "Rollback"
    title = f"{noun} #{rollback.id} of {rollback.service} — {status_words(rollback.status).upper()}"
    reason = ""
    if rollback.reason:
        reason = f"\n_Reason: {free_text(rollback.reason, more)}_"
    if has_started:
        footer = _sla_footer(rollback, None if region_blocks else sla_minutes, now)
    elif rollback.status in NEVER_RAN:
        footer = f"{_ended_how(rollback)} — it never ran; nothing was changed."
    else:
        footer = state_note or f"{status_words(rollback.status).capitalize()}; not started yet."
    blocks: list[Block] = [
        header(title),
        section(" · ".join(_progress_facts(rollback, steps, has_started)) + reason),
        *(region_blocks or [section("\n".join(phase_lines(steps, now)) or "No steps.")]),
        context(footer),
    ]
    failed = next((s for s in steps if s.status == StepStatus.FAILED), None)
    if rollback.status == RollbackStatus.FAILED and failed is not None:
        error = free_text(failed.error or "", more)
        where = f"{failed.region}: " if getattr(failed, "region", None) else ""
        blocks.insert(-1, section(f":x: *{escape(where + failed.name)}* failed: {error}"))
    if rollback.status in (RollbackStatus.ABORTING, RollbackStatus.ABORTED) and rollback.error:
        said = free_text(rollback.error, more, keep_mentions=True)  # who aborted it, and why
        blocks.insert(-1, section(f":octagonal_sign: {said}"))
    done = sum(s.status == StepStatus.SUCCEEDED for s in steps)
    to_run = [s for s in steps if s.error != NOT_SELECTED]  # a partial rollback's own steps
    text = f"{title}: {done}/{len(to_run)} steps done"
    return limits.fit_message(text, blocks, more=more)


def phase_lines(steps: Sequence[Any], now: datetime) -> list[str]:
    """One line per phase that has steps: its state and how long its steps took."""
    lines = []
    for phase in PHASES:
        in_phase = [s for s in steps if s.phase == phase]
        if not in_phase:
            continue
        state = _phase_state([s.status for s in in_phase])
        times = [(s.started_at, s.finished_at or now) for s in in_phase if s.started_at]
        took = f" — {duration(sum((b - a).total_seconds() for a, b in times))}" if times else ""
        if state == StepStatus.SKIPPED:
            took = " — skipped"
        lines.append(f"{STEP_ICONS[state]} {PHASE_TITLES[phase]}{took}")
    return lines


def _progress_facts(rollback: Any, steps: Sequence[Any], has_started: bool) -> list[str]:
    """Who started (or asked for) it, its strategy, target revision and incident channel."""
    target = next(
        (s.detail.get("undo") for s in steps if s.kind == "rollout_undo" and s.detail.get("undo")),
        None,
    )
    who = "started by" if has_started else "requested by"
    facts = [f"{who} {person(rollback.requested_by)}", f"strategy *{rollback.strategy}*"]
    if target:
        images = ", ".join(f"{c}={i}" for c, i in target["images_after"].items())
        facts.append(f"target revision *{target['to_revision']}* ({escape(images)})")
    elif rollback.target_revision:
        facts.append(f"target revision *{escape(rollback.target_revision)}*")
    selection = stored_selection(getattr(rollback, "phases", None), (s.phase for s in steps))
    if selection is not None:  # a partial rollback (--phases) says what it leaves out
        facts.append(f"phases *{selection.describe()}*")
    if getattr(rollback, "incident_channel_id", None):
        facts.append(f"incident channel <#{rollback.incident_channel_id}>")
    return facts


def _sla_footer(rollback: Any, sla_minutes: int | None, now: datetime) -> str:
    """How long it has run (or took) against its SLA (None: each region has its own)."""
    started = rollback.started_at or rollback.created_at
    elapsed = ((rollback.finished_at or now) - started).total_seconds()
    if sla_minutes is None:
        verb = "Elapsed" if rollback.status in IN_ENGINE else "Took"
        sla = f"{verb} {duration(elapsed)} in all; each region against its own SLA"
        return f"{ROLLBACK_ICONS.get(rollback.status, '')} {sla}".strip()
    sla = f"Elapsed {duration(elapsed)} of the {sla_minutes} min SLA"
    if rollback.status not in IN_ENGINE:
        sla = f"Took {duration(elapsed)} (SLA {sla_minutes} min)"
    if elapsed > sla_minutes * 60:
        sla = f":warning: *{duration(elapsed)} — past the {sla_minutes} min SLA*"
    return f"{ROLLBACK_ICONS.get(rollback.status, '')} {sla}".strip()


MANUAL_GATE_ACTION = "manual_gate_continue"


def manual_gate_message(prompt: str, step_id: int) -> list[Block]:
    return [
        section(f":raised_hand: *Manual gate* — {free_text(prompt)}"),
        {
            "type": "actions",
            "block_id": f"gate-{step_id}",
            "elements": [button("Continue", MANUAL_GATE_ACTION, str(step_id), "primary")],
        },
    ]
