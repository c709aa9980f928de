"""The same assessment against the real Prometheus server, with series backfilled by promtool."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.demo import promql
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml
from tests.prometheus_server import RealPrometheus, checkout_like_series, require_prometheus

pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def real_prometheus() -> Iterator[RealPrometheus]:
    require_prometheus()
    # samples reach 5 minutes into the future so rate() stays exact however long the tests take
    end = time.time() + 300
    series = [
        *checkout_like_series(
            "checkout", error_ratio=0.25, p95_seconds=6.0, sessions_per_min=0.2, db_up=0, end=end
        ),
        *checkout_like_series(
            "profile", error_ratio=0.001, p95_seconds=0.2, sessions_per_min=40, db_up=1, end=end
        ),
    ]
    with RealPrometheus(series, end=end) as prometheus:
        yield prometheus


@pytest.fixture
def harness(
    make_harness: Any, real_prometheus: RealPrometheus, prometheus: PrometheusSimulator
) -> Harness:
    # health endpoints still come from a local server: Prometheus has no /health/<service>
    prometheus.set_health("checkout", 503)
    text = catalog_yaml(
        service_yaml("checkout", prometheus.health_url("checkout")),
        service_yaml("profile", prometheus.health_url("profile")),
    )
    h: Harness = make_harness(text, prometheus_url=real_prometheus.url)
    return h


def test_the_app_queries_what_the_fixture_backfills() -> None:
    from tests.prometheus_server import signal_queries

    assert signal_queries("checkout") == promql("checkout")


def test_critical_service_from_real_prometheus(harness: Harness) -> None:
    harness.slash("assess checkout")
    msg = harness.slack.wait_for("chat.postMessage").params

    # health +30, error rate 25 % +25, p95 6 s +20, db down +30 → critical 105; sessions +15 high
    assert msg["text"].splitlines()[0] == (
        "IMMEDIATE ROLLBACK: checkout — critical 105, high 15, medium 0, total 120"
    )
    rendered = json.dumps(msg["blocks"])
    assert "25 %" in rendered
    assert "unreachable" in rendered
    harness.wait_idle()
    (stored,) = harness.bot.deps.repo.list_assessments(service="checkout")
    assert stored.inputs["latency_p95_seconds"]["value"] == pytest.approx(6.0, rel=0.05)
    assert stored.inputs["user_sessions_per_min"]["value"] == pytest.approx(0.2, rel=0.05)


def test_healthy_service_from_real_prometheus(harness: Harness) -> None:
    harness.slash("assess profile")
    msg = harness.slack.wait_for("chat.postMessage").params

    assert msg["text"].splitlines()[0] == (
        "CONTINUE: profile — critical 0, high 0, medium 0, total 0"
    )
    harness.wait_idle()
    (stored,) = harness.bot.deps.repo.list_assessments(service="profile")
    assert stored.inputs["error_rate"]["value"] == pytest.approx(0.001, rel=0.05)
    assert stored.inputs["latency_p95_seconds"]["value"] == pytest.approx(0.2, rel=0.05)
    assert stored.inputs["db_up"]["value"] == 1
