"""Approver user groups: cached membership, kept warm by a refresh, kept when Slack fails."""

from __future__ import annotations

from typing import cast

from pydantic import SecretStr

from bot.adapters.slack.lookups import UserGroupMembers
from bot.adapters.slack.web import slack_web_client
from bot.catalog.load import parse_catalog
from bot.rollback.policy import all_approver_groups
from bot.sim.slack_api import SlackSimulator
from tests.conftest import BOT_TOKEN


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def groups(slack: SlackSimulator, clock: Ticks) -> UserGroupMembers:
    client = slack_web_client(SecretStr(BOT_TOKEN), slack.api_url)
    return UserGroupMembers(client, ttl_seconds=300, clock=clock)


def lookups(slack: SlackSimulator) -> int:
    return len(slack.calls_to("usergroups.users.list"))


def test_members_are_cached_for_the_ttl(slack: SlackSimulator) -> None:
    slack.add_usergroup("S0SRE", ["U1", "U2"])
    clock = Ticks()
    members = groups(slack, clock)
    assert members.members(["S0SRE"]) == {"U1", "U2"}
    slack.add_usergroup("S0SRE", ["U1"])
    clock.now += 299
    assert members.members(["S0SRE"]) == {"U1", "U2"} and lookups(slack) == 1
    clock.now += 1
    assert members.members(["S0SRE"]) == {"U1"} and lookups(slack) == 2


def test_a_refresh_keeps_the_cache_warm_so_a_press_never_asks_slack(
    slack: SlackSimulator,
) -> None:
    slack.add_usergroup("S0SRE", ["U1"])
    slack.add_usergroup("S0DBA", ["U3"])
    clock = Ticks()
    members = groups(slack, clock)
    assert members.refresh(["S0SRE", "S0DBA", "S0SRE"]) == 2
    assert lookups(slack) == 2
    for _ in range(4):  # the scheduler refreshes every half ttl
        clock.now += 150
        slack.add_usergroup("S0SRE", ["U1", f"U{int(clock.now)}"])
        members.refresh(["S0SRE", "S0DBA"])
        before = lookups(slack)
        assert members.members(["S0SRE", "S0DBA"]) == {"U1", f"U{int(clock.now)}", "U3"}
        assert lookups(slack) == before  # answered from the cache


def test_slack_failing_keeps_the_last_known_members(slack: SlackSimulator) -> None:
    slack.add_usergroup("S0SRE", ["U1"])
    clock = Ticks()
    members = groups(slack, clock)
    assert members.refresh(["S0SRE"]) == 1
    slack.inject_error("usergroups.users.list", "ratelimited_permanently", times=2)
    assert members.refresh(["S0SRE"]) == 0
    clock.now += 301
    assert members.members(["S0SRE"]) == {"U1"}  # stale, but better than nobody


def test_members_known_too_long_ago_grant_nothing_while_slack_keeps_failing(
    slack: SlackSimulator,
) -> None:
    slack.add_usergroup("S0SRE", ["U1"])
    clock = Ticks()
    members = groups(slack, clock)
    assert members.members(["S0SRE"]) == {"U1"}
    slack.inject_error("usergroups.users.list", "missing_scope", times=100)
    clock.now += 1200  # 20 min: still the last known members
    assert members.members(["S0SRE"]) == {"U1"}
    clock.now += 1
    assert members.members(["S0SRE"]) == set()  # fail closed


def test_an_unknown_group_grants_nobody(slack: SlackSimulator) -> None:
    members = groups(slack, Ticks())
    assert members.members(["S0NOPE"]) == set()
    assert members.refresh(["S0NOPE"]) == 0


def test_every_group_the_catalog_names_is_refreshed() -> None:
    catalog = parse_catalog(
        """
defaults:
  channel: C0DEPLOYS
services:
  checkout:
    namespace: shop
    deployment: checkout-api
    approvers: [U0LEAD, {usergroup: S0SRE}]
  payments:
    namespace: shop
    deployment: payments-api
    approvers: [{usergroup: S0DBA}, {usergroup: S0SRE}]
  search:
    namespace: shop
    deployment: search-api
"""
    )
    assert all_approver_groups(catalog) == ["S0SRE", "S0DBA"]


def test_serve_s_scheduler_refreshes_the_groups_at_start() -> None:
    import threading

    from bot.execution.engine import Engine
    from bot.runtime.due import DueWorkRunner
    from bot.runtime.scheduler import start_scheduler

    class Idle:  # the engine and due-work jobs have nothing to do here
        def resume_all(self) -> list[int]:
            return []

        def tick(self) -> int:
            return 0

    refreshed = threading.Event()
    scheduler = start_scheduler(
        cast(Engine, Idle()),
        cast(DueWorkRunner, Idle()),
        resume_every_seconds=60,
        due_every_seconds=60,
        refresh_groups=refreshed.set,
        groups_every_seconds=150,
    )
    try:
        assert refreshed.wait(10), "the first refresh runs at start, not after 150 s"
        job = scheduler.get_job("refresh-user-groups")
        assert job is not None and job.trigger.interval.total_seconds() == 150
    finally:
        scheduler.shutdown(wait=False)
