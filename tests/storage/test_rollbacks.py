"""Rollback rows: the one-active-rollback-per-service guard, transitions and leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.rollback.lifecycle import RollbackKind, RollbackStatus
from storage.models import Rollback
from storage.repo.records import ActiveRollbackExists, RecordNotFound
from storage.repository import Repository
from tests.storage.threads import run_in_threads


def _create(repo: Repository, now: datetime, **overrides: Any) -> Rollback:
    fields: dict[str, Any] = {
        "service": "checkout",
        "kind": "immediate",
        "strategy": "rollout_undo",
        "requested_by": "U123",
        "reason": "5xx spike",
        "target_revision": None,
        "assessment_id": None,
        "channel_id": "C42",
        "status": "pending_approval",
        "now": now,
    }
    fields.update(overrides)
    return repo.create_rollback(**fields)


def test_create_and_read(repo: Repository, now: datetime) -> None:
    assessment_id = repo.create_assessment("checkout", "U123", "C42", now)
    created = _create(
        repo,
        now,
        assessment_id=assessment_id,
        target_revision="41",
        kind="planned",
        scheduled_at=now + timedelta(hours=2),
    )
    assert created.id is not None
    loaded = repo.get_rollback(created.id)
    assert loaded is not None
    assert loaded.service == "checkout"
    assert loaded.kind == "planned"
    assert loaded.assessment_id == assessment_id
    assert loaded.target_revision == "41"
    assert loaded.reason == "5xx spike"
    assert loaded.created_at == now and loaded.created_at.tzinfo == UTC
    assert loaded.scheduled_at == now + timedelta(hours=2)
    assert loaded.is_active
    assert repo.get_active_rollback("checkout") == loaded
    assert repo.get_rollback(999) is None


def test_second_active_rollback_is_refused_until_the_first_ends(
    repo: Repository, now: datetime
) -> None:
    first = _create(repo, now)
    with pytest.raises(ActiveRollbackExists) as caught:
        _create(repo, now, status="running", requested_by="U999")
    assert caught.value.service == "checkout"
    assert caught.value.existing_id == first.id
    assert "checkout" in str(caught.value)

    other_service = _create(repo, now, service="payments")  # independent
    assert other_service.id != first.id

    assert first.id is not None
    repo.set_rollback_status(first.id, "succeeded", now)
    assert repo.get_active_rollback("checkout") is None
    second = _create(repo, now)
    assert second.id is not None and second.id != first.id
    assert repo.get_active_rollback("checkout") == second


def test_terminal_rows_do_not_count_as_active(repo: Repository, now: datetime) -> None:
    _create(repo, now)
    rejected = _create(repo, now, status="rejected")  # history rows never hit the guard
    assert not rejected.is_active


def test_ten_threads_racing_for_one_service_get_one_rollback(
    repo: Repository, now: datetime
) -> None:
    outcomes = run_in_threads(10, lambda i: _create(repo, now, requested_by=f"U{i}"))
    created = [o for o in outcomes if isinstance(o, Rollback)]
    refused = [o for o in outcomes if isinstance(o, ActiveRollbackExists)]
    assert len(created) == 1, outcomes
    assert len(refused) == 9, outcomes
    assert {r.existing_id for r in refused} == {created[0].id}
    assert len(repo.list_rollbacks(service="checkout")) == 1


def test_status_transitions_stamp_times(repo: Repository, now: datetime) -> None:
    rollback = _create(repo, now)
    assert rollback.id is not None
    approved = repo.set_rollback_status(rollback.id, "approved", now + timedelta(seconds=1))
    assert approved is not None and approved.started_at is None
    running = repo.set_rollback_status(rollback.id, "running", now + timedelta(seconds=2))
    assert running is not None and running.started_at == now + timedelta(seconds=2)
    failed = repo.set_rollback_status(
        rollback.id, "failed", now + timedelta(seconds=9), error="rollout stuck"
    )
    assert failed is not None
    assert failed.started_at == now + timedelta(seconds=2)
    assert failed.finished_at == now + timedelta(seconds=9)
    assert failed.error == "rollout stuck"
    assert repo.get_rollback(rollback.id) == failed


def test_compare_and_set_transition(repo: Repository, now: datetime) -> None:
    rollback = _create(repo, now)
    assert rollback.id is not None
    approved = repo.set_rollback_status(
        rollback.id, "approved", now, expected=("pending_approval",)
    )
    assert approved is not None and approved.status == "approved"
    # a late Reject click loses: the rollback is no longer pending approval
    assert (
        repo.set_rollback_status(rollback.id, "rejected", now, expected=("pending_approval",))
        is None
    )
    current = repo.get_rollback(rollback.id)
    assert current is not None and current.status == "approved"


def test_reactivating_while_another_is_active_is_refused(repo: Repository, now: datetime) -> None:
    old = _create(repo, now, status="cancelled")
    current = _create(repo, now)
    assert old.id is not None
    with pytest.raises(ActiveRollbackExists) as caught:
        repo.set_rollback_status(old.id, "approved", now)
    assert caught.value.existing_id == current.id


def test_invalid_values(repo: Repository, now: datetime) -> None:
    with pytest.raises(ValueError):
        _create(repo, now, kind="sideways")
    with pytest.raises(ValueError):
        _create(repo, now, status="paused")
    with pytest.raises(RecordNotFound):
        repo.set_rollback_status(999, "approved", now)


def test_progress_ts_and_listing(repo: Repository, now: datetime) -> None:
    first = _create(repo, now)
    second = _create(repo, now, service="payments", status="running")
    assert first.id is not None and second.id is not None
    repo.set_rollback_progress_ts(first.id, "1700000000.000200")
    loaded = repo.get_rollback(first.id)
    assert loaded is not None and loaded.progress_ts == "1700000000.000200"
    assert [r.id for r in repo.list_rollbacks()] == [second.id, first.id]
    assert [r.id for r in repo.list_rollbacks(statuses=["running"])] == [second.id]


def test_leases(repo: Repository, now: datetime) -> None:
    rollback = _create(repo, now, status="running")
    assert rollback.id is not None
    lease = timedelta(seconds=30)
    assert repo.claim_rollback(rollback.id, "replica-a", now, lease)
    assert not repo.claim_rollback(rollback.id, "replica-b", now + timedelta(seconds=10), lease)
    assert repo.list_unclaimed_rollbacks(now + timedelta(seconds=10)) == []
    assert repo.claim_rollback(rollback.id, "replica-a", now + timedelta(seconds=20), lease)
    # replica-a's renewed lease runs to now+50s; after that replica-b may take over
    later = now + timedelta(seconds=51)
    assert [r.id for r in repo.list_unclaimed_rollbacks(later)] == [rollback.id]
    assert repo.claim_rollback(rollback.id, "replica-b", later, lease)
    assert not repo.release_rollback(rollback.id, "replica-a")
    assert repo.release_rollback(rollback.id, "replica-b")
    released = repo.get_rollback(rollback.id)
    assert released is not None and released.claimed_by is None


def test_only_active_rollbacks_can_be_claimed(repo: Repository, now: datetime) -> None:
    rollback = _create(repo, now, status="succeeded")
    assert rollback.id is not None
    assert not repo.claim_rollback(rollback.id, "replica-a", now, timedelta(seconds=30))


def test_concurrent_claims_have_one_winner(repo: Repository, now: datetime) -> None:
    rollback = _create(repo, now, status="running")
    assert rollback.id is not None
    rollback_id = rollback.id
    outcomes = run_in_threads(
        10, lambda i: repo.claim_rollback(rollback_id, f"replica-{i}", now, timedelta(seconds=30))
    )
    assert sorted(outcomes, key=str) == [False] * 9 + [True]


def test_rollback_and_its_plan_are_stored_together(repo: Repository, now: datetime) -> None:
    from storage.repo.records import NewStep

    steps = [
        NewStep("preparation", "Snapshot", "snapshot"),
        NewStep("application", "Undo", "rollout_undo"),
    ]
    rollback = repo.create_rollback(
        service="checkout", kind="immediate", strategy="undo", requested_by="U1",
        status="running", now=now, steps=steps,
    )  # fmt: skip
    assert rollback.id is not None
    stored = repo.list_steps(rollback.id)
    assert [(s.position, s.kind) for s in stored] == [(0, "snapshot"), (1, "rollout_undo")]
    with pytest.raises(ActiveRollbackExists):
        repo.create_rollback(
            service="checkout", kind="immediate", strategy="undo", requested_by="U2",
            status="running", now=now, steps=steps,
        )  # fmt: skip
    assert len(repo.list_steps(rollback.id + 1)) == 0  # the refused one left no steps behind


def test_statuses_given_as_enums_are_stored_as_their_strings(
    repo: Repository, now: datetime
) -> None:
    """The lifecycle enums are the stored strings: no migration, and raw SQL still reads them."""
    created = _create(repo, now, kind=RollbackKind.IMMEDIATE, status=RollbackStatus.RUNNING)
    assert created.id is not None
    repo.set_rollback_status(created.id, RollbackStatus.FAILED, now, "boom")
    with repo.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, kind FROM rollbacks WHERE id = :id"), {"id": created.id}
        ).one()
    assert (row.status, row.kind) == ("failed", "immediate")
    assert type(row.status) is str
    assert [r.id for r in repo.list_rollbacks(statuses=[RollbackStatus.FAILED])] == [created.id]
