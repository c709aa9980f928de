"""Global middleware: one effect per Slack delivery, whatever Slack or the network repeats."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from sqlalchemy.exc import SQLAlchemyError

from bot.app import Deps

log = logging.getLogger(__name__)

DATABASE_DOWN = (
    ":x: rollback-bot cannot reach its database right now, so it did nothing."
    " Try again in a minute; if it persists, check the bot's DATABASE_URL and /healthz."
)


def delivery_key(body: dict[str, Any]) -> str | None:
    """The id Slack keeps across retries: ``event_id`` for events, ``trigger_id`` otherwise."""
    if event_id := body.get("event_id"):
        return f"event:{event_id}"
    if trigger_id := body.get("trigger_id"):
        return f"trigger:{trigger_id}"
    return None


def register(app: App, deps: Deps) -> None:
    @app.middleware
    def once_per_delivery(
        req: BoltRequest, resp: BoltResponse, next: Callable[[], None]
    ) -> BoltResponse | None:
        # Runs after Bolt's signature check, so forged requests never get here.
        key = delivery_key(req.body)
        try:
            is_first = key is None or deps.repo.record_delivery(key, deps.clock())
        except SQLAlchemyError:
            log.exception("database unavailable while recording Slack delivery %s", key)
            return BoltResponse(
                status=200,
                body=json.dumps({"response_type": "ephemeral", "text": DATABASE_DOWN}),
                headers={"content-type": "application/json"},
            )
        if not is_first:
            retry = req.headers.get("x-slack-retry-num", ["-"])[0]
            log.info(
                "duplicate Slack delivery %s (retry %s) acknowledged, not processed", key, retry
            )
            deps.metrics.slack_requests.labels("duplicate").inc()
            return BoltResponse(status=200, body="")
        deps.metrics.slack_requests.labels("handled").inc()
        next()
        return None
