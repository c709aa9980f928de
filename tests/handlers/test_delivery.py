"""Once per delivery: ``delivery_key`` for every kind of Slack request, which requests change
state, and the middleware answering a repeat ALREADY_HANDLED before any listener sees it.

The middleware is tested on a real Bolt app of its own, holding it and one probe listener per
surface (``process_before_response``: the listener has run when ``dispatch`` returns), with the
real Deps of the harness; the whole app is driven over HTTP at the end."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.response import BoltResponse

from bot.approvals import blocks as ab
from bot.deps import Deps
from bot.notify.reply import DATABASE_DOWN
from bot.sim.slack_client import signed_headers
from handlers import delivery
from handlers.delivery import ALREADY_HANDLED, changes_state, delivery_key
from handlers.ids import Action
from storage.db import make_engine
from storage.repository import Repository
from tests.conftest import Harness
from tests.handlers.conftest import CHANNEL, RESPONDER, click_payload, payload_body
from tests.postgres import fresh_database

PROBE_VIEW = "probe_view"


# --- delivery_key and changes_state: plain functions of the body ------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"command": "/rollback", "text": "run x", "trigger_id": "1.2.a"}, "trigger:1.2.a"),
        ({"type": "block_actions", "trigger_id": "3.4.b", "actions": []}, "trigger:3.4.b"),
        ({"type": "view_submission", "trigger_id": "5.6.c", "view": {}}, "trigger:5.6.c"),
        ({"type": "event_callback", "event_id": "Ev0PV", "event": {}}, "event:Ev0PV"),
        ({"event_id": "Ev1", "trigger_id": "7.8.d"}, "event:Ev1"),  # the event's own id wins
        ({"type": "block_actions", "actions": []}, None),
        ({"event_id": "", "trigger_id": ""}, None),
    ],
    ids=["command", "action", "view", "event", "event-first", "none", "empty"],
)
def test_delivery_key(body: dict[str, Any], key: str | None) -> None:
    assert delivery_key(body) == key


def command(text: str) -> dict[str, Any]:
    return {"command": "/rollback", "text": text}


def click(action_id: str) -> dict[str, Any]:
    return {"type": "block_actions", "actions": [{"action_id": action_id}]}


@pytest.mark.parametrize(
    "body",
    [
        command("run checkout --immediate x"),
        command("RUN checkout x"),
        command("plan checkout x"),
        command("approve 1"),
        command("reject 1 no"),
        command("abort 1"),
        click(Action.APPROVE),
        click(Action.RUN_NOW),
        click(Action.CONFIRM_RUN),
        click(Action.CONFIRM_CANCEL),
        click(Action.MANUAL_GATE_CONTINUE),
        click(Action.PAGE_ACKNOWLEDGE),
        {"type": "view_submission", "view": {}},
    ],
)
def test_requests_that_change_state(body: dict[str, Any]) -> None:
    assert changes_state(body)


@pytest.mark.parametrize(
    "body",
    [
        command(""),
        command("help"),
        command("assess checkout"),  # recorded after the ack instead (see handlers.delivery)
        command("status"),
        command("run checkout --dry-run x"),
        {"command": "/rollback"},
        click(Action.REJECT),  # opens a form: the form's submission is what changes state
        click(Action.PLAN_ROLLBACK),
        click(Action.ASSESS_AGAIN),
        click(Action.ROOT_CAUSE_WRITTEN),
        {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_home_opened"}},
    ],
)
def test_requests_that_do_not(body: dict[str, Any]) -> None:
    assert not changes_state(body)


# --- the middleware on a Bolt app of its own ------------------------------------------------


@dataclasses.dataclass
class Probe:
    app: App
    secret: str
    heard: list[str]

    def send(self, body: str) -> BoltResponse:
        headers = signed_headers(self.secret, body, "application/x-www-form-urlencoded")
        return self.app.dispatch(
            BoltRequest(body=body, headers={k: [v] for k, v in headers.items()})
        )


def probe_app(h: Harness, deps: Deps) -> Probe:
    app = App(client=h.bot.deps.slack.web, signing_secret=h.secret, process_before_response=True)
    delivery.install(app, deps)
    heard: list[str] = []

    @app.command("/rollback")
    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        heard.append(f"command:{command['text']}")
        ack(text="listener ran")

    @app.action(Action.APPROVE)
    def on_approve(ack: Ack) -> None:
        heard.append("approve")
        ack()

    @app.view(PROBE_VIEW)
    def on_view(ack: Ack) -> None:
        heard.append("view")
        ack()

    return Probe(app, h.secret, heard)


@pytest.fixture
def probe(h: Harness) -> Probe:
    return probe_app(h, h.bot.deps)


def slash_body(h: Harness, text: str) -> str:
    return h.requester.slash_body(text, user_id=RESPONDER, channel_id=CHANNEL)


def test_a_repeated_command_is_answered_already_handled_and_reaches_no_listener(
    h: Harness, probe: Probe
) -> None:
    body = slash_body(h, "run checkout --immediate bad release")
    first = probe.send(body)
    assert (first.status, first.body) == (200, "listener ran")
    again = probe.send(body)
    assert again.status == 200
    assert json.loads(again.body) == {"text": ALREADY_HANDLED, "response_type": "ephemeral"}
    assert probe.heard == ["command:run checkout --immediate bad release"]


def test_a_command_that_changes_nothing_reaches_the_listener_each_time(
    h: Harness, probe: Probe
) -> None:
    body = slash_body(h, "status")
    probe.send(body)
    probe.send(body)
    assert probe.heard == ["command:status", "command:status"]


def test_two_deliveries_of_the_same_text_are_two_requests(h: Harness, probe: Probe) -> None:
    probe.send(slash_body(h, "abort 1"))
    probe.send(slash_body(h, "abort 1"))  # a new trigger_id: the person asked again
    assert probe.heard == ["command:abort 1", "command:abort 1"]


def test_a_repeated_button_press_is_acked_empty_and_reaches_no_listener(
    h: Harness, probe: Probe
) -> None:
    body = payload_body(click_payload(h, Action.APPROVE, "1", trigger_id="9.9.press"))
    assert probe.send(body).status == 200
    again = probe.send(body)
    assert (again.status, again.body) == (200, "")
    assert probe.heard == ["approve"]


def view_body(blocks: list[dict[str, Any]]) -> str:
    payload = {
        "type": "view_submission",
        "team": {"id": "T0TEST"},
        "user": {"id": RESPONDER, "team_id": "T0TEST"},
        "api_app_id": "A0ROLLBACK",
        "trigger_id": "8.8.form",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": PROBE_VIEW,
            "blocks": blocks,
            "state": {"values": {}},
        },
    }
    return urlencode({"payload": json.dumps(payload)})


@pytest.mark.parametrize(
    ("blocks", "field"),
    [
        (ab.reject_modal(1, "checkout")["blocks"], "reason"),
        ([{"type": "section"}, {"type": "input", "block_id": "why"}], "why"),
        ([], "reason"),
    ],
    ids=["reject-form", "first-input", "no-blocks"],
)
def test_a_repeated_form_is_answered_under_its_first_input(
    h: Harness, probe: Probe, blocks: list[dict[str, Any]], field: str
) -> None:
    body = view_body(blocks)
    assert probe.send(body).status == 200
    again = probe.send(body)
    answer = json.loads(again.body)
    assert answer == {"response_action": "errors", "errors": {field: ALREADY_HANDLED[:150]}}
    assert probe.heard == ["view"]


def test_an_unreachable_database_is_said_and_reaches_no_listener(h: Harness) -> None:
    """Without the record, a repeat could not be told from a first delivery: act on neither."""
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    try:
        down = dataclasses.replace(h.bot.deps, repo=Repository(engine))
        probe = probe_app(h, down)
        answer = probe.send(slash_body(h, "plan checkout x"))
        assert json.loads(answer.body) == {"text": DATABASE_DOWN, "response_type": "ephemeral"}
        probe.send(slash_body(h, "help"))  # nothing to record: answered as usual
        assert probe.heard == ["command:help"]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def never_migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database the bot can reach that has none of its tables (``migrate`` never ran)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_a_database_never_migrated_says_so_and_what_to_do(
    h: Harness, never_migrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(never_migrated)
    try:
        empty = dataclasses.replace(h.bot.deps, repo=Repository(engine))
        probe = probe_app(h, empty)
        answer = json.loads(probe.send(slash_body(h, "plan checkout x")).body)["text"]
        where = engine.url.render_as_string(hide_password=True)
    finally:
        engine.dispose()
    said = f"the database at {where} has no rollback-bot tables"
    assert said in answer and "run `rollback-bot migrate`" in answer
    assert "cannot reach" not in answer  # it was reached: trying again would not help
    assert probe.heard == []
    (logged,) = [r.getMessage() for r in caplog.records if "cannot record" in r.getMessage()]
    assert said in logged and "run `rollback-bot migrate`" in logged


# --- the whole app, over HTTP -----------------------------------------------------------------


def test_the_app_answers_a_replayed_plan_once(h: Harness) -> None:
    body = slash_body(h, "plan checkout bad release")
    first = h.requester.post_form(body).json()["text"]
    assert first.startswith(":no_entry: No rollback request for *checkout*")
    again = h.requester.post_form(body, extra_headers={"X-Slack-Retry-Num": "1"}).json()
    assert again == {"text": ALREADY_HANDLED, "response_type": "ephemeral"}
    refusals = h.bot.deps.repo.list_audit_events(kind="approval.refused")
    assert len(refusals) == 1  # the listener ran once
