"""Paging through HTTP: SMS replies and delivery reports signed like Twilio's, Slack button clicks
signed like Slack's, against the real app and the Twilio and Slack simulators."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.adapters.console import buttons_of
from tests import twilio_fixtures
from tests.twilio_fixtures import CHANNEL, PRIMARY, SECONDARY, PagingHarness

twilio, clock, make_paging = (
    twilio_fixtures.twilio,
    twilio_fixtures.clock,
    twilio_fixtures.make_paging,
)


@pytest.fixture
def h(make_paging: Any) -> PagingHarness:
    harness: PagingHarness = make_paging()
    return harness


def _until(condition: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _paged(h: PagingHarness) -> int:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    return rid


def test_ack_by_sms_reply_stops_the_ladder_once(h: PagingHarness) -> None:
    rid = _paged(h)
    [page] = h.pages(rid)
    answer = h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid="SM" + "a" * 32)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
    assert f"Thanks Primary on-call: ROLLBACK #{rid} checkout is yours" in answer.text
    again = h.reply(PRIMARY, f"ACK {page.ack_code}", message_sid="SM" + "a" * 32)
    assert again.text.endswith("<Response />"), "a retried webhook is answered once"
    later = h.reply(PRIMARY, f"ack {page.ack_code}")
    assert "already acknowledged" in later.text
    assert h.bot.deps.work.wait_idle(5)  # the clock jumps past the lease of running due work
    h.tick(minutes=60)
    assert len(h.twilio.messages) == 1
    h.bot.deps.work.wait_idle(5)
    acks = [t for t in h.channel_texts() if "acknowledged by" in t]
    assert acks == [
        f":white_check_mark: The page for *ROLLBACK #{rid} checkout CRITICAL* was acknowledged"
        " by Primary on-call by SMS. Escalation stopped."
    ]
    events = h.bot.deps.repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)
    assert len(events) == 1 and events[0].detail["via"] == "sms"


def test_ack_by_the_slack_button_stops_the_ladder(h: PagingHarness) -> None:
    rid = _paged(h)
    notice = next(m for m in h.slack.messages(CHANNEL) if "Paging level 1" in m["text"])
    [button] = buttons_of(notice["blocks"])
    answer = h.requester.click(notice, button, user_id="U0APPROVER1", channel_id=CHANNEL)
    assert answer.status_code == 200
    reply = h.slack.wait_for("response_url", lambda c: "You took" in str(c.params))
    assert reply.params["response_type"] == "ephemeral"
    assert h.bot.deps.work.wait_idle(5)  # the clock jumps past the lease of running due work
    h.tick(minutes=60)
    assert len(h.twilio.messages) == 1 and not h.sms_to(SECONDARY)
    rollback = h.bot.deps.repo.get_rollback(rid)
    assert rollback is not None and rollback.acknowledged_by == "U0APPROVER1"
    updated = h.slack.wait_for("chat.update", lambda c: c.params.get("ts") == notice["ts"])
    assert "Acknowledged by <@U0APPROVER1>" in str(updated.params["blocks"])
    assert not buttons_of(updated.params["blocks"])
    h.requester.click(notice, button, user_id="U0OTHER", channel_id=CHANNEL)
    h.slack.wait_for(
        "response_url", lambda c: "Already acknowledged by <@U0APPROVER1>" in str(c.params)
    )
    assert h.bot.deps.metrics.pages_acknowledged.labels("checkout", "slack")._value.get() == 1


def test_unknown_codes_and_other_texts_get_a_helpful_reply(h: PagingHarness) -> None:
    rid = _paged(h)
    [page] = h.pages(rid)
    wrong = "0000" if page.ack_code != "0000" else "1111"
    assert f"unknown code {wrong}" in h.reply(PRIMARY, f"ACK {wrong}").text
    assert "reply ACK and the 4-digit code" in h.reply(PRIMARY, "who is this?").text
    # the right code from another phone is not an acknowledgement either
    assert "unknown code" in h.reply(SECONDARY, f"ACK {page.ack_code}").text
    # a bare ACK is enough when only one page to this phone is open
    assert "is yours" in h.reply(PRIMARY, "Ack").text


def test_forged_or_unsigned_webhooks_are_refused(h: PagingHarness) -> None:
    rid = _paged(h)
    [page] = h.pages(rid)
    forged = h.reply(PRIMARY, f"ACK {page.ack_code}", signature="bm90IGEgc2lnbmF0dXJl")
    assert forged.status_code == 403
    body = urlencode({"MessageSid": page.twilio_sid, "MessageStatus": "undelivered"})
    unsigned = h.http.post(
        f"{h.url}/twilio/status",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsigned.status_code == 403
    rollback = h.bot.deps.repo.get_rollback(rid)
    assert rollback is not None and rollback.acknowledged_at is None
    assert h.pages(rid)[0].status != "undelivered"


def test_delivery_reports_update_the_page_once_and_in_order(h: PagingHarness) -> None:
    rid = _paged(h)
    h.twilio.wait_until(lambda sim: len(sim.callbacks) == 2)
    assert [c.status_code for c in h.twilio.callbacks] == [204, 204]
    [page] = h.pages(rid)
    assert page.status == "delivered" and page.twilio_sid is not None
    assert h.twilio.send_status(page.twilio_sid, "delivered").status_code == 204
    assert h.twilio.send_status(page.twilio_sid, "sent").status_code == 204  # late, stale
    [page] = h.pages(rid)
    assert page.status == "delivered"


def test_an_undelivered_page_warns_and_pages_the_next_level_now(h: PagingHarness) -> None:
    h.twilio.set_undeliverable(PRIMARY, "undelivered", 30003)
    rid = _paged(h)
    # ">=": the warning kicks due work, so level 2 (and its callbacks) may already be under way
    h.twilio.wait_until(lambda sim: len(sim.callbacks) >= 2)
    page = h.pages(rid)[0]
    assert (page.status, page.error_code) == ("undelivered", 30003)
    h.tick(seconds=1)  # long before level 2's five minutes
    assert len(h.sms_to(SECONDARY)) == 1
    h.bot.deps.work.wait_idle(5)
    _until(lambda: any("undelivered" in t for t in h.channel_texts()), "the warning")
    warning = next(t for t in h.channel_texts() if "undelivered" in t)
    assert "Primary on-call (+1555•••0001)" in warning and "Twilio 30003" in warning
    assert "Paging the next level now" in warning
    h.tick(minutes=5)  # level 2's own time: nobody is paged twice
    assert len(h.sms_to(SECONDARY)) == 1
    # the same report again changes nothing
    assert page.twilio_sid is not None
    h.twilio.send_status(page.twilio_sid, "undelivered", 30003)
    h.bot.deps.work.wait_idle(5)
    assert sum("undelivered" in t for t in h.channel_texts()) == 1


def test_the_failure_text_keeps_the_code_and_a_bare_ack_takes_the_one_incident(
    h: PagingHarness,
) -> None:
    """A failure joins the open page: the phone gets the news with the code it already has,
    and as one rollback is one open page, a bare ACK is not ambiguous."""
    rid = _paged(h)
    [page] = h.pages(rid)
    h.clock.advance(minutes=1)
    h.finish(rid, "failed", error="Verify health failed")
    h.settle()
    first, news = (m.body for m in h.sms_to(PRIMARY))
    assert f"ACK {page.ack_code}" in first
    assert news == (
        f"ROLLBACK #{rid} checkout FAILED: Verify health failed."
        f" Reply ACK {page.ack_code} to take it."
    )
    answer = h.reply(PRIMARY, "ACK")
    assert f"Thanks Primary on-call: ROLLBACK #{rid} checkout is yours" in answer.text
    assert h.bot.deps.work.wait_idle(5)
    h.tick(minutes=60)
    assert len(h.twilio.messages) == 2 and not h.sms_to(SECONDARY)
    events = h.bot.deps.repo.list_audit_events(kind="page.acknowledged", rollback_id=rid)
    assert len(events) == 1


def test_the_end_of_the_rollback_is_texted_and_the_button_goes(h: PagingHarness) -> None:
    rid = _paged(h)
    notice = next(m for m in h.slack.messages(CHANNEL) if "Paging level 1" in m["text"])
    h.clock.advance(minutes=2, seconds=30)
    h.finish(rid, "succeeded")
    h.settle()
    assert h.sms_to(PRIMARY)[-1].body == (
        f"Rollback #{rid} of checkout SUCCEEDED at 09:02 UTC; no action needed."
    )
    updated = h.slack.wait_for("chat.update", lambda c: c.params.get("ts") == notice["ts"])
    assert not buttons_of(updated.params["blocks"])
    assert "Escalation stopped" in str(updated.params["blocks"])
    # a click on a button someone still sees stops nothing more and breaks nothing
    [button] = buttons_of(notice["blocks"])
    assert h.requester.click(notice, button, user_id="U0APPROVER1", channel_id=CHANNEL)
    h.slack.wait_for("response_url", lambda c: "ROLLBACK" in str(c.params))
    assert h.bot.deps.work.wait_idle(5)
    h.tick(minutes=60)
    assert len(h.twilio.messages) == 2
