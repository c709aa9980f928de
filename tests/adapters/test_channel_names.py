"""Channel names for text read outside Slack (``conversations.info`` through the real SDK and
the Slack simulator): cached, and the id when Slack will not show the channel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.adapters.slack.lookups import ChannelNames
from bot.adapters.slack.web import SlackClient, SlackError, slack_web_client
from bot.sim.slack_api import SlackSimulator
from tests.conftest import BOT_TOKEN


@pytest.fixture
def client(slack: SlackSimulator) -> Iterator[SlackClient]:
    yield slack_web_client(SecretStr(BOT_TOKEN), slack.api_url)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_channel_is_named_once_per_ttl(slack: SlackSimulator, client: SlackClient) -> None:
    slack.add_channel("C0ALERTS", "checkout-alerts")
    clock = Clock()
    names = ChannelNames(client, ttl=3600, clock=clock)
    assert names.shown("C0ALERTS") == "#checkout-alerts"
    assert names.shown("C0ALERTS") == "#checkout-alerts"
    assert len(slack.calls_to("conversations.info")) == 1
    clock.now = 3601
    assert names.shown("C0ALERTS") == "#checkout-alerts"
    assert len(slack.calls_to("conversations.info")) == 2


def test_a_channel_slack_will_not_show_is_its_id_for_a_while(
    slack: SlackSimulator, client: SlackClient
) -> None:
    # a private channel the bot is not in
    slack.add_channel("G0SECRET", "secret-ops", is_private=True, has_bot=False)
    clock = Clock()
    names = ChannelNames(client, retry_seconds=60, clock=clock)
    assert names.shown("G0SECRET") == "G0SECRET"
    assert names.shown("G0SECRET") == "G0SECRET"
    assert len(slack.calls_to("conversations.info")) == 1
    clock.now = 61
    names.shown("G0SECRET")
    assert len(slack.calls_to("conversations.info")) == 2


def test_the_simulator_hides_private_channels_the_bot_is_not_in_as_slack_does(
    slack: SlackSimulator, client: SlackClient
) -> None:
    slack.add_channel("G0SECRET", "secret-ops", is_private=True, has_bot=False)
    with pytest.raises(SlackError) as refused:
        client.conversations_info(channel="G0SECRET")
    assert refused.value.error == "channel_not_found"
    created = client.conversations_create(name="mine", is_private=True)["channel"]
    info = client.conversations_info(channel=created["id"])["channel"]
    assert info["name"] == "mine" and info["is_private"] is True
