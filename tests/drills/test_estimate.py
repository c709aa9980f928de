"""The drill's estimate: production's past rollbacks first, else the service's rehearsals in
staging (the rollback half, said so), else the steps' timeouts. Pure."""

from __future__ import annotations

from bot.drills.checks import State
from bot.drills.estimate import estimate_check, rollback_halves
from bot.rollback.plan import Plan, step

PLAN = Plan(
    "undo",
    (
        step("preparation", "snapshot", "Snapshot", timeout_seconds=60),
        step("application", "rollout_undo", "Undo", timeout_seconds=600),
        step("verification", "http_check", "Health", timeout_seconds=300),
    ),
)
REHEARSALS = [
    {"preparation": 2.0, "application": 120.0, "verification": 10.0},
    {"preparation": 4.0, "application": 140.0, "verification": 20.0},
]


def test_without_production_history_the_rehearsals_give_the_estimate() -> None:
    check = estimate_check(PLAN, [], 15, "checkout", rehearsals=REHEARSALS)
    assert check.state == State.OK
    assert check.reason == (
        "estimated 2 min 28 s of a 15 min SLA (preparation 3 s, application rollback 2 min 10 s,"
        " verification 15 s; no past rollback: median of 2 rehearsals in staging)"
    )


def test_production_history_wins_over_the_rehearsals() -> None:
    production = [{"preparation": 1.0, "application": 60.0, "verification": 5.0}]
    check = estimate_check(PLAN, production, 15, "checkout", rehearsals=REHEARSALS)
    assert "application rollback 1 min," in check.reason
    assert "median of 1 past rollbacks" in check.reason and "staging" not in check.reason


def test_a_phase_no_rehearsal_ran_counts_with_its_timeouts() -> None:
    only_application = [{"application": 90.0}]
    check = estimate_check(PLAN, [], 15, "checkout", rehearsals=only_application)
    assert "preparation 1 min (timeouts), application rollback 1 min 30 s" in check.reason
    assert "median of 1 rehearsal in staging" in check.reason


def test_rehearsals_slower_than_the_sla_fail_the_check_and_say_where_measured() -> None:
    slow = [{"preparation": 1.0, "application": 1000.0, "verification": 1.0}]
    check = estimate_check(PLAN, [], 15, "checkout", rehearsals=slow)
    assert check.state == State.FAILED
    assert check.todo.startswith("Rehearsals in staging of checkout took longer than its SLA")


def test_without_history_or_rehearsals_the_timeouts_leave_it_unknown() -> None:
    check = estimate_check(PLAN, [], 15, "checkout")
    assert check.state == State.UNKNOWN
    assert "no past rollback: step timeouts" in check.reason
    assert "--rehearse" in check.todo


def test_a_rehearsal_s_roll_forward_is_not_counted_as_the_plan_s_cleanup() -> None:
    rows = [{"application": 100.0, "cleanup": 400.0}, {"cleanup": 30.0}]
    assert rollback_halves(rows) == [{"application": 100.0}]
    plan = Plan("undo", (*PLAN.steps, step("cleanup", "http_check", "Tidy", timeout_seconds=20)))
    check = estimate_check(plan, [], 15, "checkout", rehearsals=rollback_halves(rows))
    assert "cleanup 20 s (timeouts)" in check.reason


def test_a_marked_roll_forward_leaves_the_rollback_s_own_cleanup_in_its_half() -> None:
    rows = [{"stop_traffic": 5.0, "cleanup": 40.0, "roll_forward": 300.0}]
    assert rollback_halves(rows) == [{"stop_traffic": 5.0, "cleanup": 40.0}]
