"""Fixtures for the handler unit tests: the real Bolt app behind HTTP (``make_harness``), a
catalog of two services, and small helpers to press a button or read the private answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.notify.reply import Asker
from tests.conftest import Harness, catalog_yaml, service_yaml

CHANNEL = "C0DEPLOYS"
RESPONDER, APPROVER, STRANGER = "U0ONCALL1", "U0APPROVER1", "U0STRANGER"
CATALOG = catalog_yaml(service_yaml("checkout", None), service_yaml("search", None))


@pytest.fixture
def h(make_harness: Any, tmp_path: Path) -> Harness:
    """No Prometheus and no cluster (an empty kubeconfig, so the machine's own is never read):
    enough for every answer a handler gives at once."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    harness: Harness = make_harness(CATALOG, prometheus_url=None, kubeconfig=str(kubeconfig))
    return harness


class Said:
    """A plain callable standing in for Bolt's ``ack`` / ``respond``: it keeps what it was told."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, text: str = "", **kwargs: Any) -> None:
        self.calls.append({"text": text, **kwargs})

    @property
    def texts(self) -> list[str]:
        return [str(c["text"]) for c in self.calls]


def asker(user: str = RESPONDER, key: str | None = None) -> tuple[Asker, Said]:
    said = Said()
    return Asker(user=user, channel=CHANNEL, delivery_key=key, respond=said), said


def payload_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def click_payload(
    h: Harness,
    action_id: str,
    value: str,
    *,
    user: str = RESPONDER,
    trigger_id: str = "1.2.trigger",
    on_home: bool = False,
) -> dict[str, Any]:
    """A ``block_actions`` payload for one button: on a channel message (with a response_url),
    or on the App Home tab (a ``view`` container and no response_url, as Slack sends it)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": "T0TEST", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0ROLLBACK",
        "token": "unused-verification-token",
        "trigger_id": trigger_id,
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "b", "value": value},
        ],
    }
    if on_home:
        payload["container"] = {"type": "view", "view_id": "V0HOME"}
        payload["view"] = {"id": "V0HOME", "type": "home", "callback_id": ""}
    else:
        payload["container"] = {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": CHANNEL,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": CHANNEL, "name": "deploys"}
        payload["message"] = {"ts": "1700000000.000100", "text": "a message with buttons"}
        payload["response_url"] = h.slack.response_url("cmd")
    return payload


def press(h: Harness, action_id: str, value: str, **kwargs: Any) -> httpx.Response:
    return h.requester.post_form(payload_body(click_payload(h, action_id, value, **kwargs)))


def first_answer(h: Harness) -> dict[str, Any]:
    """What the response_url was first told (waited for: listeners run after the ack)."""
    return h.slack.wait_for("response_url").params
