"""Planned rollbacks through signed HTTP: requests, buttons, modals, votes, windows, history."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.approvals import blocks as ab
from bot.rollback.lifecycle import DueKind, start_key, waiting_work
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values

NS = "shop"
APPROVERS = "[U0APPROVER1, U0APPROVER2, {usergroup: S0SRE}]"


class Now:
    """An injected wall clock a test moves forward (expiry, windows, grace periods)."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.at

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.at += timedelta(**delta)


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(
            NS, "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
        )
        yield sim


@pytest.fixture
def kube(kube_sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)


def failing(prometheus: PrometheusSimulator) -> None:
    """Slow and its database unreachable (IMMEDIATE ROLLBACK), so an approved rollback starts
    without asking again; the error rate is fine so the plan's verification gate passes."""
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)


def healthy(prometheus: PrometheusSimulator) -> None:
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.1, sessions=30, db_up=1)


def catalog(extra: str = "") -> str:
    service = service_yaml("checkout", None).replace(
        "    approvers: [U0APPROVER1]", f"    approvers: {APPROVERS}"
    )
    return catalog_yaml(service + extra)


@pytest.fixture
def make(
    make_harness: Any,
    kube: KubernetesClient,
    prometheus: PrometheusSimulator,
    now: Now,
    tmp_path: Path,
) -> Callable[..., Harness]:
    failing(prometheus)

    def build(extra: str = "") -> Harness:
        return make_harness(  # type: ignore[no-any-return]
            catalog(extra),
            prometheus_url=prometheus.url,
            kube=kube,
            clock=now,
            database_url=f"sqlite:///{tmp_path / 'approvals.db'}",
        )

    return build


@pytest.fixture
def h(make: Callable[..., Harness]) -> Harness:
    return make()


def answers(slack: SlackSimulator) -> list[str]:
    """Everything told privately through response_url, oldest first."""
    return [str(c.params.get("text", "")) for c in slack.calls_to("response_url")]


def new_answer(slack: SlackSimulator, before: int) -> str:
    """The first private answer after ``before`` (polled: reading calls inside a wait_for
    predicate would take the simulator's lock twice)."""
    deadline = time.monotonic() + 5
    while len(found := answers(slack)) <= before:
        assert time.monotonic() < deadline, f"no new answer after {found}"
        time.sleep(0.01)
    return found[before]


def request_message(h: Harness, rollback_id: int = 1) -> dict[str, Any]:
    call = h.slack.wait_for(
        "chat.postMessage", lambda c: f"Rollback request #{rollback_id} " in c.params["text"]
    )
    ts = call.response["ts"]
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == ts]
    return message


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id} button in {json.dumps(message['blocks'])[:300]}")


def click(h: Harness, message: dict[str, Any], action_id: str, user: str) -> int:
    """Press a button; returns how many private answers there were before (for new_answer)."""
    before = len(answers(h.slack))
    resp = h.requester.click(
        message, button(message, action_id), user_id=user, channel_id="C0DEPLOYS"
    )
    assert resp.status_code == 200
    return before


def press(h: Harness, message: dict[str, Any], action_id: str, user: str) -> str:
    """Press a button and return the private answer it got (the button's work is done then)."""
    return new_answer(h.slack, click(h, message, action_id, user))


def status(h: Harness, rollback_id: int = 1) -> str:
    r = h.bot.deps.repo.get_rollback(rollback_id)
    assert r is not None
    return r.status


def settle(h: Harness) -> None:
    """Background work (posts, the start) and the rollbacks it started are done."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        h.wait_idle()
        h.wait_rollbacks()
        if h.bot.deps.work.wait_idle(0):
            return
    raise AssertionError("background work kept going for 20 s")


def latest_request_text(h: Harness) -> str:
    """The request message as it reads once background work is done (edits are queued after
    the ack, so reading without settling races them)."""
    settle(h)
    message = request_message(h)
    (current,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == message["ts"]]
    return json.dumps(current["blocks"])


def audit_kinds(h: Harness, rollback_id: int = 1) -> list[str]:
    return [e.kind for e in h.bot.deps.repo.list_audit_events(rollback_id=rollback_id)]


# --- request and approval ---------------------------------------------------------------------


def test_plan_posts_a_request_and_an_approval_runs_it(h: Harness, kube: KubernetesClient) -> None:
    ack = h.slash("plan checkout 5xx after v3 deploy", user_id="U0ONCALL1")
    assert "Rollback request #1 of *checkout*" in ack.json()["text"]
    assert status(h) == "pending_approval"

    message = request_message(h)
    blocks = json.dumps(message["blocks"])
    assert "Requested by* <@U0ONCALL1>" in blocks and "5xx after v3 deploy" in blocks
    assert "What will change" in blocks and "revision 3" in blocks  # the dry-run summary
    assert "Approvals* 0/1" in blocks
    before = click(h, message, ab.APPROVE_ACTION, "U0APPROVER1")
    assert "Approved" in new_answer(h.slack, before)
    settle(h)

    assert status(h) == "succeeded"
    assert kube.deployment(KubeTarget(None, NS), "checkout-api").images == {
        "app": "shop/checkout:v2"
    }
    text = latest_request_text(h)
    assert "Approved by <@U0APPROVER1>" in text
    assert "Approve" not in [b.get("text", {}).get("text") for b in _buttons(h)]
    kinds = audit_kinds(h)
    for kind in ("approval.requested", "approval.approved", "approval.granted"):
        assert kind in kinds
    assert kinds.index("rollback.reassessed") < kinds.index("rollback.started")
    (started,) = [
        e for e in h.bot.deps.repo.list_audit_events(rollback_id=1) if e.kind == "rollback.started"
    ]
    assert started.detail["approvers"] == ["U0APPROVER1"] and started.detail["kind"] == "planned"
    told = h.bot.deps.repo.get_work("started:1")  # the listeners heard of the start
    assert told is not None and told.status == "done"
    sla = h.bot.deps.repo.get_work("sla-check:1")  # scheduled at the start, cancelled at the end
    assert sla is not None and sla.status == "cancelled"
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.approved_at is not None and r.approval_ts == message["ts"]


def _buttons(h: Harness) -> list[dict[str, Any]]:
    message = request_message(h)
    (current,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == message["ts"]]
    return [
        e for b in current["blocks"] for e in b.get("elements", []) if e.get("type") == "button"
    ]


def test_an_unauthorized_click_is_refused_privately_and_audited(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    before = click(h, request_message(h), ab.APPROVE_ACTION, "U0STRANGER")
    answer = new_answer(h.slack, before)
    assert "not an approver" in answer and "<@U0APPROVER1>" in answer
    assert status(h) == "pending_approval"
    (refused,) = [
        e for e in h.bot.deps.repo.list_audit_events(rollback_id=1) if e.kind == "approval.refused"
    ]
    assert refused.actor == "U0STRANGER" and refused.message_ts == request_message(h)["ts"]


def test_the_requester_cannot_approve_their_own_request(h: Harness) -> None:
    h.slash("plan checkout bad deploy", user_id="U0APPROVER2")
    before = click(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER2")
    assert "two-person rule" in new_answer(h.slack, before)
    assert status(h) == "pending_approval"


def test_double_click_and_retried_delivery_count_once(make: Callable[..., Harness]) -> None:
    h = make("\n    approval: {min_approvals: 2}")
    h.slash("plan checkout bad deploy")
    message = request_message(h)
    press(h, message, ab.APPROVE_ACTION, "U0APPROVER1")
    click(h, message, ab.APPROVE_ACTION, "U0APPROVER1")  # double click
    payload = h.requester.click(  # Slack's retry of the same delivery
        message,
        button(message, ab.APPROVE_ACTION),
        user_id="U0APPROVER1",
        channel_id="C0DEPLOYS",
    )
    assert payload.status_code == 200
    h.slash("approve 1", user_id="U0APPROVER1")  # and the command on top
    h.slack.wait_for("response_url", lambda c: "already voted" in str(c.params.get("text")))
    votes = h.bot.deps.repo.list_approvals(1)
    assert [(v.user_id, v.decision) for v in votes] == [("U0APPROVER1", "approve")]
    assert status(h) == "pending_approval"
    assert "Approvals* 1/2" in latest_request_text(h)

    press(h, message, ab.APPROVE_ACTION, "U0APPROVER2")  # the second approver completes it
    settle(h)
    assert status(h) == "succeeded"
    assert audit_kinds(h).count("rollback.started") == 1


def test_reject_asks_for_a_reason_in_a_modal(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    message = request_message(h)
    click(h, message, ab.REJECT_ACTION, "U0APPROVER2")
    opened = h.slack.wait_for("views.open").params["view"]
    view = json.loads(opened) if isinstance(opened, str) else opened
    assert view["callback_id"] == ab.REJECT_VIEW and view["private_metadata"] == "1"

    empty = h.requester.submit_view(view, {"reason": ""}, user_id="U0APPROVER2")
    assert empty.json() == {
        "response_action": "errors",
        "errors": {"reason": "Say why, for the requester."},
    }
    ok = h.requester.submit_view(
        view, {"reason": "<!channel> not now, freeze"}, user_id="U0APPROVER2"
    )
    assert ok.status_code == 200 and ok.text == ""
    assert status(h) == "rejected"
    settle(h)  # the request message is edited in the background
    text = latest_request_text(h)
    assert "Rejected by <@U0APPROVER2>" in text
    assert "&lt;!channel&gt; not now, freeze" in text  # escaped: it cannot ping the channel
    told = h.slack.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == "U0APPROVER2")
    assert "rejected" in told.params["text"]
    # rejected, then approved: refused
    before = click(h, message, ab.APPROVE_ACTION, "U0APPROVER1")
    assert "rejected" in new_answer(h.slack, before)
    assert status(h) == "rejected"


def test_a_stranger_pressing_reject_gets_no_modal(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    before = click(h, request_message(h), ab.REJECT_ACTION, "U0STRANGER")
    assert "only approvers" in new_answer(h.slack, before)
    assert h.slack.calls_to("views.open") == []
    assert "approval.refused" in audit_kinds(h)


def test_the_approve_command_edits_the_request_message(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    request_message(h)
    resp = h.slash("approve 1", user_id="U0APPROVER2")
    assert "Approved" in resp.json()["text"]
    settle(h)
    assert "Approved by <@U0APPROVER2>" in latest_request_text(h)
    assert "(via command)" in latest_request_text(h)


def test_reject_command_with_reason(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    request_message(h)
    resp = h.slash("reject 1 wait for the freeze to end", user_id="U0APPROVER1")
    assert "rejected" in resp.json()["text"]
    (vote,) = h.bot.deps.repo.list_approvals(1)
    assert (vote.decision, vote.reason, vote.via) == (
        "reject",
        "wait for the freeze to end",
        "command",
    )


def test_the_requester_can_withdraw(h: Harness) -> None:
    h.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    request_message(h)
    resp = h.slash("reject 1 fixed forward instead", user_id="U0ONCALL1")
    assert "cancelled" in resp.json()["text"]
    assert status(h) == "cancelled"


def test_an_expired_request_cannot_run_and_says_so(h: Harness, now: Now) -> None:
    h.slash("plan checkout bad deploy")
    message = request_message(h)
    now.advance(minutes=31)
    before = click(h, message, ab.APPROVE_ACTION, "U0APPROVER1")
    assert "expired" in new_answer(h.slack, before)
    assert status(h) == "expired"
    assert "Expired" in latest_request_text(h)
    assert h.bot.deps.repo.list_approvals(1) == []


def test_expiry_is_durable_work(h: Harness, now: Now) -> None:
    h.slash("plan checkout bad deploy")
    request_message(h)
    settle(h)  # the post (due work itself) is done
    h.bot.deps.due.tick()
    assert status(h) == "pending_approval"
    now.advance(minutes=30)
    assert h.bot.deps.due.tick() == 1
    assert status(h) == "expired"
    h.slash("plan checkout try again")  # the service's slot is free again
    assert status(h, 2) == "pending_approval"


def test_a_user_group_member_can_approve(h: Harness) -> None:
    h.slack.add_usergroup("S0SRE", ["U0GROUPIE"])
    h.slash("plan checkout bad deploy")
    before = click(h, request_message(h), ab.APPROVE_ACTION, "U0GROUPIE")
    assert "Approved" in new_answer(h.slack, before)
    settle(h)
    assert status(h) == "succeeded"


# --- the start ----------------------------------------------------------------------------


def test_a_healthy_service_asks_an_approver_to_confirm(
    h: Harness, prometheus: PrometheusSimulator
) -> None:
    healthy(prometheus)
    h.slash("plan checkout bad deploy")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    assert status(h) == "approved"  # not run blindly
    call = h.slack.wait_for("chat.postMessage", lambda c: "Run it anyway?" in c.params["text"])
    assert "<@U0APPROVER1>" in call.params["text"] and "CONTINUE" in call.params["text"]
    (confirm,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]

    before = click(h, confirm, ab.CONFIRM_RUN_ACTION, "U0ONCALL1")  # not an approver
    assert "Only approvers" in new_answer(h.slack, before)
    press(h, confirm, ab.CONFIRM_RUN_ACTION, "U0APPROVER2")
    settle(h)
    assert status(h) == "succeeded"
    (started,) = [
        e for e in h.bot.deps.repo.list_audit_events(rollback_id=1) if e.kind == "rollback.started"
    ]
    assert started.detail["confirmed_by"] == "U0APPROVER2"


def test_a_healthy_service_can_be_cancelled_instead(
    h: Harness, prometheus: PrometheusSimulator
) -> None:
    healthy(prometheus)
    h.slash("plan checkout bad deploy")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    call = h.slack.wait_for("chat.postMessage", lambda c: "Run it anyway?" in c.params["text"])
    (confirm,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    press(h, confirm, ab.CONFIRM_CANCEL_ACTION, "U0APPROVER1")
    settle(h)
    assert status(h) == "cancelled"
    assert "Cancelled by <@U0APPROVER1> at the start" in latest_request_text(h)  # a mention


def test_a_start_after_the_service_left_the_catalog_fails_audited_with_its_work_cancelled(
    make: Callable[..., Harness],
    make_harness: Any,
    prometheus: PrometheusSimulator,
    kube: KubernetesClient,
    now: Now,
    tmp_path: Path,
) -> None:
    healthy(prometheus)
    first = make()
    first.slash("plan checkout bad deploy")
    press(first, request_message(first), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(first)
    assert status(first) == "approved"  # asked to run anyway: its deadline is due work
    # "Run anyway" stored its start, then the bot stopped before running it
    first.bot.deps.due.schedule(
        DueKind.ROLLBACK_START,
        start_key(1, is_confirmed=True),
        now(),
        {"rollback_id": 1, "confirmed_by": "U0APPROVER2"},
    )
    first.bot.close()
    second = make_harness(  # restarted with a catalog that no longer has checkout
        catalog_yaml(service_yaml("billing", None)),
        prometheus_url=prometheus.url,
        kube=kube,
        clock=now,
        database_url=f"sqlite:///{tmp_path / 'approvals.db'}",
    )
    second.bot.deps.due.tick()
    settle(second)
    assert status(second) == "failed"
    (refused,) = [
        e
        for e in second.bot.deps.repo.list_audit_events(rollback_id=1)
        if e.kind == "rollback.refused"
    ]
    assert refused.detail["why"] == "the service left the catalog"
    for key in waiting_work(1):
        work = second.bot.deps.repo.get_work(key)
        assert work is None or work.status != "pending", key
    assert kube.deployment(KubeTarget(None, NS), "checkout-api").images == {
        "app": "shop/checkout:v3"
    }


def confirmation(h: Harness) -> dict[str, Any]:
    call = h.slack.wait_for("chat.postMessage", lambda c: "Run it anyway?" in c.params["text"])
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    return message


def test_the_requester_cannot_confirm_running_anyway_alone(
    h: Harness, prometheus: PrometheusSimulator
) -> None:
    healthy(prometheus)
    h.slash("plan checkout bad deploy", user_id="U0APPROVER2")  # an approver asks
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    message = confirmation(h)
    before = click(h, message, ab.CONFIRM_RUN_ACTION, "U0APPROVER2")
    assert "another approver must confirm" in new_answer(h.slack, before)
    assert status(h) == "approved"
    assert "rollback.confirm_refused" in audit_kinds(h)
    press(h, message, ab.CONFIRM_RUN_ACTION, "U0APPROVER1")
    settle(h)
    assert status(h) == "succeeded"


def test_run_anyway_after_the_deadline_is_refused_even_before_the_expiry_runs(
    h: Harness, prometheus: PrometheusSimulator, now: Now
) -> None:
    healthy(prometheus)
    h.slash("plan checkout bad deploy")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    message = confirmation(h)
    now.advance(minutes=30)  # the deadline; the expiry item has not been run by a tick yet
    before = click(h, message, ab.CONFIRM_RUN_ACTION, "U0APPROVER2")
    assert "The time to confirm rollback #1 has passed" in new_answer(h.slack, before)
    settle(h)
    assert status(h) == "approved"  # nothing started; the expiry ends it
    h.bot.deps.due.tick()
    settle(h)
    assert status(h) == "expired"


# --- windows ------------------------------------------------------------------------------


def test_a_window_is_read_and_shown_in_the_service_time_zone(
    make: Callable[..., Harness], now: Now
) -> None:
    h = make("\n    timezone: Europe/Berlin")  # it is 12:00 UTC, 13:00 in Berlin
    resp = h.slash("plan checkout --at 22:00 nightly rollback")
    assert "at 2026-11-23 22:00 CET (21:00 UTC)" in resp.json()["text"]
    assert "2026-11-23 22:00 CET (21:00 UTC)" in latest_request_text(h)
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    assert "scheduled for 2026-11-23 22:00 CET (21:00 UTC)" in h.slash("status").json()["text"]
    now.advance(hours=8, minutes=59)
    assert h.bot.deps.due.tick() == 0
    now.advance(minutes=1)
    assert h.bot.deps.due.tick() == 1
    settle(h)
    assert status(h) == "succeeded"


def test_a_window_starts_the_rollback_at_its_time(h: Harness, now: Now) -> None:
    resp = h.slash("plan checkout --at 22:00 nightly rollback")
    assert "at 2026-11-23 22:00 UTC" in resp.json()["text"]
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    assert status(h) == "scheduled"
    listing = h.slash("status").json()["text"]
    assert "#1 *checkout* approved, scheduled for 2026-11-23 22:00 UTC" in listing

    now.advance(hours=9, minutes=59)
    assert h.bot.deps.due.tick() == 0
    now.advance(minutes=1)
    assert h.bot.deps.due.tick() == 1
    settle(h)
    assert status(h) == "succeeded"


def test_a_window_survives_a_restart(make: Callable[..., Harness], now: Now) -> None:
    first = make()
    first.slash("plan checkout --at 22:00 nightly rollback")
    press(first, request_message(first), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(first)
    first.bot.close()  # the bot goes away before the window

    now.advance(hours=10, minutes=2)
    second = make()  # a new process on the same database
    assert second.bot.deps.due.tick() == 1
    settle(second)
    assert status(second) == "succeeded"


def test_a_window_missed_beyond_the_grace_period_is_reported_not_run(
    h: Harness, now: Now, kube: KubernetesClient
) -> None:
    h.slash("plan checkout --at 22:00 nightly rollback")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    now.advance(hours=10, minutes=45)  # the bot was down through 22:00 and 35 minutes more
    h.bot.deps.due.tick()
    settle(h)
    assert status(h) == "expired"
    call = h.slack.wait_for("chat.postMessage", lambda c: "was NOT run" in c.params["text"])
    assert "missed by 45 min" in call.params["text"]
    assert kube.deployment(KubeTarget(None, NS), "checkout-api").images == {
        "app": "shop/checkout:v3"
    }
    assert "rollback.window_missed" in audit_kinds(h)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plan checkout --at 25:00 x", "not a time"),
        ("plan checkout --at 2026-11-22T10:00 x", "in the past"),
        ("plan checkout --at 2026-12-24T10:00 x", "more than 7 days"),
        ("plan checkout", "Say why"),
        ("plan nope because", "nope"),
    ],
)
def test_bad_plans_are_answered_and_store_nothing(h: Harness, text: str, problem: str) -> None:
    resp = h.slash(text)
    assert problem in resp.json()["text"]
    assert h.bot.deps.repo.list_rollbacks() == []


def test_a_service_without_approvers_cannot_be_planned(
    make_harness: Any, kube: KubernetesClient
) -> None:
    text = catalog_yaml(
        service_yaml("checkout", None).replace("    approvers: [U0APPROVER1]\n", "")
    )
    h = make_harness(text, prometheus_url=None, kube=kube)
    assert "no approvers" in h.slash("plan checkout x").json()["text"]


# --- assessment buttons, history, superseding ------------------------------------------------


def test_plan_button_on_an_assessment_opens_the_modal(h: Harness) -> None:
    h.slash("assess checkout")
    call = h.slack.wait_for("chat.postMessage", lambda c: "checkout" in c.params["text"])
    (assessment,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    button(assessment, ab.RUN_NOW_ACTION)  # offered: the decision is not CONTINUE
    click(h, assessment, ab.PLAN_ACTION, "U0ONCALL1")
    raw = h.slack.wait_for("views.open").params["view"]
    view = json.loads(raw) if isinstance(raw, str) else raw
    assert view["callback_id"] == ab.PLAN_VIEW and view["private_metadata"] == "checkout:1"

    bad = h.requester.submit_view(
        view, {"reason": "slow", "target": "no way", "window": "soon"}, user_id="U0ONCALL1"
    )
    errors = bad.json()["errors"]
    assert set(errors) == {"target", "window"} and "not a revision" in errors["target"]
    assert h.bot.deps.repo.list_rollbacks() == []

    good = h.requester.submit_view(
        view, {"reason": "p95 over 5 s", "target": "1", "window": ""}, user_id="U0ONCALL1"
    )
    assert good.status_code == 200
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.status == "pending_approval"
    assert (r.assessment_id, r.target_revision, r.reason) == (1, "1", "p95 over 5 s")
    told = h.slack.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == "U0ONCALL1")
    assert "Rollback request #1" in told.params["text"]
    assert "Based on assessment #1" in json.dumps(request_message(h)["blocks"])


def test_roll_back_now_is_for_responders(h: Harness) -> None:
    h.slash("assess checkout")
    call = h.slack.wait_for("chat.postMessage", lambda c: "checkout" in c.params["text"])
    (assessment,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    before = click(h, assessment, ab.RUN_NOW_ACTION, "U0APPROVER1")
    assert "Only responders" in new_answer(h.slack, before)
    assert h.bot.deps.repo.list_rollbacks() == []
    before = click(h, assessment, ab.RUN_NOW_ACTION, "U0ONCALL1")
    assert "started" in new_answer(h.slack, before)
    settle(h)
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and (r.kind, r.status, r.assessment_id) == ("immediate", "succeeded", 1)


def test_an_immediate_rollback_supersedes_a_waiting_request(h: Harness) -> None:
    h.slash("plan checkout bad deploy", user_id="U0APPROVER1")
    request_message(h)
    resp = h.slash("run checkout --immediate it got worse")
    assert "replaces request #1" in resp.json()["text"]
    settle(h)
    assert status(h, 1) == "cancelled" and status(h, 2) == "succeeded"
    assert "superseded" in latest_request_text(h)


def test_history_lists_requester_approvers_outcome_and_duration(h: Harness) -> None:
    h.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER2")
    settle(h)
    h.slash("run checkout --immediate --to 1 again", user_id="U0ONCALL1")
    settle(h)
    text = h.slash("history checkout").json()["text"]
    lines = text.splitlines()
    assert lines[1].startswith("• #2 *checkout* succeeded · immediate undo")
    assert "no approval needed (responder)" in lines[1] and "· 0m 0" in lines[1]
    assert "#1 *checkout* succeeded · planned undo" in lines[2]
    assert "by <@U0ONCALL1>" in lines[2] and "approved: <@U0APPROVER2>" in lines[2]
    assert lines[2].endswith("s") and "· 0m 0" in lines[2]  # a duration in minutes and seconds
    assert "`nope`" in h.slash("history nope").json()["text"]  # an unknown service is named


# --- what the review of this code asked for ------------------------------------------------------


def test_a_replayed_delivery_counts_once(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    message = request_message(h)
    body = h.requester.click_body(
        message, button(message, ab.APPROVE_ACTION), user_id="U0APPROVER1", channel_id="C0DEPLOYS"
    )
    first = h.requester.post_form(body)
    retry = h.requester.post_form(body, extra_headers={"X-Slack-Retry-Num": "1"})
    assert first.status_code == retry.status_code == 200
    settle(h)
    assert status(h) == "succeeded"
    assert audit_kinds(h).count("approval.approved") == 1
    assert audit_kinds(h).count("rollback.started") == 1


def test_approve_and_reject_at_the_same_instant_have_one_outcome(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    request_message(h)
    barrier = threading.Barrier(2)
    said: list[str] = []

    def act(text: str, user: str) -> None:
        barrier.wait()
        said.append(h.slash(text, user_id=user).json()["text"])

    threads = [
        threading.Thread(target=act, args=("approve 1", "U0APPROVER1")),
        threading.Thread(target=act, args=("reject 1 no", "U0APPROVER2")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle(h)
    kinds = audit_kinds(h)
    if status(h) == "rejected":
        assert "rollback.started" not in kinds and "approval.granted" not in kinds
    else:
        assert status(h) == "succeeded" and "approval.rejected" not in kinds
    assert len(said) == 2


def test_approving_after_the_window_has_passed_is_refused(h: Harness, now: Now) -> None:
    h.slash("plan checkout --at 12:20 bad deploy")  # expiry capped at the window + 10 min grace
    request_message(h)
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.expires_at == datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    now.advance(minutes=31)
    answer = h.slash("approve 1", user_id="U0APPROVER1").json()["text"]
    assert "expired" in answer and status(h) == "expired"


def test_an_unanswered_confirmation_expires(
    h: Harness, prometheus: PrometheusSimulator, now: Now
) -> None:
    healthy(prometheus)
    h.slash("plan checkout bad deploy")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    assert status(h) == "approved"
    now.advance(minutes=29)
    h.bot.deps.due.tick()
    assert status(h) == "approved"
    now.advance(minutes=1)
    h.bot.deps.due.tick()
    settle(h)
    assert status(h) == "expired"
    assert "no approver confirmed" in latest_request_text(h)
    h.slash("plan checkout again")  # the service is free again
    assert status(h, 2) == "pending_approval"


def test_a_vote_stored_just_before_a_crash_completes_on_retry(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    request_message(h)
    # the process stored the vote and died before moving the request on
    stored = h.bot.deps.repo.record_approval(
        1, "U0APPROVER1", "approve", via="button", now=h.bot.deps.clock()
    )
    assert stored
    answer = h.slash("approve 1", user_id="U0APPROVER1").json()["text"]
    assert "Approved. Rollback #1 starts" in answer  # the stored vote moves it on this time
    settle(h)
    assert status(h) == "succeeded"


def test_a_rejection_stored_just_before_a_crash_completes_on_retry(h: Harness) -> None:
    h.slash("plan checkout bad deploy")
    request_message(h)
    stored = h.bot.deps.repo.record_approval(
        1, "U0APPROVER1", "reject", via="command", now=h.bot.deps.clock(), reason="freeze"
    )
    assert stored and status(h) == "pending_approval"  # the process died here
    answer = h.slash("reject 1", user_id="U0APPROVER1").json()["text"]
    assert "rejected" in answer
    assert status(h) == "rejected"
    assert "Rejected by <@U0APPROVER1>" in latest_request_text(h)
    again = h.slash("reject 1", user_id="U0APPROVER1").json()["text"]
    assert "it is not waiting for approval (it was rejected)" in again


def test_abort_cancels_a_scheduled_rollback(h: Harness, now: Now) -> None:
    h.slash("plan checkout --at 22:00 nightly")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    assert status(h) == "scheduled"
    refused = h.slash("abort 1 not tonight", user_id="U0STRANGER").json()["text"]
    assert "Only the requester" in refused and status(h) == "scheduled"
    answer = h.slash("abort 1 not tonight", user_id="U0ONCALL1").json()["text"]
    assert "cancelled before it ran" in answer
    settle(h)
    assert status(h) == "cancelled"
    now.advance(hours=11)
    assert h.bot.deps.due.tick() == 0  # the start was cancelled with it
    work = h.bot.deps.repo.get_work("start:1")
    assert work is not None and work.status == "cancelled"


def test_a_request_that_cannot_be_posted_is_cancelled_and_the_requester_told(h: Harness) -> None:
    h.slack.add_user("U0ONCALL1", "oncall1")
    h.slack.inject_error("chat.postMessage", "not_in_channel")
    h.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    settle(h)
    assert status(h) == "cancelled"
    dm = h.slack.wait_for("chat.postMessage", lambda c: c.params.get("channel") == "U0ONCALL1")
    assert "could not be posted" in dm.params["text"] and "/invite" in dm.params["text"]
    assert dm.response["ok"] is True  # delivered to the requester's DM


def test_a_request_slack_could_not_take_yet_is_posted_on_a_retry(h: Harness, now: Now) -> None:
    h.slack.inject("chat.postMessage", status=503, times=3)  # the client retries 2x, then gives up
    resp = h.slash("plan checkout bad deploy")
    assert "waiting for 1 approval in" in resp.json()["text"]
    settle(h)
    assert status(h) == "pending_approval"  # not cancelled: a 503 may pass
    work = h.bot.deps.repo.get_work("approval.post:1")
    assert work is not None and work.status == "pending" and work.waits == 1
    now.advance(seconds=5)
    assert h.bot.deps.due.tick() == 1
    settle(h)
    posted = [c for c in h.posted() if "Rollback request #1 " in c.params["text"]]
    assert [c.response["ok"] for c in posted] == [False, False, False, True]  # 3 x 503, then ok
    assert posted[-1].response["ts"] == h.bot.deps.repo.get_rollback(1).approval_ts  # type: ignore[union-attr]


def test_a_request_slack_took_but_answered_500_for_is_not_posted_twice(
    h: Harness, now: Now
) -> None:
    """Two request messages would split the votes: the retry finds the first by its marker."""
    h.slack.inject("chat.postMessage", status=500, is_applied=True)
    h.slash("plan checkout bad deploy")
    settle(h)
    now.advance(seconds=5)
    assert h.bot.deps.due.tick() == 1
    settle(h)
    requests = [m for m in h.slack.messages("C0DEPLOYS") if "Rollback request #1 " in m["text"]]
    assert len(requests) == 1
    assert requests[0]["ts"] == h.bot.deps.repo.get_rollback(1).approval_ts  # type: ignore[union-attr]


def test_a_request_stored_before_a_crash_is_posted_by_the_next_process(
    make: Callable[..., Harness], now: Now
) -> None:
    first = make()
    first.bot.deps.due.shutdown()  # this process dies before it can post anything
    first.slash("plan checkout bad deploy")
    assert [c for c in first.posted() if "Rollback request" in c.params["text"]] == []
    work = first.bot.deps.repo.get_work("approval.post:1")
    assert work is not None and work.status in ("pending", "claimed")  # not done
    now.advance(minutes=3)  # past any claim the dying process held
    second = make()  # a restart on the same database
    assert second.bot.deps.due.tick() >= 1
    request_message(second)
    assert status(second) == "pending_approval"


def test_the_missed_window_report_survives_a_slack_failure(h: Harness, now: Now) -> None:
    h.slash("plan checkout --at 22:00 nightly")
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    now.advance(hours=10, minutes=30)
    h.slack.inject_error("chat.postMessage", "internal_error", times=1)
    h.bot.deps.due.tick()
    settle(h)
    assert status(h) == "expired"
    now.advance(minutes=1)  # the report's retry
    h.bot.deps.due.tick()
    settle(h)
    h.slack.wait_for("chat.postMessage", lambda c: "was NOT run" in c.params["text"])


def test_a_group_member_may_abort(h: Harness) -> None:
    h.slack.add_usergroup("S0SRE", ["U0GROUPIE"])
    h.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    request_message(h)
    assert "cancelled" in h.slash("abort 1", user_id="U0GROUPIE").json()["text"]


def test_approve_from_the_app_home_tab(h: Harness) -> None:
    h.slack.add_user("U0APPROVER1", "approver1")  # so the bot can open a DM with them
    h.slash("plan checkout bad deploy", user_id="U0ONCALL1")
    request_message(h)
    h.bot.deps.work.wait_idle(5)
    from bot.notify.home import publish_home

    publish_home(h.bot.deps, "U0APPROVER1")
    home = h.slack.home_view("U0APPROVER1")
    assert home is not None
    approve = next(
        e
        for b in home["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == ab.APPROVE_ACTION
    )
    # what Slack sends for a button on the Home tab: a view container, no response_url
    body = h.requester.click_body({}, approve, user_id="U0APPROVER1", channel_id="")
    payload = json.loads(parse_qs(body)["payload"][0])
    payload["container"] = {"type": "view", "view_id": "V0HOME"}
    for key in ("response_url", "message", "channel"):
        payload.pop(key)
    assert h.requester.post_form(urlencode({"payload": json.dumps(payload)})).status_code == 200
    dm = h.slack.wait_for("chat.postMessage", lambda c: c.params.get("channel") == "U0APPROVER1")
    assert "Approved" in dm.params["text"] and dm.response["ok"] is True
    settle(h)
    assert status(h) == "succeeded"
    republished = h.slack.home_view("U0APPROVER1")
    assert republished is not None and "Nothing waits for you" in json.dumps(republished)


# --- what a person reads at 3 am (issue #12) -----------------------------------------------------


def test_a_3900_character_reason_is_posted_cut_with_the_whole_in_the_thread(h: Harness) -> None:
    reason = "latency doubled <!channel> & carts fail " * 98  # 3,920 characters
    h.slash(f"plan checkout {reason}")
    message = request_message(h)  # Slack took it: before, invalid_blocks cancelled the request
    assert status(h) == "pending_approval"
    blocks = json.dumps(message["blocks"], ensure_ascii=False)
    assert f"… {ab.REASON_IN_THREAD}" in blocks and "<!channel>" not in blocks
    settle(h)
    (whole,) = [
        m["text"]
        for m in h.slack.messages("C0DEPLOYS")
        if m.get("thread_ts") == message["ts"] and "*Reason* (whole)" in m["text"]
    ]
    assert reason.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in whole


def test_status_says_a_request_waits_for_run_anyway_and_a_cancelled_one_never_ran(
    h: Harness, prometheus: PrometheusSimulator
) -> None:
    healthy(prometheus)
    h.slash("plan checkout bad deploy")
    waiting = h.slash("status checkout").json()["text"]
    assert "WAITING FOR APPROVAL" in waiting and "PENDING_APPROVAL" not in waiting
    press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    settle(h)
    h.slack.wait_for("chat.postMessage", lambda c: "Run it anyway?" in c.params["text"])

    listing = h.slash("status").json()["text"]
    assert "approved, starting" not in listing
    assert "waiting for an approver to press *Run anyway*" in listing
    one = json.dumps(h.slash("status checkout").json()["blocks"])
    assert "APPROVED, NOT STARTED YET" in one and "press *Run anyway*" in one
    assert "Elapsed" not in one and "started by" not in one

    call = h.slack.wait_for("chat.postMessage", lambda c: "Run it anyway?" in c.params["text"])
    (confirm,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    press(h, confirm, ab.CONFIRM_CANCEL_ACTION, "U0APPROVER1")
    settle(h)
    ended = json.dumps(h.slash("status 1").json()["blocks"], ensure_ascii=False)
    assert "— CANCELLED" in ended
    assert "Cancelled by <@U0APPROVER1> at the start — it never ran" in ended
    assert "Elapsed" not in ended and "SLA" not in ended and "started by" not in ended
    assert "Rollback #1 was cancelled; nothing to abort." in h.slash("abort 1").json()["text"]


def test_wording_plural_and_did_you_mean(make: Callable[..., Harness]) -> None:
    h = make("\n    approval: {min_approvals: 2}")
    asked = h.slash("plan checkout bad deploy").json()["text"]
    assert "waiting for 2 approvals in" in asked
    voted = press(h, request_message(h), ab.APPROVE_ACTION, "U0APPROVER1")
    assert "Approved; 1 more approval needed." in voted

    typo = h.slash("asess checkout").json()
    assert "did you mean `assess`?" in typo["text"]
    assert "/rollback plan <service>" not in typo["text"]  # not the whole grammar
    service = h.slash("status chekout").json()["text"]
    assert "Unknown service `chekout`. Did you mean `checkout`?" in service
    option = h.slash("run checkout --immediat now").json()["text"]
    assert "did you mean `--immediate`?" in option
