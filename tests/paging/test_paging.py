"""The escalation ladder with an injected clock: the real app, Slack and Twilio simulators."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.adapters.console import buttons_of
from bot.adapters.twilio import sms_segments
from bot.catalog.load import parse_catalog
from bot.notify.progress import SlackProgress
from bot.paging import texting
from bot.paging.levels import ladder_levels
from bot.paging.messages import ended_sms, sms_body, update_sms
from bot.rollback.lifecycle import ladder_prefix
from bot.sim.twilio_messages import SimMessage
from storage.models import AuditEvent
from storage.repo.records import NewWork
from storage.repository import Repository
from tests import twilio_fixtures
from tests.storage.conftest import db_url, engine, migrated_engine, now, repo
from tests.twilio_fixtures import (
    CHANNEL,
    LEAD,
    PRIMARY,
    SECONDARY,
    SECONDARY_2,
    PagingHarness,
    paging_catalog,
)

twilio, clock, make_paging = (
    twilio_fixtures.twilio,
    twilio_fixtures.clock,
    twilio_fixtures.make_paging,
)
__all__ = ["db_url", "engine", "migrated_engine", "now", "repo"]  # fixtures used below
RAW_PHONE = re.compile(r"\+1555010000\d")


@pytest.fixture
def h(make_paging: Any) -> PagingHarness:
    harness: PagingHarness = make_paging()
    return harness


def test_sms_body_is_one_gsm_segment_without_secrets() -> None:
    summary = (
        "error rate 23 % — p95 6.2 s “health failing”; token xoxb-123-secret; call +15550100009 "
        + "x" * 300
    )
    body = sms_body(12, "checkout", "critical", summary, "4821")
    assert body.startswith("ROLLBACK #12 checkout CRITICAL: error rate 23 % - p95 6.2 s")
    assert body.endswith("... Reply ACK 4821 to take it.")
    assert len(body) <= 160 and sms_segments(body) == 1
    assert "xoxb-123" not in body and "+15550100009" not in body
    short = sms_body(3, "search", "sla", "", "1000")
    assert short == "ROLLBACK #3 search SLA BREACH. Reply ACK 1000 to take it."


def test_news_and_end_texts_stay_one_segment() -> None:
    long = "x" * 300
    texts = [
        update_sms(123456, "s" * 60, "failed", long, "4821", None),
        update_sms(123456, "s" * 60, "failed", long, "4821", "You"),
        update_sms(123456, "s" * 60, "sla", long, "4821", "N" * 80),
        ended_sms(123456, "s" * 60, "succeeded", datetime(2026, 3, 2, 16, 37, tzinfo=UTC)),
        ended_sms(123456, "s" * 60, "aborted", datetime(2026, 3, 2, 16, 37, tzinfo=UTC)),
    ]
    assert all(len(t) <= 160 and sms_segments(t) == 1 for t in texts), texts
    assert texts[1].endswith("... You have it (ACK 4821).")
    assert texts[2].endswith(f"{'N' * 30} has it (ACK 4821).")


def test_ladder_levels_group_contacts_with_the_same_after_minutes() -> None:
    service = parse_catalog(paging_catalog(), "t.yaml").get("checkout")
    assert service is not None
    levels = ladder_levels(service)
    assert [(lv.number, lv.after_minutes) for lv in levels] == [(1, 0), (2, 5), (3, 15)]
    assert [c.name for _, c in levels[1].contacts] == ["Senior SRE", "SRE backup"]


def test_level_one_is_paged_at_once_with_a_notice_in_the_channel(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid, summary="error rate 23%, health failing")
    h.tick()
    [sms] = h.sms_to(PRIMARY)
    [page] = h.pages(rid)
    assert sms.body == (
        f"ROLLBACK #{rid} checkout CRITICAL: error rate 23%, health failing."
        f" Reply ACK {page.ack_code} to take it."
    )
    assert sms.segments == 1
    assert page.status in ("sent", "delivered") and page.twilio_sid == sms.sid
    # in the thread of the progress message (posted first, as the engine does)
    anchor, notice = h.slack.messages(CHANNEL)
    assert notice["thread_ts"] == anchor["ts"] and "subtype" not in notice
    assert "Paging level 1/3" in notice["text"]
    assert "Primary on-call (+1555•••0001)" in notice["text"]
    assert notice["blocks"][-1]["elements"][0]["action_id"] == "page_acknowledge"
    assert not RAW_PHONE.search(str(notice))
    assert [e.kind for e in h.bot.deps.repo.list_audit_events(rollback_id=rid)] == ["page.sent"]
    assert h.bot.deps.metrics.pages_sent.labels("checkout", "sent")._value.get() == 1


def test_without_acknowledgement_every_level_is_paged_in_time_then_a_warning(
    h: PagingHarness,
) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=4, seconds=59)
    assert not h.sms_to(SECONDARY), "level 2 paged before its 5 minutes"
    h.tick(seconds=1)
    assert len(h.sms_to(SECONDARY)) == 1 and len(h.sms_to(SECONDARY_2)) == 1
    h.tick(minutes=9)
    assert not h.sms_to(LEAD)
    h.tick(minutes=1)
    assert len(h.sms_to(LEAD)) == 1
    assert not any("Nobody acknowledged" in t for t in h.channel_texts())
    h.tick(minutes=5)
    h.tick(minutes=60)  # nothing more, ever
    assert [len(h.sms_to(p)) for p in (PRIMARY, SECONDARY, SECONDARY_2, LEAD)] == [1, 1, 1, 1]
    texts = h.channel_texts()
    assert [t.split(" for ")[0] for t in texts if "Paging level" in t] == [
        ":pager: Paging level 1/3",
        ":pager: Paging level 2/3",
        ":pager: Paging level 3/3",
    ]
    assert sum("Nobody acknowledged" in t for t in texts) == 1
    kinds = [e.kind for e in h.bot.deps.repo.list_audit_events(rollback_id=rid)]
    assert kinds.count("page.sent") == 4 and kinds[-1] == "page.unacknowledged"


def test_acknowledging_at_level_one_stops_the_ladder(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    [page] = h.pages(rid)
    assert h.reply(PRIMARY, f"ack {page.ack_code}").status_code == 200
    h.tick(minutes=60)
    assert len(h.twilio.messages) == 1
    rollback = h.bot.deps.repo.get_rollback(rid)
    assert rollback is not None and rollback.acknowledged_by == "Primary on-call"
    assert h.bot.deps.metrics.pages_acknowledged.labels("checkout", "sms")._value.get() == 1


def test_an_invalid_number_skips_to_the_next_level_at_once(
    make_paging: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h: PagingHarness = make_paging(
        paging_catalog(
            "[{name: Primary on-call, phone: '+15550100001'},"
            " {name: Secondary, phone: '+15550100002', after_minutes: 5},"
            " {name: Engineering lead, phone: '+15550100004', after_minutes: 15}]"
        )
    )
    h.twilio.set_bad_number(SECONDARY, 21211)
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=5)
    assert len(h.sms_to(LEAD)) == 1, "level 3 must be paged as soon as level 2 failed"
    secondary = next(p for p in h.pages(rid) if p.phone == SECONDARY)
    assert (secondary.status, secondary.error_code) == ("failed", 21211)
    warning = next(t for t in h.channel_texts() if "Could not page" in t)
    assert "Could not page Secondary (+1555•••0002): Twilio 21211" in warning
    for text in [*h.channel_texts(), caplog.text]:
        assert not RAW_PHONE.search(text), text
    failed = h.bot.deps.repo.list_audit_events(kind="page.failed", rollback_id=rid)
    assert failed[0].detail["phone"] == "+1555•••0002"


def test_twilio_down_is_retried_with_backoff_then_reported_loudly(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.twilio.inject(500, times=4)
    h.start_ladder(rid)
    h.tick()
    assert any("Twilio is not answering" in t for t in h.channel_texts())
    [page] = h.pages(rid)
    assert page.status == "queued"
    for wait in (5, 15, 45):
        h.tick(seconds=wait)
    page = h.pages(rid)[0]
    assert page.status == "failed" and "Twilio unavailable after 4 tries" in (page.error or "")
    texts = h.channel_texts()
    assert sum("Twilio is down" in t and "Primary on-call" in t for t in texts) == 1
    assert sum("Twilio is not answering" in t for t in texts) == 1
    assert any("Paging level 1/3" in t for t in texts), "the level still gets its notice"
    # Twilio's outage is not the contact's fault: level 2 keeps its own time
    assert not h.sms_to(SECONDARY) and not h.sms_to(PRIMARY)
    h.tick(minutes=4)  # 5 minutes after the ladder started
    assert len(h.sms_to(SECONDARY)) == 1 and not h.sms_to(PRIMARY)
    assert len([c for c in h.twilio.calls if c.status == 500]) == 4


def test_a_short_twilio_outage_costs_one_retry_and_sends_once(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.twilio.inject(503, times=1)
    h.start_ladder(rid)
    h.tick()
    assert not h.sms_to(PRIMARY)
    h.tick(seconds=5)
    assert len(h.sms_to(PRIMARY)) == 1
    h.tick(seconds=60)
    assert len(h.sms_to(PRIMARY)) == 1


def test_sms_disabled_still_walks_the_ladder_in_slack_and_says_so(make_paging: Any) -> None:
    h: PagingHarness = make_paging(is_sms_enabled=False)
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=5)
    assert not h.twilio.calls
    notices = [t for t in h.channel_texts() if "Paging level" in t]
    assert len(notices) == 2 and all("SMS paging is DISABLED" in t for t in notices)
    assert {p.status for p in h.pages(rid)} == {"skipped"}


def test_a_service_without_a_ladder_is_reported_once(make_paging: Any) -> None:
    h: PagingHarness = make_paging(paging_catalog(oncall=None))
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.start_ladder(rid, reason="sla")
    h.tick()
    warnings = [t for t in h.channel_texts() if "nobody was paged" in t]
    assert len(warnings) == 2 and not h.twilio.calls


def test_a_restart_mid_ladder_neither_loses_nor_repeats_a_page(make_paging: Any) -> None:
    first: PagingHarness = make_paging()
    rid = first.new_rollback()
    first.start_ladder(rid)
    first.tick()
    assert len(first.twilio.messages) == 1
    # level 2 is due in 5 minutes; the first process dies holding its claim on it
    repo = first.bot.deps.repo
    first.clock.advance(minutes=5)
    [claimed] = repo.claim_due_work("dead-replica", first.clock(), timedelta(seconds=120))
    assert claimed.kind == "page.level"

    second: PagingHarness = make_paging()
    second.tick()
    assert len(second.twilio.messages) == 1, "a claimed item waits for its lease to lapse"
    second.tick(seconds=120)
    assert [len(second.sms_to(p)) for p in (PRIMARY, SECONDARY, SECONDARY_2)] == [1, 1, 1]
    second.tick(minutes=10)
    assert len(second.sms_to(LEAD)) == 1 and len(second.twilio.messages) == 4


def test_a_page_row_exists_before_its_sms_and_resending_skips_it(make_paging: Any) -> None:
    h: PagingHarness = make_paging()
    rid = h.new_rollback()
    h.twilio.inject(500, times=1)
    h.start_ladder(rid)
    h.tick()  # the row is written, Twilio refused: the page stays queued for the retry
    [queued] = h.pages(rid)
    assert queued.status == "queued" and queued.ack_code
    h.start_ladder(rid)  # scheduling the same ladder again is a no-op
    h.tick(seconds=5)
    [page] = h.pages(rid)
    assert page.id == queued.id and page.ack_code == queued.ack_code and page.status != "queued"
    assert len(h.sms_to(PRIMARY)) == 1


@pytest.mark.parametrize(
    ("code", "setup"),
    [
        (20003, {"twilio_auth_token": "not-the-real-token"}),  # bad credentials: HTTP 401
        (21606, {}),  # the From number cannot send SMS: HTTP 400
    ],
)
def test_a_misconfigured_twilio_warns_once_and_the_ladder_keeps_its_time(
    make_paging: Any, code: int, setup: dict[str, Any]
) -> None:
    h: PagingHarness = make_paging(**setup)
    if code == 21606:
        h.twilio.inject(
            400,
            times=100,
            code=21606,
            message=f"The From phone number {twilio_fixtures.FROM_NUMBER} is not a valid,"
            " SMS-capable inbound phone number or short code for your account.",
        )
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(seconds=1)
    assert len(h.twilio.calls) == 1, "level 2 must not be paged at once"
    [page] = h.pages(rid)
    assert (page.status, page.error_code) == ("failed", code)
    h.tick(minutes=5)  # level 2 at its own time: tried, refused, announced in Slack
    assert len(h.twilio.calls) == 3 and not h.twilio.messages
    texts = h.channel_texts()
    warnings = [t for t in texts if "Twilio is misconfigured" in t]
    assert len(warnings) == 1, texts
    assert f"Twilio {code}" in warnings[0] and "page the on-call by phone" in warnings[0]
    notices = [t for t in texts if "Paging level" in t]
    assert [n.split(" for ")[0] for n in notices] == [
        ":pager: Paging level 1/3",
        ":pager: Paging level 2/3",
    ]
    assert "Could not page Senior SRE (+1555•••0002)" in notices[1]
    for text in texts:
        assert not RAW_PHONE.search(text) and "+15550009999" not in text, text


def test_an_ack_during_a_running_level_stops_its_remaining_sms(
    make_paging: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one send at a time, in ladder order, so the ack lands between the level's two SMS
    monkeypatch.setattr(texting, "SEND_PARALLEL", 1)
    h: PagingHarness = make_paging()
    replies: list[str] = []

    def senior_sre_answers_at_once(message: SimMessage) -> None:
        if message.to == SECONDARY:  # runs before Twilio answers the bot's request
            code = re.search(r"ACK (\d{4})", message.body)
            assert code is not None
            replies.append(h.reply(SECONDARY, f"ACK {code.group(1)}").text)

    h.twilio.subscribe(senior_sre_answers_at_once)
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=5)
    assert len(replies) == 1 and "Thanks Senior SRE" in replies[0]
    assert len(h.sms_to(SECONDARY)) == 1
    assert not h.sms_to(SECONDARY_2), "the ack came first: the rest of the level is not texted"
    backup = next(p for p in h.pages(rid) if p.phone == SECONDARY_2)
    assert backup.status == "queued" and backup.twilio_sid is None
    notice = next(t for t in h.channel_texts() if "Paging level 2/3" in t)
    assert "Senior SRE" in notice and "SRE backup" not in notice
    h.tick(minutes=60)
    assert not h.sms_to(SECONDARY_2) and not h.sms_to(LEAD)
    assert not any("Nobody acknowledged" in t for t in h.channel_texts())


def test_a_page_twilio_took_before_a_crash_is_not_sent_again(make_paging: Any) -> None:
    first: PagingHarness = make_paging()
    accepted, release = threading.Event(), threading.Event()

    def first_process_dies(message: SimMessage) -> None:
        accepted.set()  # Twilio has the message; the first process never hears back
        release.wait(10)

    first.twilio.subscribe(first_process_dies)
    rid = first.new_rollback()
    first.start_ladder(rid)
    runner = threading.Thread(target=first.bot.deps.due.tick)
    runner.start()
    try:
        assert accepted.wait(5)
        [page] = first.pages(rid)
        assert page.status == "sending"
        second: PagingHarness = make_paging()
        second.tick(seconds=121)  # page.start's lease has lapsed: the new app runs it again
        assert len(first.twilio.messages) == 1, "a page in `sending` is never sent again"
        unknown = second.bot.deps.repo.list_audit_events(kind="page.unknown", rollback_id=rid)
        assert len(unknown) == 1 and unknown[0].detail["phone"] == "+1555•••0001"
        assert any("Paging level 1/3" in t for t in second.channel_texts())
    finally:
        release.set()
        runner.join(10)
    first.twilio.wait_until(lambda sim: len(sim.callbacks) == 2)
    [page] = second.pages(rid)
    [sms] = second.twilio.messages
    assert page.status == "delivered" and page.twilio_sid == sms.sid
    second.tick(minutes=5)
    assert len(second.sms_to(PRIMARY)) == 1 and len(second.sms_to(SECONDARY)) == 1


def test_an_sms_whose_answer_was_lost_is_settled_by_its_callback_not_resent(
    h: PagingHarness,
) -> None:
    h.twilio.drop_answers(1)
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.twilio.wait_until(lambda sim: len(sim.callbacks) == 2)
    h.tick(seconds=60)
    [sms] = h.sms_to(PRIMARY)
    [page] = h.pages(rid)
    assert page.status == "delivered" and page.twilio_sid == sms.sid
    assert len(h.twilio.calls) == 1
    [unknown] = h.bot.deps.repo.list_audit_events(kind="page.unknown", rollback_id=rid)
    assert "no answer from Twilio" in unknown.detail["error"]


def test_a_page_notice_slack_refused_is_posted_on_retry_without_a_second_sms(
    h: PagingHarness,
) -> None:
    rid = h.new_rollback()
    progress = h.bot.deps.engine.progress
    assert isinstance(progress, SlackProgress) and progress.anchor(rid)  # as the engine posts it
    h.slack.inject_error("chat.postMessage", "internal_error")
    h.start_ladder(rid)
    h.tick()
    assert len(h.sms_to(PRIMARY)) == 1 and len(h.channel_texts()) == 1
    h.tick(seconds=5)
    [_, notice] = h.slack.messages(CHANNEL)
    assert "Paging level 1/3" in notice["text"]
    assert len(h.twilio.messages) == 1
    [page] = h.pages(rid)
    assert page.notice_ts == notice["ts"]
    # the acknowledgement announcement is retried the same way
    h.slack.inject_error("chat.postMessage", "internal_error")
    assert "is yours" in h.reply(PRIMARY, f"ACK {page.ack_code}").text
    h.tick()
    assert not any("acknowledged by" in t for t in h.channel_texts())
    h.tick(seconds=5)
    assert sum("acknowledged by Primary on-call" in t for t in h.channel_texts()) == 1


def test_a_page_notice_slack_took_but_answered_500_for_is_found_not_posted_twice(
    h: PagingHarness,
) -> None:
    """The post landed and its answer was lost: the retry finds it by its metadata marker in
    the progress thread, so there is one notice, and the page points at it."""
    rid = h.new_rollback()
    progress = h.bot.deps.engine.progress
    assert isinstance(progress, SlackProgress) and progress.anchor(rid)
    h.slack.inject("chat.postMessage", status=500, is_applied=True)
    h.start_ladder(rid)
    h.tick()
    h.tick(seconds=5)

    notices = [m for m in h.slack.messages(CHANNEL) if "Paging level 1/3" in m["text"]]
    assert len(notices) == 1
    [page] = h.pages(rid)
    assert page.notice_ts == notices[0]["ts"]
    assert h.slack.calls_to("conversations.replies")  # it looked before posting again
    assert len(h.twilio.messages) == 1


def test_claiming_a_page_for_sending_is_once_and_never_after_an_ack(
    repo: Repository, now: Any
) -> None:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=now,
    )
    assert rollback.id is not None
    first, second, other = (
        repo.add_page(
            rollback_id=rollback.id,
            reason=reason,
            level=1,
            position=position,
            contact_name="x",
            phone=PRIMARY,
            now=now,
        )
        for position, reason in ((0, "critical"), (1, "critical"), (0, "failed"))
    )
    assert first.id and second.id and other.id
    assert repo.claim_page_for_sending(first.id, now)
    assert not repo.claim_page_for_sending(first.id, now), "claimed once only"
    assert repo.get_page(first.id).status == "sending"  # type: ignore[union-attr]
    assert repo.acknowledge_ladder(first.id, "U0SRE", now)
    assert not repo.claim_page_for_sending(second.id, now), "the ladder was acknowledged"
    assert repo.get_page(second.id).status == "queued"  # type: ignore[union-attr]
    # another ladder of the same rollback (its failure page) is not silenced by that ack
    assert repo.claim_page_for_sending(other.id, now)
    assert repo.mark_page_sent(other.id, "SM1", now)
    assert not repo.release_page(other.id, now), "a sent page never goes back to queued"


def test_an_acknowledgement_and_what_follows_it_commit_together_once(
    repo: Repository, now: Any
) -> None:
    rollback = repo.create_rollback(
        service="checkout",
        kind="immediate",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="running",
        now=now,
    )
    assert rollback.id is not None
    page = repo.add_page(
        rollback_id=rollback.id,
        reason="critical",
        level=1,
        position=0,
        contact_name="x",
        phone=PRIMARY,
        now=now,
    )
    assert page.id is not None
    prefix = ladder_prefix(rollback.id, "critical")
    for key in (f"{prefix}level:2", f"{prefix}end"):
        assert repo.schedule_work("page.level", key, now + timedelta(minutes=5), now)
    other = ladder_prefix(rollback.id, "failed") + "level:2"  # another ladder: kept
    assert repo.schedule_work("page.level", other, now + timedelta(minutes=5), now)

    def ack(by: str) -> bool:
        audit = AuditEvent(created_at=now, kind="page.acknowledged", actor=by, detail={"a": 1})
        follow_up = [NewWork("page.post", "page-post:ack", now, {"by": by})]
        assert page.id is not None
        return repo.acknowledge_ladder(
            page.id, by, now, cancel_prefix=prefix, audit=audit, schedule=follow_up
        )

    assert ack("U0FIRST")
    assert not ack("U0SECOND"), "the ladder was acknowledged already"
    [event] = repo.list_audit_events(kind="page.acknowledged")
    assert (event.actor, event.detail) == ("U0FIRST", {"a": 1, "cancelled": 2})
    post = repo.get_work("page-post:ack")
    assert post is not None and post.payload == {"by": "U0FIRST"} and post.status == "pending"
    statuses = {
        key: getattr(repo.get_work(key), "status", None)
        for key in (f"{prefix}level:2", f"{prefix}end", other)
    }
    assert statuses == {
        f"{prefix}level:2": "cancelled",
        f"{prefix}end": "cancelled",
        other: "pending",
    }


def test_a_phone_never_gets_a_code_it_had_in_the_last_week(repo: Repository, now: Any) -> None:
    """Acknowledged or not, the codes a phone received this week stay its own: a late ACK
    names one page. Older codes may come back, so the set stays bounded."""
    from datetime import timedelta

    codes = []
    for n in range(60):
        rollback = repo.create_rollback(
            service=f"svc{n}", kind="immediate", strategy="undo", requested_by="U1",
            status="succeeded", now=now,
        )  # fmt: skip
        assert rollback.id is not None
        page = repo.add_page(
            rollback_id=rollback.id, reason="critical", level=1, position=0,
            contact_name="x", phone=PRIMARY, now=now + timedelta(minutes=n),
        )  # fmt: skip
        if n % 2:
            assert page.id is not None
            repo.acknowledge_ladder(page.id, "U1", now)
        codes.append(page.ack_code)
    assert len(set(codes)) == 60
    assert all(len(c) == 4 and c.isdigit() for c in codes)


# --- one rollback, one incident: the ladder ends with the rollback; graver news joins it ------


def _bodies(h: PagingHarness, phone: str) -> list[str]:
    return [m.body for m in h.sms_to(phone)]


def _codes(h: PagingHarness, phone: str) -> set[str]:
    return {code for body in _bodies(h, phone) for code in re.findall(r"ACK (\d{4})", body)}


def test_a_rollback_that_succeeds_stops_its_ladder_and_tells_who_was_paged(
    h: PagingHarness,
) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=5)  # level 2: Senior SRE and SRE backup
    h.clock.advance(minutes=2)
    h.finish(rid, "succeeded")
    h.settle()
    ended = f"Rollback #{rid} of checkout SUCCEEDED at 09:07 UTC; no action needed."
    for phone in (PRIMARY, SECONDARY, SECONDARY_2):
        assert _bodies(h, phone)[1:] == [ended], phone
    h.tick(minutes=8)  # level 3's time: the ladder stopped with the rollback
    h.tick(minutes=60)
    assert not h.sms_to(LEAD)
    assert len(h.twilio.messages) == 6
    texts = h.channel_texts()
    assert not any("Nobody acknowledged" in t for t in texts)
    assert not any("Paging level 3/3" in t for t in texts)
    notices = {p.notice_ts for p in h.pages(rid)}
    assert len(notices) == 2 and None not in notices
    for notice in notices:
        updated = h.slack.wait_for("chat.update", lambda c, ts=notice: c.params["ts"] == ts)
        shown = str(updated.params["blocks"])
        assert f"Escalation stopped: ROLLBACK #{rid} SUCCEEDED at 09:07 UTC" in shown
        assert not buttons_of(updated.params["blocks"]), "nothing left to acknowledge"
        assert not RAW_PHONE.search(shown)
    [stopped] = h.bot.deps.repo.list_audit_events(kind="page.stopped", rollback_id=rid)
    assert stopped.detail == {"reason": "critical", "status": "succeeded", "cancelled": 1}
    told = h.bot.deps.repo.list_audit_events(kind="page.told", rollback_id=rid)
    assert sorted(e.detail["phone"] for e in told) == [
        "+1555•••0001",
        "+1555•••0002",
        "+1555•••0003",
    ]
    # the finish told again (a retried item, a restart) texts nobody twice
    h.bot.deps.repo.schedule_work(
        "page.finish", "page-finish-again", h.clock(), h.clock(), {"rollback_id": rid}
    )
    h.settle()
    assert len(h.twilio.messages) == 6


def test_an_aborted_rollback_stops_the_ladder_even_after_an_ack(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    [page] = h.pages(rid)
    assert "is yours" in h.reply(PRIMARY, f"ACK {page.ack_code}").text
    h.tick(minutes=1)
    h.finish(rid, "aborted")
    h.settle()
    assert _bodies(h, PRIMARY)[1:] == [
        f"Rollback #{rid} of checkout was ABORTED at 09:01 UTC; paging stopped, see Slack."
    ]
    h.tick(minutes=60)
    assert len(h.twilio.messages) == 2


def test_a_rollback_that_ended_before_its_ladder_started_pages_nobody(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.finish(rid, "succeeded")  # the page.start had not run yet
    h.settle()
    h.tick(minutes=60)
    assert not h.twilio.calls and not h.pages(rid)
    assert not any("Paging level" in t for t in h.channel_texts())


def test_a_failure_joins_the_open_ladder_with_the_same_code_and_one_ack_covers_it(
    h: PagingHarness,
) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    [page] = h.pages(rid)
    h.clock.advance(minutes=1)
    h.finish(rid, "failed", error="step Verify health failed: 5xx at 40%")
    h.settle()
    assert _bodies(h, PRIMARY)[1:] == [
        f"ROLLBACK #{rid} checkout FAILED: step Verify health failed: 5xx at 40%."
        f" Reply ACK {page.ack_code} to take it."
    ]
    assert [p.id for p in h.bot.deps.repo.list_pages(rid)] == [page.id], "no second ladder"
    joined = next(t for t in h.channel_texts() if "same ACK codes" in t)
    assert f"ROLLBACK #{rid} checkout FAILED" in joined and "escalation goes on" in joined
    assert "Primary on-call (+1555•••0001)" in joined
    h.tick(minutes=4)  # level 2 at the ladder's own time, with the news in its page
    [senior] = _bodies(h, SECONDARY)
    assert senior.startswith(f"ROLLBACK #{rid} checkout FAILED: step Verify health failed")
    assert any(
        f"Paging level 2/3 for *ROLLBACK #{rid} checkout FAILED*" in t for t in h.channel_texts()
    )
    assert "is yours" in h.reply(PRIMARY, f"ACK {page.ack_code}").text
    h.tick(minutes=60)
    assert not h.sms_to(LEAD), "one acknowledgement stopped the one ladder"
    assert _codes(h, PRIMARY) == {page.ack_code}
    assert not any("Nobody acknowledged" in t for t in h.channel_texts())


def test_a_failure_after_the_ack_texts_who_was_paged_and_does_not_escalate(
    h: PagingHarness,
) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=5)
    primary, senior = (next(p for p in h.pages(rid) if p.phone == n) for n in (PRIMARY, SECONDARY))
    assert "is yours" in h.reply(SECONDARY, f"ACK {senior.ack_code}").text
    h.tick(minutes=1)
    h.finish(rid, "failed", error="Verify health failed")
    h.settle()
    head = f"ROLLBACK #{rid} checkout FAILED: Verify health failed."
    assert _bodies(h, SECONDARY)[1:] == [f"{head} You have it (ACK {senior.ack_code})."]
    assert _bodies(h, PRIMARY)[1:] == [f"{head} Senior SRE has it (ACK {primary.ack_code})."]
    assert len(h.sms_to(SECONDARY_2)) == 2, "the whole level 2 was woken: it hears too"
    joined = next(t for t in h.channel_texts() if "same ACK codes" in t)
    assert "Acknowledged by Senior SRE: escalation stays stopped" in joined
    h.tick(minutes=60)
    assert not h.sms_to(LEAD) and len(h.twilio.messages) == 6
    assert [p.reason for p in h.bot.deps.repo.list_pages(rid)] == ["critical"] * 3


def test_an_sla_breach_then_a_failure_text_one_person_one_code(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    [page] = h.pages(rid)
    h.clock.advance(minutes=3)
    h.breach_sla(rid)
    h.settle()
    sla = f"ROLLBACK #{rid} checkout SLA BREACH: Rollback of checkout is past its SLA."
    assert _bodies(h, PRIMARY)[1:] == [f"{sla} Reply ACK {page.ack_code} to take it."]
    h.finish(rid, "failed", error="step 2 failed")  # the same second
    h.settle()
    assert len(_bodies(h, PRIMARY)) == 3 and _bodies(h, PRIMARY)[2].startswith(
        f"ROLLBACK #{rid} checkout FAILED: step 2 failed."
    )
    assert _codes(h, PRIMARY) == {page.ack_code}, "one incident, one code"
    h.tick(minutes=2)
    assert _bodies(h, SECONDARY)[0].startswith(f"ROLLBACK #{rid} checkout FAILED")
    assert [p.reason for p in h.bot.deps.repo.list_pages(rid)] == ["critical"] * 3


def test_an_sla_breach_after_the_ack_texts_nobody(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    [page] = h.pages(rid)
    assert "is yours" in h.reply(PRIMARY, f"ACK {page.ack_code}").text
    h.tick(minutes=3)
    h.breach_sla(rid)
    h.settle()
    assert len(h.twilio.messages) == 1 and len(h.bot.deps.repo.list_pages(rid)) == 1


def test_a_failure_arriving_with_the_start_is_one_sms(h: PagingHarness) -> None:
    """The rollback failed before its page went out: one SMS saying so, not two codes."""
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.finish(rid, "failed", error="step 1 failed")
    h.settle()
    [sms] = h.sms_to(PRIMARY)
    [page] = h.bot.deps.repo.list_pages(rid)
    assert sms.body == (
        f"ROLLBACK #{rid} checkout FAILED: step 1 failed. Reply ACK {page.ack_code} to take it."
    )
    h.tick(minutes=5)
    assert len(h.sms_to(PRIMARY)) == 1 and len(h.sms_to(SECONDARY)) == 1


def test_a_failure_with_no_ladder_open_starts_one(h: PagingHarness) -> None:
    rid = h.new_rollback()  # planned, say: nothing paged while it ran
    h.finish(rid, "failed", error="step 1 failed")
    h.settle()
    [page] = h.pages(rid, "failed")
    assert _bodies(h, PRIMARY) == [
        f"ROLLBACK #{rid} checkout FAILED: step 1 failed. Reply ACK {page.ack_code} to take it."
    ]
    h.tick(minutes=5)
    assert len(h.sms_to(SECONDARY)) == 1, "a failed rollback's ladder goes on"


def test_a_planned_rollback_past_its_sla_then_failed_is_one_ladder(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.breach_sla(rid)
    h.settle()
    [page] = h.pages(rid, "sla")
    h.clock.advance(minutes=1)
    h.finish(rid, "failed", error="step 3 failed")
    h.settle()
    assert _codes(h, PRIMARY) == {page.ack_code} and len(h.sms_to(PRIMARY)) == 2
    assert "FAILED: step 3 failed" in _bodies(h, PRIMARY)[1]


def test_telling_the_end_waits_out_a_twilio_outage_and_sends_once(h: PagingHarness) -> None:
    rid = h.new_rollback()
    h.start_ladder(rid)
    h.tick()
    h.twilio.inject(503, times=1)
    h.finish(rid, "succeeded")
    h.settle()
    assert len(h.sms_to(PRIMARY)) == 1, "Twilio refused the first try"
    h.tick(seconds=5)
    h.tick(seconds=60)
    assert _bodies(h, PRIMARY)[1:] == [
        f"Rollback #{rid} of checkout SUCCEEDED at 09:00 UTC; no action needed."
    ]


def test_a_crash_while_telling_the_end_does_not_text_it_twice(make_paging: Any) -> None:
    first: PagingHarness = make_paging()
    rid = first.new_rollback()
    first.start_ladder(rid)
    first.tick()
    accepted, release = threading.Event(), threading.Event()

    def first_process_dies(message: SimMessage) -> None:
        if "SUCCEEDED" in message.body:
            accepted.set()  # Twilio has the message; the first process never hears back
            release.wait(10)

    first.twilio.subscribe(first_process_dies)
    first.finish(rid, "succeeded")
    runner = threading.Thread(target=first.bot.deps.due.tick)
    runner.start()
    try:
        assert accepted.wait(5)
        second: PagingHarness = make_paging()
        second.tick(seconds=121)  # page.finish's lease has lapsed: the new app runs it again
        second.settle()
        assert len(second.sms_to(PRIMARY)) == 2, "the end is texted once"
    finally:
        release.set()
        runner.join(10)
    assert len(second.sms_to(PRIMARY)) == 2


def test_one_rollback_has_one_ladder_and_an_ended_one_claims_no_sms(
    repo: Repository, now: Any
) -> None:
    rollback = repo.create_rollback(
        service="checkout", kind="immediate", strategy="undo", requested_by="U1",
        status="running", now=now,
    )  # fmt: skip
    assert rollback.id is not None
    contacts = [(0, "Primary", PRIMARY)]
    ladder, [page] = repo.add_level_pages(
        rollback_id=rollback.id, reason="critical", level=1, contacts=contacts, now=now
    )
    assert ladder == "critical"
    joined, [same] = repo.add_level_pages(
        rollback_id=rollback.id, reason="failed", level=1, contacts=contacts, now=now
    )
    assert (joined, same.id, same.ack_code) == ("critical", page.id, page.ack_code)
    assert [p.id for p in repo.list_pages(rollback.id)] == [page.id]
    assert page.id is not None
    assert repo.claim_tell([page.id], "failed", now)
    assert not repo.claim_tell([page.id], "failed", now), "told once"
    repo.release_tell([page.id], "failed")
    assert repo.claim_tell([page.id], "failed", now), "released: may be told again"
    repo.set_rollback_status(rollback.id, "succeeded", now)
    assert not repo.claim_page_for_sending(page.id, now), "the rollback ended"


def test_a_rollback_ending_during_a_level_stops_its_remaining_sms(
    make_paging: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one send at a time, in ladder order, so the end lands between the level's two SMS
    monkeypatch.setattr(texting, "SEND_PARALLEL", 1)
    h: PagingHarness = make_paging()
    rid = h.new_rollback()

    def it_succeeds_meanwhile(message: SimMessage) -> None:
        if message.to == SECONDARY:  # runs before Twilio answers the bot's request
            h.finish(rid, "succeeded")

    h.twilio.subscribe(it_succeeds_meanwhile)
    h.start_ladder(rid)
    h.tick()
    h.tick(minutes=5)
    h.settle()
    assert not h.sms_to(SECONDARY_2), "the rollback ended first: the rest of the level waits"
    backup = next(p for p in h.pages(rid) if p.phone == SECONDARY_2)
    assert backup.status == "queued" and backup.twilio_sid is None
    ended = f"Rollback #{rid} of checkout SUCCEEDED at 09:05 UTC; no action needed."
    assert [m.body for m in h.sms_to(SECONDARY)][1:] == [ended]
    assert [m.body for m in h.sms_to(PRIMARY)][1:] == [ended]
    senior = next(p for p in h.pages(rid) if p.phone == SECONDARY)
    assert senior.notice_ts is not None
    [notice] = [m["text"] for m in h.slack.messages(CHANNEL) if m["ts"] == senior.notice_ts]
    assert "Senior SRE" in notice and "SRE backup" not in notice, "the backup was never paged"
    h.tick(minutes=60)
    assert not h.sms_to(SECONDARY_2) and not h.sms_to(LEAD) and len(h.twilio.messages) == 4
