"""Talks to the bot the way Slack does: signed slash commands and button clicks over HTTP.

Used by ``rollback-bot console``, the scenario tests and the benchmarks, so all three exercise the
same signature check and the same Bolt app as production traffic.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.sim.slack_blocks import block_errors
from bot.sim.slack_store import MESSAGE_TEXT_LIMIT

_counter = itertools.count(1)


def signed_headers(
    secret: str, body: str, content_type: str, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or "",
    }


class SlackRequester:
    """Sends Slack-shaped requests to ``<bot_url>/slack/events``."""

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        http: httpx.Client,
        *,
        team_id: str = "T0TEST",
        response_url: str | None = None,
    ) -> None:
        self.events_url = f"{bot_url.rstrip('/')}/slack/events"
        self.signing_secret = signing_secret
        self.http = http
        self.team_id = team_id
        self.response_url = response_url

    def slash_body(
        self, text: str, *, user_id: str, channel_id: str, command: str = "/rollback"
    ) -> str:
        n = next(_counter)
        fields = {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "team_domain": "example",
            "channel_id": channel_id,
            "channel_name": "deploys",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0ROLLBACK",
            "is_enterprise_install": "false",
            "response_url": self.response_url or "https://hooks.slack.com/commands/T0TEST/1/x",
            "trigger_id": f"{n}.{int(time.time())}.{secrets.token_hex(8)}",  # unique, as Slack's
        }
        return urlencode(fields)

    def slash(
        self, text: str, *, user_id: str = "U0ONCALL1", channel_id: str = "C0DEPLOYS"
    ) -> httpx.Response:
        return self.post_form(self.slash_body(text, user_id=user_id, channel_id=channel_id))

    def click(
        self,
        message: Mapping[str, Any],
        action: Mapping[str, Any],
        *,
        user_id: str,
        channel_id: str,
    ) -> httpx.Response:
        """Press ``action`` (a button) of a posted ``message``: a ``block_actions`` payload."""
        return self.post_form(
            self.click_body(message, action, user_id=user_id, channel_id=channel_id)
        )

    def click_body(
        self,
        message: Mapping[str, Any],
        action: Mapping[str, Any],
        *,
        user_id: str,
        channel_id: str,
    ) -> str:
        """The form body of a button press (post it twice to replay one delivery)."""
        n = next(_counter)
        payload = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "example"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": "A0ROLLBACK",
            "token": "unused-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.get("ts"),
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": f"{n}.{int(time.time())}.{secrets.token_hex(8)}",  # unique, as Slack's
            "channel": {"id": channel_id, "name": "deploys"},
            "message": dict(message),
            "response_url": self.response_url or "https://hooks.slack.com/actions/T0TEST/1/x",
            "actions": [
                {
                    "type": action.get("type", "button"),
                    "action_id": action.get("action_id"),
                    "block_id": action.get("block_id", ""),
                    "text": action.get("text"),
                    "value": action.get("value", ""),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    def submit_view(
        self,
        view: Mapping[str, Any],
        values: Mapping[str, str],
        *,
        user_id: str,
        selected: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Submit a modal (as opened with ``views.open``) with plain-text ``values`` by block id
        (and ``selected``: a static select's chosen option value by block id): a
        ``view_submission`` payload. Slack's answer (e.g. ``response_action: errors``) is the
        HTTP response body."""
        n = next(_counter)
        state: dict[str, Any] = {
            block_id: {"value": {"type": "plain_text_input", "value": value}}
            for block_id, value in values.items()
        }
        for block_id, option in (selected or {}).items():
            chosen = {"text": {"type": "plain_text", "text": option}, "value": option}
            state[block_id] = {"value": {"type": "static_select", "selected_option": chosen}}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "example"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": "A0ROLLBACK",
            "token": "unused-verification-token",
            "trigger_id": f"{n}.{int(time.time())}.{secrets.token_hex(8)}",  # unique, as Slack's
            "view": {
                "id": f"V{n:08d}",
                "team_id": self.team_id,
                "type": view.get("type", "modal"),
                "callback_id": view.get("callback_id"),
                "private_metadata": view.get("private_metadata", ""),
                "blocks": view.get("blocks", []),
                "state": {"values": state},
                "hash": f"{n}.hash",
                "app_id": "A0ROLLBACK",
                "bot_id": "B0ROLLBACK",
            },
            "response_urls": [],
        }
        return self.post_form(urlencode({"payload": json.dumps(payload)}))

    def post_form(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        headers = signed_headers(
            secret or self.signing_secret, body, "application/x-www-form-urlencoded", timestamp
        )
        headers.update(extra_headers or {})
        response = self.http.post(self.events_url, content=body.encode(), headers=headers)
        _check_answer(response)
        return response


class InvalidBlocksAnswer(AssertionError):
    """The bot answered (ack) with blocks Slack would refuse: the person would see an error
    ("failed with the error invalid_blocks") instead of the answer."""


def _check_answer(response: httpx.Response) -> None:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return
    try:
        answer = response.json()
    except ValueError:
        return
    if isinstance(answer, dict) and "blocks" in answer:
        if errors := block_errors(answer["blocks"]):
            raise InvalidBlocksAnswer(f"Slack would refuse this answer: {errors}")
        if len(str(answer.get("text") or "")) > MESSAGE_TEXT_LIMIT:
            raise InvalidBlocksAnswer("Slack would refuse this answer: msg_too_long")
