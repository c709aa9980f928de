"""Customer updates over signed HTTP, through the real Bolt app and the Slack simulator, against
a strict loopback status page: a critical rollback drafts seed 002's message in the incident
channel; nothing reaches the status page until a responder presses Publish; Edit changes the
draft in place; a double click publishes once; a stale button says so; a failing status page is
retried, said in the thread, and the draft stays publishable; the end drafts "resolved"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.customer import publish
from bot.customer.blocks import EDIT_ACTION, EDIT_VIEW, PUBLISH_ACTION
from bot.notify.blocks import MANUAL_GATE_ACTION
from bot.sim.slack_api import SlackCall, SlackSimulator
from tests.conftest import Harness
from tests.customer.status_page_server import StatusPageServer

TOKEN = "sp-test-token-123"
TOKEN_ENV = "RB_TEST_STATUS_PAGE_TOKEN"


def catalog(url: str) -> str:
    return f"""defaults:
  channel: C0DEPLOYS
  sla_minutes: 15
  status_page: {{url: "{url}", token_env: {TOKEN_ENV}}}
services:
  checkout:
    deployment: checkout-api
    customer_name: Acme Checkout
    responders: [U0ONCALL1, U0ONCALL2]
    approvers: [U0APPROVER1]
    phases:
      application: [{{kind: manual_gate, prompt: Hold until told}}]
"""


def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


@pytest.fixture
def page() -> Iterator[StatusPageServer]:
    with StatusPageServer(TOKEN) as server:
        yield server


@pytest.fixture
def h(
    make_harness: Any,
    slack: SlackSimulator,
    page: StatusPageServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Harness:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setattr(publish, "RETRY_DELAYS", [0.0, 0.0])  # no waiting between attempts
    for user in ("U0ONCALL1", "U0ONCALL2", "U0APPROVER1", "U0STRANGER"):
        slack.add_user(user, user.lower())
    harness: Harness = make_harness(catalog(page.url), prometheus_url=None)
    return harness


def incident_channel(h: Harness) -> str:
    def found() -> str | None:
        rollback = h.bot.deps.repo.get_rollback(1)
        return rollback.incident_channel_id if rollback else None

    return str(until(found, "the incident channel"))


def button_in(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return dict(element)
    return None


def drafts(slack: SlackSimulator, channel: str) -> list[dict[str, Any]]:
    """The channel's customer update messages (as they stand now), oldest first."""
    return [
        m
        for m in slack.messages(channel)
        if "customer update" in str(m.get("text", "")).lower()
        and "customer_update" in str(m.get("metadata", {}).get("event_type", ""))
    ]


def draft_with_buttons(slack: SlackSimulator, channel: str, index: int) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        shown = drafts(slack, channel)
        if len(shown) > index and button_in(shown[index], EDIT_ACTION):
            return shown[index]
        return None

    return dict(until(found, f"customer update draft #{index + 1}"))


def press(h: Harness, message: dict[str, Any], action_id: str, user: str, channel: str) -> None:
    button = button_in(message, action_id)
    assert button is not None, f"no {action_id} button"
    assert h.requester.click(message, button, user_id=user, channel_id=channel).status_code == 200


def critical_rollback_with_draft(h: Harness, slack: SlackSimulator) -> tuple[str, dict[str, Any]]:
    """Start a critical rollback; its incident channel and the draft posted there."""
    h.slash("run checkout --immediate bad deploy")
    channel = incident_channel(h)
    return channel, draft_with_buttons(slack, channel, 0)


def answer_to(slack: SlackSimulator, needle: str) -> SlackCall:
    return slack.wait_for("response_url", lambda c: needle in str(c.params.get("text")), timeout=10)


def answers_in(slack: SlackSimulator) -> list[str]:
    return [str(c.params.get("text")) for c in slack.calls_to("response_url")]


def continue_gate(h: Harness, slack: SlackSimulator) -> None:
    def gate() -> dict[str, Any] | None:
        return next(
            (m for m in slack.messages("C0DEPLOYS") if button_in(m, MANUAL_GATE_ACTION)), None
        )

    press(h, until(gate, "the gate"), MANUAL_GATE_ACTION, "U0ONCALL1", "C0DEPLOYS")
    h.wait_rollbacks()


def audit_kinds(h: Harness) -> list[str]:
    return [e.kind for e in h.bot.deps.repo.list_audit_events() if e.kind.startswith("customer")]


def test_draft_publish_and_resolved_update(
    h: Harness, slack: SlackSimulator, page: StatusPageServer
) -> None:
    h.slash("run checkout --immediate checkout 500s after v42")
    channel = incident_channel(h)
    draft = draft_with_buttons(slack, channel, 0)
    text = "\n".join(b["text"]["text"] for b in draft["blocks"] if b["type"] == "section")
    assert "technical difficulties with Acme Checkout" in text
    assert "resume within 15 minutes (by " in text
    assert "Nothing reaches customers until someone presses *Publish*" in text
    greeting = [i for i, m in enumerate(slack.messages(channel)) if "CRITICAL" in m["text"]]
    position = [m["ts"] for m in slack.messages(channel)].index(draft["ts"])
    assert greeting and greeting[0] < position  # the draft follows the greeting
    assert page.received == []  # nothing reaches customers without a click

    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", channel)
    answer_to(slack, "Published to the status page by <@U0ONCALL1>")
    (body,) = page.accepted
    stored = h.bot.deps.repo.customer_update_of(1, "started")
    assert stored is not None and stored.state == "published"
    assert body["status"] == "investigating" and body["message"] == stored.message
    assert body["title"] == "Acme Checkout: service disruption"
    assert body["incident_id"] == "rollback-bot:checkout:1"
    shown = drafts(slack, channel)[0]
    assert button_in(shown, PUBLISH_ACTION) is None and "published" in shown["text"]
    note = slack.wait_for("chat.postMessage", lambda c: c.params.get("thread_ts") == draft["ts"])
    assert "Published to the status page" in note.params["text"]
    (event,) = h.bot.deps.repo.list_audit_events("customer_update.publish")
    assert event.actor == "U0ONCALL1" and event.rollback_id == 1

    continue_gate(h, slack)  # the rollback succeeds: the bot drafts the resolved update
    resolved = draft_with_buttons(slack, channel, 1)
    assert "Resolved" in resolved["text"] and "normal service has resumed" in resolved["text"]
    assert len(page.accepted) == 1  # drafted, not sent
    press(h, resolved, PUBLISH_ACTION, "U0ONCALL2", channel)
    answer_to(slack, "Published to the status page by <@U0ONCALL2>")
    assert [b["status"] for b in page.accepted] == ["investigating", "resolved"]
    assert {b["incident_id"] for b in page.accepted} == {"rollback-bot:checkout:1"}
    assert audit_kinds(h).count("customer_update.published") == 2


def test_edit_in_a_modal_then_stale_button_then_double_click(
    h: Harness, slack: SlackSimulator, page: StatusPageServer
) -> None:
    channel, first = critical_rollback_with_draft(h, slack)

    press(h, first, EDIT_ACTION, "U0ONCALL1", channel)
    opened = slack.wait_for("views.open").params["view"]
    view = json.loads(opened) if isinstance(opened, str) else opened
    assert view["callback_id"] == EDIT_VIEW
    empty = h.requester.submit_view(
        view, {"message": "  "}, user_id="U0ONCALL1", selected={"status": "identified"}
    )
    assert empty.json()["errors"] == {"message": "Write the message customers will read."}
    new_text = "Payments fail for some of you & we know why. <b>Fix soon</b>."
    saved = h.requester.submit_view(
        view, {"message": new_text}, user_id="U0ONCALL1", selected={"status": "identified"}
    )
    assert saved.status_code == 200 and saved.text == ""
    stored = h.bot.deps.repo.customer_update_of(1, "started")
    assert stored is not None and (stored.message, stored.status, stored.version) == (
        new_text,
        "identified",
        2,
    )
    edited = draft_with_buttons(slack, channel, 0)  # the same message, updated in place
    assert edited["ts"] == first["ts"] and "Identified" in edited["text"]
    assert "&amp; we know why. &lt;b&gt;Fix soon&lt;/b&gt;" in json.dumps(edited["blocks"])
    assert "<b>" not in edited["text"]  # the fallback text is escaped too
    assert "customer_update.edited" in audit_kinds(h)

    press(h, first, PUBLISH_ACTION, "U0ONCALL1", channel)  # the button shown before the edit
    answer_to(slack, "edited since this button was shown")
    assert page.received == []

    button = button_in(edited, PUBLISH_ACTION) or {}
    # two presses, two deliveries (each its own trigger_id, as Slack sends a double click)
    clicks = [
        threading.Thread(
            target=h.requester.click,
            args=(edited, button),
            kwargs={"user_id": user, "channel_id": channel},
        )
        for user in ("U0ONCALL1", "U0ONCALL2")
    ]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    h.wait_idle()
    assert len(page.received) == 1  # a double click publishes once
    assert page.accepted[0]["message"] == new_text and page.accepted[0]["status"] == "identified"
    answers = answers_in(slack)
    assert sum("Published to the status page" in a for a in answers) == 1
    assert any("publishing this update right now" in a or "already published" in a for a in answers)
    assert len(h.bot.deps.repo.list_audit_events("customer_update.publish")) == 1

    def already() -> int:
        return sum("already published by <@U0ONCALL" in a for a in answers_in(slack))

    before = already()
    press(h, edited, PUBLISH_ACTION, "U0ONCALL2", channel)  # a stale button: said, not sent
    until(lambda: already() == before + 1, "the answer to a press on a published update")
    assert len(page.received) == 1


def test_a_failing_status_page_is_said_and_the_draft_stays_publishable(
    h: Harness, slack: SlackSimulator, page: StatusPageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, draft = critical_rollback_with_draft(h, slack)

    press(h, draft, PUBLISH_ACTION, "U0STRANGER", channel)
    answer_to(slack, ":no_entry: Only responders of checkout may publish")
    assert page.received == [] and "customer_update.publish_refused" in audit_kinds(h)

    monkeypatch.setenv(TOKEN_ENV, "a-revoked-token")  # read when pressed: no restart needed
    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", channel)
    answer_to(slack, f"refused the bot's token: check `{TOKEN_ENV}`")
    assert [r.answered for r in page.received] == [401]  # a refusal is not tried again
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    page.received.clear()

    page.fail(500, times=3)
    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", channel)
    answer_to(slack, "did not take this update (HTTP 500")
    note = slack.wait_for(
        "chat.postMessage",
        lambda c: c.params.get("thread_ts") == draft["ts"] and "HTTP 500" in str(c.params["text"]),
    )
    assert "tried 3 times" in note.params["text"] and "press Publish again" in note.params["text"]
    assert [r.answered for r in page.received] == [500, 500, 500]
    stored = h.bot.deps.repo.customer_update_of(1, "started")
    assert stored is not None and stored.state == "draft" and stored.last_error
    shown = drafts(slack, channel)[0]
    assert button_in(shown, PUBLISH_ACTION) is not None
    assert "the last Publish failed (HTTP 500" in json.dumps(shown["blocks"])

    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", channel)  # the same button works again
    answer_to(slack, "Published to the status page")
    keys = {r.headers["idempotency-key"] for r in page.received}
    assert len(keys) == 1 and len(page.accepted) == 1  # the retry carried the same key


def test_an_unpublished_draft_is_superseded_by_the_update_at_the_end(
    h: Harness, slack: SlackSimulator, page: StatusPageServer
) -> None:
    channel, first = critical_rollback_with_draft(h, slack)
    continue_gate(h, slack)
    draft_with_buttons(slack, channel, 1)
    old = until(lambda: "superseded" in drafts(slack, channel)[0]["text"], "superseded")
    assert old and button_in(drafts(slack, channel)[0], PUBLISH_ACTION) is None

    press(h, first, PUBLISH_ACTION, "U0ONCALL1", channel)
    answer_to(slack, "superseded by a newer one")
    assert page.received == []


def test_without_an_incident_channel_the_draft_goes_to_the_rollbacks_channel(
    make_harness: Any,
    slack: SlackSimulator,
    page: StatusPageServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)  # set nowhere: Publish must say so
    slack.add_user("U0ONCALL1", "oncall")
    text = catalog(page.url).replace(
        "    customer_name: Acme Checkout\n",
        "    customer_name: Acme Checkout\n    notifications: {incident_channel: false}\n",
    )
    h: Harness = make_harness(text, prometheus_url=None)
    h.slash("run checkout --immediate bad deploy")
    draft = draft_with_buttons(slack, "C0DEPLOYS", 0)
    assert h.bot.deps.repo.get_rollback(1).incident_channel_id is None  # type: ignore[union-attr]

    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", "C0DEPLOYS")
    answer_to(slack, f"Not published: `{TOKEN_ENV}` is not set in the bot's environment")
    assert page.received == []
    (refused,) = h.bot.deps.repo.list_audit_events("customer_update.publish_refused")
    assert refused.actor == "U0ONCALL1"
    stored = h.bot.deps.repo.customer_update_of(1, "started")
    assert stored is not None and stored.state == "draft"  # still publishable once it is set


def test_a_draft_posted_before_a_restart_is_published_after_it(
    make_harness: Any,
    slack: SlackSimulator,
    page: StatusPageServer,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    slack.add_user("U0ONCALL1", "oncall")
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    first: Harness = make_harness(catalog(page.url), prometheus_url=None, database_url=database)
    first.slash("run checkout --immediate bad deploy")
    channel = incident_channel(first)
    draft = draft_with_buttons(slack, channel, 0)
    first.bot.close()  # the process goes away; its drafts are in the database

    second: Harness = make_harness(catalog(page.url), prometheus_url=None, database_url=database)
    press(second, draft, PUBLISH_ACTION, "U0ONCALL1", channel)
    answer_to(slack, "Published to the status page by <@U0ONCALL1>")
    assert len(page.accepted) == 1 and page.accepted[0]["status"] == "investigating"


def test_a_status_page_that_does_not_answer_is_said_and_may_be_tried_again(
    h: Harness, slack: SlackSimulator, page: StatusPageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "TIMEOUT_SECONDS", 0.2)
    channel, draft = critical_rollback_with_draft(h, slack)
    page.fail(0, times=3)  # never answers
    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", channel)
    note = answer_to(slack, "no answer within 0.2 s; tried 3 times").params["text"]
    assert "it may have reached the status page" in note
    stored = h.bot.deps.repo.customer_update_of(1, "started")
    assert stored is not None and stored.state == "draft"
    (post,) = h.bot.deps.repo.list_status_page_posts(stored.id or 0)
    assert (post.outcome, post.attempts, post.http_status) == ("failed", 3, None)

    press(h, draft, PUBLISH_ACTION, "U0ONCALL1", channel)
    answer_to(slack, "Published to the status page")
    assert len({r.headers["idempotency-key"] for r in page.received}) == 1


def test_a_quick_rollback_ends_with_one_draft_to_publish_the_resolved_one(
    make_harness: Any,
    slack: SlackSimulator,
    page: StatusPageServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    slack.add_user("U0ONCALL1", "oncall")
    text = (
        catalog(page.url)
        .replace("[{kind: manual_gate, prompt: Hold until told}]", "[{kind: wait, seconds: 0}]")
        .replace(
            "    customer_name: Acme Checkout\n",
            "    customer_name: Acme Checkout\n    notifications: {incident_channel: false}\n",
        )
    )
    h: Harness = make_harness(text, prometheus_url=None)
    h.slash("run checkout --immediate bad deploy")
    h.wait_rollbacks()

    def settled() -> list[dict[str, Any]] | None:
        h.bot.deps.due.tick()  # no scheduler in tests: what waited a moment runs now
        h.wait_idle()
        shown = drafts(slack, "C0DEPLOYS")
        with_buttons = [m for m in shown if button_in(m, PUBLISH_ACTION)]
        return shown if len(with_buttons) == 1 and "Resolved" in with_buttons[0]["text"] else None

    shown = until(settled, "one publishable draft, the resolved one")
    assert shown[-1]["text"].startswith("Draft customer update — Resolved")  # the last posted
    assert all("superseded" in m["text"] for m in shown[:-1])
    assert page.received == []


def test_only_responders_edit_and_a_form_left_open_goes_stale(
    h: Harness, slack: SlackSimulator, page: StatusPageServer
) -> None:
    channel, draft = critical_rollback_with_draft(h, slack)
    press(h, draft, EDIT_ACTION, "U0STRANGER", channel)
    answer_to(slack, ":no_entry: Only responders of checkout may publish or edit")
    assert slack.calls_to("views.open") == []
    assert "customer_update.edit_refused" in audit_kinds(h)

    press(h, draft, EDIT_ACTION, "U0ONCALL1", channel)
    opened = slack.wait_for("views.open").params["view"]
    view = json.loads(opened) if isinstance(opened, str) else opened
    too_long = h.requester.submit_view(
        view, {"message": "x" * 3001}, user_id="U0ONCALL1", selected={"status": "monitoring"}
    )
    assert too_long.json()["errors"] == {"message": "At most 3000 characters."}
    press(h, draft, PUBLISH_ACTION, "U0ONCALL2", channel)  # published while the form is open
    answer_to(slack, "Published to the status page by <@U0ONCALL2>")
    late = h.requester.submit_view(
        view, {"message": "Too late"}, user_id="U0ONCALL1", selected={"status": "monitoring"}
    )
    assert "already published by <@U0ONCALL2>" in late.json()["errors"]["message"]
    stored = h.bot.deps.repo.customer_update_of(1, "started")
    assert stored is not None and stored.message != "Too late" and stored.version == 1
