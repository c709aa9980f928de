"""Who may acknowledge a page, and acknowledgements that survive a crash: Slack clicks signed like
Slack's and SMS replies signed like Twilio's, against the real app and the simulators. A crash is
played by making one of our own repository calls fail (or the process stop) at the worst moment,
then a second app on the same database (a restart) runs the due work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.console import buttons_of
from bot.sim.slack_api import SlackSimulator
from storage.repository import Repository
from tests import twilio_fixtures
from tests.twilio_fixtures import CHANNEL, PRIMARY, SECONDARY, PagingHarness, paging_catalog

twilio, clock, make_paging = (
    twilio_fixtures.twilio,
    twilio_fixtures.clock,
    twilio_fixtures.make_paging,
)

REQUESTER, RESPONDER, APPROVER, GROUP_MEMBER = "U0REQUESTER", "U0RESPONDER", "U0APPROVER1", "U0SRE1"
STRANGER = "U0STRANGER"
ANNOUNCED = "Escalation stopped."


def owners_catalog() -> str:
    """checkout with a responder, an approver and an approver user group (S0SRE)."""
    return (
        paging_catalog()
        .replace("approvers: [U0APPROVER1]", "approvers: [U0APPROVER1, {usergroup: S0SRE}]")
        .replace("responders: [U0ONCALL1]", f"responders: [{RESPONDER}]")
    )


@pytest.fixture
def h(make_paging: Any, slack: SlackSimulator) -> PagingHarness:
    slack.add_usergroup("S0SRE", [GROUP_MEMBER])
    harness: PagingHarness = make_paging(owners_catalog())
    return harness


def _paged(h: PagingHarness) -> int:
    """A rollback requested by REQUESTER whose level 1 was paged (SMS and notice)."""
    rollback = h.bot.deps.repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by=REQUESTER,
        status="running",
        now=h.clock(),
        reason="5xx storm after v3",
        channel_id=CHANNEL,
    )
    assert rollback.id is not None
    h.start_ladder(rollback.id)
    h.tick()
    return rollback.id


def _click_ack(h: PagingHarness, user: str) -> None:
    notice = next(m for m in h.slack.messages(CHANNEL) if "Paging level 1" in m["text"])
    [button] = buttons_of(notice["blocks"])
    assert h.requester.click(notice, button, user_id=user, channel_id=CHANNEL).status_code == 200


def _answered(h: PagingHarness, text: str) -> dict[str, Any]:
    call = h.slack.wait_for("response_url", lambda c: text in str(c.params.get("text")))
    return call.params


def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _settle(h: PagingHarness) -> None:
    """Let the due work an acknowledgement kicked off finish before the clock jumps: a jump past
    its lease would let the next tick claim an item still being run."""
    assert h.bot.deps.work.wait_idle(10), "background work still running"


def _announcements(h: PagingHarness) -> list[str]:
    return [t for t in h.channel_texts() if ANNOUNCED in t]


def _crash_after_commit(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies right after ``acknowledge_ladder`` committed, before anything else."""
    real = repo.acknowledge_ladder

    def crashing(*args: Any, **kwargs: Any) -> bool:
        assert real(*args, **kwargs), "the acknowledgement itself should win"
        raise RuntimeError("simulated crash right after the acknowledgement committed")

    monkeypatch.setattr(repo, "acknowledge_ladder", crashing)


def test_a_stranger_is_told_who_can_acknowledge_and_the_ladder_goes_on(h: PagingHarness) -> None:
    rid = _paged(h)
    _click_ack(h, STRANGER)
    refusal = _answered(h, "can acknowledge its page")
    assert refusal["response_type"] == "ephemeral" and refusal["replace_original"] is False
    text = str(refusal["text"])
    for owner in (REQUESTER, RESPONDER, APPROVER):
        assert f"<@{owner}>" in text
    assert "<!subteam^S0SRE>" in text and "ACK" in text and "4-digit code" in text
    [refused] = h.bot.deps.repo.list_audit_events(kind="page.ack_refused", rollback_id=rid)
    assert refused.actor == STRANGER and refused.detail["via"] == "slack"
    assert refused.channel_id == CHANNEL and refused.message_ts
    rollback = h.bot.deps.repo.get_rollback(rid)
    assert rollback is not None and rollback.acknowledged_at is None
    h.tick(minutes=5)
    assert len(h.sms_to(SECONDARY)) == 1, "the refused click did not stop the escalation"
    assert not _announcements(h)
    assert not h.bot.deps.repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)
    # the SMS reply from the paged phone still works, whoever clicked before
    page = h.pages(rid)[0]
    assert "is yours" in h.reply(PRIMARY, f"ACK {page.ack_code}").text


@pytest.mark.parametrize(
    "user",
    [
        pytest.param(REQUESTER, id="requester"),
        pytest.param(RESPONDER, id="responder"),
        pytest.param(APPROVER, id="approver"),
        pytest.param(GROUP_MEMBER, id="approver-group-member"),
    ],
)
def test_the_rollbacks_owners_may_acknowledge(h: PagingHarness, user: str) -> None:
    rid = _paged(h)
    _click_ack(h, user)
    assert _answered(h, "You took")["response_type"] == "ephemeral"
    rollback = h.bot.deps.repo.get_rollback(rid)
    assert rollback is not None and rollback.acknowledged_by == user
    _settle(h)
    h.tick(minutes=60)
    assert not h.sms_to(SECONDARY)
    assert _announcements(h) == [
        f":white_check_mark: The page for *ROLLBACK #{rid} checkout CRITICAL* was acknowledged"
        f" by <@{user}>. Escalation stopped."
    ]
    assert not h.bot.deps.repo.list_audit_events(kind="page.ack_refused", rollback_id=rid)


def test_a_crash_right_after_the_ack_still_announces_it_once(
    h: PagingHarness, make_paging: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _paged(h)
    notice = next(m for m in h.slack.messages(CHANNEL) if "Paging level 1" in m["text"])
    _crash_after_commit(h.bot.deps.repo, monkeypatch)
    _click_ack(h, RESPONDER)
    repo = h.bot.deps.repo
    _until(lambda: bool(repo.list_pages(rid)[0].acknowledged_at), "the acknowledgement")
    _settle(h)
    assert not _announcements(h), "the process died before anything was posted"
    restarted: PagingHarness = make_paging(owners_catalog())
    # the click is retried on the new process: already done, nothing happens twice
    _click_ack(restarted, RESPONDER)
    _answered(restarted, f"Already acknowledged by <@{RESPONDER}>")
    restarted.tick()
    restarted.tick(minutes=60)
    assert _announcements(restarted) == [
        f":white_check_mark: The page for *ROLLBACK #{rid} checkout CRITICAL* was acknowledged"
        f" by <@{RESPONDER}>. Escalation stopped."
    ]
    [event] = restarted.bot.deps.repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)
    assert event.actor == RESPONDER and event.detail["via"] == "slack"
    assert event.detail["cancelled"] == 1, "level 2 was cancelled with the acknowledgement"
    assert not restarted.sms_to(SECONDARY)
    updated = restarted.slack.wait_for("chat.update", lambda c: c.params.get("ts") == notice["ts"])
    assert f"Acknowledged by <@{RESPONDER}>" in str(updated.params["blocks"])


def test_slack_failing_then_a_restart_still_announces_the_sms_ack_once(
    h: PagingHarness, make_paging: Any
) -> None:
    rid = _paged(h)
    page = h.pages(rid)[0]
    h.slack.inject_error("chat.postMessage", "internal_error", times=3)
    assert "is yours" in h.reply(PRIMARY, f"ACK {page.ack_code}").text
    _settle(h)
    assert not _announcements(h), "Slack refused the announcement"
    restarted: PagingHarness = make_paging(owners_catalog())
    for _ in range(4):  # 5 s, 10 s, 20 s back-off: the fourth try gets through
        restarted.tick(seconds=30)
    assert _announcements(restarted) == [
        f":white_check_mark: The page for *ROLLBACK #{rid} checkout CRITICAL* was acknowledged"
        " by Primary on-call by SMS. Escalation stopped."
    ]
    events = restarted.bot.deps.repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)
    assert len(events) == 1 and events[0].detail["via"] == "sms"


def test_twilio_retrying_a_reply_whose_handling_failed_still_acknowledges(
    h: PagingHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _paged(h)
    page = h.pages(rid)[0]
    repo = h.bot.deps.repo
    real, failures = repo.find_pages_for_reply, [RuntimeError("database went away")]

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, "find_pages_for_reply", failing_once)
    sid = "SM" + "b" * 32
    first = h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid=sid)
    assert first.status_code == 200 and "hit an error" in first.text
    rollback = repo.get_rollback(rid)
    assert rollback is not None and rollback.acknowledged_at is None
    retry = h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid=sid)
    assert f"Thanks Primary on-call: ROLLBACK #{rid} checkout is yours" in retry.text
    again = h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid=sid)
    assert again.text.endswith("<Response />"), "a retry of a handled reply is answered once"
    _settle(h)
    h.tick(minutes=60)
    assert not h.sms_to(SECONDARY)
    assert len(_announcements(h)) == 1
    assert len(repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)) == 1


def test_twilio_retrying_after_a_crash_past_the_ack_has_one_effect(
    h: PagingHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _paged(h)
    page = h.pages(rid)[0]
    _crash_after_commit(h.bot.deps.repo, monkeypatch)
    sid = "SM" + "c" * 32
    assert "hit an error" in h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid=sid).text
    monkeypatch.undo()
    retry = h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid=sid)
    assert "already acknowledged" in retry.text, "handled again: the ack is not repeated"
    h.tick()
    h.tick(minutes=60)
    assert not h.sms_to(SECONDARY)
    assert len(_announcements(h)) == 1
    repo = h.bot.deps.repo
    assert len(repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)) == 1


def test_an_ack_in_slack_covers_the_failure_that_joins_and_the_phone_hears_who_has_it(
    h: PagingHarness,
) -> None:
    rid = _paged(h)
    page = h.pages(rid)[0]
    _click_ack(h, RESPONDER)
    _answered(h, "You took")
    _settle(h)
    h.tick(minutes=1)
    h.finish(rid, "failed", error="Verify health failed")
    h.settle()
    assert [m.body for m in h.sms_to(PRIMARY)][1:] == [
        f"ROLLBACK #{rid} checkout FAILED: Verify health failed."
        f" Someone in Slack has it (ACK {page.ack_code})."
    ]
    joined = next(t for t in h.channel_texts() if "same ACK codes" in t)
    assert f"Acknowledged by <@{RESPONDER}>: escalation stays stopped" in joined
    assert "was already acknowledged" in h.reply(PRIMARY, f"ACK {page.ack_code}").text
    h.tick(minutes=60)
    assert not h.sms_to(SECONDARY), "the failure did not restart the escalation"
    assert len(h.bot.deps.repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)) == 1
