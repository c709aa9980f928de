"""The Slack client's retries never make a second message out of one answer that was lost."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.adapters.slack.web import SlackError, slack_web_client
from bot.sim.slack_api import SlackSimulator


def test_a_post_answered_500_is_not_resent_blindly(slack: SlackSimulator) -> None:
    client = slack_web_client(SecretStr(slack.bot_token), slack.api_url)
    slack.inject("chat.postMessage", status=500, is_applied=True)  # stored, answer lost
    with pytest.raises(SlackError):
        client.chat_postMessage(channel="C0DEPLOYS", text="once")
    assert [m["text"] for m in slack.messages("C0DEPLOYS")] == ["once"]


def test_a_503_and_a_500_on_a_read_are_still_retried(slack: SlackSimulator) -> None:
    client = slack_web_client(SecretStr(slack.bot_token), slack.api_url)
    slack.inject("chat.postMessage", status=503)  # not taken: sending again is safe
    client.chat_postMessage(channel="C0DEPLOYS", text="after a 503")
    slack.inject("conversations.info", status=500)
    assert client.web.conversations_info(channel="C0DEPLOYS")["channel"]["id"] == "C0DEPLOYS"
    assert [m["text"] for m in slack.messages("C0DEPLOYS")] == ["after a 503"]
