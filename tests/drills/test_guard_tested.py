"""The guard's ``safety_checks.verify_rollback_tested`` reads the last successful drill: none, or
one older than ``drills.max_age_days`` (default twice the schedule), turns the automatic rollback
into a question."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.guard.firing import safety_problems
from tests.drills.world import World, checkout_yaml

GUARDED = (
    "{enabled: true, triggers: [{metric: error_rate, threshold: 0.01, duration_seconds: 60}],"
    " safety_checks: {verify_rollback_tested: true}}"
)


def _problems(w: World) -> list[str]:
    service = w.deps.catalog.get("checkout")
    assert service is not None
    return [p for p in safety_problems(w.deps, service, service.guard) if "tested" in p]


def _drill(w: World, days_ago: float, checks: list[dict[str, str]]) -> None:
    at = w.deps.clock() - timedelta(days=days_ago)
    drill_id = w.deps.repo.start_drill("checkout", at, trigger="scheduled")
    assert drill_id is not None
    w.deps.repo.finish_drill(drill_id, at, checks=checks, duration_seconds=1)


OK = [{"name": "Target", "state": "ok", "reason": "", "todo": ""}]
BAD = [{"name": "Target", "state": "failed", "reason": "", "todo": ""}]


def test_without_a_passed_drill_the_guard_asks(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(auto_rollback=GUARDED))
    assert _problems(w) == [
        "verify_rollback_tested: no successful drill of this rollback is recorded"
        " (`/rollback drill checkout`)"
    ]
    _drill(w, 0, BAD)  # a failed drill is no proof
    assert len(_problems(w)) == 1


def test_a_recent_passed_drill_lets_the_guard_roll_back(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(auto_rollback=GUARDED))
    _drill(w, 3, OK)
    assert _problems(w) == []


def test_a_stale_drill_is_twice_the_schedule_old(make_world: Any) -> None:
    weekly = "{schedule: weekly, day: tue}"
    w: World = make_world(checkout_yaml(auto_rollback=GUARDED, drills=weekly))
    _drill(w, 15, OK)
    assert _problems(w) == [
        "verify_rollback_tested: the last successful drill (#1) is older than 14 days"
        " (`/rollback drill checkout`)"
    ]


def test_max_age_days_overrides_the_default(make_world: Any) -> None:
    w: World = make_world(checkout_yaml(auto_rollback=GUARDED, drills="{max_age_days: 30}"))
    _drill(w, 20, OK)
    assert _problems(w) == []
