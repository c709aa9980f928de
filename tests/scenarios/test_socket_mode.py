"""Socket Mode end to end: envelopes over a loopback WebSocket into the real Bolt app.

`rollback-bot serve --socket-mode` hands ``bot.bolt`` to slack_bolt's ``SocketModeHandler``. Here
the handler connects to ``SocketModeSimulator`` (``apps.connections.open`` + the WebSocket), the
simulator delivers slash commands and button presses as Slack would, and the answers are read
from the ack (what Slack shows at once) and from ``SlackSimulator`` (what the bot posts later).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.__main__ import main
from bot.approvals import blocks as ab
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from bot.sim.socket_mode import SocketModeSimulator
from tests.conftest import BOT_TOKEN, Harness, catalog_yaml, service_yaml, set_service_values


@pytest.fixture
def socket_mode() -> Iterator[SocketModeSimulator]:
    with SocketModeSimulator() as sim:
        yield sim


@pytest.fixture
def harness(make_harness: Any, prometheus: PrometheusSimulator) -> Harness:
    set_service_values(prometheus, "checkout", error_rate=0.23, latency=6.2, sessions=0.4, db_up=1)
    set_service_values(prometheus, "profile", error_rate=0.002, latency=0.18, sessions=42, db_up=1)
    prometheus.set_health("checkout", 503)
    text = catalog_yaml(
        service_yaml("checkout", prometheus.health_url("checkout")),
        service_yaml("profile", prometheus.health_url("profile")),
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url)
    return h


def close_handler(handler: SocketModeHandler) -> None:
    """``handler.close()``, without sitting out slack_sdk's one-second message-queue poll.

    The client's message processor blocks in ``queue.get(timeout=1)`` and ``close()`` joins it;
    marking the client closed and waking the queue lets it return at once. (The simulator's
    frequent pings do the same for the blocking socket read, which would otherwise take 3 s.)
    """
    handler.client.closed = True
    handler.client.enqueue_message("")
    handler.close()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated


@pytest.fixture
def handler(harness: Harness, socket_mode: SocketModeSimulator) -> Iterator[SocketModeHandler]:
    """The bot's Bolt app connected over Socket Mode (torn down before the simulators)."""
    handler = SocketModeHandler(
        harness.bot.bolt,
        socket_mode.app_token,
        web_client=WebClient(base_url=socket_mode.api_url),  # only apps.connections.open
    )
    try:
        handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        socket_mode.wait_connected()
        yield handler
    finally:
        close_handler(handler)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def slash(sim: SocketModeSimulator, slack: SlackSimulator, text: str) -> dict[str, Any]:
    """Deliver `/rollback text` over Socket Mode; the ack's payload (what Slack shows at once)."""
    fields = sim.slash_command(text, response_url=slack.response_url("cmd"))
    ack = sim.send_slash(fields)
    assert set(ack) == {"envelope_id", "payload"}, ack
    payload: dict[str, Any] = ack["payload"]
    return payload


@pytest.mark.usefixtures("handler")
def test_help_is_answered_in_the_ack(
    harness: Harness, socket_mode: SocketModeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    answer = slash(socket_mode, harness.slack, "help")

    assert answer["response_type"] == "ephemeral"
    assert "/rollback assess <service>" in answer["text"]
    assert "/rollback history [<service>]" in answer["text"]
    assert "/rollback assess <service>" in json.dumps(answer["blocks"])
    harness.wait_idle()
    assert harness.posted() == []
    assert harness.slack.calls_to("response_url") == []
    assert socket_mode.other_messages == []
    assert errors_logged(caplog) == []


@pytest.mark.usefixtures("handler")
def test_assess_is_acked_then_answered_in_the_channel(
    harness: Harness, socket_mode: SocketModeSimulator
) -> None:
    answer = slash(socket_mode, harness.slack, "assess checkout")

    assert answer["response_type"] == "ephemeral"
    assert "Assessing *checkout*" in answer["text"]
    msg = harness.slack.wait_for("chat.postMessage")
    assert msg.params["channel"] == "C0DEPLOYS"
    first_line = msg.params["text"].splitlines()[0]
    assert first_line.startswith("IMMEDIATE ROLLBACK")
    assert "critical 75, high 15, medium 0, total 90" in first_line
    harness.wait_idle()
    (stored,) = harness.bot.deps.repo.list_assessments(service="checkout")
    assert (stored.status, stored.decision) == ("done", "IMMEDIATE ROLLBACK")
    (event,) = harness.bot.deps.repo.list_audit_events(kind="assessment.completed")
    assert (event.actor, event.message_ts) == ("U0ONCALL1", msg.response["ts"])


@pytest.mark.usefixtures("handler")
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("frobnicate checkout", "unknown subcommand `frobnicate`"),
        ("assess", "needs a service name"),
        ("assess checkout now", "takes a service name and optionally --region"),
        ('run checkout --to "41', "is not a revision"),
    ],
)
def test_malformed_command_gets_usage_and_no_error(
    harness: Harness,
    socket_mode: SocketModeSimulator,
    caplog: pytest.LogCaptureFixture,
    text: str,
    problem: str,
) -> None:
    answer = slash(socket_mode, harness.slack, text)

    assert answer["response_type"] == "ephemeral"
    assert problem in answer["text"]
    assert "/rollback assess <service>" in answer["text"]  # the usage is shown
    harness.wait_idle()
    assert harness.bot.deps.repo.list_assessments() == []
    assert harness.posted() == []
    assert errors_logged(caplog) == []


@pytest.mark.usefixtures("handler")
def test_unknown_service_is_answered_privately(
    harness: Harness, socket_mode: SocketModeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    answer = slash(socket_mode, harness.slack, "assess nosuch")

    assert "Unknown service `nosuch`" in answer["text"]
    assert "`checkout`, `profile`" in answer["text"]
    harness.wait_idle()
    assert harness.bot.deps.repo.list_assessments() == []
    assert harness.posted() == []
    assert errors_logged(caplog) == []


@pytest.mark.usefixtures("handler")
def test_answer_goes_to_the_response_url_when_the_bot_cannot_post(
    harness: Harness, socket_mode: SocketModeSimulator
) -> None:
    harness.slack.inject_error("chat.postMessage", "not_in_channel")

    slash(socket_mode, harness.slack, "assess checkout")
    call = harness.slack.wait_for("response_url")

    assert call.params["response_type"] == "ephemeral"
    assert call.params["text"].startswith("IMMEDIATE ROLLBACK")
    assert "/invite @rollback-bot" in call.params["text"]


@pytest.mark.usefixtures("handler")
def test_button_press_over_socket_mode_opens_the_plan_modal(
    harness: Harness, socket_mode: SocketModeSimulator
) -> None:
    slash(socket_mode, harness.slack, "assess checkout")
    message = harness.slack.wait_for("chat.postMessage").params
    harness.wait_idle()
    (posted,) = harness.slack.messages("C0DEPLOYS")
    (button,) = [
        e
        for block in message["blocks"]
        for e in block.get("elements", [])
        if e.get("action_id") == ab.PLAN_ACTION
    ]
    # the same block_actions payload the HTTP tests post, delivered as an envelope instead
    form = harness.requester.click_body(posted, button, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    payload = json.loads(dict(parse_qsl(form))["payload"])

    ack = socket_mode.send_interactive(payload)

    assert set(ack) == {"envelope_id"}  # a bare ack(): nothing to show
    view = harness.slack.wait_for("views.open").params
    assert view["trigger_id"] == payload["trigger_id"]
    assert view["view"]["callback_id"] == ab.PLAN_VIEW


def test_a_disconnect_request_is_followed_by_a_new_connection(
    handler: SocketModeHandler, harness: Harness, socket_mode: SocketModeSimulator
) -> None:
    socket_mode.send_disconnect("refresh_requested")
    socket_mode.wait_connected(opened=2)

    answer = slash(socket_mode, harness.slack, "help")

    assert "/rollback assess <service>" in answer["text"]
    assert socket_mode.urls_issued == 2  # a fresh apps.connections.open for the new socket
    socket_mode.wait_open_connections(1)  # the old socket was closed by the client


def test_handler_wired_like_serve_finds_socket_mode_through_slack_api_url(
    harness: Harness, socket_mode: SocketModeSimulator
) -> None:
    """`serve` passes no web_client: apps.connections.open goes through the bot's client."""
    slack = harness.slack
    # SlackSimulator checks the bot token and has no Socket Mode: answer as Slack would
    slack.inject(
        "apps.connections.open", status=200, body={"ok": True, "url": socket_mode.new_url()}
    )
    handler = SocketModeHandler(harness.bot.bolt, socket_mode.app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        answer = slash(socket_mode, slack, "help")
    finally:
        close_handler(handler)

    assert "/rollback assess <service>" in answer["text"]
    (opened,) = slack.calls_to("apps.connections.open")
    assert opened.status == 200


def test_apps_connections_open_wants_the_app_token(socket_mode: SocketModeSimulator) -> None:
    # guards the simulator itself: only the app-level token opens a connection
    def error_with(token: str) -> str:
        with pytest.raises(SlackApiError) as refused:
            WebClient(base_url=socket_mode.api_url).apps_connections_open(app_token=token)
        return str(refused.value.response["error"])

    opened = WebClient(base_url=socket_mode.api_url).apps_connections_open(
        app_token=socket_mode.app_token
    )
    assert str(opened["url"]).startswith("ws://127.0.0.1:")
    assert error_with(BOT_TOKEN) == "not_allowed_token_type"
    assert error_with("xapp-1-wrong") == "invalid_auth"
    assert socket_mode.urls_issued == 1


def test_serve_socket_mode_without_app_token_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)

    assert main(["serve", "--socket-mode", "--port", "0"]) == 2
    assert "--socket-mode needs SLACK_APP_TOKEN" in capsys.readouterr().err


def test_serve_socket_mode_process_answers_an_assess(
    tmp_path: Path,
    slack: SlackSimulator,
    prometheus: PrometheusSimulator,
    socket_mode: SocketModeSimulator,
) -> None:
    """`rollback-bot serve --socket-mode` as a real process (CONTRACT.md), end to end."""
    set_service_values(prometheus, "checkout", error_rate=0.23, latency=6.2, sessions=0.4, db_up=1)
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(catalog_yaml(service_yaml("checkout", prometheus.health_url("checkout"))))
    slack.inject(
        "apps.connections.open", status=200, body={"ok": True, "url": socket_mode.new_url()}
    )
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "unused-in-socket-mode",
        "SLACK_APP_TOKEN": socket_mode.app_token,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "ROLLBACK_CONFIG": str(catalog),
        "PROMETHEUS_URL": prometheus.url,
    }
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--socket-mode", "--port", "0"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            socket_mode.wait_connected(timeout=30)  # the process starts in ~2 s; CI is slower
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
        answer = slash(socket_mode, slack, "assess checkout")
        msg = slack.wait_for("chat.postMessage").params
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    assert "Assessing *checkout*" in answer["text"]
    assert msg["text"].startswith("ROLLBACK RECOMMENDED: checkout — critical 45, high 15")
    assert "Traceback" not in log_path.read_text()


def test_serve_socket_mode_with_a_wrong_app_token_says_so(
    tmp_path: Path, slack: SlackSimulator
) -> None:
    """Slack refuses the app token (invalid_auth): exit 2 with a clear line, no traceback, and
    the token itself is not printed."""
    catalog = tmp_path / "rollback.yaml"
    catalog.write_text(catalog_yaml(service_yaml("checkout", None)))
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--socket-mode", "--port", "0"],
        env={
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "unused-in-socket-mode",
            "SLACK_APP_TOKEN": "xapp-wrong-1234",
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "ROLLBACK_CONFIG": str(catalog),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot open a Socket Mode connection" in proc.stderr
    assert "invalid_auth" in proc.stderr
    assert "Traceback" not in proc.stderr and "xapp-wrong-1234" not in proc.stderr
