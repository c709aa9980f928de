"""Multi-region assessment and planned (approved) rollbacks through signed HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kube.values import KubeTarget
from bot.approvals import blocks as ab
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, set_service_values
from tests.regions.clusters import NS, Clusters, clusters, region_yaml, until


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Clusters]:
    with clusters(tmp_path, "eu", "us") as found:
        yield found


@pytest.fixture
def eu_prometheus() -> Iterator[PrometheusSimulator]:
    with PrometheusSimulator() as sim:
        yield sim


def failing(prometheus: PrometheusSimulator) -> None:
    """Slow, database down: IMMEDIATE ROLLBACK (the error rate is fine: verification passes)."""
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)


def healthy(prometheus: PrometheusSimulator) -> None:
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=0.1, sessions=30, db_up=1)


def message_text(h: Harness, needle: str) -> list[str]:
    return [
        json.dumps(c.params, ensure_ascii=False)
        for c in h.posted()
        if needle in str(c.params.get("text", ""))
    ]


def test_assess_reads_every_region_and_leads_with_the_worst(
    make_harness: Any,
    two: Clusters,
    prometheus: PrometheusSimulator,
    eu_prometheus: PrometheusSimulator,
) -> None:
    failing(eu_prometheus)  # eu-west-1 names its own Prometheus
    healthy(prometheus)  # us-east-1 uses the app's
    regions = {"eu-west-1": f"eu, prometheus_url: '{eu_prometheus.url}'", "us-east-1": "us"}
    text = catalog_yaml(region_yaml(regions, signals=True))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two.client())

    h.slash("assess checkout")
    h.wait_idle()

    (posted,) = [c for c in h.posted() if "checkout" in str(c.params.get("text", ""))]
    first = str(posted.params["text"]).splitlines()[0]
    assert first.startswith("IMMEDIATE ROLLBACK: checkout")
    shown = json.dumps(posted.params["blocks"], ensure_ascii=False)
    assert "worst in eu-west-1" in shown
    assert "• *eu-west-1*: IMMEDIATE ROLLBACK — critical 50" in shown
    assert "• *us-east-1*: CONTINUE — critical 0, high 0, medium 0, total 0" in shown
    assert "checkout-api at revision 3 (checkout:v3)" in shown
    stored = h.bot.deps.repo.get_assessment(1)
    assert stored is not None and stored.decision == "IMMEDIATE ROLLBACK"
    assert [r["region"] for r in stored.result["regions"]] == ["eu-west-1", "us-east-1"]

    h.slash("assess checkout --region us-east-1")
    h.wait_idle()
    (narrowed,) = [c for c in h.posted() if str(c.params.get("text", "")).startswith("CONTINUE")]
    assert "us-east-1" in str(narrowed.params["text"])
    assert "eu-west-1" not in json.dumps(narrowed.params["blocks"])


def test_a_planned_partial_rollback_says_so_and_touches_only_its_regions(
    make_harness: Any, two: Clusters, prometheus: PrometheusSimulator
) -> None:
    failing(prometheus)
    regions = {"eu-west-1": "eu", "us-east-1": "us"}
    text = catalog_yaml(region_yaml(regions, signals=True))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two.client())

    answer = h.slash("plan checkout --region us-east-1 bad release in the US").json()["text"]
    assert "Rollback request #1 of *checkout* is waiting" in answer
    assert (
        "*Partial rollback*: only us-east-1" in answer and "eu-west-1 is NOT rolled back" in answer
    )
    until(lambda: message_text(h, "Rollback request #1"), "the request message")
    (request,) = message_text(h, "Rollback request #1")
    assert "*Regions* *Partial rollback*: only us-east-1" in request
    assert "eu-west-1 is NOT rolled back" in request

    h.slash("approve 1", user_id="U0APPROVER1")
    until(lambda: h.bot.deps.repo.get_rollback(1).status == "succeeded", "the approved rollback")  # type: ignore[union-attr]
    h.wait_rollbacks()

    kube = two.client()
    assert kube.deployment(KubeTarget("us", NS), "checkout-api").images["app"] == "shop/checkout:v2"
    assert kube.deployment(KubeTarget("eu", NS), "checkout-api").images["app"] == "shop/checkout:v3"
    assert [w for w in two.writes("eu") if w[0] != "GET"] == []


def test_roll_back_now_on_a_narrowed_assessment_rolls_back_only_its_regions(
    make_harness: Any,
    two: Clusters,
    prometheus: PrometheusSimulator,
    eu_prometheus: PrometheusSimulator,
) -> None:
    healthy(eu_prometheus)
    failing(prometheus)  # us-east-1 reads the app's Prometheus
    regions = {"eu-west-1": f"eu, prometheus_url: '{eu_prometheus.url}'", "us-east-1": "us"}
    text = catalog_yaml(region_yaml(regions, signals=True))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two.client())

    h.slash("assess checkout --region us-east-1")
    call = h.slack.wait_for("chat.postMessage", lambda c: "Assessment #" in str(c.params))
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    assert str(message["text"]).startswith("IMMEDIATE ROLLBACK: checkout")
    (run_now,) = [
        e
        for b in message["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == "assessment_run_now"
    ]
    h.requester.click(message, run_now, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    until(lambda: h.bot.deps.repo.get_rollback(1) is not None, "the rollback")
    h.wait_rollbacks()

    assert {s.region for s in h.bot.deps.repo.list_steps(1)} == {"us-east-1"}
    kube = two.client()
    assert kube.deployment(KubeTarget("us", NS), "checkout-api").images["app"] == "shop/checkout:v2"
    assert kube.deployment(KubeTarget("eu", NS), "checkout-api").images["app"] == "shop/checkout:v3"
    assert [w for w in two.writes("eu") if w[0] != "GET"] == []


def test_plan_rollback_form_on_a_narrowed_assessment_plans_only_its_regions(
    make_harness: Any,
    two: Clusters,
    prometheus: PrometheusSimulator,
    eu_prometheus: PrometheusSimulator,
) -> None:
    healthy(eu_prometheus)
    failing(prometheus)  # us-east-1 reads the app's Prometheus
    regions = {"eu-west-1": f"eu, prometheus_url: '{eu_prometheus.url}'", "us-east-1": "us"}
    text = catalog_yaml(region_yaml(regions, signals=True))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two.client())

    h.slash("assess checkout --region us-east-1")
    call = h.slack.wait_for("chat.postMessage", lambda c: "Assessment #" in str(c.params))
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    (plan,) = [
        e
        for b in message["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == "assessment_plan_rollback"
    ]
    h.requester.click(message, plan, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    raw = h.slack.wait_for("views.open").params["view"]
    view = json.loads(raw) if isinstance(raw, str) else raw
    assert view["private_metadata"] == "checkout:1:us-east-1"
    form = json.dumps(view["blocks"], ensure_ascii=False)
    assert "*Partial rollback*: only us-east-1" in form and "eu-west-1 is NOT rolled back" in form

    sent = h.requester.submit_view(
        view, {"reason": "bad release in the US", "target": "", "window": ""}, user_id="U0ONCALL1"
    )
    assert sent.status_code == 200 and "errors" not in sent.text
    told = h.slack.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == "U0ONCALL1")
    assert "*Partial rollback*: only us-east-1" in told.params["text"]
    until(lambda: message_text(h, "Rollback request #1"), "the request message")
    (request,) = message_text(h, "Rollback request #1")
    assert "*Regions* *Partial rollback*: only us-east-1" in request
    assert "eu-west-1 is NOT rolled back" in request
    r = h.bot.deps.repo.get_rollback(1)
    assert r is not None and r.assessment_id == 1
    assert {s.region for s in h.bot.deps.repo.list_steps(1)} == {"us-east-1"}

    h.slash("approve 1", user_id="U0APPROVER1")
    until(lambda: h.bot.deps.repo.get_rollback(1).status == "succeeded", "the approved rollback")  # type: ignore[union-attr]
    h.wait_rollbacks()
    kube = two.client()
    assert kube.deployment(KubeTarget("us", NS), "checkout-api").images["app"] == "shop/checkout:v2"
    assert kube.deployment(KubeTarget("eu", NS), "checkout-api").images["app"] == "shop/checkout:v3"
    assert [w for w in two.writes("eu") if w[0] != "GET"] == []


def test_plan_form_whose_region_left_the_catalog_says_so(
    make_harness: Any, two: Clusters, prometheus: PrometheusSimulator
) -> None:
    failing(prometheus)
    text = catalog_yaml(region_yaml({"eu-west-1": "eu", "us-east-1": "us"}, signals=True))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two.client())
    view = ab.plan_modal("checkout", None, regions=["ap-south-1"])
    sent = h.requester.submit_view(
        view, {"reason": "x", "target": "", "window": ""}, user_id="U0ONCALL1"
    )
    assert "checkout has no region ap-south-1" in sent.json()["errors"]["reason"]
    assert h.bot.deps.repo.list_rollbacks() == []


def test_plan_form_checks_staleness_in_the_assessed_region_only(
    make_harness: Any, two: Clusters, prometheus: PrometheusSimulator
) -> None:
    failing(prometheus)
    text = catalog_yaml(region_yaml({"eu-west-1": "eu", "us-east-1": "us"}, signals=True))
    h: Harness = make_harness(text, prometheus_url=prometheus.url, kube=two.client())
    kube = two.client()
    kube.set_image(KubeTarget("eu", NS), "checkout-api", "app", "shop/checkout:v4")  # eu differs

    h.slash("assess checkout --region us-east-1")
    call = h.slack.wait_for("chat.postMessage", lambda c: "Assessment #" in str(c.params))
    (message,) = [m for m in h.slack.messages("C0DEPLOYS") if m["ts"] == call.response["ts"]]
    (plan,) = [
        e
        for b in message["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == "assessment_plan_rollback"
    ]
    h.requester.click(message, plan, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    raw = h.slack.wait_for("views.open").params["view"]  # eu's newer release is not us-east-1's
    view = json.loads(raw) if isinstance(raw, str) else raw
    assert view["private_metadata"] == "checkout:1:us-east-1"

    kube.set_image(KubeTarget("us", NS), "checkout-api", "app", "shop/checkout:v4")  # us moved on
    h.requester.click(message, plan, user_id="U0ONCALL1", channel_id="C0DEPLOYS")
    refused = h.slack.wait_for("response_url", lambda c: "Nothing was started" in str(c.params))
    assert "this assessment is about revision 3; checkout is now at revision 4" in str(
        refused.params
    )
    assert len(h.slack.calls_to("views.open")) == 1
