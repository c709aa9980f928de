"""``/metrics`` after real flows, and the alert rules in the real Prometheus scraping the bot."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values
from tests.prometheus_server import RealPrometheus, require_prometheus

NS = "shop"
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rollback-alerts.yml"
RULE_TESTS = RULES.with_name("rollback-alerts.test.yml")


@pytest.fixture
def kube_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield sim


@pytest.fixture
def harness(make_harness: Any, kube_sim: KubeSimulator, prometheus: PrometheusSimulator) -> Harness:
    kube = KubernetesClient(api_client_for=lambda ctx: kube_sim.api_client(), sleep=lambda s: None)
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.1, sessions=30, db_up=1)
    text = catalog_yaml(service_yaml("checkout", prometheus.health_url("checkout")))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=kube)
    return h


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def scrape(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{h.server.url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_an_assessment_a_success_a_failure_and_a_running_rollback(
    harness: Harness, kube_sim: KubeSimulator
) -> None:
    before = scrape(harness)
    ids = {"service": "checkout", "strategy": "undo"}
    assert sample(before, "rollback_bot_rollbacks_finished_total", **ids, outcome="failed") == 0

    harness.slash("assess checkout")
    harness.wait_idle()
    harness.slash("run checkout --immediate bad release")
    harness.wait_rollbacks()
    kube = harness.bot.deps.kube
    kube.set_image(KubeTarget(None, NS), "checkout-api", "app", "shop/checkout:v3")  # a new release
    kube_sim.inject("PATCH", "/deployments/checkout-api$", 422, times=1)  # its undo fails
    harness.slash("run checkout --immediate bad release")
    harness.wait_rollbacks()
    kube_sim.set_never_ready(NS, "checkout-api")
    harness.slash("run checkout --immediate bad release")

    def third_started() -> bool:  # a start is told to the listeners (metrics) as due work
        work = harness.bot.deps.repo.get_work("started:3")
        return work is not None and work.status == "done"

    until(third_started, "the third rollback's start")

    m = scrape(harness)
    started = sample(m, "rollback_bot_rollbacks_started_total", **ids, kind="immediate")
    assert started == 3
    assert sample(m, "rollback_bot_rollbacks_started_total", **ids, kind="planned") == 0
    assert sample(m, "rollback_bot_rollbacks_finished_total", **ids, outcome="succeeded") == 1
    assert sample(m, "rollback_bot_rollbacks_finished_total", **ids, outcome="failed") == 1
    assert sample(m, "rollback_bot_rollbacks_finished_total", **ids, outcome="aborted") == 0
    assert sample(m, "rollback_bot_rollback_duration_seconds_count", **ids) == 2
    for phase in ("preparation", "application"):
        count = sample(
            m, "rollback_bot_phase_duration_seconds_count", service="checkout", phase=phase
        )
        assert count is not None and count >= 1
    assessed = sample(m, "rollback_bot_assessments_total", service="checkout", decision="CONTINUE")
    assert assessed == 1
    assert sample(m, "rollback_bot_rollbacks_running", service="checkout") == 1
    third = harness.bot.deps.repo.get_rollback(3)
    assert third is not None
    began = sample(m, "rollback_bot_rollback_started_timestamp_seconds", rollback_id="3", **ids)
    assert began == pytest.approx(third.created_at.timestamp())
    assert (
        sample(m, "rollback_bot_rollback_sla_seconds", rollback_id="3", service="checkout") == 900
    )

    harness.slash("abort 3")
    harness.wait_rollbacks()
    after = scrape(harness)
    assert sample(after, "rollback_bot_rollbacks_finished_total", **ids, outcome="aborted") == 1
    assert sample(after, "rollback_bot_rollbacks_running", service="checkout") == 0
    assert not [k for k in after if k[0] == "rollback_bot_rollback_started_timestamp_seconds"]


def test_alert_rules_pass_promtool() -> None:
    binaries = require_prometheus()
    done = subprocess.run(
        [binaries.promtool, "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout  # RollbackDrillOverdue is two rules


def test_alert_rule_unit_tests_pass_promtool() -> None:
    """RollbackGuardBlind: a blind service, stopped rounds, and silence with nothing guarded."""
    binaries = require_prometheus()
    done = subprocess.run(
        [binaries.promtool, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def prometheus_config(bot_url: str) -> str:
    target = bot_url.removeprefix("http://")
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n  - job_name: rollback-bot\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )


def query(prom: RealPrometheus, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prom.url}/api/v1/query", params={"query": promql}).json()
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def firing(prom: RealPrometheus, name: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{prom.url}/api/v1/alerts").json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


@pytest.mark.prometheus
def test_rollback_failed_fires_in_real_prometheus(
    harness: Harness, kube_sim: KubeSimulator
) -> None:
    require_prometheus()
    with RealPrometheus(config_text=prometheus_config(harness.server.url)) as prom:
        failed = 'rollback_bot_rollbacks_finished_total{outcome="failed",service="checkout"}'
        # the zeroed counter must be scraped before the failure for increase() to see it
        until(lambda: bool(query(prom, failed)), "a first scrape of the bot", timeout=30)
        assert firing(prom, "RollbackFailed") == []

        kube_sim.inject("PATCH", "/deployments/checkout-api$", 422)  # the undo fails
        harness.slash("run checkout --immediate bad release")
        harness.wait_rollbacks()

        until(lambda: bool(firing(prom, "RollbackFailed")), "RollbackFailed to fire", timeout=30)
        (alert,) = firing(prom, "RollbackFailed")
        assert alert["labels"]["service"] == "checkout"
        assert alert["labels"]["severity"] == "critical"
        assert "rollback of checkout failed" in alert["annotations"]["description"]
        assert firing(prom, "RollbackTakingTooLong") == []
        assert firing(prom, "MultipleRollbacksDetected") == []
