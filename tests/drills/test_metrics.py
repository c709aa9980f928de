"""The drill gauges of /metrics, and the alert rules RollbackDrillOverdue and RollbackNotReady
(``promtool check rules`` and ``promtool test rules``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from bot.drills.schedule import next_occurrence
from bot.sim.kube_access import AccessRule
from tests.conftest import service_yaml
from tests.drills.world import NS, World, checkout_yaml
from tests.prometheus_server import require_prometheus
from tests.scenarios.test_metrics_and_alerts import sample, scrape

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rollback-alerts.yml"
DRILL_RULE_TESTS = RULES.with_name("rollback-drill-alerts.test.yml")


def test_metrics_show_the_last_success_and_the_failed_checks(make_world: Any) -> None:
    weekly = "{schedule: weekly, day: tue}"
    w: World = make_world(checkout_yaml(drills=weekly), service_yaml("search", None))
    w.kube_sim.seed_deployment(NS, "search-api", images=["search:v1"])  # no earlier revision
    before = scrape(w.h)
    assert sample(before, "rollback_bot_drill_checks_failed", service="checkout") is None
    assert sample(before, "rollback_bot_drill_schedule_seconds", service="checkout") == 604800
    # the schedule's first occurrence (stored at start-up), for a service never drilled yet
    svc = w.deps.catalog.get("checkout")
    assert svc is not None
    first = next_occurrence(svc.drills, svc.tz, w.deps.clock())
    assert first is not None
    since = "rollback_bot_drill_scheduled_since_timestamp_seconds"
    assert sample(before, since, service="checkout") == first.timestamp()
    assert sample(before, since, service="search") is None

    w.drill("checkout")
    w.drill("search")

    after = scrape(w.h)
    drill = w.deps.repo.last_drill("checkout", is_passed=True)
    assert drill is not None and drill.finished_at is not None
    assert (
        sample(after, "rollback_bot_drill_last_success_timestamp_seconds", service="checkout")
        == drill.finished_at.timestamp()
    )
    assert sample(after, "rollback_bot_drill_checks_failed", service="checkout") == 0
    failed = sample(after, "rollback_bot_drill_checks_failed", service="search")
    assert failed is not None and failed >= 1
    assert (
        sample(after, "rollback_bot_drill_last_success_timestamp_seconds", service="search") is None
    )
    assert sample(after, "rollback_bot_drill_schedule_seconds", service="search") is None

    # a later failed drill of checkout: the last success stays, the failed checks show
    w.kube_sim.set_access_rules([AccessRule(("get", "list"), ("*",), ("*",))])
    w.drill("checkout")
    again = scrape(w.h)
    assert sample(again, "rollback_bot_drill_checks_failed", service="checkout") == 2
    assert (
        sample(again, "rollback_bot_drill_last_success_timestamp_seconds", service="checkout")
        == drill.finished_at.timestamp()
    )


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binaries = require_prometheus()
    return subprocess.run(
        [binaries.promtool, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_drill_alert_rules_pass_promtool() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", str(DRILL_RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
