"""The estimate: how long this service's rollback takes, phase by phase, against its SLA.

Each phase's duration is the median of the service's past succeeded rollbacks that had that
phase; a phase never seen yet counts with its steps' timeouts (the most it may take). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median

from bot.drills.checks import Check, failed, ok, unknown
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


def estimate_check(
    plan: Plan, history: Sequence[Mapping[str, float]], sla_minutes: int, service: str
) -> Check:
    phases = phase_estimates(plan, history)
    total = sum(seconds for _, seconds, _ in phases)
    sla = sla_minutes * 60
    parts = ", ".join(
        f"{PHASE_TITLES[p].lower()} {minutes(s)}" + ("" if measured else " (timeouts)")
        for p, s, measured in phases
    )
    is_measured = all(measured for _, _, measured in phases)
    source = (
        f"median of {len(history)} past rollbacks" if history else "no past rollback: step timeouts"
    )
    head = f"estimated {minutes(total)} of a {sla_minutes} min SLA ({parts}; {source})"
    if total <= sla:
        return ok(NAME, head)
    if is_measured:
        return failed(
            NAME,
            head,
            f"Past rollbacks of {service} took longer than its SLA: speed up the slow phase"
            " (readiness probes, rollout surge) or agree a longer sla_minutes.",
        )
    return unknown(
        NAME,
        f"{head}: the timeouts allow more than the SLA, and no rollback has measured it yet",
        f"`/rollback drill {service} --rehearse` times a real rollback in staging; lower the"
        " steps' timeout_seconds towards what it shows.",
    )
