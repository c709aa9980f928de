"""Pure Block Kit builders. Every message has a plain ``text`` fallback whose first line matters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.rollback.assess import Assessment, Decision, SignalResult
from bot.rollback.command import USAGE

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


_USER_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{2,})&gt;")


def escape_keeping_mentions(text: str) -> str:
    """Like `escape`, but `<@U…>` user mentions stay mentions (the bot writes them into error
    texts such as "cancelled by <@U…>"). Channel-wide pings and links are still escaped."""
    return _USER_MENTION.sub(r"<@\1>", escape(text))


def message_link(team_url: str, channel: str, ts: str) -> str:
    """Slack's permalink of a message, built from the workspace URL (as chat.getPermalink does)."""
    return f"{team_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


def section(text: str) -> Block:
    """A mrkdwn section (Slack refuses more than 3,000 characters)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t[:3000]} for t in texts]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
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
        f"*{t.level} {t.condition} → +{t.points}*" if t.is_fired else f"{t.level} {t.condition}"
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
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{a.decision.value} — {a.service}"[:150]},
        },
        section(f"{DECISION_ICONS[a.decision]} {scores}\n_{DECISION_MEANING[a.decision]}_"),
        {"type": "divider"},
        *(section(_signal_line(r)) for r in a.results),
    ]
    if not a.results:
        blocks.append(section("No signals are configured for this service in the catalog."))
    notes = [f"Why: {escape('; '.join(a.reasons))}"] if a.reasons else []
    if a.worst_case is not None and a.worst_case is not a.decision:
        notes.append(f"If the unknown signals are failing, the decision would be *{a.worst_case}*.")
    who = f" · requested by <@{requested_by}>" if requested_by else ""
    notes.append(f"Assessment #{assessment_id}{who} · {at:%Y-%m-%d %H:%M:%S} UTC")
    blocks.append(context(*notes))
    lines = [a.headline, *(f"{r.label}: {r.shown}" for r in a.results)]
    return "\n".join(lines), blocks


def usage_message(problem: str | None = None) -> tuple[str, list[Block]]:
    problem = escape(problem) if problem else None  # it quotes what the user typed
    head = f":x: {problem}" if problem else "*rollback-bot* — assess, approve and run rollbacks"
    text = f"{problem}\n\n{USAGE}" if problem else USAGE
    return text, [section(head), section(f"```{USAGE}```")]


def unknown_service_message(name: str, known: Sequence[str]) -> tuple[str, list[Block]]:
    listing = ", ".join(f"`{n}`" for n in known) or "(the catalog has none)"
    problem = f"Unknown service `{escape(name)}`. Known services: {listing}."
    return problem, [section(f":x: {problem}")]


def notice(text: str) -> tuple[str, list[Block]]:
    """A short ephemeral notice (progress, refusal, failure) with the same text as fallback."""
    return text, [section(text)]


# --- rollback progress ------------------------------------------------------------------------

STEP_ICONS = {
    "succeeded": ":white_check_mark:",
    "running": ":hourglass_flowing_sand:",
    "pending": ":white_large_square:",
    "failed": ":x:",
    "skipped": ":black_right_pointing_double_triangle_with_vertical_bar:",
}
ROLLBACK_ICONS = {
    "running": ":arrows_counterclockwise:",
    "aborting": ":octagonal_sign:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "aborted": ":octagonal_sign:",
}


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _phase_state(statuses: list[str]) -> str:
    for state in ("failed", "running"):
        if state in statuses:
            return state
    if all(s in ("succeeded", "skipped") for s in statuses):
        return "skipped" if all(s == "skipped" for s in statuses) else "succeeded"
    return "running" if "succeeded" in statuses else "pending"


def progress_message(
    rollback: Any, steps: Sequence[Any], *, sla_minutes: int, now: datetime
) -> tuple[str, list[Block]]:
    """The live progress message: phase checklist, elapsed vs SLA, target, who started it."""
    from bot.rollback.plan import PHASE_TITLES, PHASES

    started = rollback.started_at or rollback.created_at
    end = rollback.finished_at or now
    elapsed = (end - started).total_seconds()
    over = elapsed > sla_minutes * 60
    lines = []
    for phase in PHASES:
        in_phase = [s for s in steps if s.phase == phase]
        if not in_phase:
            continue
        state = _phase_state([s.status for s in in_phase])
        times = [(s.started_at, s.finished_at or now) for s in in_phase if s.started_at]
        took = f" — {_duration(sum((b - a).total_seconds() for a, b in times))}" if times else ""
        lines.append(f"{STEP_ICONS[state]} {PHASE_TITLES[phase]}{took}")
    target = next(
        (s.detail.get("undo") for s in steps if s.kind == "rollout_undo" and s.detail.get("undo")),
        None,
    )
    facts = [f"started by <@{rollback.requested_by}>", f"strategy *{rollback.strategy}*"]
    if target:
        images = ", ".join(f"{c}={i}" for c, i in target["images_after"].items())
        facts.append(f"target revision *{target['to_revision']}* ({escape(images)})")
    elif rollback.target_revision:
        facts.append(f"target revision *{escape(rollback.target_revision)}*")
    status = rollback.status.upper()
    title = f"Rollback #{rollback.id} of {rollback.service} — {status}"
    sla = f"{_duration(elapsed)} of the {sla_minutes} min SLA"
    if over:
        sla = f":warning: *{_duration(elapsed)} — past the {sla_minutes} min SLA*"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        section(
            " · ".join(facts)
            + (f"\n_Reason: {escape(rollback.reason)}_" if rollback.reason else "")
        ),
        section("\n".join(lines) or "No steps."),
        context(f"{ROLLBACK_ICONS.get(rollback.status, '')} Elapsed {sla}"),
    ]
    failed = next((s for s in steps if s.status == "failed"), None)
    if rollback.status == "failed" and failed is not None:
        blocks.insert(
            3, section(f":x: *{escape(failed.name)}* failed: {escape(failed.error or '')}")
        )
    if rollback.status in ("aborting", "aborted") and rollback.error:  # who and why
        blocks.insert(3, section(f":octagonal_sign: {escape_keeping_mentions(rollback.error)}"))
    text = f"{title}: {sum(s.status == 'succeeded' for s in steps)}/{len(steps)} steps done"
    return text, blocks


MANUAL_GATE_ACTION = "manual_gate_continue"


def manual_gate_message(prompt: str, step_id: int) -> list[Block]:
    return [
        section(f":raised_hand: *Manual gate* — {escape(prompt)}"),
        {
            "type": "actions",
            "block_id": f"gate-{step_id}",
            "elements": [button("Continue", MANUAL_GATE_ACTION, str(step_id), "primary")],
        },
    ]
