"""The estimate: how long this service's rollback takes, phase by phase, against its SLA.

Each phase's duration is the median of the service's past succeeded rollbacks that had that
phase; without any, of its succeeded rehearsals in staging (the rollback half: staging timing,
said so); a phase never seen yet counts with its steps' timeouts (the most it may take). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median

from bot.drills.checks import Check, failed, ok, unknown
from bot.rehearsal.forward import ROLL_FORWARD, ROLL_FORWARD_PHASE
from bot.rollback.plan import PHASE_TITLES, Plan

NAME = "Estimate"


def minutes(seconds: float) -> str:
    """``45 s``, ``6 min``, ``1 min 30 s``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    m, s = divmod(whole, 60)
    return f"{m} min" + (f" {s} s" if s else "")


def phase_estimates(
    plan: Plan, history: Sequence[Mapping[str, float]]
) -> list[tuple[str, float, bool]]:
    """(phase, seconds, is_measured) in the plan's order."""
    out = []
    for phase in plan.phases:
        seen = [h[phase] for h in history if phase in h]
        if seen:
            out.append((phase, float(median(seen)), True))
        else:
            worst = sum(s.timeout_seconds for s in plan.steps if s.phase == phase)
            out.append((phase, worst, False))
    return out


def rollback_halves(rehearsals: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """The rehearsals' phases without the roll-forward: what a production rollback of the same
    plan does. The roll-forward's steps are timed under ``roll_forward``; a rehearsal stored
    before that marker has none, and there the cleanup phase was the roll-forward."""
    halves = [
        {
            p: s
            for p, s in r.items()
            if p != (ROLL_FORWARD if ROLL_FORWARD in r else ROLL_FORWARD_PHASE)
        }
        for r in rehearsals
    ]
    return [h for h in halves if h]


def _source(history: Sequence[Mapping[str, float]], is_rehearsed: bool) -> str:
    if not history:
        return "no past rollback: step timeouts"
    if is_rehearsed:
        n = len(history)
        return f"no past rollback: median of {n} rehearsal{'s' if n != 1 else ''} in staging"
    return f"median of {len(history)} past rollbacks"


def estimate_check(
    plan: Plan,
    history: Sequence[Mapping[str, float]],
    sla_minutes: int,
    service: str,
    rehearsals: Sequence[Mapping[str, float]] = (),
) -> Check:
    """``history``: phase seconds of past production rollbacks; ``rehearsals``: of the
    rollback half of succeeded rehearsals, used only when production has none."""
    is_rehearsed = not history and bool(rehearsals)
    if is_rehearsed:
        history = rehearsals
    phases = phase_estimates(plan, history)
    total = sum(seconds for _, seconds, _ in phases)
    sla = sla_minutes * 60
    parts = ", ".join(
        f"{PHASE_TITLES[p].lower()} {minutes(s)}" + ("" if measured else " (timeouts)")
        for p, s, measured in phases
    )
    is_measured = all(measured for _, _, measured in phases)
    source = _source(history, is_rehearsed)
    head = f"estimated {minutes(total)} of a {sla_minutes} min SLA ({parts}; {source})"
    if total <= sla:
        return ok(NAME, head)
    if is_measured:
        measured_by = "Rehearsals in staging" if is_rehearsed else "Past rollbacks"
        return failed(
            NAME,
            head,
            f"{measured_by} of {service} took longer than its SLA: speed up the slow phase"
            " (readiness probes, rollout surge) or agree a longer sla_minutes.",
        )
    return unknown(
        NAME,
        f"{head}: the timeouts allow more than the SLA, and no rollback has measured it yet",
        f"`/rollback drill {service} --rehearse` times a real rollback in staging; lower the"
        " steps' timeout_seconds towards what it shows.",
    )
