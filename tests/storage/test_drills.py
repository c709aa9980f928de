"""Drills in the database (SQLite and PostgreSQL): stored before the checks, finished with each
check, one per Slack delivery and per scheduled occurrence, the latest per service."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.rollback.lifecycle import (
    DrillDueKind,
    RollbackKind,
    RollbackStatus,
    StepStatus,
    drill_key,
)
from storage.repo.records import NewStep
from storage.repository import Repository
from tests.storage.threads import run_in_threads

OK = {"name": "Target", "state": "ok", "reason": "r", "todo": ""}
BAD = {"name": "Permissions", "state": "failed", "reason": "no", "todo": "grant"}


def test_a_drill_round_trips_with_its_checks(repo: Repository, now: datetime) -> None:
    drill_id = repo.start_drill(
        "checkout", now, trigger="manual", requested_by="U1", channel_id="C1"
    )
    assert drill_id is not None
    assert repo.get_drill(drill_id).status == "running"  # type: ignore[union-attr]
    assert repo.last_drill("checkout") is None  # a running drill is no result yet
    done = repo.finish_drill(
        drill_id, now + timedelta(seconds=2), checks=[OK, BAD], duration_seconds=1.5
    )
    assert done.status == "failed" and done.failed_checks == 1
    repo.set_drill_message(drill_id, "1.2")
    stored = repo.last_drill("checkout")
    assert stored is not None and stored.checks == [OK, BAD] and stored.message_ts == "1.2"
    assert stored.duration_seconds == 1.5 and stored.finished_at == now + timedelta(seconds=2)
    assert repo.last_drill("checkout", is_passed=True) is None


def test_latest_drills_per_service(repo: Repository, now: datetime) -> None:
    for service, checks, minutes in (
        ("checkout", [OK], 0),
        ("checkout", [BAD], 10),
        ("search", [OK], 5),
    ):
        drill_id = repo.start_drill(service, now + timedelta(minutes=minutes), trigger="manual")
        assert drill_id is not None
        repo.finish_drill(
            drill_id, now + timedelta(minutes=minutes), checks=checks, duration_seconds=1
        )
    latest = repo.latest_drills()
    assert {s: d.status for s, d in latest.items()} == {"checkout": "failed", "search": "passed"}
    passed = repo.latest_drills(is_passed=True)
    assert passed["checkout"].started_at == now and passed["search"].status == "passed"
    assert [d.service for d in repo.list_drills()] == ["search", "checkout", "checkout"]


def test_one_drill_per_delivery_and_per_occurrence(repo: Repository, now: datetime) -> None:
    keys = run_in_threads(
        8, lambda _: repo.start_drill("checkout", now, trigger="manual", delivery_key="d-1")
    )
    assert len([k for k in keys if k is not None]) == 1
    scheduled = run_in_threads(
        8,
        lambda _: repo.start_drill("checkout", now, trigger="scheduled", schedule_key="drill:x:1"),
    )
    assert len([k for k in scheduled if k is not None]) == 1


def test_an_error_is_not_a_pass(repo: Repository, now: datetime) -> None:
    drill_id = repo.start_drill("checkout", now, trigger="manual")
    assert drill_id is not None
    assert repo.finish_drill(drill_id, now, checks=[], duration_seconds=0).status == "failed"
    again = repo.start_drill("checkout", now, trigger="manual")
    assert again is not None
    broken = repo.finish_drill(again, now, checks=[OK], duration_seconds=0, error="Boom")
    assert broken.status == "error"


def test_phase_durations_of_succeeded_rollbacks(repo: Repository, now: datetime) -> None:
    for minutes, status in (
        (3, RollbackStatus.SUCCEEDED),
        (5, RollbackStatus.SUCCEEDED),
        (50, RollbackStatus.FAILED),
    ):
        rollback = repo.create_rollback(
            service="checkout",
            kind=RollbackKind.IMMEDIATE,
            strategy="undo",
            requested_by="U1",
            status=RollbackStatus.RUNNING,
            now=now,
            steps=[NewStep("application", "undo", "rollout_undo", {})],
        )
        assert rollback.id is not None
        step = repo.list_steps(rollback.id)[0]
        assert step.id is not None
        repo.start_step(step.id, now)
        repo.finish_step(step.id, StepStatus.SUCCEEDED, now + timedelta(minutes=minutes))
        repo.set_rollback_status(rollback.id, status, now + timedelta(minutes=minutes))
    assert sorted(d["application"] for d in repo.phase_durations("checkout")) == [180.0, 300.0]
    assert repo.phase_durations("search") == []


def test_first_drill_occurrences_per_service(repo: Repository, now: datetime) -> None:
    """The first scheduled occurrence of each service, done or not (due work is kept)."""
    for service, days in (("checkout", 7), ("checkout", 0), ("search-api", 14)):
        at = now + timedelta(days=days)
        repo.schedule_work(DrillDueKind.SCHEDULED, drill_key(service, at), at, now, {})
    repo.schedule_work(DrillDueKind.STALE, "drill-stale:1", now - timedelta(days=9), now, {})
    assert repo.first_drill_occurrences() == {
        "checkout": now,
        "search-api": now + timedelta(days=14),
    }


def test_latest_rehearsals_per_service(repo: Repository, now: datetime) -> None:
    """The newest finished rehearsal of each ``<service>@staging`` key; production rollbacks
    and a running rehearsal are not one."""
    for service, kind, status in (
        ("checkout@staging", RollbackKind.REHEARSAL, RollbackStatus.SUCCEEDED),
        ("checkout@staging", RollbackKind.REHEARSAL, RollbackStatus.FAILED),
        ("checkout@staging", RollbackKind.REHEARSAL, RollbackStatus.RUNNING),
        ("search@staging", RollbackKind.REHEARSAL, RollbackStatus.SUCCEEDED),
        ("orders", RollbackKind.IMMEDIATE, RollbackStatus.SUCCEEDED),
    ):
        row = repo.create_rollback(
            service=service,
            kind=kind,
            strategy="undo",
            requested_by="U1",
            status=RollbackStatus.RUNNING,
            now=now,
        )
        assert row.id is not None
        if status != RollbackStatus.RUNNING:
            repo.set_rollback_status(row.id, status, now)
    latest = repo.latest_rehearsals()
    assert {k: (r.id, r.status) for k, r in latest.items()} == {
        "checkout@staging": (2, "failed"),
        "search@staging": (4, "succeeded"),
    }


def test_phase_durations_time_a_rehearsal_s_roll_forward_apart(
    repo: Repository, now: datetime
) -> None:
    forward = {"params": {"roll_forward": True}}
    rollback = repo.create_rollback(
        service="web@staging",
        kind=RollbackKind.REHEARSAL,
        strategy="blue-green",
        requested_by="U1",
        status=RollbackStatus.RUNNING,
        now=now,
        steps=[
            NewStep("cleanup", "Scale web-green to 0", "scale", {"params": {}}),
            NewStep("cleanup", "Scale web-green back to 3", "scale", forward),
        ],
    )
    assert rollback.id is not None
    for i, s in enumerate(repo.list_steps(rollback.id)):
        assert s.id is not None
        repo.start_step(s.id, now + timedelta(minutes=10 * i))
        repo.finish_step(s.id, StepStatus.SUCCEEDED, now + timedelta(minutes=10 * i + 1 + i))
    repo.set_rollback_status(rollback.id, RollbackStatus.SUCCEEDED, now + timedelta(minutes=20))
    assert repo.phase_durations("web@staging") == [{"cleanup": 60.0, "roll_forward": 120.0}]
