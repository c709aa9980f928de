"""Notifications through signed HTTP: critical notices, incident channel, completion/failure
notices, periodic updates and SLA breach, against the Slack simulator (429 and 5xx included)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.notify.notifications import Notifier
from bot.notify.progress import SlackProgress
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, closed_port_url

HOSTILE = "<!channel> <http://evil|click> @here &"


class ShiftedClock:
    """Real UTC time plus an offset the test moves forward (due work, SLA, updates)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def catalog() -> str:
    return f"""defaults:
  channel: C0DEPLOYS
  sla_minutes: 15
  notifications:
    critical_channels: [C0INCIDENTS, C0EXEC]
    update_every_minutes: 10
    status_page_url: https://status.example.com
services:
  checkout:
    deployment: checkout-api
    approvers: [U0APPROVER1, {{usergroup: S0SRE}}]
    responders: [U0ONCALL1]
    impact: Customers cannot pay
    phases:
      application: [{{kind: wait, seconds: 0, name: Apply previous version}}]
      verification: [{{kind: wait, seconds: 0, name: Verify health}}]
  billing:
    deployment: billing-api
    responders: [U0ONCALL1]
    phases:
      application:
        - {{kind: http_request, url: "{closed_port_url()}/rollback", name: Call deploy API}}
  search:
    deployment: search-api
    responders: [U0ONCALL1]
    sla_minutes: 12
    phases:
      application: [{{kind: manual_gate, prompt: Hold until told}}]
  orders:
    deployment: orders-api
    responders: [U0ONCALL1]
    phases:
      database: [{{kind: manual_gate, prompt: Restore done, name: Restore orders DB}}]
      application: [{{kind: manual_gate, prompt: Pods back, name: Roll orders-api back}}]
"""


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def harness(make_harness: Any, slack: SlackSimulator, clock: ShiftedClock) -> Harness:
    for user in ("U0ONCALL1", "U0APPROVER1", "U0SRE1"):
        slack.add_user(user, user.lower())
    slack.add_usergroup("S0SRE", ["U0SRE1", "U0GONE"])  # U0GONE is not in the workspace
    h: Harness = make_harness(catalog(), prometheus_url=None, clock=clock)
    return h


def texts(slack: SlackSimulator, channel: str) -> list[str]:
    return [str(m.get("text", "")) for m in slack.messages(channel)]


def with_text(slack: SlackSimulator, channel: str, needle: str) -> list[str]:
    return [t for t in texts(slack, channel) if needle in t]


def incident_channel(h: Harness, rollback_id: int) -> str:
    def found() -> str | None:
        rollback = h.bot.deps.repo.get_rollback(rollback_id)
        return rollback.incident_channel_id if rollback else None

    return str(until(found, "the incident channel"))


def settle(h: Harness) -> None:
    h.wait_rollbacks()
    h.wait_idle()


def test_critical_rollback_notifies_channels_opens_incident_channel_and_completes(
    harness: Harness, slack: SlackSimulator
) -> None:
    resp = harness.slash(f"run checkout --immediate {HOSTILE}")
    assert "Rollback #1 of *checkout* started" in resp.json()["text"]
    settle(harness)

    repo = harness.bot.deps.repo
    for channel in ("C0DEPLOYS", "C0INCIDENTS", "C0EXEC"):
        (notice,) = with_text(slack, channel, "CRITICAL: Production Rollback Initiated")
        assert "&lt;!channel&gt; &lt;http://evil|click&gt; @here &amp;" in notice
        assert "<!channel>" not in notice and "<http://evil" not in notice
        assert "Rollback coordinator: <@U0ONCALL1>" in notice
        assert "Updates every 10 minutes" in notice
        assert "https://status.example.com" in notice
        (done,) = with_text(slack, channel, "Production Rollback Completed")
        assert "Verify health: PASSED" in done

    channel_id = incident_channel(harness, 1)
    info = slack.channel(channel_id)
    assert info is not None
    assert info["name"] == f"rb-checkout-{datetime.now(UTC):%Y%m%d}-1"
    assert {"U0ONCALL1", "U0APPROVER1", "U0SRE1"} <= set(info["members"])
    assert "Rollback completed" in info["topic"]["value"]
    incident = texts(slack, channel_id)
    assert any("CRITICAL: Production Rollback Initiated" in t for t in incident)
    final = [i for i, t in enumerate(incident) if "This is the final update" in t]
    greeting = [i for i, t in enumerate(incident) if "CRITICAL: Production Rollback" in t]
    assert len(final) == 1 and greeting < final  # the final update comes after the greeting

    page = repo.get_work("page-start:1:critical")
    assert page is not None and page.kind == "page.start"
    assert page.payload["reason"] == "critical" and page.payload["rollback_id"] == 1
    sla = repo.get_work("sla-check:1")
    assert sla is not None and sla.status == "cancelled"
    sent = {(e.kind, e.channel_id) for e in repo.list_audit_events(rollback_id=1)}
    assert ("notification.critical_notice", "C0EXEC") in sent
    assert ("notification.completion_notice", "C0DEPLOYS") in sent
    assert ("notification.incident_final", channel_id) in sent


def test_taken_names_get_the_next_suffix_and_failed_invites_do_not_stop_it(
    harness: Harness, slack: SlackSimulator
) -> None:
    base = f"rb-checkout-{datetime.now(UTC):%Y%m%d}-1"
    slack.add_channel("C0OLD1", base, is_archived=True)  # archived: keeps its name
    slack.add_channel("C0OLD2", f"{base}-2")
    slack.inject_error("conversations.invite", "cant_invite_self")

    harness.slash("run checkout --immediate bad deploy")
    settle(harness)

    channel = slack.channel(incident_channel(harness, 1))
    assert channel is not None and channel["name"] == f"{base}-3"
    assert slack.channel("C0OLD1")["is_archived"] is True  # type: ignore[index]
    invites = slack.calls_to("conversations.invite")
    failed = {c.response.get("error") for c in invites if not c.response["ok"]}
    assert failed == {"cant_invite_self", "user_not_found"}  # U0GONE is unknown
    assert {"U0APPROVER1", "U0SRE1"} <= set(channel["members"])
    assert with_text(slack, channel["id"], "final update")


def test_failed_rollback_posts_the_failure_notice_and_pages(
    harness: Harness, slack: SlackSimulator
) -> None:
    harness.slash("run billing --immediate payments down")
    settle(harness)

    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "failed"
    for channel in ("C0DEPLOYS", "C0INCIDENTS", "C0EXEC"):
        (notice,) = with_text(slack, channel, "Production Rollback FAILED")
        assert "phase *application*, step *Call deploy API*" in notice
        assert "unreachable" in notice
        # billing has no on-call ladder: the notice must not promise a page
        assert "Nobody is being paged: billing has no `oncall:` ladder" in notice
        assert "is being paged;" not in notice
    page = harness.bot.deps.repo.get_work("page-start:1:failed")
    assert page is not None and page.payload["reason"] == "failed"


def test_rate_limits_and_server_errors_still_deliver_every_notice_once(
    harness: Harness, slack: SlackSimulator
) -> None:
    slack.inject("chat.postMessage", status=429, headers={"Retry-After": "0"}, times=3)
    slack.inject("chat.postMessage", status=503, times=2)

    harness.slash("run checkout --immediate bad deploy")
    settle(harness)

    assert [c.status for c in slack.calls_to("chat.postMessage")][:5] == [429] * 3 + [503] * 2
    for channel in ("C0DEPLOYS", "C0INCIDENTS", "C0EXEC"):
        assert len(with_text(slack, channel, "CRITICAL: Production Rollback")) == 1
        assert len(with_text(slack, channel, "Production Rollback Completed")) == 1


def test_posts_slack_took_but_answered_500_for_are_not_made_twice(
    harness: Harness, slack: SlackSimulator
) -> None:
    """Every post of a critical rollback lands but its answer is lost (a 500): the retries find
    them by their metadata markers, so each channel still holds each notice once."""
    slack.inject("chat.postMessage", status=500, is_applied=True, times=6)
    harness.slash("run checkout --immediate bad deploy")
    settle(harness)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(
        with_text(slack, c, "Production Rollback Completed") for c in ("C0INCIDENTS", "C0EXEC")
    ):
        harness.bot.deps.due.tick()  # the retries of what got a 500
        settle(harness)

    for channel in ("C0DEPLOYS", "C0INCIDENTS", "C0EXEC"):
        assert len(with_text(slack, channel, "CRITICAL: Production Rollback")) == 1, channel
        assert len(with_text(slack, channel, "Production Rollback Completed")) == 1, channel
    assert len(with_text(slack, "C0DEPLOYS", "Rollback #1 of checkout")) == 1
    looked = slack.calls_to("conversations.history") + slack.calls_to("conversations.replies")
    assert looked  # the retries looked before posting again
    assert [c.status for c in slack.calls_to("chat.postMessage")][:6] == [500] * 6


def test_listener_told_twice_posts_once(harness: Harness, slack: SlackSimulator) -> None:
    harness.slash("run checkout --immediate bad deploy")
    settle(harness)
    deps = harness.bot.deps
    rollback = deps.repo.get_rollback(1)
    assert rollback is not None
    (notifier,) = [x for x in deps.engine.listeners if type(x).__name__ == "Notifier"]
    notifier.rollback_started(rollback)  # a crash right after the start tells it again
    notifier.rollback_finished(rollback)
    harness.wait_idle()
    deps.due.tick()

    assert len(with_text(slack, "C0EXEC", "CRITICAL: Production Rollback")) == 1
    assert len(with_text(slack, "C0EXEC", "Production Rollback Completed")) == 1
    assert len(slack.calls_to("conversations.create")) == 1


def test_updates_every_n_minutes_sla_breach_then_final_update(
    harness: Harness, slack: SlackSimulator, clock: ShiftedClock
) -> None:
    deps = harness.bot.deps
    harness.slash("run search --immediate latency through the roof")
    channel = incident_channel(harness, 1)
    until(lambda: with_text(slack, "C0DEPLOYS", "CRITICAL"), "the critical notice")
    until(lambda: deps.repo.get_work("incident-update:1:1"), "the first update")
    harness.wait_idle()
    assert not with_text(slack, channel, "Update on rollback #1")

    clock.offset = timedelta(minutes=10, seconds=1)
    deps.due.tick()
    (update,) = with_text(slack, channel, "Update on rollback #1")
    assert "Rollback in progress" in update and "Now: Manual gate" in update
    assert "Next update in 10 minutes" in update
    assert "Rollback in progress" in str(slack.channel(channel)["topic"])  # type: ignore[index]
    assert deps.repo.get_work("incident-update:1:2") is not None
    assert not with_text(slack, "C0DEPLOYS", "RollbackTakingTooLong")

    clock.offset = timedelta(minutes=12, seconds=1)  # past search's 12-minute SLA
    deps.due.tick()
    for where in ("C0DEPLOYS", channel):
        (alert,) = with_text(slack, where, "RollbackTakingTooLong")
        assert "SLA: 12 minutes" in alert
    page = deps.repo.get_work("page-start:1:sla")
    assert page is not None and page.payload["reason"] == "sla"

    (gate,) = [s for s in deps.repo.list_steps(1) if s.kind == "manual_gate"]
    assert gate.id is not None
    deps.repo.record_step_detail(gate.id, {"continued_by": "U0ONCALL1"})
    settle(harness)

    assert len(with_text(slack, channel, "This is the final update")) == 1
    assert deps.repo.get_work("incident-update:1:2").status == "cancelled"  # type: ignore[union-attr]
    clock.offset = timedelta(minutes=30)
    deps.due.tick()
    assert len(with_text(slack, channel, "Update on rollback #1")) == 2  # 1 periodic + final


def test_the_incident_topic_follows_the_phases(harness: Harness, slack: SlackSimulator) -> None:
    deps = harness.bot.deps
    harness.slash("run orders --immediate bad migration")
    channel = incident_channel(harness, 1)

    def topic() -> str:
        return str(slack.channel(channel)["topic"]["value"])  # type: ignore[index]

    def continue_gate(name: str) -> None:
        (gate,) = [s for s in deps.repo.list_steps(1) if s.name == name]
        assert gate.id is not None
        deps.repo.record_step_detail(gate.id, {"continued_by": "U0ONCALL1"})

    until(lambda: "database phase: Restore orders DB" in topic(), "the database phase topic")
    continue_gate("Restore orders DB")
    until(lambda: "application phase: Roll orders-api back" in topic(), "the next phase topic")
    assert deps.repo.get_work("incident-topic:1:database") is not None
    continue_gate("Roll orders-api back")
    settle(harness)
    assert topic().startswith("Rollback #1 of orders: Rollback completed")


@pytest.mark.parametrize(
    "error",
    ["missing_scope", "invalid_auth", "account_inactive", "restricted_action_read_only_channel"],
)
def test_a_permanent_refusal_is_audited_once_and_the_other_channels_still_get_it(
    harness: Harness, slack: SlackSimulator, clock: ShiftedClock, error: str
) -> None:
    deps = harness.bot.deps
    rollback = deps.repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=clock(),
        reason="bad deploy",
        channel_id="C0DEPLOYS",
    )
    assert rollback.id is not None
    progress = deps.engine.progress
    assert isinstance(progress, SlackProgress) and progress.anchor(rollback.id)  # as the engine
    slack.inject_error("chat.postMessage", error)  # whichever channel's post comes first
    deps.due.schedule("notify.critical", "notify-critical:1", clock(), {"rollback_id": 1})
    assert deps.due.tick() == 1

    work = deps.repo.get_work("notify-critical:1")
    assert work is not None and work.status == "done"  # not retried every 10 s forever
    (failed,) = deps.repo.list_audit_events("notification.critical_notice.failed", rollback_id=1)
    assert failed.detail == {"error": error}
    sent = deps.repo.list_audit_events("notification.critical_notice", rollback_id=1)
    channels = ["C0DEPLOYS", "C0INCIDENTS", "C0EXEC"]
    assert sorted([str(failed.channel_id), *(str(e.channel_id) for e in sent)]) == sorted(channels)
    for channel in channels:
        expected = 0 if channel == failed.channel_id else 1
        assert len(with_text(slack, channel, "CRITICAL: Production Rollback")) == expected

    # told again (a retry, another replica): the refused channel is not tried again either
    posts = len(slack.calls_to("chat.postMessage"))
    (notifier,) = [x for x in deps.engine.listeners if isinstance(x, Notifier)]
    service = deps.catalog.get("checkout")
    assert service is not None and rollback.id == 1
    notifier.post(rollback, service, "critical_notice", channels)
    assert len(slack.calls_to("chat.postMessage")) == posts


def top_level(slack: SlackSimulator, channel: str) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if m.get("thread_ts", m["ts"]) == m["ts"]]


def test_the_progress_message_is_the_one_top_level_message_in_the_service_channel(
    harness: Harness, slack: SlackSimulator
) -> None:
    harness.slash("run checkout --immediate bad deploy")
    settle(harness)
    until(lambda: with_text(slack, "C0DEPLOYS", "Production Rollback Completed"), "completion")

    (anchor,) = top_level(slack, "C0DEPLOYS")  # was four: progress, critical, page, completion
    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and anchor["ts"] == rollback.progress_ts
    replies = [
        m for m in slack.messages("C0DEPLOYS") if m is not anchor and m["ts"] != anchor["ts"]
    ]
    assert all(m["thread_ts"] == anchor["ts"] for m in replies)
    assert not any(m.get("subtype") == "thread_broadcast" for m in replies)  # nothing to act on
    (critical,) = [m["text"] for m in replies if "CRITICAL: Production Rollback" in m["text"]]
    assert any("Production Rollback Completed" in m["text"] for m in replies)
    # the notice links the incident channel, says what the SLA is, and the catalog's impact
    channel_id = incident_channel(harness, 1)
    assert f"• Incident channel: <#{channel_id}>" in critical
    assert "• SLA: the rollback should be done within 15 minutes" in critical
    assert "Estimated downtime" not in critical
    assert "• Business impact: Customers cannot pay" in critical
    assert f"incident channel <#{channel_id}>" in json.dumps(anchor["blocks"])
    # other critical channels still get the notice at their top level
    (elsewhere,) = [m for m in top_level(slack, "C0INCIDENTS") if "CRITICAL" in m["text"]]
    assert f"<#{channel_id}>" in elsewhere["text"]


def test_a_service_without_impact_gets_no_made_up_business_impact(
    harness: Harness, slack: SlackSimulator
) -> None:
    harness.slash("run search --immediate stuck")
    (critical,) = until(
        lambda: with_text(slack, "C0DEPLOYS", "CRITICAL: Production Rollback"), "the notice"
    )
    assert "Business impact" not in critical
    assert "within 12 minutes" in critical
    harness.slash("abort 1")
    settle(harness)


def test_a_failure_is_in_the_thread_and_also_shown_in_the_channel(
    harness: Harness, slack: SlackSimulator
) -> None:
    harness.slash("run billing --immediate payments down")
    settle(harness)
    until(lambda: with_text(slack, "C0DEPLOYS", "Production Rollback FAILED"), "the failure")
    (anchor,) = top_level(slack, "C0DEPLOYS")
    (failure,) = [
        m for m in slack.messages("C0DEPLOYS") if "Production Rollback FAILED" in m["text"]
    ]
    assert failure["thread_ts"] == anchor["ts"]
    assert failure["subtype"] == "thread_broadcast"  # someone must take over: the channel sees it
    call = slack.wait_for(
        "chat.postMessage",
        lambda c: (
            "Production Rollback FAILED" in str(c.params.get("text"))
            and c.params.get("channel") == "C0DEPLOYS"
        ),
    )
    assert call.params.get("reply_broadcast") in ("1", True, "true")


def test_a_3900_character_reason_is_cut_in_the_progress_message_and_whole_in_its_thread(
    harness: Harness, slack: SlackSimulator
) -> None:
    reason = "error rate doubled & users complain " * 108  # 3,888 characters
    harness.slash(f"run checkout --immediate {reason}")
    settle(harness)
    rollback = harness.bot.deps.repo.get_rollback(1)
    assert rollback is not None and rollback.status == "succeeded"
    assert rollback.progress_ts is not None  # Slack took the message
    refused = [c for c in slack.calls if c.response.get("error") == "invalid_blocks"]
    assert refused == []
    (anchor,) = top_level(slack, "C0DEPLOYS")
    assert "… _(the whole text is in the thread)_" in json.dumps(
        anchor["blocks"], ensure_ascii=False
    )
    whole = until(lambda: with_text(slack, "C0DEPLOYS", "*Reason* (whole):"), "the whole reason")
    assert reason.strip().replace("&", "&amp;") in whole[0]
