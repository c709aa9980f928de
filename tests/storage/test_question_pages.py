"""Pages of a guard question's ladder (``pages.question_id``, migration 0005) on SQLite and
PostgreSQL: stored once per slot, refused once the question is closed, acknowledged once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.rollback.lifecycle import guard_confirm_key
from storage.models import Page
from storage.repository import Repository
from tests.storage.threads import run_in_threads

CONTACTS = [(0, "Primary on-call", "+15550100001"), (1, "Senior SRE", "+15550100002")]


def _question(repo: Repository, now: datetime) -> int:
    """A guarded release with its question open (its confirmation timeout is pending)."""
    release = repo.start_guarding("checkout", "7", "app=checkout:v7", now, now, {}, {})
    assert release is not None and release.id is not None
    repo.schedule_work(
        "guard.confirm_timeout", guard_confirm_key(release.id), now + timedelta(minutes=5), now
    )
    return release.id


def _rollback(repo: Repository, now: datetime) -> int:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U1",
        status="running",
        now=now,
    )
    assert rollback.id is not None
    return rollback.id


def test_a_question_level_is_stored_once_beside_a_rollback_ladder(
    repo: Repository, now: datetime
) -> None:
    question, rollback = _question(repo, now), _rollback(repo, now)
    ladder, pages = repo.add_level_pages(
        question_id=question, reason="guard", level=1, contacts=CONTACTS, now=now
    )
    assert ladder == "guard" and [p.position for p in pages] == [0, 1]
    assert all(p.question_id == question and p.rollback_id is None for p in pages)
    again = repo.add_level_pages(
        question_id=question, reason="guard", level=1, contacts=CONTACTS, now=now
    )[1]
    assert [p.id for p in again] == [p.id for p in pages]
    # the same slot of a rollback's ladder is another page
    repo.add_level_pages(rollback_id=rollback, reason="guard", level=1, contacts=CONTACTS, now=now)
    assert len(repo.list_question_pages(question)) == 2
    assert len(repo.list_pages(rollback)) == 2
    assert len({p.ack_code for p in repo.find_pages_for_reply("+15550100001", None)}) == 2


def test_replicas_storing_the_same_level_together_store_it_once(
    repo: Repository, now: datetime
) -> None:
    question = _question(repo, now)
    results = run_in_threads(
        4,
        lambda _: repo.add_level_pages(
            question_id=question, reason="guard", level=1, contacts=CONTACTS, now=now
        ),
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert len(repo.list_question_pages(question)) == 2


def test_a_page_belongs_to_exactly_one_owner(repo: Repository, now: datetime) -> None:
    question, rollback = _question(repo, now), _rollback(repo, now)
    values = {
        "reason": "guard",
        "level": 1,
        "position": 0,
        "contact_name": "A",
        "phone": "+15550100001",
        "ack_code": "1234",
        "status": "queued",
        "created_at": now,
    }
    for owners in ({}, {"rollback_id": rollback, "question_id": question}):
        with pytest.raises(IntegrityError), repo.engine.begin() as conn:
            conn.execute(sa.insert(Page).values(**values, **owners))


def test_a_closed_question_sends_no_page(repo: Repository, now: datetime) -> None:
    question = _question(repo, now)
    pages = repo.add_level_pages(
        question_id=question, reason="guard", level=1, contacts=CONTACTS, now=now
    )[1]
    first, second = (p.id for p in pages)
    assert first is not None and second is not None
    assert repo.claim_page_for_sending(first, now)
    assert repo.cancel_work(guard_confirm_key(question), now)  # answered
    assert not repo.claim_page_for_sending(second, now)


def test_an_acknowledged_question_ladder_sends_no_more_and_acks_once(
    repo: Repository, now: datetime
) -> None:
    question = _question(repo, now)
    pages = repo.add_level_pages(
        question_id=question, reason="guard", level=1, contacts=CONTACTS, now=now
    )[1]
    first, second = (p.id for p in pages)
    assert first is not None and second is not None
    results = run_in_threads(4, lambda _: repo.acknowledge_ladder(first, "Primary", now))
    assert results.count(True) == 1 and results.count(False) == 3
    assert not repo.claim_page_for_sending(second, now)
