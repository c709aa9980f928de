"""One effect per Slack delivery, whatever Slack, the network or an attacker repeats.

Slack resends a request it thinks was not answered (``X-Slack-Retry-Num``), and a captured
signed request can be sent again within Slack's 5-minute signature window. Every request that
changes state (``run``, ``plan``, ``approve``, ``reject``, ``abort``, their buttons and forms)
records ``delivery_key(body)`` in the database (a unique key) before any listener sees it, and
a repeat is answered "already handled" without acting again. ``assess`` records its key right
after the ack instead (its ack must not wait for a database write; see bot/assessment/service.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.middleware import Middleware
from slack_bolt.response import BoltResponse

from bot.approvals import blocks as ab
from bot.deps import Deps
from bot.guard.firing import KEEP_ACTION, ROLLBACK_NOW_ACTION
from bot.notify.blocks import MANUAL_GATE_ACTION
from bot.notify.reply import storage_error_text
from bot.paging.messages import PAGE_ACK_ACTION
from storage.errors import StorageError

log = logging.getLogger(__name__)

ALREADY_HANDLED = (
    ":repeat: This request was already received and handled once (Slack, or someone, sent it"
    " again); it was not acted on a second time. See `/rollback status`."
)
STATE_CHANGING_VERBS = frozenset({"run", "plan", "approve", "reject", "abort"})
STATE_CHANGING_ACTIONS = frozenset(
    {
        ab.APPROVE_ACTION,
        ab.RUN_NOW_ACTION,
        ab.CONFIRM_RUN_ACTION,
        ab.CONFIRM_CANCEL_ACTION,
        MANUAL_GATE_ACTION,
        PAGE_ACK_ACTION,
        ROLLBACK_NOW_ACTION,
        KEEP_ACTION,
    }
)


def delivery_key(body: dict[str, Any]) -> str | None:
    """The id Slack keeps across retries: ``event_id`` for events, ``trigger_id`` otherwise."""
    if event_id := body.get("event_id"):
        return f"event:{event_id}"
    if trigger_id := body.get("trigger_id"):
        return f"trigger:{trigger_id}"
    return None


def changes_state(body: dict[str, Any]) -> bool:
    """A request whose repeat would act twice (a second rollback, a second vote …)."""
    if body.get("command"):
        words = str(body.get("text") or "").split()
        return bool(words) and words[0].lower() in STATE_CHANGING_VERBS and "--dry-run" not in words
    if body.get("type") == "block_actions":
        return any(a.get("action_id") in STATE_CHANGING_ACTIONS for a in body.get("actions", []))
    return body.get("type") == "view_submission"


class OncePerDelivery(Middleware):
    """The Bolt middleware recording each state-changing delivery once (a class: Bolt calls a
    function middleware through its keyword injection, which costs CPU on every ack)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        body = req.body
        key = delivery_key(body) if changes_state(body) else None
        if key is None:
            return next()
        deps = self.deps
        try:
            is_first = deps.repo.record_delivery(key, deps.clock())
        except StorageError as exc:
            log.exception("cannot record Slack delivery %s: %s", key, exc)
            return _answer(body, storage_error_text(exc))
        if is_first:
            return next()
        log.info("repeated Slack delivery %s ignored", key)
        deps.metrics.slack_requests.labels("duplicate").inc()
        return _answer(body, ALREADY_HANDLED)


def install(app: App, deps: Deps) -> None:
    app.use(OncePerDelivery(deps))


def _answer(body: dict[str, Any], text: str) -> BoltResponse:
    """The ack a listener would have given, without running one."""
    answer: dict[str, Any] = {}
    if body.get("command"):
        answer = {"text": text, "response_type": "ephemeral"}
    elif body.get("type") == "view_submission":
        answer = {"response_action": "errors", "errors": _first_block(body, text)}
    return BoltResponse(
        status=200,
        body=json.dumps(answer) if answer else "",
        headers={"content-type": "application/json;charset=utf-8"} if answer else {},
    )


def _first_block(body: dict[str, Any], text: str) -> dict[str, str]:
    blocks = body.get("view", {}).get("blocks") or [{}]
    block_id = next((b.get("block_id") for b in blocks if b.get("block_id")), "reason")
    return {str(block_id): text[:150]}
