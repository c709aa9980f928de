"""Plan steps (persisted per transition) and approval votes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from storage.repo.records import NewStep, RecordNotFound
from storage.repository import Repository
from tests.storage.threads import run_in_threads

PLAN = [
    NewStep("prepare", "snapshot current revision", "kubernetes.snapshot"),
    NewStep("execute", "rollout undo", "kubernetes.rollout_undo", {"to_revision": 41}),
    NewStep("verify", "error rate below 1%", "metrics.threshold"),
]


def _rollback_id(repo: Repository, now: datetime) -> int:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="rollout_undo",
        requested_by="U123",
        reason="",
        target_revision=None,
        assessment_id=None,
        channel_id=None,
        status="running",
        now=now,
    )
    assert rollback.id is not None
    return rollback.id


def test_steps_are_stored_once_in_order(repo: Repository, now: datetime) -> None:
    rollback_id = _rollback_id(repo, now)
    steps = repo.add_steps(rollback_id, PLAN)
    assert [(s.position, s.phase, s.name, s.status, s.attempt) for s in steps] == [
        (0, "prepare", "snapshot current revision", "pending", 0),
        (1, "execute", "rollout undo", "pending", 0),
        (2, "verify", "error rate below 1%", "pending", 0),
    ]
    assert steps[1].detail == {"to_revision": 41}
    again = repo.add_steps(rollback_id, PLAN[:1])  # resume after restart: nothing new
    assert [s.id for s in again] == [s.id for s in steps]


def test_concurrent_add_steps_store_one_plan(repo: Repository, now: datetime) -> None:
    rollback_id = _rollback_id(repo, now)
    outcomes = run_in_threads(4, lambda _: repo.add_steps(rollback_id, PLAN))
    assert all(isinstance(o, list) and len(o) == 3 for o in outcomes), outcomes
    assert len(repo.list_steps(rollback_id)) == 3


def test_step_transitions(repo: Repository, now: datetime) -> None:
    rollback_id = _rollback_id(repo, now)
    step = repo.add_steps(rollback_id, PLAN)[1]
    assert step.id is not None
    running = repo.start_step(step.id, now)
    assert (running.status, running.attempt, running.started_at) == ("running", 1, now)
    failed = repo.finish_step(
        step.id, "failed", now + timedelta(seconds=5), detail={"http": 409}, error="conflict"
    )
    assert (failed.status, failed.error) == ("failed", "conflict")
    assert failed.detail == {"to_revision": 41, "http": 409}
    retried = repo.start_step(step.id, now + timedelta(seconds=6))
    assert (retried.attempt, retried.error, retried.finished_at) == (2, None, None)
    done = repo.finish_step(step.id, "succeeded", now + timedelta(seconds=8))
    assert done.finished_at == now + timedelta(seconds=8)
    assert repo.list_steps(rollback_id)[1] == done
    with pytest.raises(ValueError):
        repo.finish_step(step.id, "running", now)
    with pytest.raises(RecordNotFound):
        repo.start_step(999, now)


def test_one_vote_per_person(repo: Repository, now: datetime) -> None:
    rollback_id = _rollback_id(repo, now)
    assert repo.record_approval(rollback_id, "U1", "approve", via="button", now=now)
    assert not repo.record_approval(rollback_id, "U1", "reject", via="command", now=now)
    assert repo.record_approval(
        rollback_id, "U2", "reject", via="command", now=now, reason="wrong service"
    )
    votes = repo.list_approvals(rollback_id)
    assert [(v.user_id, v.decision, v.via, v.reason) for v in votes] == [
        ("U1", "approve", "button", None),
        ("U2", "reject", "command", "wrong service"),
    ]
    assert votes[0].created_at == now


def test_double_click_records_one_vote(repo: Repository, now: datetime) -> None:
    rollback_id = _rollback_id(repo, now)
    outcomes = run_in_threads(
        5, lambda _: repo.record_approval(rollback_id, "U1", "approve", via="button", now=now)
    )
    assert sorted(outcomes, key=str) == [False] * 4 + [True]


def test_vote_on_unknown_rollback(repo: Repository, now: datetime) -> None:
    with pytest.raises(RecordNotFound):
        repo.record_approval(999, "U1", "approve", via="button", now=now)
    with pytest.raises(ValueError):
        repo.record_approval(999, "U1", "maybe", via="button", now=now)
