"""The readiness report: one line per check (✓ / ✗ / unknown, the reason, what to do), as a
Slack message within Slack's limits (the notify builders cut what is too long)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from bot.catalog.load import staging_key
from bot.drills.checks import MARKS, Check, State
from bot.notify import blocks
from bot.notify.limits import Block, fit_message
from bot.rollback.lifecycle import RollbackStatus
from storage.drill_models import Drill, DrillStatus
from storage.models import Rollback

if TYPE_CHECKING:
    from bot.deps import Deps

ICONS: dict[str, str] = {
    DrillStatus.PASSED: ":white_check_mark:",
    DrillStatus.FAILED: ":x:",
    DrillStatus.ERROR: ":warning:",
    DrillStatus.RUNNING: ":hourglass_flowing_sand:",
}


def verdict(drill: Drill) -> str:
    """``ready``, ``NOT ready (2 of 7 checks failed or unknown)`` or ``could not finish``."""
    if drill.status == DrillStatus.PASSED:
        return "ready"
    if drill.status == DrillStatus.ERROR:
        return "could not finish"
    if drill.status == DrillStatus.RUNNING:
        return "running"
    return f"NOT ready ({drill.failed_checks} of {len(drill.checks)} checks ✗ or unknown)"


def check_line(c: Check) -> str:
    line = f"{MARKS[c.state]} *{blocks.escape(c.name)}* — {blocks.free_text(c.reason)}"
    if c.state != State.OK and c.todo:
        line += f"\n      → {blocks.free_text(c.todo)}"
    return line


def report_message(
    drill: Drill, service_name: str, *, mention: Sequence[str] = (), schedule: str = ""
) -> tuple[str, list[Block]]:
    """The report of a finished drill; ``mention``: user ids to name on a failed one."""
    checks = [Check.from_json(c) for c in drill.checks]
    head = (
        f"{ICONS.get(drill.status, '')} Readiness drill #{drill.id} of *{service_name}*:"
        f" {verdict(drill)} — a drill: nothing was changed"
    )
    if drill.status != DrillStatus.PASSED and mention:
        head += "\n" + " ".join(blocks.person(u) for u in mention) + ": please have a look."
    body: list[Block] = [blocks.section(head)]
    if drill.error:
        body.append(
            blocks.section(
                f"The drill stopped: {blocks.free_text(drill.error)}. Nothing was changed."
            )
        )
    body += [blocks.section(check_line(c)) for c in checks]
    who = "scheduled" + (f" ({schedule})" if schedule else "")
    if drill.requested_by:
        who = f"asked by {blocks.person(drill.requested_by)}"
    took = f"took {drill.duration_seconds:.1f} s" if drill.duration_seconds is not None else ""
    body.append(blocks.context(f"Drill #{drill.id} · {who} · {took}"))
    text = head + "\n" + "\n".join(f"{MARKS[c.state]} {c.name}: {c.reason}" for c in checks)
    return fit_message(text, body)


def ago(then: datetime, now: datetime) -> str:
    """``3 days ago``, ``5 h ago``, ``just now``."""
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


def last_drill_text(drill: Drill | None, now: datetime) -> str:
    """``last drill: 3 days ago ✓`` (App Home, history)."""
    if drill is None or drill.finished_at is None:
        return "last drill: never"
    mark = "✓" if drill.status == DrillStatus.PASSED else "✗"
    return f"last drill: {ago(drill.finished_at, now)} {mark}"


def last_rehearsal_text(rehearsal: Rollback | None, now: datetime) -> str:
    """``last rehearsal: 5 days ago ✓`` (App Home, history)."""
    if rehearsal is None or rehearsal.finished_at is None:
        return "last rehearsal: never"
    mark = "✓" if rehearsal.status == RollbackStatus.SUCCEEDED else "✗"
    return f"last rehearsal: {ago(rehearsal.finished_at, now)} {mark}"


def readiness_lines(deps: Deps, services: Sequence[str] | None = None) -> list[str]:
    """``*checkout* — last drill: 3 days ago ✓ · last rehearsal: 5 days ago ✓`` for each
    service (App Home); the rehearsal part for a service with a ``staging:`` target or one."""
    latest, rehearsals = deps.repo.latest_drills(), deps.repo.latest_rehearsals()
    now = deps.clock()
    lines = []
    for name in deps.catalog.names if services is None else services:
        line = f"*{name}* — {last_drill_text(latest.get(name), now)}"
        rehearsal = rehearsals.get(staging_key(name))
        service = deps.catalog.get(name)
        if rehearsal is not None or (service is not None and service.spec.staging is not None):
            line += f" · {last_rehearsal_text(rehearsal, now)}"
        lines.append(line)
    return lines


def drill_history(deps: Deps, service: str, limit: int = 5) -> str:
    """The drills part of ``/rollback history <service>``."""
    rows = [d for d in deps.repo.list_drills(service, limit=limit) if d.finished_at is not None]
    last = last_drill_text(rows[0] if rows else None, deps.clock())
    lines = [f"*Readiness drills of {service}*: {last}"]
    for d in rows:
        assert d.finished_at is not None
        checks = [Check.from_json(c) for c in d.checks]
        passed = sum(1 for c in checks if c.state == State.OK)
        failing = ", ".join(c.name for c in checks if c.state != State.OK)
        lines.append(
            f"• drill #{d.id} {verdict(d)} · {d.finished_at:%Y-%m-%d %H:%M} UTC · {d.trigger}"
            f" · {passed}/{len(checks)} ✓" + (f" · not ✓: {failing}" if failing else "")
        )
    if not rows:
        lines.append(f"No drill yet: `/rollback drill {service}`.")
    return "\n".join(lines)
