"""Assessment rows: create, complete or fail, read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import StatementError

from storage.repo.records import RecordNotFound
from storage.repository import Repository


def test_create_complete_read_round_trip(repo: Repository, now: datetime) -> None:
    assessment_id = repo.create_assessment("checkout", "U123", "C42", now)
    pending = repo.get_assessment(assessment_id)
    assert pending is not None
    assert (pending.service, pending.requested_by, pending.channel_id) == (
        "checkout",
        "U123",
        "C42",
    )
    assert pending.status == "pending"
    assert pending.decision is None
    assert pending.inputs == {} and pending.result == {}
    assert pending.created_at == now and pending.created_at.tzinfo == UTC
    assert pending.completed_at is None

    inputs = {"error_rate": 0.12, "p99_ms": 2400, "db_up": True, "notes": ["é", None]}
    result = {"triggers": [{"signal": "error_rate", "severity": "critical", "value": 0.12}]}
    done_at = now + timedelta(seconds=3)
    repo.complete_assessment(
        assessment_id,
        decision="IMMEDIATE ROLLBACK",
        critical=1,
        high=0,
        medium=2,
        total=7,
        inputs=inputs,
        result=result,
        now=done_at,
    )
    done = repo.get_assessment(assessment_id)
    assert done is not None
    assert done.status == "done"
    assert done.decision == "IMMEDIATE ROLLBACK"
    assert (done.critical_score, done.high_score, done.medium_score, done.total_score) == (
        1,
        0,
        2,
        7,
    )
    assert done.inputs == inputs
    assert done.result == result
    assert done.created_at == now
    assert done.completed_at == done_at
    assert done.completed_at is not None and done.completed_at.tzinfo == UTC


def test_fail_assessment(repo: Repository, now: datetime) -> None:
    assessment_id = repo.create_assessment("checkout", None, None, now)
    repo.fail_assessment(assessment_id, "prometheus timed out", now + timedelta(seconds=10))
    failed = repo.get_assessment(assessment_id)
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error == "prometheus timed out"
    assert failed.completed_at == now + timedelta(seconds=10)


def test_list_assessments_newest_first(repo: Repository, now: datetime) -> None:
    ids = [repo.create_assessment(s, None, None, now) for s in ("a", "b", "a", "a")]
    assert [a.id for a in repo.list_assessments()] == ids[::-1]
    assert [a.id for a in repo.list_assessments(service="a", limit=2)] == [ids[3], ids[2]]
    assert repo.list_assessments(service="zzz") == []


def test_unknown_assessment(repo: Repository, now: datetime) -> None:
    assert repo.get_assessment(999) is None
    with pytest.raises(RecordNotFound):
        repo.fail_assessment(999, "x", now)


def test_naive_datetimes_are_refused(repo: Repository) -> None:
    with pytest.raises(StatementError) as caught:
        repo.create_assessment("checkout", None, None, datetime(2026, 3, 1, 12, 0))
    assert isinstance(caught.value.orig, ValueError)


def test_start_assessment_records_delivery_and_row_together(
    repo: Repository, now: datetime
) -> None:
    first = repo.start_assessment("trigger:1", "checkout", "U1", "C1", now)
    repeat = repo.start_assessment("trigger:1", "checkout", "U1", "C1", now)

    assert first is not None and repeat is None
    assert [a.id for a in repo.list_assessments()] == [first]
    assert repo.record_delivery("trigger:1", now) is False


def test_start_assessment_from_many_threads_makes_one_row(repo: Repository, now: datetime) -> None:
    from tests.storage.threads import run_in_threads

    results = run_in_threads(
        10, lambda i: repo.start_assessment("trigger:same", "checkout", f"U{i}", "C1", now)
    )

    assert sum(isinstance(r, int) for r in results) == 1
    assert results.count(None) == 9
    assert len(repo.list_assessments()) == 1
