"""What follows a rollback's end survives a crash between the final status and the listeners."""

from __future__ import annotations

from collections.abc import Callable

from bot.engine import FINISHED
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
    first.bot.deps.due.handlers.pop(FINISHED)
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
