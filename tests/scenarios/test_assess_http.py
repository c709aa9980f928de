"""`/rollback assess` end to end: signed HTTP into a real server, answers read from Slack sim."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from bot.sim.prometheus_api import PrometheusSimulator
from bot.sim.slack_api import SlackSimulator
from tests.conftest import (
    Harness,
    catalog_yaml,
    closed_port_url,
    service_yaml,
    set_service_values,
)


@pytest.fixture
def harness(make_harness: Any, prometheus: PrometheusSimulator) -> Harness:
    set_service_values(prometheus, "checkout", error_rate=0.23, latency=6.2, sessions=0.4, db_up=1)
    set_service_values(prometheus, "profile", error_rate=0.002, latency=0.18, sessions=42, db_up=1)
    prometheus.set_health("checkout", 503)
    text = catalog_yaml(
        service_yaml("checkout", prometheus.health_url("checkout")),
        service_yaml("profile", prometheus.health_url("profile")),
    )
    h: Harness = make_harness(text, prometheus_url=prometheus.url)
    return h


def _answer(h: Harness) -> dict[str, Any]:
    call = h.slack.wait_for("chat.postMessage")
    return call.params


def test_critical_service_is_answered_with_immediate_rollback(harness: Harness) -> None:
    resp = harness.slash("assess checkout")

    assert resp.status_code == 200
    assert "Assessing *checkout*" in resp.json()["text"]
    msg = _answer(harness)
    assert msg["channel"] == "C0DEPLOYS"
    first_line = msg["text"].splitlines()[0]
    assert first_line.startswith("IMMEDIATE ROLLBACK")
    assert "critical 75, high 15, medium 0, total 90" in first_line
    rendered = json.dumps(msg["blocks"])
    for expected in ("23 %", "6.20 s", "> 10 %", "+25", "Health check", "failing"):
        assert expected in rendered


def test_assessment_is_stored_with_inputs_and_audited(harness: Harness) -> None:
    harness.slash("assess checkout")
    msg_ts = harness.slack.wait_for("chat.postMessage").response["ts"]
    harness.wait_idle()

    repo = harness.bot.deps.repo
    (stored,) = repo.list_assessments(service="checkout")
    assert stored.status == "done"
    assert stored.decision == "IMMEDIATE ROLLBACK"
    assert (stored.critical_score, stored.high_score, stored.total_score) == (75, 15, 90)
    assert stored.inputs["error_rate"]["value"] == pytest.approx(0.23)
    assert stored.inputs["health"]["note"] == "HTTP 503"
    assert stored.result["triggers"]["error_rate"][0]["fired"] is True
    (event,) = repo.list_audit_events(kind="assessment.completed")
    assert (event.assessment_id, event.actor, event.message_ts) == (stored.id, "U0ONCALL1", msg_ts)


def test_healthy_service_continues(harness: Harness) -> None:
    harness.slash("assess profile")
    assert _answer(harness)["text"].startswith("CONTINUE: profile — critical 0, high 0")


def test_a_storm_of_asks_posts_one_assessment(
    harness: Harness, prometheus: PrometheusSimulator
) -> None:
    """Three responders type `/rollback assess checkout` one after another during an incident:
    one assessment is posted; the asks after it are answered with where it is (an ask is
    answered by one posted seconds ago as by one still running), and nothing is queried again."""
    first = harness.slash("assess checkout")
    assert "Assessing *checkout*" in first.json()["text"]
    posted = _answer(harness)
    harness.wait_idle()
    queries = prometheus.query_count

    for user in ("U0SECOND", "U0THIRD"):
        again = harness.slash("assess checkout", user_id=user).json()["text"]
        assert "*checkout* was assessed" in again and "asked by <@U0ONCALL1>" in again
        assert "the result is in <#C0DEPLOYS>" in again and "nothing new was started" in again
    harness.wait_idle()

    assert [c.params["text"] for c in harness.slack.calls_to("chat.postMessage")] == [
        posted["text"]
    ]
    assert len(harness.bot.deps.repo.list_assessments(service="checkout")) == 1
    assert prometheus.query_count == queries


def test_unknown_service_is_answered_privately_and_nothing_is_stored(harness: Harness) -> None:
    resp = harness.slash("assess nosuch")

    assert resp.status_code == 200
    text = resp.json()["text"]
    assert "Unknown service `nosuch`" in text
    assert "`checkout`, `profile`" in text
    harness.wait_idle()
    assert harness.bot.deps.repo.list_assessments() == []
    assert harness.posted() == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("frobnicate checkout", "unknown subcommand `frobnicate`"),
        ("assess", "needs a service name"),
        ("assess checkout now", "takes a service name and optionally --region"),
        ('run checkout --to "41', "is not a revision"),
        ("run checkout --at 22:00", "`--at` is not an option of `/rollback run`"),
    ],
)
def test_malformed_command_gets_usage(harness: Harness, text: str, problem: str) -> None:
    resp = harness.slash(text)

    answer = resp.json()["text"]
    assert problem in answer
    assert "/rollback assess <service>" in answer  # the usage is shown
    harness.wait_idle()
    assert harness.bot.deps.repo.list_assessments() == []


def test_forged_signature_is_refused_without_trace(harness: Harness) -> None:
    body = harness.requester.slash_body("assess checkout", user_id="U0EVIL", channel_id="C0DEPLOYS")
    resp = harness.requester.post_form(body, secret="not-the-signing-secret")

    assert resp.status_code == 401
    harness.wait_idle()
    assert harness.bot.deps.repo.list_assessments() == []
    assert harness.bot.deps.repo.list_audit_events() == []
    assert harness.posted() == []


def test_stale_timestamp_is_refused(harness: Harness) -> None:
    body = harness.requester.slash_body("assess checkout", user_id="U0ONCALL1", channel_id="C0")
    resp = harness.requester.post_form(body, timestamp=int(time.time()) - 6 * 60)

    assert resp.status_code == 401
    harness.wait_idle()
    assert harness.bot.deps.repo.list_assessments() == []


def test_replayed_retry_gets_no_second_answer(harness: Harness) -> None:
    body = harness.requester.slash_body(
        "assess checkout", user_id="U0ONCALL1", channel_id="C0DEPLOYS"
    )
    first = harness.requester.post_form(body)
    retry = harness.requester.post_form(
        body, extra_headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )

    assert first.status_code == retry.status_code == 200
    harness.wait_idle()
    assert len(harness.posted()) == 1
    assert len(harness.bot.deps.repo.list_assessments()) == 1


def test_prometheus_down_makes_signals_unknown_not_healthy(
    make_harness: Any, prometheus: PrometheusSimulator
) -> None:
    text = catalog_yaml(service_yaml("profile", prometheus.health_url("profile")))
    h: Harness = make_harness(text, prometheus_url=closed_port_url())

    h.slash("assess profile")
    msg = _answer(h)

    assert msg["text"].startswith("MONITOR: profile — critical 0, high 0, medium 0, total 0")
    rendered = json.dumps(msg["blocks"])
    assert rendered.count("*unknown*") == 4
    assert "Prometheus unreachable" in rendered
    assert "cannot confirm healthy" in rendered
    assert "the decision would be *IMMEDIATE ROLLBACK*" in rendered


def test_query_with_no_series_is_unknown(harness: Harness, prometheus: PrometheusSimulator) -> None:
    set_service_values(prometheus, "profile", error_rate=None, latency=0.1, sessions=40, db_up=1)

    harness.slash("assess profile")
    msg = _answer(harness)

    assert msg["text"].startswith("MONITOR")
    assert "Error rate: unknown" in msg["text"]
    assert "no series" in json.dumps(msg["blocks"])


def test_health_url_that_times_out_fails_the_health_check(
    make_harness: Any, prometheus: PrometheusSimulator
) -> None:
    set_service_values(prometheus, "profile", error_rate=0.002, latency=0.18, sessions=42, db_up=1)
    with PrometheusSimulator(health={"profile": 200}, delay_seconds=5) as slow:
        text = catalog_yaml(
            service_yaml("profile", slow.health_url("profile"), health_timeout_seconds=0.3)
        )
        h: Harness = make_harness(text, prometheus_url=prometheus.url)

        h.slash("assess profile")
        msg = _answer(h)

    assert msg["text"].startswith("MONITOR: profile — critical 30")
    assert "no answer within 0.3 s" in json.dumps(msg["blocks"])


def test_bot_not_in_channel_answers_privately(harness: Harness, slack: SlackSimulator) -> None:
    slack.inject_error("chat.postMessage", "not_in_channel")

    harness.slash("assess checkout")
    call = slack.wait_for("response_url")

    assert call.params["response_type"] == "ephemeral"
    assert call.params["text"].startswith("IMMEDIATE ROLLBACK")
    assert "/invite @rollback-bot" in call.params["text"]


def test_slack_rate_limit_is_retried_and_the_answer_arrives_once(
    harness: Harness, slack: SlackSimulator
) -> None:
    slack.inject("chat.postMessage", status=429, headers={"Retry-After": "0"})

    harness.slash("assess checkout")
    harness.wait_idle()

    statuses = [c.status for c in slack.calls_to("chat.postMessage")]
    assert statuses == [429, 200]
    assert len(slack.messages("C0DEPLOYS")) == 1


def test_healthz_and_metrics(harness: Harness) -> None:
    harness.slash("assess checkout")
    harness.slack.wait_for("chat.postMessage")
    harness.wait_idle()

    health = httpx.get(f"{harness.server.url}/healthz")
    metrics = httpx.get(f"{harness.server.url}/metrics").text

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (
        'rollback_bot_assessments_total{decision="IMMEDIATE ROLLBACK",service="checkout"} 1.0'
        in metrics
    )
    assert 'rollback_bot_slack_requests_total{outcome="handled"} 1.0' in metrics


def test_unknown_route_is_404(harness: Harness) -> None:
    assert httpx.get(f"{harness.server.url}/nope").status_code == 404


def test_help_lists_the_grammar(harness: Harness, slack: SlackSimulator) -> None:
    text = harness.slash("help").json()["text"]
    assert "/rollback assess <service>" in text
    assert "/rollback history [<service>]" in text


def test_slack_sim_token_is_checked(slack: SlackSimulator) -> None:
    # guards the harness itself: a wrong token must not be silently accepted
    resp = httpx.post(f"{slack.api_url}auth.test", headers={"Authorization": "Bearer xoxb-wrong"})
    assert resp.json() == {"ok": False, "error": "invalid_auth"}
