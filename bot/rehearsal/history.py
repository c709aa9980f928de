"""A service's rehearsals beside its production rollbacks in ``/rollback history <service>``
(their rows are under ``<service>@staging``): one line each, what was rolled back and forward
and how long the rollback took against the staging target's SLA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.catalog.load import staging_key
from bot.drills.report import last_rehearsal_text
from bot.notify.blocks import escape_keeping_mentions, person, status_words
from bot.rehearsal.report import Timings, seconds_text, started_from, timings
from bot.rollback.lifecycle import TERMINAL, RollbackStatus
from storage.models import Rollback, RollbackStep

if TYPE_CHECKING:
    from bot.deps import Deps


def _what(steps: Sequence[RollbackStep], t: Timings) -> str:
    """``rolled back 3→2 and forward``, or how far it got."""
    undo = started_from(steps)
    back = f"rolled back {undo.get('from_revision')}→{undo.get('to_revision')}" if undo else ""
    if t.rollback is None:
        return "nothing rolled back"
    if not t.is_rollback_done:
        return f"{back or 'the rollback'} did not finish"
    back = back or "rolled back"
    if t.is_roll_forward_done:
        return f"{back} and forward"
    return f"{back}, roll-forward {'not run' if t.roll_forward is None else 'did not finish'}"


def _took(t: Timings, sla_minutes: int | None) -> str:
    """``, 2 min 10 s of a 15 min SLA`` (the rollback half), or nothing when it did not end."""
    if t.rollback is None or not t.is_rollback_done:
        return ""
    took = f", {seconds_text(t.rollback)}"
    if sla_minutes is None:
        return took
    over = " :warning: over it" if t.rollback > sla_minutes * 60 else ""
    return f"{took} of a {sla_minutes} min SLA{over}"


def rehearsal_line(r: Rollback, steps: Sequence[RollbackStep], sla_minutes: int | None) -> str:
    """``• rehearsal #7 in staging succeeded: rolled back 3→2 and forward, 2 min 10 s of a
    15 min SLA · 2026-12-04 20:00 UTC · by @anna``."""
    t = timings(steps)
    line = (
        f"• rehearsal #{r.id} in staging {status_words(r.status)}: {_what(steps, t)}"
        f"{_took(t, sla_minutes)} · {r.created_at:%Y-%m-%d %H:%M} UTC · by {person(r.requested_by)}"
    )
    if r.error and r.status != RollbackStatus.SUCCEEDED:
        line += f" · {escape_keeping_mentions(r.error)}"
    return line


def rehearsal_history(deps: Deps, service: str, limit: int = 5) -> str:
    """The rehearsals part of ``/rollback history <service>``; empty for a service without a
    ``staging:`` target that never had one."""
    key = staging_key(service)
    rows = deps.repo.list_rollbacks(service=key, limit=limit)
    twin = deps.catalog.target_of(key)
    if not rows and twin is None:
        return ""
    finished = next((r for r in rows if r.status in TERMINAL), None)
    lines = [f"*Rehearsals of {service} in staging*: {last_rehearsal_text(finished, deps.clock())}"]
    sla = twin.sla_minutes if twin is not None else None
    for r in rows:
        assert r.id is not None
        lines.append(rehearsal_line(r, deps.repo.list_steps(r.id), sla))
    if not rows:
        lines.append(f"No rehearsal yet: `/rollback drill {service} --rehearse`.")
    return "\n".join(lines)
