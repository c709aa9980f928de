"""Idempotency keys and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from storage.repository import Repository
from tests.storage.threads import run_in_threads


def test_a_delivery_key_counts_once(repo: Repository, now: datetime) -> None:
    assert repo.record_delivery("event:Ev123", now) is True
    assert repo.record_delivery("event:Ev123", now + timedelta(seconds=1)) is False
    assert repo.record_delivery("event:Ev124", now) is True


def test_a_delivery_key_raced_by_ten_threads_counts_once(repo: Repository, now: datetime) -> None:
    outcomes = run_in_threads(10, lambda _: repo.record_delivery("action:double-click", now))
    assert sorted(outcomes, key=str) == [False] * 9 + [True]


def test_audit_events_round_trip_and_filter(repo: Repository, now: datetime) -> None:
    first = repo.add_audit_event(
        "rollback.requested",
        now=now,
        service="checkout",
        rollback_id=7,
        actor="U123",
        channel_id="C42",
        message_ts="1700000000.000100",
        detail={"reason": "5xx spike", "signals": {"error_rate": 0.12}},
    )
    second = repo.add_audit_event("assessment.completed", now=now, service="checkout")
    third = repo.add_audit_event("rollback.requested", now=now, service="payments")
    assert first < second < third

    everything = repo.list_audit_events()
    assert [event.id for event in everything] == [first, second, third]
    event = everything[0]
    assert event.kind == "rollback.requested"
    assert event.actor == "U123"
    assert event.message_ts == "1700000000.000100"
    assert event.detail == {"reason": "5xx spike", "signals": {"error_rate": 0.12}}
    assert event.created_at == now
    assert event.created_at.tzinfo is not None
    assert event.created_at.utcoffset() == timedelta(0)
    assert everything[1].detail == {}

    requested = repo.list_audit_events(kind="rollback.requested")
    assert [e.id for e in requested] == [first, third]
    assert [e.id for e in repo.list_audit_events(service="checkout")] == [first, second]
    assert [e.id for e in repo.list_audit_events(rollback_id=7)] == [first]
    assert repo.list_audit_events(kind="rollback.requested", service="nope") == []


def test_times_in_other_zones_are_stored_as_the_same_instant(
    repo: Repository, now: datetime
) -> None:
    paris = now.astimezone(ZoneInfo("Europe/Paris"))
    event_id = repo.add_audit_event("x", now=paris)
    (event,) = repo.list_audit_events(kind="x")
    assert event.id == event_id
    assert event.created_at == now
    assert event.created_at.tzinfo == UTC
