"""What follows a rollback's end survives a crash between the final status and the listeners."""

from __future__ import annotations

from collections.abc import Callable

from bot.rollback.lifecycle import DueKind
from tests.conftest import Harness
from tests.scenarios.test_approval_flow import (  # noqa: F401  (fixtures used by name)
    kube,
    kube_sim,
    make,
    now,
    settle,
)


def completion_notices(h: Harness) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in h.slack.calls_to("chat.postMessage")
        if "Production Rollback Completed" in str(c.params.get("text"))
    ]


def test_a_crash_right_after_the_end_still_notifies_and_reviews(
    make: Callable[..., Harness],  # noqa: F811  (the fixture imported above)
) -> None:
    first = make()
    # this process stores the end and dies before anything acts on it
    first.bot.deps.due.handlers.pop(DueKind.ROLLBACK_FINISHED)
    first.bot.deps.engine.kick_due_work = lambda: None
    first.slash("run checkout --immediate 5xx storm")
    settle(first)
    rollback = first.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    work = first.bot.deps.repo.get_work("finished:1")
    assert work is not None and work.status == "pending"
    assert completion_notices(first) == []
    first.bot.close()

    second = make()  # the next process on the same database
    assert second.bot.deps.due.tick() >= 1
    settle(second)
    second.bot.deps.due.tick()  # what the listeners scheduled in turn (notice, review)
    settle(second)
    work = second.bot.deps.repo.get_work("finished:1")
    assert work is not None and work.status == "done"
    assert len(completion_notices(second)) == 1
    assert second.bot.deps.repo.get_review(1) is not None


def critical_notices(h: Harness, channel: str = "C0DEPLOYS") -> list[str]:
    return [
        str(c.params.get("text"))
        for c in h.slack.calls_to("chat.postMessage")
        if "CRITICAL: Production Rollback Initiated" in str(c.params.get("text"))
        and c.params.get("channel") == channel
    ]


def test_a_crash_right_after_the_start_still_sends_the_critical_notice(
    make: Callable[..., Harness],  # noqa: F811  (the fixture imported above)
) -> None:
    first = make()
    # this process stores the running rollback and dies before anything acts on its start
    first.bot.deps.due.handlers.pop(DueKind.ROLLBACK_STARTED)
    first.bot.deps.due.handlers.pop(DueKind.ROLLBACK_FINISHED)
    first.slash("run checkout --immediate 5xx storm")
    settle(first)
    work = first.bot.deps.repo.get_work("started:1")
    assert work is not None and work.status == "pending"  # stored with the rollback itself
    assert critical_notices(first) == []
    first.bot.close()

    second = make()  # the next process on the same database
    for _ in range(3):  # started → the notifier's work → what that scheduled
        second.bot.deps.due.tick()
        settle(second)
    work = second.bot.deps.repo.get_work("started:1")
    assert work is not None and work.status == "done"
    assert len(critical_notices(second)) == 1
    page = second.bot.deps.repo.get_work("page-start:1:critical")
    assert page is not None and page.status == "done"
