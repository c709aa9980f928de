"""The Slack simulator refuses what Slack refuses: blocks past Block Kit's limits, text past
40,000 characters, oversized modals, bad response_url answers and bad ack answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import InvalidBlocksAnswer, _check_answer

TOKEN = "xoxb-test"


def sec(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def buttons(label: str) -> dict[str, Any]:
    element = {"type": "button", "text": {"type": "plain_text", "text": label}, "value": "1"}
    return {"type": "actions", "elements": [element]}


@pytest.fixture
def sim() -> Iterator[SlackSimulator]:
    with SlackSimulator(bot_token=TOKEN) as started:
        started.add_channel("C0OPS", "ops")
        yield started


@pytest.fixture
def client(sim: SlackSimulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=sim.api_url)


BAD_BLOCKS = [
    pytest.param([sec("x" * 3001)], "/blocks/0/text/text", id="section text 3,001"),
    pytest.param([sec("")], "/blocks/0/text/text", id="empty section text"),
    pytest.param(
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "/blocks/0/text/text",
        id="header 151",
    ),
    pytest.param(
        [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
        "/blocks/0/text/type",
        id="mrkdwn header",
    ),
    pytest.param([buttons("b" * 76)], "/blocks/0/elements/0/text/text", id="button 76"),
    pytest.param(
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "/blocks/0/elements",
        id="context 11 elements",
    ),
    pytest.param(
        [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        "/blocks/0/fields/0/text",
        id="field 2,001",
    ),
    pytest.param([sec("ok")] * 51, "/blocks", id="51 blocks"),
    pytest.param([{"type": "sektion"}], "/blocks/0/type", id="unknown block type"),
]


@pytest.mark.parametrize(("blocks", "pointer"), BAD_BLOCKS)
def test_oversized_blocks_are_refused_as_slack_refuses_them(
    sim: SlackSimulator, client: WebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    for call in (
        lambda: client.chat_postMessage(channel="C0OPS", text="t", blocks=blocks),
        lambda: client.chat_postEphemeral(channel="C0OPS", user="U0X", text="t", blocks=blocks),
    ):
        with pytest.raises(SlackApiError) as raised:
            call()
        answer = raised.value.response.data
        assert isinstance(answer, dict)
        assert answer["ok"] is False and answer["error"] == "invalid_blocks"
        assert any(f"[json-pointer:{pointer}]" in e for e in answer["errors"])
        assert any(
            m.startswith("[ERROR] ") and pointer in m
            for m in answer["response_metadata"]["messages"]
        )
    assert sim.messages("C0OPS") == []  # nothing was posted


def test_an_edit_with_oversized_blocks_is_refused_and_changes_nothing(
    sim: SlackSimulator, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel="C0OPS", text="t", blocks=[sec("fine")])
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C0OPS", ts=posted["ts"], text="t", blocks=[sec("x" * 3001)])
    assert raised.value.response["error"] == "invalid_blocks"
    (message,) = sim.messages("C0OPS")
    assert message["blocks"] == [sec("fine")]


def test_limits_themselves_are_accepted(client: WebClient) -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        sec("x" * 3000),
        buttons("b" * 75),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3000}] * 10},
        *[{"type": "divider"}] * 46,
    ]
    assert len(blocks) == 50
    assert client.chat_postMessage(channel="C0OPS", text="t" * 40_000, blocks=blocks)["ok"]


def test_text_over_40000_characters_is_refused(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0OPS", text="t" * 40_001)
    assert raised.value.response["error"] == "msg_too_long"


def test_an_oversized_modal_is_refused(client: WebClient) -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "A title longer than 24 characters"},
        "blocks": [sec("ok")] * 101,
    }
    with pytest.raises(SlackApiError) as raised:
        client.views_open(trigger_id="1.2.3", view=view)
    assert raised.value.response["error"] == "invalid_arguments"
    errors = raised.value.response["errors"]
    assert any("/view/title/text" in e for e in errors)
    assert any("/view/blocks]" in e for e in errors)


def test_a_response_url_answer_with_oversized_blocks_gets_400(sim: SlackSimulator) -> None:
    body = json.dumps({"text": "t", "blocks": [sec("x" * 3001)]}).encode()
    request = urllib.request.Request(
        sim.response_url("cmd"),
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400
    assert raised.value.read() == b"invalid_blocks"


def test_an_ack_with_oversized_blocks_fails_the_requester() -> None:
    good = httpx.Response(200, json={"text": "t", "blocks": [sec("ok")]})
    _check_answer(good)
    bad = httpx.Response(200, json={"text": "t", "blocks": [sec("x" * 3001)]})
    with pytest.raises(InvalidBlocksAnswer, match="json-pointer:/blocks/0/text/text"):
        _check_answer(bad)
