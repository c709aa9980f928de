"""Customer updates in the database (SQLite and PostgreSQL): one draft per rollback and
moment, edits that lose to nothing stale, one publication per press however many press."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from storage.customer_models import CustomerUpdate, PostOutcome, UpdateState
from storage.repo.customer import NewCustomerUpdate
from storage.repository import Repository


def rollback_id(repo: Repository, now: datetime) -> int:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=now,
    )
    assert rollback.id is not None
    return rollback.id


def draft(repo: Repository, now: datetime, moment: str = "started") -> CustomerUpdate:
    rid = rollback_id(repo, now) if moment == "started" else 1
    update, is_new = repo.create_customer_update(
        NewCustomerUpdate(rid, "checkout", moment, "investigating", "Checkout down", "Hello"), now
    )
    assert is_new
    return update


def test_a_draft_is_stored_once_per_rollback_and_moment(repo: Repository, now: datetime) -> None:
    first = draft(repo, now)
    again, is_new = repo.create_customer_update(
        NewCustomerUpdate(first.rollback_id, "checkout", "started", "resolved", "x", "y"), now
    )
    assert not is_new and again.id == first.id and again.message == "Hello"
    assert repo.set_customer_update_message(first.id or 0, "C0INC", "1.0001", now)
    assert not repo.set_customer_update_message(first.id or 0, "C0INC", "2.0002", now)
    stored = repo.get_customer_update(first.id or 0)
    assert stored is not None and (stored.channel_id, stored.message_ts) == ("C0INC", "1.0001")
    assert stored.state == UpdateState.DRAFT and stored.version == 1


def test_an_edit_needs_the_version_it_was_made_on(repo: Repository, now: datetime) -> None:
    update = draft(repo, now)
    uid = update.id or 0
    edited = repo.edit_customer_update(
        uid, 1, message="New text", status="identified", user="U0ONCALL1", now=now
    )
    assert edited is not None and edited.version == 2 and edited.message == "New text"
    assert edited.status == "identified" and edited.edited_by == "U0ONCALL1"
    stale = repo.edit_customer_update(uid, 1, message="Old", status="resolved", user="U2", now=now)
    assert stale is None
    assert (repo.get_customer_update(uid) or update).message == "New text"


def test_a_double_press_claims_once_and_failure_leaves_it_publishable(
    repo: Repository, now: datetime
) -> None:
    uid = draft(repo, now).id or 0
    results: list[object] = []

    def press(user: str) -> None:
        results.append(
            repo.claim_publication(
                uid, 1, user=user, key="k-1", now=now, stale_before=now - timedelta(minutes=2)
            )
        )

    threads = [threading.Thread(target=press, args=(f"U{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [r for r in results if r is not None]
    assert len(claimed) == 1 and len(repo.list_status_page_posts(uid)) == 1
    (post,) = repo.list_status_page_posts(uid)
    assert post.outcome == PostOutcome.SENDING and post.idempotency_key == "k-1"

    failed = repo.finish_publication(
        post.id or 0, is_sent=False, attempts=3, http_status=500, error="HTTP 500", now=now
    )
    assert failed.state == UpdateState.DRAFT and failed.last_error == "HTTP 500"
    again = repo.claim_publication(
        uid, 1, user="U1", key="k-1", now=now, stale_before=now - timedelta(minutes=2)
    )
    assert again is not None
    done = repo.finish_publication(
        again.id or 0, is_sent=True, attempts=1, http_status=201, error=None, now=now
    )
    assert done.state == UpdateState.PUBLISHED and done.published_by == "U1"
    assert repo.claim_publication(uid, 1, user="U2", key="k", now=now, stale_before=now) is None
    outcomes = [(p.outcome, p.http_status) for p in repo.list_status_page_posts(uid)]
    assert outcomes == [(PostOutcome.FAILED, 500), (PostOutcome.SENT, 201)]


def test_a_press_that_died_mid_way_lets_go_after_the_lease(repo: Repository, now: datetime) -> None:
    uid = draft(repo, now).id or 0
    lease = timedelta(minutes=2)
    assert repo.claim_publication(uid, 1, user="U1", key="k", now=now, stale_before=now - lease)
    later = now + timedelta(minutes=1)
    held = repo.claim_publication(uid, 1, user="U2", key="k", now=later, stale_before=later - lease)
    assert held is None  # the first press still holds it
    much_later = now + timedelta(minutes=3)
    post = repo.claim_publication(
        uid, 1, user="U2", key="k", now=much_later, stale_before=much_later - lease
    )
    assert post is not None and post.requested_by == "U2"


@pytest.mark.parametrize("is_first_published", [True, False])
def test_a_newer_draft_supersedes_only_unpublished_ones(
    repo: Repository, now: datetime, is_first_published: bool
) -> None:
    first = draft(repo, now)
    if is_first_published:
        post = repo.claim_publication(
            first.id or 0, 1, user="U1", key="k", now=now, stale_before=now
        )
        assert post is not None
        repo.finish_publication(
            post.id or 0, is_sent=True, attempts=1, http_status=200, error=None, now=now
        )
    second = draft(repo, now, "finished")
    superseded = repo.supersede_customer_updates(first.rollback_id, second.id or 0, now)
    assert [u.id for u in superseded] == ([] if is_first_published else [first.id])
    states = [u.state for u in repo.list_customer_updates(first.rollback_id)]
    expected = UpdateState.PUBLISHED if is_first_published else UpdateState.SUPERSEDED
    assert states == [expected, UpdateState.DRAFT]
