"""After a crash, due work (critical notices, pages) is taken over within the configured lease.

The process that claimed an item died before finishing it; the replacement must run it once
``ROLLBACK_BOT_LEASE_SECONDS`` have passed — not after a lease hard-coded elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.settings import Settings
from storage.models import DueWork
from tests.conftest import Harness, catalog_yaml, service_yaml


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def test_work_of_a_dead_worker_is_taken_over_after_the_configured_lease(
    make_harness: Any,
) -> None:
    clock = Clock()
    text = catalog_yaml(service_yaml("checkout", None))
    h: Harness = make_harness(text, prometheus_url=None, clock=clock, rollback_bot_lease_seconds=5)
    due = h.bot.deps.due
    ran: list[str] = []
    due.register("test.page", lambda item: ran.append(item.key))
    due.schedule("test.page", "page:1", clock.at)

    # The dead process claimed it the way its runner does (same settings, its own name) and
    # died before finishing: nothing renews the claim any more.
    (claimed,) = h.bot.deps.repo.claim_due_work(
        "dead-host:4242", clock(), due.lease, kinds=["test.page"]
    )
    assert claimed.claimed_until is not None

    clock.at += timedelta(seconds=4.9)
    assert due.tick() == 0 and ran == []  # still the dead worker's, within its lease
    clock.at += timedelta(seconds=0.2)
    assert due.tick() == 1 and ran == ["page:1"]  # taken over at 5 s, not 120 s
    work = h.bot.deps.repo.get_work("page:1")
    assert isinstance(work, DueWork) and work.status == "done"


def test_every_lease_follows_the_setting(make_harness: Any) -> None:
    h: Harness = make_harness(
        catalog_yaml(service_yaml("checkout", None)),
        prometheus_url=None,
        rollback_bot_lease_seconds=7,
    )
    settings: Settings = h.bot.deps.settings
    assert settings.rollback_bot_lease_seconds == 7
    assert h.bot.deps.due.lease == timedelta(seconds=7)
    assert h.bot.deps.engine.lease == timedelta(seconds=7)
