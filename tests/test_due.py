"""The due-work runner: runs what is due, backs off on failure, gives up loudly, never early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.due import DueWorkRunner, RetryLater
from storage.db import make_engine, migrate
from storage.models import DueWork
from storage.repository import Repository


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def runner(tmp_path: Path) -> DueWorkRunner:
    repo = Repository(make_engine(f"sqlite:///{tmp_path / 'due.db'}"))
    migrate(repo.engine)
    return DueWorkRunner(repo, Clock(), "test-worker", max_attempts=3, max_waits=4)


def test_due_work_runs_once_at_its_time(runner: DueWorkRunner) -> None:
    ran: list[str] = []
    runner.register("job", lambda item: ran.append(item.key))
    clock = runner.clock
    assert isinstance(clock, Clock)
    runner.schedule("job", "a", clock.at + timedelta(minutes=5), {"n": 1})
    assert not runner.schedule("job", "a", clock.at, {"n": 2})  # once per key
    assert runner.tick() == 0
    clock.at += timedelta(minutes=5)
    assert runner.tick() == 1 and ran == ["a"]
    assert runner.tick() == 0
    work = runner.repo.get_work("a")
    assert work is not None and work.status == "done" and work.payload == {"n": 1}


def test_a_kind_without_a_handler_waits_for_a_process_that_has_one(runner: DueWorkRunner) -> None:
    runner.register("known", lambda item: None)
    runner.schedule("unknown", "u", runner.clock())
    assert runner.tick() == 0
    work = runner.repo.get_work("u")
    assert work is not None and work.status == "pending"


def test_failures_back_off_then_give_up_once(runner: DueWorkRunner) -> None:
    gave_up: list[tuple[str, str]] = []

    def broken(item: DueWork) -> None:
        raise ValueError("boom")

    runner.register("job", broken, lambda item, error: gave_up.append((item.key, error)))
    clock = runner.clock
    assert isinstance(clock, Clock)
    runner.schedule("job", "b", clock.at)
    assert runner.tick() == 1
    work = runner.repo.get_work("b")
    assert work is not None and work.status == "pending"
    assert work.due_at == clock.at + timedelta(seconds=5)  # first back-off
    assert runner.tick() == 0  # not before its time
    clock.at += timedelta(seconds=5)
    assert runner.tick() == 1
    work = runner.repo.get_work("b")
    assert work is not None and work.due_at == clock.at + timedelta(seconds=10)  # doubled
    clock.at += timedelta(seconds=10)
    assert runner.tick() == 1  # third and last attempt
    work = runner.repo.get_work("b")
    assert work is not None and work.status == "failed" and work.last_error == "ValueError: boom"
    assert gave_up == [("b", "ValueError: boom")]
    clock.at += timedelta(hours=1)
    assert runner.tick() == 0 and len(gave_up) == 1


def test_retry_later_is_bounded_too(runner: DueWorkRunner) -> None:
    gave_up: list[str] = []

    def waiting(item: DueWork) -> None:
        raise RetryLater("Slack said 429", 30)

    runner.register("job", waiting, lambda item, error: gave_up.append(error))
    clock = runner.clock
    assert isinstance(clock, Clock)
    runner.schedule("job", "c", clock.at)
    for _ in range(3):
        assert runner.tick() == 1
        work = runner.repo.get_work("c")
        assert work is not None and work.status == "pending"
        assert work.due_at == clock.at + timedelta(seconds=30)
        clock.at += timedelta(seconds=30)
    assert runner.tick() == 1  # the fourth wait is the last
    work = runner.repo.get_work("c")
    assert work is not None and work.status == "failed"
    assert gave_up == ["Slack said 429"]


def test_cancelled_work_never_runs(runner: DueWorkRunner) -> None:
    ran: list[str] = []
    runner.register("job", lambda item: ran.append(item.key))
    runner.schedule("job", "d", runner.clock())
    assert runner.cancel("d")
    assert runner.tick() == 0 and ran == []


def test_a_shutdown_during_a_tick_leaves_the_rest_claimed_for_later(tmp_path: Path) -> None:
    """Items queued behind a running one are cancelled by shutdown: tick returns quietly and
    they stay claimed until the lease lapses, when another process runs them."""
    repo = Repository(make_engine(f"sqlite:///{tmp_path / 'due.db'}"))
    migrate(repo.engine)
    clock = Clock()
    runner = DueWorkRunner(repo, clock, "w1", parallel=1, lease_seconds=60)
    runner.register("job", lambda item: runner.shutdown(wait=False))  # stop while running
    for key in ("a", "b", "c"):
        runner.schedule("job", key, clock.at)
    assert runner.tick() == 0  # no exception escapes; nothing counted as run
    assert sorted(statuses(repo)) == ["claimed", "claimed", "done"]

    clock.at += timedelta(seconds=61)
    later = DueWorkRunner(repo, clock, "w2")
    later.register("job", lambda item: None)
    assert later.tick() == 2
    assert statuses(repo) == ["done"] * 3


def statuses(repo: Repository) -> list[str]:
    return [w.status for w in (repo.get_work(k) for k in "abc") if w is not None]
