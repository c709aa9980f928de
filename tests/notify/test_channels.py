"""Incident channels: names, collisions, invites, topic, periodic and final updates — the real
WebClient against the Slack simulator, a real repository and the due-work runner."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jinja2 import UndefinedError
from slack_sdk import WebClient

from bot.adapters.slack.lookups import UserGroupMembers
from bot.adapters.slack.web import SlackClient, SlackError
from bot.catalog.load import Service, parse_catalog
from bot.notify.channels import READY_KIND, IncidentChannels, channel_name
from bot.rollback import policy
from bot.rollback.lifecycle import incident_update_key as update_key
from bot.runtime.due import DueWorkRunner, RetryLater
from bot.sim.slack_api import SlackCall, SlackSimulator
from storage.db import make_engine, migrate
from storage.models import Rollback
from storage.repo.records import NewStep
from storage.repository import Repository
from tests.conftest import closed_port_url

T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
EVERYONE = {"U0BOT", "U0REQUESTER", "U0ONCALL1", "U0APPROVER1", "U0SRE1"}
TOPIC = "Rollback #1 of checkout: Rollback in progress (0/1 steps)"
CATALOG = """defaults:
  channel: C0DEPLOYS
  notifications: {update_every_minutes: 15}
services:
  checkout:
    deployment: checkout-api
    approvers: [U0APPROVER1, U0MISSING, {usergroup: S0SRE}]
    responders: [U0ONCALL1, U0BOT]
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine)
    yield Repository(engine)
    engine.dispose()


@pytest.fixture
def slack() -> Iterator[SlackSimulator]:
    with SlackSimulator(bot_token="xoxb-test", bot_user_id="U0BOT") as sim:
        for user in ("U0ONCALL1", "U0APPROVER1", "U0SRE1", "U0REQUESTER"):
            sim.add_user(user, user.lower())
        sim.add_usergroup("S0SRE", ["U0SRE1", "U0APPROVER1"])
        yield sim


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def due(repo: Repository, clock: Clock) -> Iterator[DueWorkRunner]:
    runner = DueWorkRunner(repo, clock, "test-worker", lease_seconds=30)
    yield runner
    runner.shutdown()


@pytest.fixture
def service() -> Service:
    found = parse_catalog(CATALOG, "test.yaml").get("checkout")
    assert found is not None
    return found


@pytest.fixture
def channels(
    slack: SlackSimulator, repo: Repository, due: DueWorkRunner, clock: Clock, service: Service
) -> IncidentChannels:
    client = SlackClient(WebClient(token=slack.bot_token, base_url=slack.api_url))
    groups = UserGroupMembers(client)

    def approvers(s: Service) -> set[str]:
        return groups.members(policy.approver_groups(s))

    opened = IncidentChannels(client, repo, due, clock, approvers)
    due.register("incident.update", lambda item: opened.on_update_due(item, lambda _: service))
    return opened


def new_rollback(repo: Repository) -> Rollback:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0REQUESTER",
        status="running",
        now=T0,
        reason="bad deploy",
        steps=[NewStep("application", "Roll back", "rollout_undo")],
    )
    assert rollback.id is not None
    started = repo.set_rollback_status(rollback.id, "running", T0)
    assert started is not None
    return started


def test_names_follow_slack_rules() -> None:
    assert channel_name("checkout", 7, T0) == "rb-checkout-20250304-7"
    assert channel_name("checkout", 7, T0, attempt=3) == "rb-checkout-20250304-7-3"
    long = channel_name("a" * 70 + "-Svc.Name", 123456, T0, attempt=12)
    assert len(long) <= 80 and long.endswith("-20250304-123456-12")
    assert long == long.lower() and "." not in long


def test_open_creates_invites_sets_topic_and_schedules_updates(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    rollback = new_rollback(repo)
    channel_id = channels.open(rollback, service)

    stored = repo.get_rollback(1)
    assert stored is not None and stored.incident_channel_id == channel_id
    info = slack.channel(channel_id)
    assert info is not None and info["name"] == "rb-checkout-20250304-1"
    assert set(info["members"]) == EVERYONE
    assert info["topic"]["value"] == TOPIC
    # one call per user: the bot itself, an unknown id and a second invite fail alone
    errors = [c.response.get("error") for c in slack.calls_to("conversations.invite")]
    assert errors.count("cant_invite_self") == 1 and errors.count("user_not_found") == 1
    item = repo.get_work(update_key(1, 1))
    assert item is not None and item.due_at == T0 + timedelta(minutes=15)
    kinds = [e.kind for e in repo.list_audit_events(rollback_id=1)]
    assert kinds == ["incident_channel.created", "incident_channel.ready"]

    calls = len(slack.calls)
    assert channels.open(rollback, service) == channel_id  # idempotent
    assert len(slack.calls) == calls  # done once: nobody is invited again, the topic is kept


def test_taken_and_archived_names_move_to_the_next_suffix(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    slack.add_channel("C0ARCHIVED", "rb-checkout-20250304-1", is_archived=True)
    slack.add_channel("C0TAKEN", "rb-checkout-20250304-1-2")
    channel_id = channels.open(new_rollback(repo), service)

    assert slack.channel(channel_id)["name"] == "rb-checkout-20250304-1-3"  # type: ignore[index]
    assert slack.channel("C0ARCHIVED")["is_archived"] is True  # type: ignore[index]
    assert not slack.calls_to("conversations.unarchive")


def test_a_channel_opened_elsewhere_first_wins_and_ours_is_archived(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    slack.add_channel("C0THEIRS", "rb-checkout-20250304-1-elsewhere")

    def other_replica(call: SlackCall) -> None:
        if call.method == "conversations.create":
            repo.set_incident_channel(1, "C0THEIRS")

    slack.subscribe(other_replica)
    assert channels.open(new_rollback(repo), service) == "C0THEIRS"
    (ours,) = [c.response["channel"]["id"] for c in slack.calls_to("conversations.create")]
    assert slack.channel(ours)["is_archived"] is True  # type: ignore[index]


def test_updates_repeat_while_active_then_one_final_update(
    channels: IncidentChannels,
    repo: Repository,
    slack: SlackSimulator,
    service: Service,
    due: DueWorkRunner,
    clock: Clock,
) -> None:
    channel_id = channels.open(new_rollback(repo), service)
    assert due.tick() == 0  # nothing due yet

    for sequence in (1, 2):
        clock.now += timedelta(minutes=15)
        assert due.tick() == 1
        assert repo.get_work(update_key(1, sequence + 1)) is not None
    updates = [m["text"] for m in slack.messages(channel_id)]
    assert len(updates) == 2 and all("Next update in 15 minutes" in t for t in updates)
    assert "Running for 30 min" in updates[1]

    finished = repo.set_rollback_status(1, "succeeded", clock.now)
    assert finished is not None
    channels.finish(finished, service)
    channels.finish(finished, service)  # told twice: still one final update
    pending = repo.get_work(update_key(1, 3))
    assert pending is not None and pending.status == "cancelled"
    clock.now += timedelta(minutes=15)
    assert due.tick() == 0
    texts = [m["text"] for m in slack.messages(channel_id)]
    assert len(texts) == 3 and "This is the final update" in texts[-1]
    assert "Rollback completed" in slack.channel(channel_id)["topic"]["value"]  # type: ignore[index]


def test_an_update_for_a_finished_rollback_stops_the_series(
    channels: IncidentChannels,
    repo: Repository,
    slack: SlackSimulator,
    service: Service,
    due: DueWorkRunner,
    clock: Clock,
) -> None:
    channel_id = channels.open(new_rollback(repo), service)
    repo.set_rollback_status(1, "failed", clock.now, error="boom")  # finished, update not cancelled
    clock.now += timedelta(minutes=15)
    assert due.tick() == 1
    assert slack.messages(channel_id) == []
    assert repo.get_work(update_key(1, 2)) is None


def test_a_failing_post_does_not_end_the_series(
    channels: IncidentChannels,
    repo: Repository,
    slack: SlackSimulator,
    service: Service,
    due: DueWorkRunner,
    clock: Clock,
) -> None:
    """Slack down when update 1 is due: update 2 is already scheduled, and update 1 is retried."""
    channel_id = channels.open(new_rollback(repo), service)
    clock.now += timedelta(minutes=15)
    slack.inject("chat.postMessage", status=503, body={"ok": False, "error": "down"}, times=1)
    assert due.tick() == 1
    first = repo.get_work(update_key(1, 1))
    assert first is not None and first.status == "pending" and first.attempts == 1
    assert repo.get_work(update_key(1, 2)) is not None
    assert slack.messages(channel_id) == []

    clock.now += timedelta(minutes=15)  # Slack is back: the retry and the next update both run
    assert due.tick() == 2
    assert len([m for m in slack.messages(channel_id) if "Next update in" in m["text"]]) == 2
    assert repo.get_work(update_key(1, 3)) is not None
    clock.now += timedelta(minutes=15)
    assert due.tick() == 1
    assert len(slack.messages(channel_id)) == 3


# --- resuming an interrupted opening -----------------------------------------------------------


def assert_filled(repo: Repository, slack: SlackSimulator, channel_id: str) -> None:
    """Everyone invited, the topic set, update #1 scheduled, and the whole marked done once."""
    info = slack.channel(channel_id)
    assert info is not None
    assert set(info["members"]) == EVERYONE
    assert info["topic"]["value"] == TOPIC
    item = repo.get_work(update_key(1, 1))
    assert item is not None and item.status == "pending"
    assert len(repo.list_audit_events(READY_KIND, rollback_id=1)) == 1
    assert len(slack.calls_to("conversations.create")) == 1


def test_a_channel_stored_just_before_a_crash_is_filled_by_the_next_open(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    rollback = new_rollback(repo)
    channel_id = channels.ensure_channel(rollback)  # the first try got this far, then died
    assert set(slack.channel(channel_id)["members"]) == {"U0BOT"}  # type: ignore[index]
    assert repo.get_work(update_key(1, 1)) is None

    assert channels.open(rollback, service) == channel_id
    assert_filled(repo, slack, channel_id)


def test_a_server_error_on_an_invite_is_retried_after_the_rest_is_done(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    slack.inject("conversations.invite", status=500)  # the first invite: U0REQUESTER
    rollback = new_rollback(repo)
    with pytest.raises(RetryLater, match="U0REQUESTER not invited yet"):
        channels.open(rollback, service)

    stored = repo.get_rollback(1)
    assert stored is not None and stored.incident_channel_id is not None
    info = slack.channel(stored.incident_channel_id)
    assert info is not None
    assert set(info["members"]) == EVERYONE - {"U0REQUESTER"}  # the others did not wait
    assert info["topic"]["value"] == TOPIC
    assert repo.get_work(update_key(1, 1)) is not None
    assert not repo.list_audit_events(READY_KIND, rollback_id=1)

    assert channels.open(rollback, service) == stored.incident_channel_id
    assert_filled(repo, slack, stored.incident_channel_id)
    # inviting again those already in is harmless: Slack answers already_in_channel
    retried = slack.calls_to("conversations.invite")[len(EVERYONE) :]
    assert {c.response.get("error") for c in retried} == {
        None,  # U0REQUESTER, this time
        "already_in_channel",
        "cant_invite_self",
        "user_not_found",
    }


def test_a_connection_lost_right_after_the_channel_is_stored_is_retried(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    def network_down(call: SlackCall) -> None:  # answered, then nothing gets through
        if call.method == "conversations.create":
            channels.slack.web.base_url = closed_port_url()

    slack.subscribe(network_down)
    rollback = new_rollback(repo)
    with pytest.raises(RetryLater, match="Slack unreachable"):
        channels.open(rollback, service)
    stored = repo.get_rollback(1)
    assert stored is not None and stored.incident_channel_id is not None
    channel_id = stored.incident_channel_id
    assert set(slack.channel(channel_id)["members"]) == {"U0BOT"}  # type: ignore[index]
    assert repo.get_work(update_key(1, 1)) is not None  # the series does not wait for Slack

    channels.slack.web.base_url = slack.api_url  # Slack is back
    assert channels.open(rollback, service) == channel_id
    assert_filled(repo, slack, channel_id)


def test_a_topic_that_fails_to_render_leaves_the_topic_to_the_retry(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    broken = dataclasses.replace(service, templates={"incident_topic": "{{ no_such_value.x }}"})
    rollback = new_rollback(repo)
    with pytest.raises(UndefinedError):
        channels.open(rollback, broken)
    stored = repo.get_rollback(1)
    assert stored is not None and stored.incident_channel_id is not None
    info = slack.channel(stored.incident_channel_id)
    assert info is not None and set(info["members"]) == EVERYONE
    assert not info["topic"]["value"]
    assert not repo.list_audit_events(READY_KIND, rollback_id=1)

    channels.open(rollback, service)  # the template is fixed
    assert_filled(repo, slack, stored.incident_channel_id)


def test_a_channel_slack_made_but_answered_500_for_is_adopted_not_made_twice(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    rollback = new_rollback(repo)
    slack.inject("conversations.create", status=500, is_applied=True)
    with pytest.raises(SlackError):  # the due work that opens it is tried again
        channels.open(rollback, service)

    channel_id = channels.open(rollback, service)

    assert slack.channel(channel_id)["name"] == "rb-checkout-20250304-1"  # type: ignore[index]
    listed = WebClient(token=slack.bot_token, base_url=slack.api_url).conversations_list()
    names = [c["name"] for c in listed["channels"]]
    assert names.count("rb-checkout-20250304-1") == 1 and "rb-checkout-20250304-1-2" not in names


def test_a_taken_name_someone_else_made_is_never_adopted(
    channels: IncidentChannels, repo: Repository, slack: SlackSimulator, service: Service
) -> None:
    slack.add_channel("C0SOMEONE", "rb-checkout-20250304-1")  # made by a person, not the bot
    channel_id = channels.open(new_rollback(repo), service)
    assert channel_id != "C0SOMEONE"
    assert slack.channel(channel_id)["name"] == "rb-checkout-20250304-1-2"  # type: ignore[index]
