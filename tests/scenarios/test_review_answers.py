"""`/rollback review <id>` and the Home tab for rollbacks that never ran (rejected, expired,
cancelled): they have no review, and the bot says so instead of promising one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.review.publish import review_path
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_client import signed_headers
from tests.conftest import Harness

CATALOG = """defaults:
  channel: C0DEPLOYS
  sla_minutes: 15
services:
{services}
"""
SERVICE = """  {name}:
    deployment: {name}-api
    responders: [U0ONCALL1]
    approvers: [U0APPROVER1]
    phases:
      application: [{{kind: wait, seconds: 0, name: Apply previous version}}]"""
NAMES = ("checkout", "search", "orders", "billing")


class Now:
    """An injected wall clock a test moves forward (request expiry)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.at

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.at += timedelta(**delta)


def until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def harness(make_harness: Any, now: Now) -> Harness:
    services = "\n".join(SERVICE.format(name=name) for name in NAMES)
    h: Harness = make_harness(
        CATALOG.format(services=services),
        prometheus_url=None,
        clock=now,
        public_url="https://bot.example.com",
    )
    return h


def status(h: Harness, rollback_id: int) -> str:
    r = h.bot.deps.repo.get_rollback(rollback_id)
    assert r is not None
    return r.status


def review_answer(h: Harness, rollback_id: int) -> str:
    answer = h.slash(f"review {rollback_id}").json()
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


def rollbacks_that_never_ran(h: Harness, now: Now) -> None:
    """#1 rejected by an approver, #2 withdrawn (cancelled) by its requester, #3 expired."""
    h.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    assert "rejected" in h.slash("reject 1 <!channel> not now", user_id="U0APPROVER1").text
    h.slash("plan search bad deploy", user_id="U0ONCALL1")
    assert "cancelled" in h.slash("reject 2 fixed forward", user_id="U0ONCALL1").text
    h.slash("plan orders bad deploy", user_id="U0ONCALL1")
    h.wait_idle()
    now.advance(minutes=31)  # past the request's 30-minute validity

    def expired() -> bool:
        h.bot.deps.due.tick()
        return status(h, 3) == "expired"

    until(expired, "request #3 to expire")
    h.wait_idle()
    assert [status(h, i) for i in (1, 2, 3)] == ["rejected", "cancelled", "expired"]


def test_review_of_a_rollback_that_never_ran_says_there_is_none_and_why(
    harness: Harness, now: Now
) -> None:
    rollbacks_that_never_ran(harness, now)

    rejected = review_answer(harness, 1)
    assert rejected.startswith("Rollback #1 of *checkout* was rejected (&lt;!channel&gt; not now)")
    cancelled = review_answer(harness, 2)
    assert cancelled.startswith("Rollback #2 of *search* was cancelled before it started")
    assert "fixed forward" in cancelled
    expired = review_answer(harness, 3)
    assert expired.startswith("Rollback #3 of *orders* expired before it started")
    assert "not approved in time" in expired
    for answer in (rejected, cancelled, expired):
        assert "it never ran, so it has no review" in answer
        assert "being published" not in answer and "within a minute" not in answer
        assert "<!channel>" not in answer
    page = httpx.get(f"{harness.server.url}{review_path(harness.bot.deps, 1)}")
    assert page.status_code == 404
    assert "Rollback #1 was rejected before it ran: it has no review." in page.text


def open_home(h: Harness, user: str) -> str:
    body = json.dumps(
        {
            "token": "unused",
            "team_id": "T0TEST",
            "api_app_id": "A0ROLLBACK",
            "type": "event_callback",
            "event_id": f"Ev{user}",
            "event_time": 1700000000,
            "event": {"type": "app_home_opened", "user": user, "channel": "D0BOT", "tab": "home"},
        }
    )
    headers = signed_headers(h.secret, body, "application/json")
    assert httpx.post(f"{h.server.url}/slack/events", content=body, headers=headers).is_success
    h.slack.wait_for("views.publish", lambda c: c.params["user_id"] == user)
    view = h.slack.home_view(user)
    assert view is not None
    return json.dumps(view)


def test_home_links_reviews_only_of_rollbacks_that_ran(
    harness: Harness, now: Now, slack: SlackSimulator
) -> None:
    rollbacks_that_never_ran(harness, now)
    assert "started" in harness.slash("run billing --immediate errors", user_id="U0ONCALL1").text
    harness.wait_rollbacks()
    assert status(harness, 4) == "succeeded"

    home = open_home(harness, "U0ONCALL1")
    assert f"<https://bot.example.com{review_path(harness.bot.deps, 4)}|review>" in home
    for rollback_id in (1, 2, 3):
        assert f"/reviews/{rollback_id}" not in home
    assert home.count("never ran") == 3
