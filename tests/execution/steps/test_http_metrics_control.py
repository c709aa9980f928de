"""HTTP, Prometheus and control step kinds against local servers, with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from bot.execution.steps.base import StepFailed
from bot.execution.steps.control import manual_gate, wait
from bot.execution.steps.http import http_check, http_request
from bot.execution.steps.metrics import prometheus_gate
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import closed_port_url
from tests.execution.steps.conftest import FakeTime


def test_http_check_passes_on_2xx(make_ctx: Any, prometheus: PrometheusSimulator) -> None:
    ctx, _ = make_ctx()
    assert http_check(ctx, {"url": prometheus.health_url("web")})["answer"] == "HTTP 200"


def test_http_check_keeps_trying_then_fails_with_the_last_answer(
    make_ctx: Any, prometheus: PrometheusSimulator, fake_time: FakeTime
) -> None:
    prometheus.set_health("web", 503)
    ctx, _ = make_ctx(timeout_seconds=10)
    with pytest.raises(StepFailed, match="not done after 10 s; last answer: HTTP 503"):
        http_check(ctx, {"url": prometheus.health_url("web")})
    assert sum(fake_time.waits) == pytest.approx(10)


def test_http_check_expected_status(make_ctx: Any, prometheus: PrometheusSimulator) -> None:
    prometheus.set_health("web", 503)
    ctx, _ = make_ctx()
    result = http_check(ctx, {"url": prometheus.health_url("web"), "expect_status": 503})
    assert result["answer"] == "HTTP 503"


def test_http_request_is_sent_once_even_when_resumed(
    make_ctx: Any, prometheus: PrometheusSimulator
) -> None:
    ctx, rec = make_ctx()
    url = f"{prometheus.url}/api/v1/query?query=up"
    assert http_request(ctx, {"url": url})["answer"] == "HTTP 200"
    assert rec.remembered == {"sent": True}

    resumed, notes = make_ctx(previous={"sent": True})
    http_request(resumed, {"url": url})
    assert prometheus.query_count == 1
    assert "not sending it again" in notes.notes[0]


def test_http_request_failure_is_in_words(make_ctx: Any) -> None:
    ctx, _ = make_ctx()
    with pytest.raises(StepFailed, match=r"POST http://127\.0\.0\.1:\d+/x: unreachable"):
        http_request(ctx, {"url": f"{closed_port_url()}/x"})


def test_prometheus_gate_passes_when_back_under(
    make_ctx: Any, prometheus: PrometheusSimulator
) -> None:
    prometheus.set_value("err", 0.01)
    ctx, _ = make_ctx(prometheus_url=prometheus.url)
    assert prometheus_gate(ctx, {"query": "err", "below": 0.05})["value"] == "0.01"


def test_prometheus_gate_times_out_with_the_last_value(
    make_ctx: Any, prometheus: PrometheusSimulator
) -> None:
    prometheus.set_value("err", 0.2)
    ctx, _ = make_ctx(prometheus_url=prometheus.url, timeout_seconds=20)
    with pytest.raises(StepFailed, match=r"wanted < 0\.05, last value 0\.2"):
        prometheus_gate(ctx, {"query": "err", "below": 0.05})


def test_prometheus_gate_without_prometheus_fails_clearly(make_ctx: Any) -> None:
    ctx, _ = make_ctx()
    with pytest.raises(StepFailed, match="PROMETHEUS_URL is not set"):
        prometheus_gate(ctx, {"query": "err", "below": 0.05})


def test_wait_counts_time_already_waited_before_a_restart(
    make_ctx: Any, fake_time: FakeTime
) -> None:
    ctx, rec = make_ctx()
    started = ctx.clock().isoformat()
    fake_time.now += 40  # the process died 40 s into a 60 s wait
    resumed, _ = make_ctx(previous={"wait_started": started})
    wait(resumed, {"seconds": 60})
    assert fake_time.waits == [pytest.approx(20)]
    fresh, rec = make_ctx()
    wait(fresh, {"seconds": 5})
    assert "wait_started" in rec.remembered


def test_manual_gate_waits_for_continue(make_ctx: Any) -> None:
    ctx, rec = make_ctx(fresh={"continued_by": "U0ONCALL1"})
    assert manual_gate(ctx, {"prompt": "DBA ready?"})["gate"] == "continued by <@U0ONCALL1>"
    assert rec.remembered == {"waiting_for": "DBA ready?"}


def test_manual_gate_times_out(make_ctx: Any) -> None:
    ctx, _ = make_ctx(timeout_seconds=6)
    with pytest.raises(StepFailed, match="manual gate: not done after 6 s"):
        manual_gate(ctx, {})
