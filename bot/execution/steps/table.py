"""The one table of step kinds: for each kind its name, parameters, timeout and title (the
planner's rules, from ``bot.rollback.plan.STEP_RULES``), how it runs and how the dry run
describes it.

Adding a kind: its rules in ``STEP_RULES`` (the catalog check and the planner read them there,
below the execution layer), a run and a describe function in its family module, and one line
here. A kind with rules but no line here, or the reverse, stops the bot at import.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bot.execution.steps import control, http, metrics
from bot.execution.steps.base import Describe, StepRunner
from bot.execution.steps.kubernetes import objects, rollouts, traffic, waits
from bot.rollback.lifecycle import StepStatus
from bot.rollback.phases import NOT_SELECTED
from bot.rollback.plan import STEP_RULES, Plan, StepRules
from storage.repo.records import NewStep


@dataclass(frozen=True)
class StepKind:
    """One row of the table; every field is required."""

    name: str
    run: StepRunner
    describe: Describe
    rules: StepRules

    @property
    def title(self) -> str:
        return self.rules.title

    @property
    def required(self) -> frozenset[str]:
        return self.rules.required

    @property
    def optional(self) -> frozenset[str]:
        return self.rules.optional

    @property
    def timeout_seconds(self) -> float:
        return self.rules.timeout_seconds


def _table(*rows: tuple[str, StepRunner, Describe]) -> Mapping[str, StepKind]:
    table = {name: StepKind(name, run, describe, STEP_RULES[name]) for name, run, describe in rows}
    if missing := set(STEP_RULES) - set(table):
        raise RuntimeError(f"step kinds without run and describe: {', '.join(sorted(missing))}")
    return table


STEPS: Mapping[str, StepKind] = _table(
    ("snapshot", objects.snapshot, objects.describe_snapshot),
    ("rollout_undo", objects.rollout_undo, objects.describe_rollout_undo),
    ("set_image", objects.set_image, objects.describe_set_image),
    ("switch_selector", objects.switch_selector, objects.describe_switch_selector),
    ("scale", objects.scale, objects.describe_scale),
    ("restart", objects.restart, objects.describe_restart),
    ("rollout_abort", rollouts.rollout_abort, rollouts.describe_rollout_abort),
    ("shift_traffic", traffic.shift_traffic, traffic.describe_shift_traffic),
    ("run_job", waits.run_job, waits.describe_run_job),
    ("wait_rollout", waits.wait_rollout, waits.describe_wait_rollout),
    ("http_check", http.http_check, http.describe_http_check),
    ("http_request", http.http_request, http.describe_http_request),
    ("prometheus_gate", metrics.prometheus_gate, metrics.describe_prometheus_gate),
    ("wait", control.wait, control.describe_wait),
    ("manual_gate", control.manual_gate, control.describe_manual_gate),
)


def plan_rows(plan: Plan, skipped: Collection[str] = ()) -> list[NewStep]:
    """The plan as step rows, stored with the rollback before its first step runs: parameters,
    timeout and irreversibility go in each step's detail. The steps of the ``skipped`` phases
    (``--phases``) are stored as skipped: the engine, and a resume, never run them."""
    return [
        NewStep(
            s.phase,
            s.name,
            s.kind,
            {
                "params": dict(s.params),
                "timeout_seconds": s.timeout_seconds,
                "irreversible": s.is_irreversible,
            },
            status=StepStatus.SKIPPED if s.phase in skipped else StepStatus.PENDING,
            error=NOT_SELECTED if s.phase in skipped else None,
            region=s.region,
            wave=s.wave,
        )
        for s in plan.steps
    ]
