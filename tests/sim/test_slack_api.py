"""SlackSimulator against the real slack_sdk WebClient and slack_bolt App."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot.sim.slack_api import SlackCall, SlackSimulator

TOKEN = "xoxb-test"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*checkout* v42 → v41"}}


@pytest.fixture
def sim() -> Iterator[SlackSimulator]:
    with SlackSimulator(bot_token=TOKEN) as started:
        started.add_channel("C0OPS", "ops")
        started.add_user("U0ALICE", "alice", "Alice Doe", tz="Europe/Paris")
        yield started


@pytest.fixture
def client(sim: SlackSimulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=sim.api_url)


def slack_error(call: Callable[[], Any]) -> str:
    with pytest.raises(SlackApiError) as raised:
        call()
    return str(raised.value.response["error"])


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_post_update_and_permalink_round_trip(sim: SlackSimulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0OPS", text="Rollback?", blocks=[SECTION])
    assert posted["channel"] == "C0OPS"
    assert posted["message"]["blocks"] == [SECTION]
    assert posted["message"]["user"] == sim.bot_user_id

    updated = client.chat_update(channel="C0OPS", ts=posted["ts"], text="Rolled back", blocks=[])
    link = client.chat_getPermalink(channel="C0OPS", message_ts=posted["ts"])

    digits = posted["ts"].replace(".", "")
    assert link["permalink"] == f"https://example.slack.com/archives/C0OPS/p{digits}"
    assert updated["ts"] == posted["ts"]
    [message] = sim.messages("C0OPS")
    assert (message["text"], message["blocks"], message["edits"]) == ("Rolled back", [], 1)
    assert [call.method for call in sim.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.getPermalink",
    ]


def test_ts_increase_and_threads_are_kept(sim: SlackSimulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="#ops", text="parent")["ts"]
    reply = client.chat_postMessage(channel="C0OPS", text="reply", thread_ts=parent)["ts"]
    other = client.chat_postMessage(channel="C0OPS", text="other")["ts"]

    assert float(parent) < float(reply) < float(other)
    history = client.conversations_history(channel="C0OPS")["messages"]
    assert [m["text"] for m in history] == ["other", "parent"]
    assert history[1]["reply_count"] == 1
    replies = client.conversations_replies(channel="C0OPS", ts=parent)["messages"]
    assert [(m["text"], m["thread_ts"]) for m in replies] == [("parent", parent), ("reply", parent)]
    permalink = client.chat_getPermalink(channel="C0OPS", message_ts=reply)["permalink"]
    assert permalink.endswith(f"?thread_ts={parent}&cid=C0OPS")


def test_form_and_json_bodies_are_decoded_alike(sim: SlackSimulator, client: WebClient) -> None:
    client.api_call("chat.postMessage", json={"channel": "C0OPS", "blocks": [SECTION]})
    form = {"channel": "C0OPS", "blocks": json.dumps([SECTION]), "text": "[form] ok"}
    client.api_call("chat.postMessage", params=form)
    # A token in the form and extra parameters in the query string are both accepted.
    status, body = raw_post(
        f"{sim.api_url}chat.postMessage?channel=C0OPS",
        urlencode({"token": TOKEN, "text": "via query"}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert (status, body["ok"]) == (200, True)
    json_call, form_call, query_call = sim.calls_to("chat.postMessage")
    assert json_call.params["blocks"] == form_call.params["blocks"] == [SECTION]
    assert form_call.params["text"] == "[form] ok"
    assert query_call.params == {"channel": "C0OPS", "token": TOKEN, "text": "via query"}
    assert [m.get("blocks") for m in sim.messages("C0OPS")] == [[SECTION], [SECTION], None]


def test_calls_without_the_bot_token_are_refused(sim: SlackSimulator) -> None:
    intruder = WebClient(token="xoxb-wrong", base_url=sim.api_url)
    anonymous = WebClient(base_url=sim.api_url)

    assert slack_error(lambda: intruder.chat_postMessage(channel="C0OPS", text="x")) == (
        "invalid_auth"
    )
    assert slack_error(lambda: anonymous.auth_test()) == "not_authed"
    assert sim.messages("C0OPS") == []
    assert [(c.status, c.response["error"]) for c in sim.calls] == [
        (200, "invalid_auth"),
        (200, "not_authed"),
    ]


def test_rate_limit_is_retried_after_retry_after(sim: SlackSimulator) -> None:
    client = WebClient(
        token=TOKEN, base_url=sim.api_url, retry_handlers=[RateLimitErrorRetryHandler()]
    )
    sim.inject("chat.postMessage", status=429, headers={"Retry-After": "0"})

    client.chat_postMessage(channel="C0OPS", text="once")

    assert [c.status for c in sim.calls_to("chat.postMessage")] == [429, 200]
    assert [m["text"] for m in sim.messages("C0OPS")] == ["once"]


def test_rate_limit_without_a_retry_handler_surfaces(sim: SlackSimulator) -> None:
    client = WebClient(token=TOKEN, base_url=sim.api_url)
    sim.inject("chat.postMessage", status=429, headers={"Retry-After": "1"})

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0OPS", text="lost")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "1"
    assert raised.value.response["error"] == "ratelimited"
    assert sim.messages("C0OPS") == []


def test_server_errors_are_retried(sim: SlackSimulator) -> None:
    no_wait = FixedValueRetryIntervalCalculator(0.0)  # its keyword is misspelt
    client = WebClient(
        token=TOKEN,
        base_url=sim.api_url,
        retry_handlers=[ServerErrorRetryHandler(max_retry_count=2, interval_calculator=no_wait)],
    )
    sim.inject("chat.postMessage", status=503, times=2)

    client.chat_postMessage(channel="C0OPS", text="after two 503s")

    assert [c.status for c in sim.calls_to("chat.postMessage")] == [503, 503, 200]
    assert len(sim.messages("C0OPS")) == 1


def test_injected_slack_errors(sim: SlackSimulator, client: WebClient) -> None:
    sim.inject_error("chat.postMessage", "not_in_channel")

    assert slack_error(lambda: client.chat_postMessage(channel="C0OPS", text="x")) == (
        "not_in_channel"
    )
    client.chat_postMessage(channel="C0OPS", text="second try")
    assert [m["text"] for m in sim.messages("C0OPS")] == ["second try"]


def test_unknown_channels_in_strict_mode_and_unknown_methods(
    sim: SlackSimulator, client: WebClient
) -> None:
    client.chat_postMessage(channel="C0AUTO", text="auto-created channel")
    sim.is_strict_channels = True

    assert slack_error(lambda: client.chat_postMessage(channel="C0NEW", text="x")) == (
        "channel_not_found"
    )
    assert slack_error(lambda: client.api_call("reminders.add")) == "unknown_method"
    assert len(sim.messages("C0AUTO")) == 1


def test_conversations_create_archive_and_name_taken(
    sim: SlackSimulator, client: WebClient
) -> None:
    created = client.conversations_create(name="inc-checkout-rollback")["channel"]
    client.conversations_setTopic(channel=created["id"], topic="checkout v42 → v41")
    client.conversations_archive(channel=created["id"])

    assert created["id"].startswith("C")
    assert (created["name"], created["is_archived"]) == ("inc-checkout-rollback", False)
    info = client.conversations_info(channel=created["id"])["channel"]
    assert (info["is_archived"], info["topic"]["value"]) == (True, "checkout v42 → v41")
    # Archived channels keep their name.
    assert slack_error(lambda: client.conversations_create(name="inc-checkout-rollback")) == (
        "name_taken"
    )
    assert slack_error(lambda: client.conversations_create(name="Inc Checkout")) == (
        "invalid_name_specials"
    )
    assert slack_error(lambda: client.conversations_create(name="x" * 81)) == (
        "invalid_name_maxlength"
    )
    assert slack_error(lambda: client.chat_postMessage(channel=created["id"], text="x")) == (
        "is_archived"
    )
    client.conversations_unarchive(channel=created["id"])
    listed = client.conversations_list(exclude_archived=True)["channels"]
    assert {c["name"] for c in listed} == {"ops", "inc-checkout-rollback"}


def test_invite_checks_the_users(sim: SlackSimulator, client: WebClient) -> None:
    assert slack_error(lambda: client.conversations_invite(channel="C0OPS", users="U0NOBODY")) == (
        "user_not_found"
    )
    client.conversations_invite(channel="C0OPS", users=["U0ALICE"])

    channel = sim.channel("C0OPS")
    assert channel is not None
    assert channel["members"] == ["U0ALICE", sim.bot_user_id]
    assert slack_error(lambda: client.conversations_invite(channel="C0OPS", users="U0ALICE")) == (
        "already_in_channel"
    )


def test_users_info_and_direct_messages(sim: SlackSimulator, client: WebClient) -> None:
    user = client.users_info(user="U0ALICE")["user"]
    dm = client.chat_postMessage(channel="U0ALICE", text="approve?")
    client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="only you")

    assert (user["real_name"], user["tz"], user["tz_offset"] in (3600, 7200)) == (
        "Alice Doe",
        "Europe/Paris",
        True,
    )
    assert dm["channel"].startswith("D")
    assert [m["text"] for m in sim.messages("U0ALICE")] == ["approve?"]
    assert sim.messages("C0OPS") == []
    assert [(e["user"], e["text"]) for e in sim.ephemerals("C0OPS")] == [("U0ALICE", "only you")]
    assert slack_error(lambda: client.users_info(user="U0NOBODY")) == "user_not_found"


def test_usergroups_users_list(sim: SlackSimulator, client: WebClient) -> None:
    sim.add_usergroup("S0ONCALL", ["U0ALICE", "U0BOB"])

    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0ALICE", "U0BOB"]
    assert slack_error(lambda: client.usergroups_users_list(usergroup="S0NONE")) == (
        "no_such_subteam"
    )


def test_views_publish_open_and_update(sim: SlackSimulator, client: WebClient) -> None:
    home = {"type": "home", "blocks": [SECTION]}
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Rollback"}, "blocks": []}

    client.views_publish(user_id="U0ALICE", view=home)
    opened = client.views_open(trigger_id="123.456", view=modal)["view"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)["view"]

    published = sim.home_view("U0ALICE")
    assert published is not None
    assert (published["type"], published["blocks"]) == ("home", [SECTION])
    assert sim.home_view("U0BOB") is None
    assert updated["id"] == opened["id"]
    assert slack_error(
        lambda: client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    ) == ("hash_conflict")


def test_canvases_on_a_paid_plan(sim: SlackSimulator, client: WebClient) -> None:
    content = {"type": "markdown", "markdown": "# Runbook\n"}
    canvas_id = client.canvases_create(title="Runbook", document_content=content)["canvas_id"]
    client.canvases_access_set(canvas_id=canvas_id, access_level="read", channel_ids=["C0OPS"])
    change = {"operation": "insert_at_end", "document_content": {**content, "markdown": "- ok\n"}}
    client.canvases_edit(canvas_id=canvas_id, changes=[change])

    canvas = sim.canvas(canvas_id)
    assert canvas is not None
    assert (canvas["title"], canvas["markdown"]) == ("Runbook", "# Runbook\n- ok\n")
    assert canvas["access"] == {"C0OPS": "read"}


def test_free_plan_refuses_canvases_and_files_upload_v2_is_the_fallback(
    sim: SlackSimulator, client: WebClient
) -> None:
    sim.is_paid_plan = False
    parent = client.chat_postMessage(channel="C0OPS", text="Rollback plan")["ts"]
    content = {"type": "markdown", "markdown": "# Plan"}

    assert slack_error(lambda: client.canvases_create(title="Plan", document_content=content)) == (
        "free_teams_cannot_create_non_tabbed_canvases"
    )
    uploaded = client.files_upload_v2(
        content="# Plan\n", filename="plan.md", title="Plan", channel="C0OPS", thread_ts=parent
    )

    assert uploaded["file"]["title"] == "Plan"
    [file] = sim.files("C0OPS")
    assert (file["name"], file["title"], file["content"]) == ("plan.md", "Plan", b"# Plan\n")
    assert (file["channels"], file["thread_ts"]) == (["C0OPS"], parent)
    upload = sim.wait_for("upload_url")
    assert (upload.status, upload.params["size"]) == (200, len(b"# Plan\n"))
    share = sim.messages("C0OPS")[-1]
    assert (share["thread_ts"], share["files"][0]["id"]) == (parent, file["id"])


def test_wait_for_and_subscribe(sim: SlackSimulator, client: WebClient) -> None:
    seen: list[SlackCall] = []
    sim.subscribe(seen.append)

    client.chat_postMessage(channel="C0OPS", text="first")
    client.chat_postMessage(channel="C0OPS", text="second")

    call = sim.wait_for("chat.postMessage", lambda c: c.params["text"] == "second")
    assert call.response["message"]["text"] == "second"
    assert [c.params["text"] for c in seen] == ["first", "second"]
    with pytest.raises(AssertionError, match=r"recorded: \['chat.postMessage'"):
        sim.wait_for("chat.update", timeout=0.0)


def test_bolt_app_runs_against_the_simulator(sim: SlackSimulator) -> None:
    app = App(
        client=WebClient(token=TOKEN, base_url=sim.api_url),
        signing_secret="secret",
        request_verification_enabled=False,
        process_before_response=True,
    )
    assert sim.wait_for("auth.test").response["user_id"] == sim.bot_user_id

    @app.command("/rollback")
    def rollback(ack: Any, say: Any, respond: Any, command: dict[str, Any]) -> None:
        ack()
        say(f"Rolling back {command['text']}")
        respond("Started")

    form = {
        "command": "/rollback",
        "text": "checkout",
        "team_id": sim.team_id,
        "channel_id": "C0OPS",
        "user_id": "U0ALICE",
        "response_url": sim.response_url("rollback"),
        "trigger_id": "123.456",
    }
    response = app.dispatch(BoltRequest(body=urlencode(form)))

    assert response.status == 200
    assert sim.wait_for("response_url").params["text"] == "Started"
    assert [m["text"] for m in sim.messages("C0OPS")] == ["Rolling back checkout"]


def test_delete_and_simulator_failures_are_visible(sim: SlackSimulator, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C0OPS", text="oops")["ts"]
    client.chat_delete(channel="C0OPS", ts=ts)

    assert sim.messages("C0OPS") == []
    assert slack_error(lambda: client.chat_delete(channel="C0OPS", ts=ts)) == "message_not_found"
    # An argument the simulator cannot read is answered with a recorded 500, not a hang-up.
    with pytest.raises(SlackApiError):
        client.conversations_history(channel="C0OPS", limit="many")  # type: ignore[arg-type]
    assert sim.calls[-1].status == 500
