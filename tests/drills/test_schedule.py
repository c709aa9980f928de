"""Scheduled drills: the next occurrence in the service's time zone, durable due work that
survives a restart, one drill per occurrence with two replicas on PostgreSQL, and a failed one
that mentions the responders and pages nobody."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalog.drills import Drills
from bot.drills.schedule import next_occurrence
from bot.sim.kube_access import AccessRule
from tests.drills.world import World, checkout_yaml
from tests.guard.conftest import FakeClock
from tests.postgres import fresh_schema

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = '{schedule: weekly, day: tue, at: "10:00"}'


@pytest.mark.parametrize(
    ("drills", "after", "expected"),
    [
        # Monday 2026-11-30, winter (CET, UTC+1): Tuesday 10:00 is 09:00 UTC
        (
            Drills(schedule="weekly", day="tue"),
            datetime(2026, 11, 30, 12, tzinfo=UTC),
            datetime(2026, 12, 1, 9, tzinfo=UTC),
        ),
        # exactly at the time: the next week's
        (
            Drills(schedule="weekly", day="tue"),
            datetime(2026, 12, 1, 9, tzinfo=UTC),
            datetime(2026, 12, 8, 9, tzinfo=UTC),
        ),
        # summer (CEST, UTC+2): 08:00 UTC
        (
            Drills(schedule="weekly", day="tuesday", at="10:00"),
            datetime(2026, 7, 1, tzinfo=UTC),
            datetime(2026, 7, 7, 8, tzinfo=UTC),
        ),
        # monthly on the 1st, 09:30; after this month's: next month's
        (
            Drills(schedule="monthly", day=1, at="09:30"),
            datetime(2026, 12, 1, 9, tzinfo=UTC),
            datetime(2027, 1, 1, 8, 30, tzinfo=UTC),
        ),
        # monthly on the first Monday
        (
            Drills(schedule="monthly", day="mon"),
            datetime(2026, 12, 8, tzinfo=UTC),
            datetime(2027, 1, 4, 9, tzinfo=UTC),
        ),
        (Drills(), datetime(2026, 12, 8, tzinfo=UTC), None),
    ],
)
def test_next_occurrence(drills: Drills, after: datetime, expected: datetime | None) -> None:
    assert next_occurrence(drills, BERLIN, after) == expected


MONDAY = datetime(2026, 11, 30, 12, tzinfo=UTC)
DUE = datetime(2026, 12, 1, 9, tzinfo=UTC)  # Tuesday 10:00 in Berlin


def _scheduled(**extra: Any) -> str:
    return checkout_yaml(drills=WEEKLY, timezone="Europe/Berlin", **extra)


def test_a_scheduled_drill_runs_once_at_its_time_and_survives_a_restart(
    make_world: Any, tmp_path: Any
) -> None:
    clock = FakeClock(MONDAY)
    url = f"sqlite:///{tmp_path / 'drills.db'}"
    first: World = make_world(_scheduled(), clock=clock, database_url=url)
    work = first.deps.repo.get_work("drill:checkout:2026-12-01T09:00Z")
    assert work is not None and work.due_at == DUE
    assert first.deps.due.tick() == 0  # not yet
    first.h.bot.close()  # a restart before the drill is due

    clock.now = DUE + timedelta(minutes=1)
    second: World = make_world(_scheduled(), clock=clock, database_url=url)
    assert second.deps.due.tick() == 1
    assert second.deps.due.tick() == 0  # done: not twice
    drills = second.deps.repo.list_drills("checkout")
    assert [(d.trigger, d.status) for d in drills] == [("scheduled", "passed")]
    report = second.h.posted()[-1].params["text"]
    assert "Readiness drill #1 of *checkout*: ready" in report
    assert "<@U0ONCALL1>" not in report  # a passed drill bothers nobody
    assert second.deps.repo.get_work("drill:checkout:2026-12-08T09:00Z") is not None


def test_a_failed_scheduled_drill_mentions_the_responders_and_pages_nobody(
    make_world: Any,
) -> None:
    clock = FakeClock(MONDAY)
    w: World = make_world(_scheduled(), clock=clock)
    w.kube_sim.set_access_rules([AccessRule(("get", "list"), ("*",), ("*",))])
    clock.now = DUE + timedelta(seconds=5)

    assert w.deps.due.tick() == 1

    report = w.h.posted()[-1].params
    assert "NOT ready" in report["text"] and "<@U0ONCALL1>: please have a look." in report["text"]
    assert "scheduled (weekly, tue 10:00 Europe/Berlin)" in str(report["blocks"])
    assert w.h.slack.calls_to("chat.postMessage")[-1].params["channel"] == "C0DEPLOYS"
    kinds = {e.kind for e in w.deps.repo.list_audit_events(service="checkout")}
    assert "drill.finished" in kinds and not any(k.startswith("page") for k in kinds)


def test_a_changed_schedule_skips_the_old_occurrence(make_world: Any, tmp_path: Any) -> None:
    clock = FakeClock(MONDAY)
    url = f"sqlite:///{tmp_path / 'drills.db'}"
    make_world(_scheduled(), clock=clock, database_url=url).h.bot.close()
    clock.now = DUE + timedelta(minutes=1)
    friday = '{schedule: weekly, day: fri, at: "10:00"}'
    w: World = make_world(
        checkout_yaml(drills=friday, timezone="Europe/Berlin"), clock=clock, database_url=url
    )
    assert w.deps.due.tick() == 1  # the Tuesday item ran, and did nothing
    assert w.deps.repo.list_drills() == []
    assert w.deps.repo.get_work("drill:checkout:2026-12-04T09:00Z") is not None


@pytest.mark.postgres
def test_two_replicas_on_postgresql_run_one_drill(make_world: Any) -> None:
    clock = FakeClock(MONDAY)
    with fresh_schema() as url:
        replicas: list[World] = [
            make_world(_scheduled(), clock=clock, database_url=url) for _ in range(2)
        ]
        clock.now = DUE + timedelta(seconds=1)
        ran = [0, 0]

        def tick(n: int) -> None:
            ran[n] = replicas[n].deps.due.tick()

        threads = [threading.Thread(target=tick, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(ran) == [0, 1]
        assert len(replicas[0].deps.repo.list_drills("checkout")) == 1
        reports = [c for c in replicas[0].h.posted() if "Readiness drill" in c.params["text"]]
        assert len(reports) == 1
        for w in replicas:
            w.h.bot.close()


def test_a_drill_its_process_abandoned_is_ended_and_said_once(
    make_world: Any, tmp_path: Any
) -> None:
    clock = FakeClock(MONDAY)
    url = f"sqlite:///{tmp_path / 'drills.db'}"
    w: World = make_world(checkout_yaml(), clock=clock, database_url=url)
    w.drill("checkout")  # a drill that ends leaves no stale check behind
    assert w.deps.repo.get_work("drill-stale:1").status == "cancelled"  # type: ignore[union-attr]
    # the row of a drill whose process died right after storing it (and its safety net)
    drill_id = w.deps.repo.start_drill("checkout", clock(), trigger="manual", requested_by="U0X")
    assert drill_id == 2
    w.deps.due.schedule(
        "drill.stale", "drill-stale:2", clock() + timedelta(minutes=10), {"drill": 2}
    )
    w.h.bot.close()

    clock.now += timedelta(minutes=11)
    again: World = make_world(checkout_yaml(), clock=clock, database_url=url)
    assert again.deps.due.tick() == 1
    assert again.deps.due.tick() == 0
    drill = again.deps.repo.get_drill(2)
    assert drill is not None and drill.status == "error" and drill.message_ts is not None
    report = again.h.posted()[-1].params["text"]
    assert "Readiness drill #2 of *checkout*: could not finish" in report
    assert "the bot stopped during this drill" in str(again.h.posted()[-1].params["blocks"])
