"""The post-rollback review document, pre-filled from what the bot recorded.

Follows the review templates of seeds 000 ("Post-Rollback Review") and 001 ("Rollback Report"):
executive summary, timeline, trigger analysis, execution, impact, then the sections people must
write. Everything the bot knows is filled in; what only people know carries a prompt that starts
with ``WRITE_ME`` so a reader (and the reminder) can tell it is still open.
What the bot recorded is gathered in ``facts``, text helpers are in ``text``, publishing in
``publish`` (whose ``install(deps)`` wires it all into the app).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.notify.blocks import plural
from bot.regions.review import region_sections
from bot.review.facts import ASSESSMENT_LOOKBACK, ReviewFacts
from bot.review.text import changes, duration, plain, signal_value, table, took, when
from bot.rollback.lifecycle import RollbackKind, RollbackStatus, StepStatus
from bot.rollback.phases import PhaseSelection, stored_selection
from storage.models import AuditEvent, Rollback

WRITE_ME = "✏️ To be written:"
ROOT_CAUSE_HEADING = "## Root Cause"
ROOT_CAUSE_PROMPT = (
    f"_{WRITE_ME} what in the change caused the rollback, and how it was confirmed._"
)


def build_review(facts: ReviewFacts) -> str:
    """The whole review document as Markdown (canvas, file and /reviews/{token} share it)."""
    r = facts.rollback
    parts = [
        f"# Post-Rollback Review: {r.service} rollback #{r.id}",
        _summary(facts),
        _timeline(facts),
        *region_sections(facts.steps, facts.service),  # multi-region: one timeline per region
        _trigger(facts),
        _execution(facts),
        _impact(facts),
        *_people_sections(facts),
    ]
    return "\n\n".join(parts) + "\n"


# --- sections --------------------------------------------------------------------------------


def outcome(r: Rollback) -> str:
    if r.status == RollbackStatus.SUCCEEDED:
        return "Succeeded"
    if r.status == RollbackStatus.FAILED:
        return f"Failed: {plain(r.error) if r.error else 'no error recorded'}"
    if r.status == RollbackStatus.ABORTED:
        return "Aborted before completion"
    return r.status.replace("_", " ").capitalize()


def sla_verdict(facts: ReviewFacts) -> str:
    r, sla = facts.rollback, _sla_minutes(facts)
    seconds = took(r.started_at or r.created_at, r.finished_at)
    if seconds is None:
        return f"not finished (SLA: {plural(sla, 'minute')})"
    margin = sla * 60 - seconds
    minutes = f"SLA: {plural(sla, 'minute')}"
    if (
        r.status != RollbackStatus.SUCCEEDED
    ):  # the SLA is about restoring the service, which did not happen
        late = f"**SLA breached** by {duration(-margin)}; " if margin < 0 else ""
        return (
            f"{duration(seconds)} ({minutes}) — {late}ended {r.status} without restoring the"
            " service, so the SLA was not met"
        )
    verdict = (
        f"within SLA, {duration(margin)} to spare"
        if margin >= 0
        else f"**SLA breached** by {duration(-margin)}"
    )
    return f"{duration(seconds)} ({minutes}) — {verdict}"


def _sla_minutes(facts: ReviewFacts) -> int:
    return facts.service.sla_minutes if facts.service else 15


def _approvers(facts: ReviewFacts) -> str:
    votes = [
        f"{facts.who(a.user_id)} ({a.decision}d {when(a.created_at)} via {a.via})"
        for a in facts.approvals
    ]
    if votes:
        return "; ".join(votes)
    if facts.rollback.kind == RollbackKind.IMMEDIATE:
        return "none needed: immediate rollback by a responder"
    return "no votes recorded"


def _summary(facts: ReviewFacts) -> str:
    r, s = facts.rollback, facts.service
    where = f" (namespace {s.namespace}, deployment {s.spec.deployment})" if s else ""
    lines = [
        "## Executive Summary",
        f"- **Service**: {r.service}{where}",
        f"- **Rollback ID**: #{r.id} ({r.kind}, strategy {r.strategy})",
        f"- **Outcome**: {outcome(r)}",
        f"- **Rollback Triggered**: {when(r.created_at)}",
        f"- **Rollback Started**: {when(r.started_at)}",
        f"- **Rollback Completed**: {when(r.finished_at)}",
        f"- **Duration**: {sla_verdict(facts)}",
        f"- **Requested by**: {facts.who(r.requested_by)}",
        f"- **Reason given**: {plain(r.reason) if r.reason else 'none given'}",
        f"- **Approvers**: {_approvers(facts)}",
    ]
    if r.acknowledged_by:
        lines.append(
            f"- **Page acknowledged by**: {plain(r.acknowledged_by)} at {when(r.acknowledged_at)}"
        )
    return "\n".join(lines)


_EVENT_TEXT = {
    "rollback.started": "Rollback started",
    "rollback.requested": "Rollback requested (needs approval)",
    "rollback.approved": "Rollback approved",
    "rollback.abort_requested": "Abort requested",
    "gate.continued": "Manual gate continued",
    "rollback.succeeded": "Rollback completed: succeeded",
    "rollback.failed": "Rollback completed: failed",
    "rollback.aborted": "Rollback completed: aborted",
}


def _event_text(facts: ReviewFacts, event: AuditEvent) -> str:
    text = _EVENT_TEXT.get(event.kind, event.kind.replace(".", ": ").replace("_", " "))
    if event.actor:
        text += f" by {facts.who(event.actor)}"
    detail = {k: v for k, v in event.detail.items() if v not in (None, "", False, {}, [])}
    if detail:
        text += " (" + ", ".join(f"{k}: {_value(facts, k, v)}" for k, v in detail.items()) + ")"
    return text


def _value(facts: ReviewFacts, key: str, value: Any) -> str:
    """A detail value as words: people by name, lists as lists (not Python's repr)."""
    if key in ("approvers", "confirmed_by") and value:
        people = value if isinstance(value, list) else [value]
        return ", ".join(facts.who(str(p)) for p in people)
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value)
    return plain(value)


# Step transitions have their own rows (from the steps, with durations); their audit events and
# the vote rows (the approval.* events say the same) would repeat them.
_REPEATED_EVENTS = ("step.",)


def _timeline(facts: ReviewFacts) -> str:
    r = facts.rollback
    rows: list[tuple[datetime, str]] = []
    if (a := facts.assessment) is not None:
        rows.append(
            (
                a.completed_at or a.created_at,
                f"Issue detection: assessment #{a.id} → {a.decision} (total {a.total_score})",
            )
        )
    rows += [
        (e.created_at, _event_text(facts, e))
        for e in facts.events
        if not e.kind.startswith(_REPEATED_EVENTS)
    ]
    voted = {e.actor for e in facts.events if e.kind.startswith("approval.") and e.actor}
    rows += [  # votes the audit log does not tell already
        (v.created_at, f"{facts.who(v.user_id)} voted {v.decision}")
        for v in facts.approvals
        if v.user_id not in voted
    ]
    for s in facts.steps:
        at = f"{s.region}: {s.phase}" if s.region else s.phase
        if s.started_at:
            rows.append((s.started_at, f"{at}: {s.name} started (attempt {s.attempt})"))
        if s.finished_at:
            seconds = took(s.started_at, s.finished_at)
            extra = f" after {duration(seconds)}" if seconds is not None else ""
            error = f": {plain(s.error)}" if s.error else ""
            rows.append((s.finished_at, f"{at}: {s.name} {s.status}{extra}{error}"))
    for p in facts.pages:
        rows.append((p.created_at, f"Page {p.reason} level {p.level} to {plain(p.contact_name)}"))
        if p.sent_at:
            rows.append((p.sent_at, f"Page to {plain(p.contact_name)} sent ({p.status})"))
        if p.acknowledged_at:
            rows.append((p.acknowledged_at, f"Page acknowledged by {plain(p.acknowledged_by)}"))
    # equal times: the rollback's completion goes after the step that completed it
    rows.sort(key=lambda row: (row[0], row[1].startswith("Rollback completed")))
    origin = rows[0][0] if rows else r.created_at
    rendered = table(
        ["Time", "T+", "Event"],
        [[when(at), duration((at - origin).total_seconds()), text] for at, text in rows],
    )
    return "## Timeline\n" + rendered


def _trigger(facts: ReviewFacts) -> str:
    r, a = facts.rollback, facts.assessment
    how = "run --immediate" if r.kind == RollbackKind.IMMEDIATE else "plan"
    lines = [
        "## Trigger Analysis",
        f"- **Trigger type**: manual, `/rollback {how}` by {facts.who(r.requested_by)}",
        f"- **Reason**: {plain(r.reason) if r.reason else 'none given'}",
    ]
    if a is None:
        lines.append(
            f"- **Assessment**: none of {r.service} was recorded in the"
            f" {duration(ASSESSMENT_LOOKBACK.total_seconds())} before the request; the trigger"
            " is the requester's judgement above."
        )
        return "\n".join(lines)
    link = "linked to this rollback" if facts.is_assessment_linked else "latest before the request"
    lines += [
        f"- **Assessment**: #{a.id} at {when(a.completed_at)} ({link})",
        f"- **Decision**: {a.decision} — critical {a.critical_score}, high {a.high_score},"
        f" medium {a.medium_score}, total {a.total_score}",
    ]
    reasons = a.result.get("reasons") or []
    if reasons:
        lines.append("- **Why**: " + "; ".join(str(x) for x in reasons))
    triggers: dict[str, list[dict[str, Any]]] = a.result.get("triggers") or {}
    rows = []
    for signal, entry in a.inputs.items():
        conditions = triggers.get(signal, [])
        thresholds = ", ".join(
            f"{t['level']}: {t['condition']} (+{t['points']})" for t in conditions
        )
        fired = [t for t in conditions if t.get("fired")]
        points = ", ".join(f"+{t['points']} {t['level']}" for t in fired) or "0"
        rows.append([signal, signal_value(signal, entry.get("value")), thresholds, points])
    lines.append("")
    lines.append(table(["Signal", "Value", "Thresholds", "Scored"], rows))
    return "\n".join(lines)


def _target_revision(facts: ReviewFacts) -> str:
    r = facts.rollback
    for s in facts.steps:
        if undo := s.detail.get("undo"):
            return f"{undo['to_revision']} (from {undo['from_revision']})"
    if r.target_revision:
        return r.target_revision
    return "the previous revision" if r.strategy == "undo" else f"as the {r.strategy} plan defines"


def _execution(facts: ReviewFacts) -> str:
    r = facts.rollback
    retried = [f"{s.name} ({s.attempt} attempts)" for s in facts.steps if s.attempt > 1]
    selection = stored_selection(r.phases, (s.phase for s in facts.steps))
    never = [
        s.name
        for s in facts.steps
        if (s.attempt == 0 or s.status == StepStatus.PENDING)
        and not (selection and s.phase in selection.skipped)  # said in Phases below
    ]
    once = sum(1 for s in facts.steps if s.attempt == 1)
    attempts = "; ".join(retried) if retried else ""
    if not retried and not never:
        attempts = "every step ran once"
    elif never:
        ran = f"{once} step{'s' if once != 1 else ''} ran once" + (
            f"; {attempts}" if attempts else ""
        )
        attempts = f"{ran}; never run: {', '.join(never)}"
    manual = [
        _event_text(facts, e)
        for e in facts.events
        if e.kind in ("gate.continued", "rollback.abort_requested")
    ]
    lines = [
        "## Rollback Execution",
        f"- **Strategy**: {r.strategy}",
        f"- **Phases**: {_phases(selection)}",
        f"- **Target revision**: {_target_revision(facts)}",
        f"- **Attempts**: {attempts}",
        f"- **Manual intervention**: {'; '.join(manual) or 'none'}",
        f"- **SLA compliance**: {sla_verdict(facts)}",
        "",
        "### Phases and steps",
        table(
            ["#", "Phase", "Step", "Status", "Started", "Finished", "Duration", "Error"],
            [
                [
                    s.position + 1,
                    s.phase,
                    f"{s.region}: {s.name}" if s.region else s.name,
                    s.status,
                    when(s.started_at),
                    when(s.finished_at),
                    duration(t) if (t := took(s.started_at, s.finished_at)) is not None else "—",
                    plain(s.error or ""),
                ]
                for s in facts.steps
            ],
        ),
        "",
        "### Objects changed",
    ]
    deployment = facts.service.spec.deployment if facts.service else "(unknown)"
    changed = [f"- {c}" for s in facts.steps for c in changes(s, deployment)]
    lines += changed or ["- nothing was changed"]
    return "\n".join(lines)


def _phases(selection: PhaseSelection | None) -> str:
    if selection is None:
        return "the whole plan"
    return (
        f"{', '.join(selection.selected)} only (partial rollback, `--phases`); skipped, never"
        f" run: {', '.join(selection.skipped)}"
    )


def _impact(facts: ReviewFacts) -> str:
    r, a = facts.rollback, facts.assessment
    start = (a.completed_at if a else None) or r.created_at
    lines = ["## Impact Assessment"]
    if a is not None:
        state = ", ".join(f"{k} {signal_value(k, v.get('value'))}" for k, v in a.inputs.items())
        lines.append(f"- **Service state at detection**: {state or 'no signals configured'}")
    if r.finished_at:
        lines.append(
            f"- **Exposure window**: {duration((r.finished_at - start).total_seconds())}"
            f" from {'detection' if a else 'the request'} to the end of the rollback"
        )
    acked = [p for p in facts.pages if p.acknowledged_at]
    lines.append(
        f"- **Pages**: {len(facts.pages)} sent, {len(acked)} acknowledged"
        if facts.pages
        else "- **Pages**: none sent"
    )
    if r.incident_channel_id:
        lines.append(f"- **Incident channel**: <#{r.incident_channel_id}>")
    lines += [
        f"- **User impact**: _{WRITE_ME} affected users and requests, complaints._",
        f"- **Business impact**: _{WRITE_ME} revenue, SLAs with customers._",
    ]
    return "\n".join(lines)


def _people_sections(facts: ReviewFacts) -> list[str]:
    r = facts.rollback
    observations = [f"- The rollback took {sla_verdict(facts)}."]
    if r.status == RollbackStatus.FAILED:
        failed = next((s for s in facts.steps if s.status == StepStatus.FAILED), None)
        where = f" at {failed.phase}: {failed.name}" if failed else ""
        observations.append(f"- The rollback failed{where}; the service needs a decision.")
    if r.status == RollbackStatus.ABORTED:
        observations.append("- The rollback was aborted; check the state the service was left in.")
    actions: list[list[str]] = []
    owner = facts.who(r.requested_by)
    if r.status == RollbackStatus.FAILED:
        actions.append(["Restore the service: retry, roll forward or fix", owner])
    if r.status == RollbackStatus.ABORTED:
        actions.append(["Confirm the service's state after the abort", owner])
    actions.append(["Write the root cause and mark it written in Slack", owner])
    actions.append([f"_{WRITE_ME} prevention measures_", "_owner_"])
    return [
        f"{ROOT_CAUSE_HEADING}\n{ROOT_CAUSE_PROMPT}",
        "## Contributing Factors\n"
        f"_{WRITE_ME} what made it possible or worse (testing gaps, monitoring, process)._",
        "## Lessons Learned\n"
        + "\n".join(observations)
        + f"\n- _{WRITE_ME} what went well, what did not._",
        "## Action Items\n" + table(["Action", "Owner", "Status"], [[*a, "open"] for a in actions]),
    ]


def root_cause_is_written(markdown: str) -> bool:
    """True once the root-cause section holds something other than the prompt (tolerant of how
    Slack hands a canvas back: heading level, emphasis and emoji may change)."""
    lines = markdown.splitlines()
    heading = re.compile(r"^#+\s*root cause\s*$", re.IGNORECASE)
    start = next((i for i, line in enumerate(lines) if heading.match(line.strip())), None)
    if start is None:
        return False
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("#"):
            break
        body.append(line)
    text = " ".join(body).strip(" _*\n")
    return bool(text) and "to be written" not in text.lower()
