"""The due-work runner: runs what is due, backs off on failure, gives up loudly, never early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.runtime.due import DueWorkRunner, RetryLater
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
    return DueWorkRunner(
        repo, Clock(), "test-worker", lease_seconds=30, max_attempts=3, max_waits=4
    )


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
    later = DueWorkRunner(repo, clock, "w2", lease_seconds=60)
    later.register("job", lambda item: None)
    assert later.tick() == 2
    assert statuses(repo) == ["done"] * 3


def statuses(repo: Repository) -> list[str]:
    return [w.status for w in (repo.get_work(k) for k in "abc") if w is not None]


def test_waits_do_not_use_up_the_failures(runner: DueWorkRunner) -> None:
    """Five 429 waits and then one transient error: the error is retried with backoff, not
    taken for the last of max_attempts."""
    outcomes = ["wait"] * 3 + ["boom", "ok"]
    ran: list[str] = []

    def flaky(item: DueWork) -> None:
        outcome = outcomes.pop(0)
        ran.append(outcome)
        if outcome == "wait":
            raise RetryLater("Slack said 429", 1)
        if outcome == "boom":
            raise ConnectionError("reset by peer")

    runner.register("job", flaky)
    clock = runner.clock
    assert isinstance(clock, Clock)
    runner.schedule("job", "w", clock.at)
    for _ in range(5):
        clock.at += timedelta(minutes=5)
        assert runner.tick() == 1
    work = runner.repo.get_work("w")
    assert work is not None and work.status == "done"
    assert ran == ["wait", "wait", "wait", "boom", "ok"]
    assert (work.waits, work.attempts, work.tries) == (3, 2, 5)


def test_a_slow_handler_keeps_its_item(tmp_path: Path) -> None:
    """The claim of a running item is renewed, so a second replica does not run it too even
    after the first lease would have lapsed."""
    import threading
    import time

    repo = Repository(make_engine(f"sqlite:///{tmp_path / 'due.db'}"))
    migrate(repo.engine)

    def wall() -> datetime:
        return datetime.now(UTC)

    slow = DueWorkRunner(repo, wall, "replica-a", lease_seconds=1.0)  # renewed every ~0.33 s
    other = DueWorkRunner(repo, wall, "replica-b", lease_seconds=1.0)
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def handler(item: DueWork) -> None:
        runs.append(item.key)
        started.set()
        assert release.wait(10)

    slow.register("job", handler)
    other.register("job", handler)
    slow.schedule("job", "long", wall())
    ticking = threading.Thread(target=slow.tick)
    ticking.start()
    assert started.wait(10)
    first = repo.get_work("long")
    assert first is not None and first.claimed_until is not None
    deadline = time.monotonic() + 10
    while wall() < first.claimed_until + timedelta(seconds=0.5):  # well past the first lease
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert other.tick() == 0  # renewed: still replica-a's
    release.set()
    ticking.join(10)
    done = repo.get_work("long")
    assert done is not None and done.status == "done" and runs == ["long"]
    slow.shutdown()
    other.shutdown()
