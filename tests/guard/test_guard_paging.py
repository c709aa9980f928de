"""The guard's question pages the service's whole on-call ladder (issue 14): the real app, the
Slack and Twilio simulators and an injected clock; the question is asked the way ``fire`` asks
it (``firing.ask``), so no Prometheus is needed here (test_guard_flow drives the whole round)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest

from bot.adapters.twilio import sms_segments
from bot.catalog.load import Service
from bot.guard import firing
from bot.paging.messages import question_sms
from storage.guard_models import GuardedRelease
from tests import twilio_fixtures
from tests.conftest import catalog_yaml, service_yaml
from tests.twilio_fixtures import (
    CHANNEL,
    LADDER,
    LEAD,
    PRIMARY,
    SECONDARY,
    SECONDARY_2,
    PagingHarness,
)

twilio, clock, make_paging = (
    twilio_fixtures.twilio,
    twilio_fixtures.clock,
    twilio_fixtures.make_paging,
)
RAW_PHONE = re.compile(r"\+?1?555010000\d")
REASON = "error_rate 0.2 > 0.01 for 1m00s"
GUARD = (
    "{{enabled: true, require_manual_confirmation: true, confirm_timeout_seconds: {timeout},"
    " triggers: [{{metric: error_rate, threshold: 0.01, comparison: greater_than,"
    " duration_seconds: 60}}]}}"
)


def guarded_catalog(oncall: str | None = LADDER, timeout: int = 1800) -> str:
    extra: dict[str, Any] = {"channel": CHANNEL, "auto_rollback": GUARD.format(timeout=timeout)}
    if oncall:
        extra["oncall"] = oncall
    return catalog_yaml(service_yaml("checkout", None, **extra))


def new_release(h: PagingHarness) -> GuardedRelease:
    """A watched release of checkout with its guard message posted (the question's thread)."""
    repo, now = h.bot.deps.repo, h.clock()
    release = repo.start_guarding(
        "checkout", "3", "app=checkout:v3", now, now + timedelta(minutes=30), {}, {}
    )
    assert release is not None and release.id is not None
    posted = h.bot.deps.slack.chat_postMessage(channel=CHANNEL, text="Guarding *checkout*")
    repo.set_guard_message(release.id, str(posted["channel"]), str(posted["ts"]))
    fresh = repo.guarded_release(release.id)
    assert fresh is not None
    return fresh


def ask(h: PagingHarness, release: GuardedRelease) -> None:
    service = h.bot.deps.catalog.get("checkout")
    assert isinstance(service, Service)
    firing.ask(h.bot.deps, service, release, REASON, [])
    h.settle()


def thread_texts(h: PagingHarness, release: GuardedRelease) -> list[str]:
    posts = h.slack.calls_to("chat.postMessage")
    return [
        str(c.params.get("text", ""))
        for c in posts
        if c.params.get("thread_ts") == release.message_ts
    ]


def audit_kinds(h: PagingHarness) -> list[str]:
    return [e.kind for e in h.bot.deps.repo.list_audit_events()]


def ack_code(sms_body: str) -> str:
    found = re.search(r"ACK (\d{4})", sms_body)
    assert found is not None, sms_body
    return found.group(1)


def test_the_question_pages_level_one_then_escalates_when_nobody_answers(
    make_paging: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h: PagingHarness = make_paging(guarded_catalog())
    h.slack.add_channel(CHANNEL, "checkout-alerts")
    release = new_release(h)
    ask(h, release)
    (sms,) = h.sms_to(PRIMARY)
    assert sms.body.startswith(f"GUARD checkout: {REASON}.")
    assert "Answer in Slack #checkout-alerts." in sms.body and "Reply ACK " in sms.body
    assert h.sms_to(SECONDARY) == []  # level 2 waits for its after_minutes
    notes = thread_texts(h, release)
    assert any("Roll back now, or keep the release?" in t for t in notes)
    (level_1,) = [t for t in notes if "Paging level 1/3" in t]
    assert "GUARD checkout app=checkout:v3" in level_1 and "Primary on-call" in level_1
    h.tick(minutes=4)
    assert h.sms_to(SECONDARY) == []
    h.tick(minutes=1)  # nobody answered: level 2 (two people) at 5 min
    assert len(h.sms_to(SECONDARY)) == 1 and len(h.sms_to(SECONDARY_2)) == 1
    assert any("Paging level 2/3" in t for t in thread_texts(h, release))
    assert len(h.sms_to(PRIMARY)) == 1  # nobody is paged twice
    # phone numbers: never in full in Slack or the logs (masked, as every page notice)
    slack_texts = [str(c.params) for c in h.slack.calls_to("chat.postMessage")]
    assert not any(RAW_PHONE.search(t) for t in slack_texts)
    assert PRIMARY not in caplog.text and "+1555•••0001" in caplog.text
    assert audit_kinds(h).count("page.sent") == 3


def test_an_answer_stops_the_escalation(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    ask(h, release)
    h.tick(minutes=5)
    assert len(h.sms_to(SECONDARY)) == 1
    reply = firing.answer(h.bot.deps, f"checkout:{release.id}", "U0ONCALL1", run=False)
    assert "Release kept" in reply.text
    h.settle()
    h.tick(minutes=15)
    h.tick(minutes=10)
    assert h.sms_to(LEAD) == []  # level 3 never paged
    assert any("Paging stopped (answered by <@U0ONCALL1>)" in t for t in thread_texts(h, release))
    assert not any("Nobody acknowledged" in t for t in thread_texts(h, release))


def test_the_timeout_stops_the_escalation(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog(timeout=600))
    release = new_release(h)
    ask(h, release)
    h.tick(minutes=5)
    assert len(h.sms_to(SECONDARY)) == 1
    h.tick(minutes=5)  # 10 min: the question times out (default: roll back) before level 3
    assert h.sms_to(LEAD) == []
    h.tick(minutes=10)
    assert h.sms_to(LEAD) == []
    assert "guard.confirm_timeout" in audit_kinds(h)
    assert any("Paging stopped (nobody answered in time)" in t for t in thread_texts(h, release))


def test_an_sms_ack_stops_the_paging_but_not_the_question(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    ask(h, release)
    (sms,) = h.sms_to(PRIMARY)
    answer = h.reply(PRIMARY, f"ACK {ack_code(sms.body)}")
    assert "paging stopped" in answer.text and "GUARD checkout" in answer.text
    h.settle()
    h.tick(minutes=5)
    h.tick(minutes=10)
    assert h.sms_to(SECONDARY) == [] and h.sms_to(LEAD) == []
    assert any("acknowledged by Primary on-call by SMS" in t for t in thread_texts(h, release))
    assert release.id is not None
    question = h.bot.deps.repo.get_work(f"guard-confirm:{release.id}")
    assert question is not None and question.status == "pending"  # still to be answered


def test_twilio_down_is_retried_and_said_in_the_thread(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    h.twilio.inject(503, times=1)
    release = new_release(h)
    ask(h, release)
    assert h.sms_to(PRIMARY) == []
    assert any("Twilio is not answering" in t for t in thread_texts(h, release))
    h.tick(seconds=5)
    assert len(h.sms_to(PRIMARY)) == 1
    h.tick(seconds=60)
    assert len(h.sms_to(PRIMARY)) == 1


def test_the_ladder_survives_a_restart(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    ask(h, release)
    restarted: PagingHarness = make_paging(guarded_catalog())  # same database, durable work
    h.bot.deps.due.handlers.clear()  # the first process is gone
    restarted.tick(minutes=5)
    assert len(h.sms_to(SECONDARY)) == 1 and len(h.sms_to(PRIMARY)) == 1


def test_a_repeated_ask_and_a_second_replica_page_nobody_twice(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    other: PagingHarness = make_paging(guarded_catalog())  # a second replica, same database
    release = new_release(h)
    ask(h, release)
    ask(h, release)  # a retried ask
    ask(other, release)  # the other replica asks the same question
    other.settle()
    assert len(h.sms_to(PRIMARY)) == 1
    assert audit_kinds(h).count("page.sent") == 1


def test_with_sms_disabled_the_thread_says_nobody_was_texted(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog(), is_sms_enabled=False)
    release = new_release(h)
    ask(h, release)
    assert h.twilio.messages == []
    (note,) = [t for t in thread_texts(h, release) if "Paging level 1/3" in t]
    assert "SMS paging is DISABLED" in note and "Call them yourself" in note
    assert "page.skipped" in audit_kinds(h)


def test_without_an_oncall_list_the_thread_says_so(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog(oncall=None))
    release = new_release(h)
    ask(h, release)
    assert h.twilio.messages == []
    assert any(
        "no `oncall:` ladder" in t and "nobody was paged" in t for t in thread_texts(h, release)
    )


def test_a_question_answered_before_its_page_pages_nobody(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    service = h.bot.deps.catalog.get("checkout")
    assert service is not None and release.id is not None
    h.bot.deps.work.wait_idle(10)
    # the page is due work: answer before any tick runs it
    h.bot.deps.due.handlers.pop("page.start")  # this replica cannot page (another will)
    firing.ask(h.bot.deps, service, release, REASON, [])
    reply = firing.answer(h.bot.deps, f"checkout:{release.id}", "U0ONCALL1", run=False)
    assert "Release kept" in reply.text
    other: PagingHarness = make_paging(guarded_catalog())
    other.settle()
    other.tick(minutes=30)
    assert h.twilio.messages == []


def test_a_question_slack_never_showed_pages_nobody(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    h.slack.inject_error("chat.postMessage", "channel_not_found")
    ask(h, release)
    assert h.twilio.messages == []
    assert "page.sent" not in audit_kinds(h)


def test_a_bad_number_is_said_in_the_thread_and_the_next_level_paged_now(
    make_paging: Any,
) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    h.twilio.set_bad_number(PRIMARY)
    release = new_release(h)
    ask(h, release)
    (note,) = [t for t in thread_texts(h, release) if "Paging level 1/3" in t]
    assert "Could not page Primary on-call (+1555•••0001)" in note
    assert not RAW_PHONE.search(note)
    assert len(h.sms_to(SECONDARY)) == 1  # nobody of level 1 reachable: level 2 at once


def test_the_question_sms_is_one_segment() -> None:
    body = question_sms("s" * 60, "x" * 300 + " +15550100009", "#checkout-alerts", "4821")
    assert len(body) <= 160 and sms_segments(body) == 1
    assert body.endswith(
        "... Roll back or keep the release? Answer in Slack #checkout-alerts."
        " Reply ACK 4821 to stop paging."
    )


def test_the_sms_names_the_channel_once_looked_up_and_its_id_if_slack_will_not_say(
    make_paging: Any,
) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    h.slack.add_channel(CHANNEL, "checkout-alerts")
    h.slack.inject_error("conversations.info", "channel_not_found")
    release = new_release(h)
    ask(h, release)
    (first,) = h.sms_to(PRIMARY)
    assert f"Answer in Slack {CHANNEL}." in first.body  # the id: Slack would not say
    h.tick(seconds=61)  # a failed lookup is asked again a minute later
    h.tick(minutes=5)
    level_2 = h.sms_to(SECONDARY) + h.sms_to(SECONDARY_2)
    assert len(level_2) == 2
    assert all("Answer in Slack #checkout-alerts." in m.body for m in level_2)
    assert len(h.slack.calls_to("conversations.info")) == 2  # the name is cached


def test_a_page_stored_by_the_older_single_sms_version_opens_the_ladder(
    make_paging: Any,
) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    assert release.id is not None
    deps = h.bot.deps
    # the question as the older version left it: its timeout and its one-page work item
    deps.due.schedule(
        "guard.confirm_timeout", f"guard-confirm:{release.id}", h.clock() + timedelta(minutes=30)
    )
    payload = {"service": "checkout", "release_id": release.id, "reason": REASON}
    deps.due.schedule("guard.page", f"guard-page:{release.id}", h.clock(), payload)
    h.settle()
    assert len(h.sms_to(PRIMARY)) == 1
    h.tick(minutes=5)
    assert len(h.sms_to(SECONDARY)) == 1
