"""The App Home tab: what ``views.publish`` gets for a user with and without pending approvals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.catalog.load import Service, parse_catalog
from bot.notify.home import can_approve, home_view
from bot.sim.slack_client import signed_headers
from storage.models import Rollback
from tests.conftest import Harness

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CATALOG = """\
defaults:
  channel: C0DEPLOYS
services:
  checkout:
    namespace: shop
    deployment: checkout-api
    approvers: [U0APPROVER1, U0APPROVER2]
    responders: [U0ONCALL1]
  search:
    namespace: shop
    deployment: search-api
    approvers: [U0APPROVER2]
    approval: {two_person_rule: false}
"""
catalog = parse_catalog(CATALOG, "test.yaml")


def no_groups(service: Service) -> list[str]:
    return []


def rollback(rid: int, service: str, status: str, by: str, **extra: Any) -> Rollback:
    return Rollback(
        id=rid,
        service=service,
        status=status,
        kind="planned",
        strategy="undo",
        requested_by=by,
        reason="errors after v3",
        channel_id="C0DEPLOYS",
        created_at=NOW - timedelta(minutes=5),
        **extra,
    )


@pytest.mark.parametrize(
    ("user", "row", "expected"),
    [
        ("U0APPROVER1", rollback(1, "checkout", "pending_approval", "U0ONCALL1"), True),
        ("U0RANDOM", rollback(1, "checkout", "pending_approval", "U0ONCALL1"), False),
        ("U0APPROVER1", rollback(1, "checkout", "pending_approval", "U0APPROVER1"), False),
        ("U0APPROVER2", rollback(1, "search", "pending_approval", "U0APPROVER2"), True),
        ("U0APPROVER1", rollback(1, "checkout", "running", "U0ONCALL1"), False),
        (
            "U0APPROVER1",
            rollback(1, "checkout", "pending_approval", "U0ONCALL1", expires_at=NOW),
            False,
        ),
    ],
    ids=["approver", "not-approver", "own-request", "two-person-off", "not-pending", "expired"],
)
def test_who_can_approve(user: str, row: Rollback, expected: bool) -> None:
    assert can_approve(user, row, catalog.get(row.service), NOW, no_groups) is expected


def texts(view: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in view["blocks"] if "text" in b]


def test_view_with_and_without_pending_approvals() -> None:
    active = [
        rollback(
            1,
            "checkout",
            "pending_approval",
            "U0ONCALL1",
            approval_channel_id="C0DEPLOYS",
            approval_ts="1700000000.000100",
            expires_at=NOW + timedelta(minutes=25),
        ),
        rollback(2, "search", "running", "U0APPROVER2", progress_ts="1700000000.000200"),
    ]
    recent = [rollback(3, "checkout", "succeeded", "U0ONCALL1", finished_at=NOW)]
    team = "https://example.slack.com/"

    def link(rid: int) -> str:
        return f"https://bot.example.com/reviews/{rid}"

    approver = texts(
        home_view("U0APPROVER1", active, recent, catalog, NOW, no_groups, team_url=team, link=link)
    )
    assert approver[0] == "Waiting for your approval"
    assert approver[1].startswith("*#1 checkout* requested by <@U0ONCALL1>, expires 10:25 UTC")
    assert "<https://example.slack.com/archives/C0DEPLOYS/p1700000000000100|open>" in approver[1]
    assert "`/rollback approve 1`" in approver[1]
    assert approver[2] == "Your active rollbacks"
    assert approver[3].startswith("None of the rollbacks running now")
    assert approver[5] == (
        "*#3 checkout* succeeded 2026-03-01 10:00 UTC · <https://bot.example.com/reviews/3|review>"
    )

    requester = texts(
        home_view("U0ONCALL1", active, recent, catalog, NOW, no_groups, team_url=team, link=link)
    )
    assert requester[1] == "Nothing waits for you."  # a responder, not an approver
    assert requester[3].startswith(
        "*#1 checkout* pending approval (undo), requested by <@U0ONCALL1>"
    )
    assert len(requester) == 6  # search's rollback is none of theirs


def send_home_opened(h: Harness, user: str) -> httpx.Response:
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
    return httpx.post(f"{h.server.url}/slack/events", content=body, headers=headers)


def test_app_home_opened_publishes_the_view(make_harness: Any) -> None:
    h: Harness = make_harness(CATALOG, prometheus_url=None)
    h.bot.deps.repo.create_rollback(
        service="checkout",
        kind="planned",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="pending_approval",
        now=datetime.now(UTC),
        reason="errors after v3",
        channel_id="C0DEPLOYS",
    )

    assert send_home_opened(h, "U0APPROVER1").status_code == 200
    published = h.slack.wait_for("views.publish").params
    assert published["user_id"] == "U0APPROVER1"
    assert "*#1 checkout* requested by <@U0ONCALL1>" in json.dumps(published["view"])

    assert send_home_opened(h, "U0RANDOM").status_code == 200
    h.slack.wait_for("views.publish", lambda c: c.params["user_id"] == "U0RANDOM")
    view = h.slack.home_view("U0RANDOM")
    assert view is not None
    assert "Nothing waits for you." in json.dumps(view)
    assert "#1 checkout" not in json.dumps(view)


HOSTILE = "<!channel> see <https://evil.example|the fix> & *now*"


def test_a_hostile_reason_cannot_ping_or_forge_links_in_app_home() -> None:
    active = [
        rollback(1, "checkout", "pending_approval", "U0ONCALL1"),
        rollback(2, "checkout", "running", "<!here>"),
    ]
    for row in active:
        row.reason = HOSTILE
    pending = texts(home_view("U0APPROVER1", active, [], catalog, NOW, no_groups))[1]
    assert "<!channel>" not in pending and "<https://evil" not in pending
    assert "&lt;!channel&gt; see &lt;https://evil.example|the fix&gt; &amp; *now*" in pending
    mine = "\n".join(texts(home_view("U0ONCALL1", active, [], catalog, NOW, no_groups)))
    assert "*#2 checkout* running (undo), requested by &lt;!here&gt;" in mine  # never a mention
    assert "<!" not in mine


def test_app_home_shows_what_changed_when_opened_again(make_harness: Any) -> None:
    """Home-tab rows carry commands, not buttons (see bot/notify/home.py): after the user acts,
    opening the tab publishes the view again, without the request."""
    h: Harness = make_harness(CATALOG, prometheus_url=None)
    h.bot.deps.repo.create_rollback(
        service="search",
        kind="planned",
        strategy="undo",
        requested_by="U0ONCALL1",
        status="pending_approval",
        now=datetime.now(UTC),
        reason="errors after v3",
        channel_id="C0DEPLOYS",
    )
    assert send_home_opened(h, "U0APPROVER2").status_code == 200
    h.slack.wait_for("views.publish")
    assert "#1 search* requested by" in json.dumps(h.slack.home_view("U0APPROVER2"))

    h.bot.deps.repo.set_rollback_status(1, "cancelled", datetime.now(UTC))
    assert send_home_opened(h, "U0APPROVER2").status_code == 200
    again = h.slack.wait_for("views.publish", lambda c: "Nothing waits" in json.dumps(c.params))
    assert "requested by" not in json.dumps(again.params["view"])
    assert len(h.slack.calls_to("views.publish")) == 2


def test_rollbacks_that_never_ran_link_no_review() -> None:
    """Reviews are written for rollbacks that ran: a rejected, expired or cancelled request (or
    one whose start failed) gets no review link, which would only lead to a 404."""
    recent = [
        rollback(1, "checkout", "succeeded", "U0ONCALL1", finished_at=NOW, started_at=NOW),
        rollback(2, "checkout", "rejected", "U0ONCALL1", finished_at=NOW),
        rollback(3, "checkout", "expired", "U0ONCALL1", finished_at=NOW),
        rollback(4, "search", "cancelled", "U0ONCALL1", finished_at=NOW),
        rollback(5, "search", "failed", "U0ONCALL1", finished_at=NOW),  # the start kept failing
        rollback(6, "search", "failed", "U0ONCALL1", finished_at=NOW, started_at=NOW),
    ]

    def link(rid: int) -> str:
        return f"https://bot.example.com/reviews/{rid}"

    rows = texts(home_view("U0ONCALL1", [], recent, catalog, NOW, no_groups, link=link))[-6:]
    assert rows[0].endswith(" · <https://bot.example.com/reviews/1|review>")
    for row, status in zip(rows[1:5], ("rejected", "expired", "cancelled", "failed"), strict=True):
        assert row.endswith(f"{status} 2026-03-01 10:00 UTC · never ran")
        assert "review" not in row
    assert rows[5].endswith(" · <https://bot.example.com/reviews/6|review>")
    without_url = texts(home_view("U0ONCALL1", [], recent, catalog, NOW, no_groups))[-6:]
    assert without_url[0].endswith(" · `/rollback review 1`")
    assert without_url[1].endswith(" · never ran")
