"""A multi-region rollback resumed mid-wave (finished regions are not repeated), and each
region's own SLA clock and breach alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import Harness, catalog_yaml
from tests.regions.clusters import Clusters, clusters, region_yaml, until

GATED = (
    "\n    phases:\n"
    "      application:\n"
    "        - {kind: rollout_undo}\n"
    "        - {kind: wait_rollout}\n"
    "      verification:\n"
    "        - {kind: manual_gate, prompt: Go on when the region looks right, name: Region check}"
)
THREE = {"eu-west-1": "eu", "us-east-1": "us", "ap-south-1": "ap"}
WAVES = "[[eu-west-1], [us-east-1, ap-south-1]]"


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def gated_catalog(regions: dict[str, str], waves: str | None = None) -> str:
    return catalog_yaml(region_yaml(regions, waves) + GATED)


def gate_of(h: Harness, region: str) -> int:
    (gate,) = [
        s
        for s in h.bot.deps.repo.list_steps(1)
        if s.region == region and s.kind == "manual_gate" and s.status == "running"
    ]
    assert gate.id is not None
    return gate.id


def gate_running(h: Harness, region: str) -> bool:
    return any(
        s.region == region and s.kind == "manual_gate" and s.status == "running"
        for s in h.bot.deps.repo.list_steps(1)
    )


def patches(found: Clusters, context: str) -> int:
    return sum(1 for w in found.writes(context) if w[0] == "PATCH")


def test_a_restart_mid_wave_resumes_without_repeating_finished_regions(
    make_harness: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with clusters(tmp_path, "eu", "us", "ap") as three:
        first: Harness = make_harness(
            gated_catalog(THREE, WAVES), prometheus_url=None, kube=three.client(), database_url=url
        )
        first.slash("run checkout --immediate bad release")
        until(lambda: gate_running(first, "eu-west-1"), "eu-west-1's gate")
        first.bot.deps.repo.record_step_detail(gate_of(first, "eu-west-1"), {"continued_by": "U1"})
        until(
            lambda: gate_running(first, "us-east-1") and gate_running(first, "ap-south-1"),
            "the second wave's gates",
        )
        first.bot.deps.repo.record_step_detail(gate_of(first, "us-east-1"), {"continued_by": "U1"})
        until(
            lambda: all(
                s.status == "succeeded"
                for s in first.bot.deps.repo.list_steps(1)
                if s.region == "us-east-1"
            ),
            "us-east-1 to finish",
        )
        first.bot.deps.engine.shutdown()  # mid-wave: ap-south-1 still waits at its gate
        assert first.bot.deps.repo.get_rollback(1).status == "running"  # type: ignore[union-attr]
        before = {c: patches(three, c) for c in ("eu", "us", "ap")}
        assert before == {"eu": 1, "us": 1, "ap": 1}

        second: Harness = make_harness(
            gated_catalog(THREE, WAVES), prometheus_url=None, kube=three.client(), database_url=url
        )
        assert second.bot.deps.engine.resume_all() == [1]
        until(lambda: gate_running(second, "ap-south-1"), "ap-south-1's gate again")
        second.bot.deps.repo.record_step_detail(
            gate_of(second, "ap-south-1"), {"continued_by": "U1"}
        )
        assert second.bot.deps.engine.wait_idle(20)

        assert second.bot.deps.repo.get_rollback(1).status == "succeeded"  # type: ignore[union-attr]
        assert {c: patches(three, c) for c in ("eu", "us", "ap")} == before  # nothing repeated
        started = [s for s in second.bot.deps.repo.list_steps(1) if s.attempt > 1]
        assert [(s.region, s.kind) for s in started] == [("ap-south-1", "manual_gate")]


def test_each_region_has_its_own_sla_and_breach_alert(make_harness: Any, tmp_path: Path) -> None:
    clock = ShiftedClock()
    regions = {"eu-west-1": "eu, sla_minutes: 5", "us-east-1": "us, sla_minutes: 20"}
    with clusters(tmp_path, "eu", "us") as two:
        h: Harness = make_harness(
            gated_catalog(regions), prometheus_url=None, kube=two.client(), clock=clock
        )
        deps = h.bot.deps
        h.slash("run checkout --immediate bad release")
        until(lambda: gate_running(h, "eu-west-1"), "eu-west-1's gate")
        assert deps.repo.get_work("sla-check:1") is None  # no SLA for the whole rollback
        assert deps.repo.get_work("sla-check:1:us-east-1") is None  # its clock has not started

        def alerts(region: str) -> list[str]:
            return [
                str(m.get("text", ""))
                for m in h.slack.messages("C0DEPLOYS")
                if "RollbackTakingTooLong" in str(m.get("text", "")) and region in str(m["text"])
            ]

        clock.offset = timedelta(minutes=5, seconds=1)
        deps.due.tick()
        until(lambda: alerts("eu-west-1"), "eu-west-1's SLA alert")
        (alert,) = alerts("eu-west-1")
        assert "of *checkout* in *eu-west-1* has been running for 5 mi" in alert
        assert "(SLA: 5 minutes)" in alert
        assert alerts("us-east-1") == []

        deps.repo.record_step_detail(gate_of(h, "eu-west-1"), {"continued_by": "U1"})
        until(lambda: gate_running(h, "us-east-1"), "us-east-1's gate")
        check = deps.repo.get_work("sla-check:1:us-east-1")
        assert check is not None
        assert check.due_at - (clock() - timedelta(seconds=30)) > timedelta(minutes=19)

        clock.offset = timedelta(minutes=15)  # us-east-1 has run ~10 minutes of its 20
        deps.due.tick()
        assert alerts("us-east-1") == []
        clock.offset = timedelta(minutes=25, seconds=5)
        deps.due.tick()
        until(lambda: alerts("us-east-1"), "us-east-1's SLA alert")
        (us_alert,) = alerts("us-east-1")
        assert "(SLA: 20 minutes)" in us_alert
        assert len(alerts("eu-west-1")) == 1  # told once

        deps.repo.record_step_detail(gate_of(h, "us-east-1"), {"continued_by": "U1"})
        h.wait_rollbacks()
        assert deps.repo.get_rollback(1).status == "succeeded"  # type: ignore[union-attr]


def test_an_abort_mid_wave_stops_every_region_and_says_where_each_is(
    make_harness: Any, tmp_path: Path
) -> None:
    regions = {"eu-west-1": "eu", "us-east-1": "us"}
    with clusters(tmp_path, "eu", "us") as two:
        h: Harness = make_harness(gated_catalog(regions), prometheus_url=None, kube=two.client())
        h.slash("run checkout --immediate bad release")
        until(lambda: gate_running(h, "eu-west-1"), "eu-west-1's gate")
        h.slash("abort 1 wrong service")
        h.wait_rollbacks()

        assert h.bot.deps.repo.get_rollback(1).status == "aborted"  # type: ignore[union-attr]
        us = [s for s in h.bot.deps.repo.list_steps(1) if s.region == "us-east-1"]
        assert {s.status for s in us} == {"skipped"}
        assert two.writes("us") == []
        notes = " ".join(str(m.get("text", "")) for m in h.slack.messages("C0DEPLOYS"))
        notes += " ".join(str(c.params.get("text", "")) for c in h.posted())
        assert (
            "*eu-west-1* (stopped part-way): checkout-api: revision 4 (app=shop/checkout:v2)"
            in notes
        )
        assert "*us-east-1* (not run): checkout-api: revision 3 (app=shop/checkout:v3)" in notes
