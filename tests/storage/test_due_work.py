"""Durable due work shared by replicas: schedule once, claim with a lease, finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.models import DueWork
from storage.repo.records import NewWork
from storage.repository import Repository
from tests.storage.threads import run_in_threads

LEASE = timedelta(seconds=60)


def test_several_items_are_scheduled_in_one_go_once_per_key(
    repo: Repository, now: datetime
) -> None:
    assert repo.schedule_work("a", "taken", now, now, {"first": True})
    works = [
        NewWork("a", "taken", now, {"second": True}),
        NewWork("b", "new-1", now + timedelta(minutes=1), {"n": 1}),
        NewWork("c", "new-2", now, {}),
    ]
    assert repo.schedule_works(works, now) == 2
    assert repo.schedule_works(works, now) == 0
    taken, new_1 = repo.get_work("taken"), repo.get_work("new-1")
    assert taken is not None and taken.payload == {"first": True}
    assert new_1 is not None and (new_1.kind, new_1.payload) == ("b", {"n": 1})
    assert new_1.due_at == now + timedelta(minutes=1)


def test_work_is_scheduled_once_per_key(repo: Repository, now: datetime) -> None:
    due = now + timedelta(minutes=5)
    assert repo.schedule_work("page.escalate", "page:7:step:1", due, now, {"rollback_id": 7})
    assert not repo.schedule_work("page.escalate", "page:7:step:1", now, now, {"other": True})
    work = repo.get_work("page:7:step:1")
    assert work is not None
    assert (work.kind, work.status, work.attempts) == ("page.escalate", "pending", 0)
    assert work.due_at == due and work.due_at.tzinfo == UTC
    assert work.payload == {"rollback_id": 7}
    assert repo.get_work("nope") is None


def test_only_due_work_is_claimed(repo: Repository, now: datetime) -> None:
    repo.schedule_work("a", "early", now - timedelta(minutes=1), now)
    repo.schedule_work("b", "exact", now, now)
    repo.schedule_work("a", "later", now + timedelta(seconds=30), now)
    claimed = repo.claim_due_work("replica-a", now, LEASE)
    assert [w.key for w in claimed] == ["early", "exact"]
    assert all(w.status == "claimed" and w.claimed_by == "replica-a" for w in claimed)
    assert all(w.claimed_until == now + LEASE and w.attempts == 1 for w in claimed)
    assert repo.claim_due_work("replica-b", now, LEASE) == []
    assert [w.key for w in repo.claim_due_work("replica-b", now, LEASE, kinds=["a"])] == []
    later = now + timedelta(seconds=30)  # still inside the first lease
    assert [w.key for w in repo.claim_due_work("replica-b", later, LEASE, kinds=["a"])] == ["later"]


def test_expired_leases_are_claimed_again(repo: Repository, now: datetime) -> None:
    repo.schedule_work("a", "k", now, now)
    (first,) = repo.claim_due_work("replica-a", now, LEASE)
    assert repo.claim_due_work("replica-b", now + LEASE - timedelta(seconds=1), LEASE) == []
    (second,) = repo.claim_due_work("replica-b", now + LEASE, LEASE)
    assert second.id == first.id and second.attempts == 2
    assert first.id is not None
    assert not repo.complete_work(first.id, "replica-a", now + LEASE)  # lost its lease
    assert repo.complete_work(first.id, "replica-b", now + LEASE)
    done = repo.get_work("k")
    assert done is not None and (done.status, done.done_at) == ("done", now + LEASE)
    assert done.claimed_by is None


def test_failures_retry_or_stop(repo: Repository, now: datetime) -> None:
    repo.schedule_work("a", "retry", now, now)
    repo.schedule_work("a", "give-up", now, now)
    retry, give_up = repo.claim_due_work("w", now, LEASE)
    assert retry.id is not None and give_up.id is not None
    retry_at = now + timedelta(minutes=2)
    assert repo.fail_work(retry.id, "w", "twilio 503", now, retry_at=retry_at)
    assert repo.fail_work(give_up.id, "w", "twilio 21211", now)
    again = repo.get_work("retry")
    assert again is not None
    assert (again.status, again.due_at, again.last_error) == ("pending", retry_at, "twilio 503")
    stopped = repo.get_work("give-up")
    assert stopped is not None and (stopped.status, stopped.done_at) == ("failed", now)
    assert [w.key for w in repo.claim_due_work("w", retry_at, LEASE)] == ["retry"]


def test_cancel(repo: Repository, now: datetime) -> None:
    repo.schedule_work("page.escalate", "page:1", now + timedelta(minutes=5), now)
    assert repo.cancel_work("page:1", now)
    assert not repo.cancel_work("page:1", now)
    cancelled = repo.get_work("page:1")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert repo.claim_due_work("w", now + timedelta(hours=1), LEASE) == []


def test_replicas_never_claim_the_same_item(repo: Repository, now: datetime) -> None:
    for i in range(20):
        repo.schedule_work("tick", f"k{i}", now, now)
    outcomes = run_in_threads(5, lambda i: repo.claim_due_work(f"replica-{i}", now, LEASE, limit=3))
    batches = [o for o in outcomes if isinstance(o, list)]
    assert len(batches) == 5, outcomes
    ids = [w.id for batch in batches for w in batch if isinstance(w, DueWork)]
    assert len(ids) == 15
    assert len(set(ids)) == 15
