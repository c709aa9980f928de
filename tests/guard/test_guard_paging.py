"""The guard's question pages the service's first on-call level (issue 14): the real app, the
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
from bot.guard.oncall import question_sms
from storage.guard_models import GuardedRelease
from tests import twilio_fixtures
from tests.conftest import catalog_yaml, service_yaml
from tests.twilio_fixtures import CHANNEL, LADDER, PRIMARY, SECONDARY, PagingHarness

twilio, clock, make_paging = (
    twilio_fixtures.twilio,
    twilio_fixtures.clock,
    twilio_fixtures.make_paging,
)
RAW_PHONE = re.compile(r"\+?1?555010000\d")
REASON = "error_rate 0.2 > 0.01 for 1m00s"
GUARD = (
    "{enabled: true, require_manual_confirmation: true, triggers: [{metric: error_rate,"
    " threshold: 0.01, comparison: greater_than, duration_seconds: 60}]}"
)


def guarded_catalog(oncall: str | None = LADDER) -> str:
    extra: dict[str, Any] = {"channel": CHANNEL, "auto_rollback": GUARD}
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


def test_the_question_pages_the_first_on_call_level_once(
    make_paging: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    ask(h, release)
    (sms,) = h.sms_to(PRIMARY)
    assert sms.body.startswith(f"rollback-bot GUARD checkout: {REASON}.")
    assert sms.body.endswith(f"Answer in Slack, channel {CHANNEL}.")
    assert h.sms_to(SECONDARY) == []  # level 1 only: no escalation without a rollback
    notes = thread_texts(h, release)
    assert any("Roll back now, or keep the release?" in t for t in notes)
    assert any(":pager: Paged Primary on-call by SMS" in t for t in notes)
    assert audit_kinds(h).count("guard.paged") == 1
    # phone numbers: masked in the logs, never in Slack (not even masked)
    slack_texts = [str(c.params) for c in h.slack.calls_to("chat.postMessage")]
    assert not any(RAW_PHONE.search(t) or "•••" in t for t in slack_texts)
    assert PRIMARY not in caplog.text and "+1555•••0001" in caplog.text


def test_a_repeated_ask_and_a_second_replica_page_nobody_twice(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    other: PagingHarness = make_paging(guarded_catalog())  # a second replica, same database
    release = new_release(h)
    ask(h, release)
    ask(h, release)  # a retried ask
    ask(other, release)  # the other replica asks the same question
    assert len(h.sms_to(PRIMARY)) == 1
    assert audit_kinds(h).count("guard.paged") == 1


def test_with_sms_disabled_the_thread_says_nobody_was_paged(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog(), is_sms_enabled=False)
    release = new_release(h)
    ask(h, release)
    assert h.twilio.messages == []
    (note,) = [t for t in thread_texts(h, release) if "nobody was paged" in t]
    assert "SMS paging is disabled: nobody was paged" in note
    assert "guard.page_skipped" in audit_kinds(h)


def test_without_an_oncall_list_the_thread_says_so(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog(oncall=None))
    release = new_release(h)
    ask(h, release)
    assert h.twilio.messages == []
    assert any("no `oncall:` list: nobody was paged" in t for t in thread_texts(h, release))


def test_a_question_answered_before_its_page_pages_nobody(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    service = h.bot.deps.catalog.get("checkout")
    assert service is not None and release.id is not None
    h.bot.deps.work.wait_idle(10)
    # the page is due work: answer before any tick runs it
    h.bot.deps.due.handlers.pop("guard.page")  # this replica cannot page (another will)
    firing.ask(h.bot.deps, service, release, REASON, [])
    reply = firing.answer(h.bot.deps, f"checkout:{release.id}", "U0ONCALL1", run=False)
    assert "Release kept" in reply.text
    other: PagingHarness = make_paging(guarded_catalog())
    other.settle()
    assert h.twilio.messages == []


def test_a_question_slack_never_showed_pages_nobody(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    release = new_release(h)
    h.slack.inject_error("chat.postMessage", "channel_not_found")
    ask(h, release)
    assert h.twilio.messages == []
    assert "guard.paged" not in audit_kinds(h)


def test_twilio_refusing_is_said_in_the_thread_without_the_number(make_paging: Any) -> None:
    h: PagingHarness = make_paging(guarded_catalog())
    h.twilio.set_bad_number(PRIMARY)
    release = new_release(h)
    ask(h, release)
    (note,) = [t for t in thread_texts(h, release) if "was not sent" in t]
    assert "Primary on-call" in note and "call them yourself" in note
    assert not RAW_PHONE.search(note) and "•••" not in note


def test_the_question_sms_is_one_segment() -> None:
    body = question_sms("s" * 60, "x" * 300 + " +15550100009", "C0CHECKOUT")
    assert len(body) <= 160 and sms_segments(body) == 1
    assert body.endswith("... Roll back or keep the release? Answer in Slack, channel C0CHECKOUT.")
