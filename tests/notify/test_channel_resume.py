"""The ``incident.open`` due work resumes an interrupted opening: the whole bot (its own WebClient
with retry handlers, repository and due-work runner) against the Slack simulator, the item run by
``due.tick()`` under an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.notify.channels import READY_KIND
from bot.notify.notifications import Notifier
from bot.rollback.lifecycle import DueKind
from bot.sim.slack_api import SlackSimulator
from storage.models import Rollback
from tests.conftest import Harness

CATALOG = """defaults:
  channel: C0DEPLOYS
  notifications: {update_every_minutes: 10}
services:
  checkout:
    deployment: checkout-api
    approvers: [U0APPROVER1, {usergroup: S0SRE}]
    responders: [U0ONCALL1]
"""
INVITED = {"U0ONCALL1", "U0APPROVER1", "U0SRE1"}
NOTICE = "CRITICAL: Production Rollback Initiated"


class ShiftedClock:
    """Real UTC time plus an offset the test moves forward (past a retry's delay)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def h(make_harness: Any, slack: SlackSimulator, clock: ShiftedClock) -> Harness:
    for user in sorted(INVITED):
        slack.add_user(user, user.lower())
    slack.add_usergroup("S0SRE", ["U0SRE1"])
    harness: Harness = make_harness(CATALOG, prometheus_url=None, clock=clock)
    return harness


def notifier(h: Harness) -> Notifier:
    (found,) = [x for x in h.bot.deps.engine.listeners if isinstance(x, Notifier)]
    return found


def start(h: Harness, clock: ShiftedClock) -> Rollback:
    """A running immediate rollback whose ``incident.open`` item is due now."""
    repo = h.bot.deps.repo
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=clock(),
        reason="bad deploy",
        channel_id="C0DEPLOYS",
    )
    assert rollback.id == 1
    h.bot.deps.due.schedule(DueKind.INCIDENT_OPEN, "incident-open:1", clock(), {"rollback_id": 1})
    return rollback


def work_status(h: Harness, key: str) -> str | None:
    item = h.bot.deps.repo.get_work(key)
    return item.status if item is not None else None


def notices(slack: SlackSimulator, channel: str) -> int:
    return sum(NOTICE in str(m.get("text", "")) for m in slack.messages(channel))


def assert_opened(h: Harness, slack: SlackSimulator) -> str:
    """Invited, topic set, update #1 scheduled, greeted once, done: the item will not run again."""
    repo = h.bot.deps.repo
    rollback = repo.get_rollback(1)
    assert rollback is not None and rollback.incident_channel_id is not None
    channel = rollback.incident_channel_id
    info = slack.channel(channel)
    assert info is not None
    assert set(info["members"]) == INVITED | {"U0BOT"}
    assert info["topic"]["value"].startswith("Rollback #1 of checkout: Rollback in progress")
    assert work_status(h, "incident-update:1:1") == "pending"
    assert notices(slack, channel) == 1
    assert len(repo.list_audit_events("notification.critical_notice", rollback_id=1)) == 1
    assert len(repo.list_audit_events(READY_KIND, rollback_id=1)) == 1
    assert len(slack.calls_to("conversations.create")) == 1
    assert work_status(h, "incident-open:1") == "done"
    return channel


def test_opening_invites_sets_the_topic_schedules_and_greets_once(
    h: Harness, slack: SlackSimulator, clock: ShiftedClock
) -> None:
    start(h, clock)
    assert h.bot.deps.due.tick() == 1
    assert_opened(h, slack)

    h.wait_idle()  # the customer draft the greeting hands to the background is posted too
    calls = len(slack.calls)
    item = h.bot.deps.repo.get_work("incident-open:1")
    assert item is not None
    notifier(h).on_open(item)  # run again (a replica whose lease lapsed): nothing more happens
    h.wait_idle()
    assert len(slack.calls) == calls, [(c.method, c.params) for c in slack.calls[calls:]]


def test_a_retry_after_a_crash_right_after_the_channel_was_stored_completes_it(
    h: Harness, slack: SlackSimulator, clock: ShiftedClock
) -> None:
    rollback = start(h, clock)
    channel = notifier(h).channels.ensure_channel(rollback)  # the first try got this far, then died
    assert set(slack.channel(channel)["members"]) == {"U0BOT"}  # type: ignore[index]

    assert h.bot.deps.due.tick() == 1  # its lease lapsed: the item runs again
    assert assert_opened(h, slack) == channel


def test_slack_failing_an_invite_retries_the_item_and_greets_once(
    h: Harness, slack: SlackSimulator, clock: ShiftedClock
) -> None:
    slack.inject_error("conversations.invite", "fatal_error")  # the first invite: U0ONCALL1
    start(h, clock)
    due = h.bot.deps.due
    assert due.tick() == 1

    item = h.bot.deps.repo.get_work("incident-open:1")
    assert item is not None and item.status == "pending"  # to be tried again, not swallowed
    assert "U0ONCALL1 not invited yet" in str(item.last_error)
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.incident_channel_id is not None
    channel = rollback.incident_channel_id
    info = slack.channel(channel)
    assert info is not None and set(info["members"]) == INVITED - {"U0ONCALL1"} | {"U0BOT"}
    assert notices(slack, channel) == 1  # the greeting does not wait for the invitation
    assert work_status(h, "incident-update:1:1") == "pending"

    assert due.tick() == 0  # not yet
    clock.offset += timedelta(seconds=11)
    assert due.tick() == 1
    assert assert_opened(h, slack) == channel
