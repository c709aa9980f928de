"""The automatic guard's storage: revisions seen, watched releases, their claims and endings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.rollback.lifecycle import RollbackKind, RollbackStatus
from bot.rollback.triggers import TriggerState
from storage.guard_models import (
    GUARD_ACTOR,
    GuardedRelease,
    GuardStatus,
    states_from_json,
    states_to_json,
)
from storage.models import Rollback
from storage.repository import Repository
from tests.storage.threads import run_in_threads

LEASE = timedelta(seconds=60)
WATCH = timedelta(minutes=30)


def _guard(
    repo: Repository, now: datetime, revision: str = "7", service: str = "checkout"
) -> GuardedRelease:
    release = repo.start_guarding(
        service,
        revision,
        f"app={service}:v{revision}",
        now,
        now + WATCH,
        {"error_rate": 0.002, "latency_p95_seconds": None},
        {"error_rate": TriggerState()},
    )
    assert release is not None and release.id is not None
    return release


def _claim_one(repo: Repository, now: datetime, worker: str) -> GuardedRelease:
    (release,) = repo.claim_due_releases(now, worker, LEASE)
    assert release.id is not None
    return release


# --- services: revisions seen, pause -------------------------------------------------------


def test_the_first_revision_seen_has_no_previous_one(repo: Repository, now: datetime) -> None:
    assert repo.guarded_service("checkout") is None
    assert repo.see_revision("checkout", "7", now) is None
    service = repo.guarded_service("checkout")
    assert service is not None
    assert (service.last_revision, service.is_paused, service.changed_at) == ("7", False, now)


def test_the_next_revision_returns_the_previous_one(repo: Repository, now: datetime) -> None:
    later = now + timedelta(minutes=5)
    repo.see_revision("checkout", "7", now)
    assert repo.see_revision("checkout", "7", later) == "7"  # unchanged: same answer
    assert repo.see_revision("checkout", "8", later) == "7"
    assert repo.see_revision("checkout", "8", later) == "8"
    service = repo.guarded_service("checkout")
    assert service is not None and (service.last_revision, service.changed_at) == ("8", later)
    assert repo.see_revision("search", "1", now) is None  # per service


def test_replicas_seeing_a_first_revision_together_agree(repo: Repository, now: datetime) -> None:
    outcomes = run_in_threads(4, lambda _: repo.see_revision("checkout", "7", now))
    assert (outcomes.count(None), outcomes.count("7")) == (1, 3), outcomes


def test_pause_and_resume(repo: Repository, now: datetime) -> None:
    repo.set_guard_paused("checkout", True, "U_ALICE", now)  # before any revision was seen
    paused = repo.guarded_service("checkout")
    assert paused is not None
    assert (paused.is_paused, paused.paused_by, paused.last_revision) == (True, "U_ALICE", None)
    assert repo.see_revision("checkout", "7", now) is None  # the pause keeps no revision
    later = now + timedelta(minutes=1)
    repo.set_guard_paused("checkout", False, "U_BOB", later)
    resumed = repo.guarded_service("checkout")
    assert resumed is not None
    assert (resumed.is_paused, resumed.paused_by, resumed.changed_at) == (False, None, later)
    assert resumed.last_revision == "7"


# --- releases: start, supersede ------------------------------------------------------------


def test_start_guarding_stores_the_release(repo: Repository, now: datetime) -> None:
    started = _guard(repo, now)
    assert started.id is not None
    stored = repo.guarded_release(started.id)
    assert stored is not None
    assert (stored.service, stored.revision, stored.release) == ("checkout", "7", "app=checkout:v7")
    assert (stored.detected_at, stored.watch_until, stored.next_at) == (now, now + WATCH, now)
    assert stored.status == GuardStatus.WATCHING
    assert stored.baseline == {"error_rate": 0.002, "latency_p95_seconds": None}
    assert stored.trigger_states == {"error_rate": TriggerState()}
    assert (stored.evaluations, stored.claimed_by) == (0, None)
    assert repo.guarded_release(started.id + 1000) is None


def test_a_revision_is_guarded_once(repo: Repository, now: datetime) -> None:
    first = _guard(repo, now, "7")
    assert repo.start_guarding("checkout", "7", "again", now, now + WATCH, {}, {}) is None
    assert [r.id for r in repo.list_guarded("checkout")] == [first.id]
    assert repo.list_guarded("checkout")[0].status == GuardStatus.WATCHING  # not superseded


def test_a_new_release_supersedes_the_watched_one(repo: Repository, now: datetime) -> None:
    old = _guard(repo, now, "7")
    other = _guard(repo, now, "3", service="search")
    later = now + timedelta(minutes=2)
    new = _guard(repo, later, "8")
    by_id = {r.id: r for r in repo.list_guarded()}
    assert by_id[old.id].status == GuardStatus.SUPERSEDED
    assert by_id[old.id].ended_at == later
    assert by_id[new.id].status == GuardStatus.WATCHING
    assert by_id[other.id].status == GuardStatus.WATCHING  # other services untouched


def test_list_guarded_is_newest_first_and_filters(repo: Repository, now: datetime) -> None:
    first, second = _guard(repo, now, "7"), _guard(repo, now, "8")
    third = _guard(repo, now, "1", service="search")
    assert [r.id for r in repo.list_guarded()] == [third.id, second.id, first.id]
    assert [r.id for r in repo.list_guarded("checkout")] == [second.id, first.id]
    watching = repo.list_guarded(statuses=[GuardStatus.WATCHING])
    assert [r.id for r in watching] == [third.id, second.id]
    assert [r.id for r in repo.list_guarded(limit=1)] == [third.id]


# --- claims and evaluations ----------------------------------------------------------------


def test_only_due_releases_are_claimed(repo: Repository, now: datetime) -> None:
    due = _guard(repo, now, "7")
    _guard(repo, now + timedelta(seconds=30), "1", service="search")  # due in 30 s
    claimed = repo.claim_due_releases(now, "replica-a", LEASE)
    assert [r.id for r in claimed] == [due.id]
    assert (claimed[0].claimed_by, claimed[0].claimed_until) == ("replica-a", now + LEASE)
    assert repo.claim_due_releases(now, "replica-b", LEASE) == []  # held by replica-a


def test_ended_releases_are_not_claimed(repo: Repository, now: datetime) -> None:
    release = _guard(repo, now)
    assert release.id is not None
    assert repo.end_guarding(release.id, GuardStatus.ENDED, now)
    assert repo.claim_due_releases(now + timedelta(hours=1), "w", LEASE) == []


def test_an_evaluation_is_saved_and_the_release_comes_due_again(
    repo: Repository, now: datetime
) -> None:
    release = _claim_one(repo, _guard(repo, now).detected_at, "replica-a")
    assert release.id is not None
    breach = TriggerState(breach_since=now, breaches_in_row=1, last_value=0.2)
    next_at = now + timedelta(seconds=30)
    states = {"error_rate": breach}
    assert repo.save_evaluation(release.id, "replica-a", states, 1, next_at)
    saved = repo.guarded_release(release.id)
    assert saved is not None
    assert (saved.evaluations, saved.next_at) == (1, next_at)
    assert (saved.claimed_by, saved.claimed_until) == (None, None)  # the lease is given back
    assert saved.trigger_states == {"error_rate": breach}
    assert repo.claim_due_releases(now + timedelta(seconds=29), "replica-b", LEASE) == []
    assert [r.id for r in repo.claim_due_releases(next_at, "replica-b", LEASE)] == [release.id]


def test_a_lapsed_lease_is_taken_over(repo: Repository, now: datetime) -> None:
    first = _claim_one(repo, _guard(repo, now).detected_at, "replica-a")
    assert repo.claim_due_releases(now + LEASE - timedelta(seconds=1), "replica-b", LEASE) == []
    second = _claim_one(repo, now + LEASE, "replica-b")
    assert second.id == first.id and second.claimed_until == now + 2 * LEASE
    assert first.id is not None
    fired = {"error_rate": TriggerState(fired_at=now)}
    assert not repo.save_evaluation(first.id, "replica-a", fired, 5, now)  # lost it
    kept = repo.guarded_release(first.id)
    assert kept is not None and (kept.evaluations, kept.claimed_by) == (0, "replica-b")
    assert kept.trigger_states == {"error_rate": TriggerState()}
    assert repo.save_evaluation(first.id, "replica-b", fired, 1, now + LEASE)


def test_two_workers_claiming_at_once_get_different_releases(
    repo: Repository, now: datetime
) -> None:
    for revision in range(12):
        _guard(repo, now, "1", service=f"svc-{revision}")
    outcomes = run_in_threads(
        4, lambda i: repo.claim_due_releases(now, f"replica-{i}", LEASE, limit=2)
    )
    batches = [o for o in outcomes if isinstance(o, list)]
    assert len(batches) == 4, outcomes
    ids = [r.id for batch in batches for r in batch]
    assert len(ids) == 8 and len(set(ids)) == 8


def test_of_two_workers_only_one_gets_a_release(repo: Repository, now: datetime) -> None:
    release = _guard(repo, now)
    outcomes = run_in_threads(2, lambda i: repo.claim_due_releases(now, f"replica-{i}", LEASE))
    assert sorted(len(o) for o in outcomes if isinstance(o, list)) == [0, 1], outcomes
    (winner,) = [o[0] for o in outcomes if isinstance(o, list) and o]
    assert release.id is not None and winner.id == release.id
    stored = repo.guarded_release(release.id)
    assert stored is not None and stored.claimed_by == winner.claimed_by


# --- ending --------------------------------------------------------------------------------


def test_end_guarding_happens_exactly_once(repo: Repository, now: datetime) -> None:
    release = _claim_one(repo, _guard(repo, now).detected_at, "replica-a")
    assert release.id is not None
    release_id = release.id

    def fire(i: int) -> bool:
        return repo.end_guarding(
            release_id, GuardStatus.FIRED, now, fired_trigger="error_rate", fired_reason=f"r{i}"
        )

    outcomes = run_in_threads(4, fire)
    assert (outcomes.count(True), outcomes.count(False)) == (1, 3), outcomes
    assert not repo.end_guarding(release_id, GuardStatus.ENDED, now)
    fired = repo.guarded_release(release_id)
    assert fired is not None
    assert (fired.status, fired.fired_trigger, fired.ended_at) == ("fired", "error_rate", now)
    assert fired.fired_reason in {f"r{i}" for i in range(4)}
    # the evaluation that fired still saves its states
    states = {"error_rate": TriggerState(fired_at=now)}
    assert repo.save_evaluation(release_id, "replica-a", states, 4, now)


def test_end_guarding_refuses_watching_and_unknown_statuses(
    repo: Repository, now: datetime
) -> None:
    release = _guard(repo, now)
    assert release.id is not None
    for status in (GuardStatus.WATCHING, "exploded"):
        with pytest.raises(ValueError, match="cannot end guarding"):
            repo.end_guarding(release.id, status, now)


def test_the_rollback_and_message_of_a_release(repo: Repository, now: datetime) -> None:
    release = _guard(repo, now)
    assert release.id is not None
    rollback = _guard_rollback(repo, now)
    assert rollback.id is not None
    assert repo.end_guarding(release.id, GuardStatus.FIRED, now, fired_trigger="error_rate")
    assert repo.set_guard_rollback(release.id, rollback.id)
    assert not repo.set_guard_rollback(release.id, rollback.id)  # once
    repo.set_guard_message(release.id, "C_CHECKOUT", "1700000000.000100")
    stored = repo.guarded_release(release.id)
    assert stored is not None and stored.rollback_id == rollback.id
    assert (stored.channel_id, stored.message_ts) == ("C_CHECKOUT", "1700000000.000100")


# --- counting the guard's rollbacks --------------------------------------------------------


def _guard_rollback(
    repo: Repository, now: datetime, service: str = "checkout", by: str = GUARD_ACTOR
) -> Rollback:
    return repo.create_rollback(
        service=service,
        kind=RollbackKind.IMMEDIATE,
        strategy="kubernetes",
        requested_by=by,
        status=RollbackStatus.SUCCEEDED,  # finished: the next one may be created
        now=now,
    )


def test_count_guard_rollbacks(repo: Repository, now: datetime) -> None:
    day_ago = now - timedelta(days=1)
    _guard_rollback(repo, day_ago - timedelta(seconds=1))  # too old
    _guard_rollback(repo, day_ago)
    _guard_rollback(repo, now)
    _guard_rollback(repo, now, by="U_ALICE")  # a person's
    _guard_rollback(repo, now, service="search")
    assert repo.count_guard_rollbacks("checkout", day_ago) == 2
    assert repo.count_guard_rollbacks("search", day_ago) == 1
    assert repo.count_guard_rollbacks("payments", day_ago) == 0


# --- trigger states as JSON ----------------------------------------------------------------


def test_trigger_states_round_trip_through_json(repo: Repository, now: datetime) -> None:
    states = {
        "error_rate": TriggerState(
            breach_since=now - timedelta(seconds=90), breaches_in_row=3, last_value=0.153
        ),
        "health_check_failures": TriggerState(unknown_in_row=2, fired_at=now),
        "auth_failures": TriggerState(last_value=float("nan")),  # PostgreSQL JSON has no NaN
    }
    data = states_to_json(states)
    assert data["error_rate"]["breach_since"] == "2026-03-01T11:58:30+00:00"
    assert data["auth_failures"]["last_value"] is None
    expected = {**states, "auth_failures": TriggerState()}
    assert states_from_json(data) == expected
    release = _guard(repo, now)
    assert release.id is not None
    claimed = _claim_one(repo, now, "w")
    assert claimed.id is not None
    assert repo.save_evaluation(claimed.id, "w", data, 1, now)  # JSON accepted as well
    stored = repo.guarded_release(claimed.id)
    assert stored is not None and stored.trigger_states == expected
    breach_since = stored.trigger_states["error_rate"].breach_since
    assert breach_since is not None and breach_since.tzinfo == UTC


def test_states_from_json_tolerates_old_and_new_rows() -> None:
    data = {"t": {"breach_since": "2026-03-01T12:00:00", "future_field": 1}}
    assert states_from_json(data) == {
        "t": TriggerState(breach_since=datetime(2026, 3, 1, 12, tzinfo=UTC))
    }
