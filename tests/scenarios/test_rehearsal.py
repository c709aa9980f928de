"""Rehearsals over signed HTTP: ``/rollback drill checkout --rehearse`` rolls the staging
deployment back and forward through the real app, engine and Kubernetes client, with production
and staging served by two Kubernetes simulators (two contexts) — and production never asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.sim.kube_api import KubeSimulator
from bot.sim.prometheus_api import PrometheusSimulator
from tests.conftest import Harness, catalog_yaml, service_yaml, set_service_values
from tests.scenarios.test_approval_flow import settle

IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]
STAGING = KubeTarget("staging", "shop-staging")
PROD = KubeTarget("prod", "shop")


@pytest.fixture
def prod_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop", "checkout-api", images=IMAGES)
        yield sim


@pytest.fixture
def staging_sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop-staging", "checkout-api", images=IMAGES)
        yield sim


@pytest.fixture
def kube(prod_sim: KubeSimulator, staging_sim: KubeSimulator) -> KubernetesClient:
    clusters = {"prod": prod_sim, "staging": staging_sim}
    return KubernetesClient(
        api_client_for=lambda context: clusters[str(context)].api_client(), sleep=lambda s: None
    )


def checkout(prometheus: PrometheusSimulator, staging: str | None) -> str:
    extra: dict[str, Any] = {"context": "prod"}
    if staging is not None:
        extra["staging"] = staging
    text = service_yaml("checkout", None, **extra)
    return text.replace("    responders: [U0ONCALL1]", "    responders: [U0ONCALL1]\n" + ONCALL)


ONCALL = "    oncall:\n      - {name: Primary, phone: '+15550100001'}"


def staging_block(prometheus: PrometheusSimulator) -> str:
    health = prometheus.health_url("checkout-staging")
    return f"{{context: staging, namespace: shop-staging, health_url: '{health}'}}"


@pytest.fixture
def h(make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator) -> Harness:
    # production's own rollbacks pass their verification gate (the error rate is low)
    set_service_values(prometheus, "checkout", error_rate=0.001, latency=6, sessions=30, db_up=0)
    text = catalog_yaml(checkout(prometheus, staging_block(prometheus)))
    harness: Harness = make_harness(text, prometheus_url=prometheus.url, kube=kube)
    return harness


def report(h: Harness, timeout: float = 10.0) -> dict[str, Any]:
    """The rehearsal report in the service channel (it is due work after the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in h.slack.calls_to("chat.postMessage"):
            if "Production was not touched" in str(call.params.get("text", "")):
                return dict(call.params)
        time.sleep(0.05)
    raise AssertionError("no rehearsal report was posted")


def test_a_rehearsal_rolls_staging_back_and_forward_and_never_asks_production(
    h: Harness, kube: KubernetesClient, prod_sim: KubeSimulator, staging_sim: KubeSimulator
) -> None:
    answer = h.slash("drill checkout --rehearse weekly staging test").json()["text"]

    assert "Rehearsal #1 of *checkout* started in staging" in answer
    assert "context staging, namespace shop-staging, deployment checkout-api" in answer
    assert "revision 3 (checkout:v3) back to 2 (checkout:v2) and forward again" in answer
    settle(h)
    posted = report(h)
    rollback = h.bot.deps.repo.get_rollback(1)
    assert rollback is not None
    assert (rollback.service, rollback.kind, rollback.status) == (
        "checkout@staging",
        "rehearsal",
        "succeeded",
    )
    # staging went back to v2 (revision 4), then forward to v3 again (revision 5)
    staging_now = kube.deployment(STAGING, "checkout-api")
    assert (staging_now.revision, staging_now.images) == (5, {"app": "shop/checkout:v3"})
    history = [(r.number, r.images["app"]) for r in kube.history(STAGING, "checkout-api")]
    assert history == [(1, "shop/checkout:v1"), (4, "shop/checkout:v2"), (5, "shop/checkout:v3")]
    writes = [(m, p) for m, p, _, _ in staging_sim.writes]
    assert [m for m, _ in writes] == ["PATCH", "PATCH"]  # the undo and the roll-forward
    assert all("/namespaces/shop-staging/" in p for _, p in writes)
    # production: not one request, and unchanged
    assert prod_sim.requests == []
    prod_now = kube.deployment(PROD, "checkout-api")
    assert (prod_now.revision, prod_now.images) == (3, {"app": "shop/checkout:v3"})
    # the report: timings against the SLA, staging back where it started
    text = posted["text"]
    assert "Rehearsal #1 of checkout in staging succeeded" in text
    assert "Rollback from revision 3 (checkout:v3) to 2 (checkout:v2), verified:" in text
    assert "within the 15 min SLA" in text
    assert "Roll-forward to revision 3, verified:" in text
    assert "Production was not touched." in text
    assert posted["channel"] == "C0DEPLOYS" and posted.get("reply_broadcast") is True
    # the progress message (one, edited in place) says what it is, and the review command too
    progress = [m for m in h.slack.messages("C0DEPLOYS") if m.get("ts") == rollback.progress_ts]
    assert progress[0]["text"].startswith("Rehearsal #1 of checkout@staging — SUCCEEDED")
    review = h.slash("review 1").json()["text"]
    assert "#1 is a rehearsal in staging: it has no review" in review
    (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
    assert reported.detail["is_within_sla"] is True and reported.detail["is_back_at_start"] is True
    assert reported.service == "checkout@staging"
    (started,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.started")
    assert started.actor == "U0ONCALL1" and started.detail["to_revision"] == 2


def test_a_rehearsal_pages_nobody_and_leaves_production_rollbacks_alone(
    h: Harness, kube: KubernetesClient, prod_sim: KubeSimulator
) -> None:
    assert "Rehearsal #1" in h.slash("drill checkout --rehearse").json()["text"]
    settle(h)
    report(h)
    assert h.bot.deps.repo.list_pages(1) == []  # no page, no critical notice, no review
    assert h.bot.deps.repo.get_review(1) is None
    assert not [c for c in h.slack.calls_to("chat.postMessage") if "CRITICAL" in str(c.params)]
    # production's own rollback is neither blocked by the rehearsal's row nor refused because
    # the rehearsal's roll-forward "moved away" from v2 (the same template as production's v2):
    # mixed into production's history, that undo would be refused as a flip-flop
    answer = h.slash("run checkout --immediate v3 is broken").json()["text"]
    assert "Rollback #2 of *checkout* started" in answer
    settle(h)
    assert kube.deployment(PROD, "checkout-api").images == {"app": "shop/checkout:v2"}
    metrics = h.bot.deps.metrics.exposition().decode()
    assert 'kind="rehearsal"' not in metrics
    assert "checkout@staging" not in metrics


def test_one_rehearsal_at_a_time_but_production_is_free_meanwhile(
    h: Harness, kube: KubernetesClient, staging_sim: KubeSimulator
) -> None:
    staging_sim.set_ready_delay(30)  # the staging rollout takes its time
    assert "Rehearsal #1" in h.slash("drill checkout --rehearse").json()["text"]
    staging_sim.wait_for_request("PATCH", "/namespaces/shop-staging/deployments/checkout-api")

    again = h.slash("drill checkout --rehearse").json()["text"]
    assert "A rehearsal of *checkout* is already running in staging: #1" in again
    production = h.slash("run checkout --immediate v3 is broken").json()["text"]
    assert "Rollback #2 of *checkout* started" in production

    h.slash("abort 1 enough")
    settle(h)
    rehearsal = h.bot.deps.repo.get_rollback(1)
    assert rehearsal is not None and rehearsal.status == "aborted"
    text = report(h)["text"]
    assert "Rehearsal #1 of checkout in staging aborted" in text
    assert "Roll-forward to revision 3: did not run." in text
    assert "Staging is *not* back at revision 3" in text


def test_next_week_s_rehearsal_runs_again(h: Harness, kube: KubernetesClient) -> None:
    for number in (1, 2):
        answer = h.slash("drill checkout --rehearse").json()["text"]
        assert f"Rehearsal #{number} of *checkout* started in staging" in answer
        settle(h)
        assert h.bot.deps.repo.get_rollback(number).status == "succeeded"  # type: ignore[union-attr]
    # v3 (5) → v2 (6) → v3 (7): the second went back to v2, which the first had moved away from
    now = kube.deployment(STAGING, "checkout-api")
    assert (now.revision, now.images) == (7, {"app": "shop/checkout:v3"})


def test_refused_without_a_staging_target(
    make_harness: Any, kube: KubernetesClient, prometheus: PrometheusSimulator
) -> None:
    h: Harness = make_harness(
        catalog_yaml(checkout(prometheus, None)), prometheus_url=prometheus.url, kube=kube
    )
    answer = h.slash("drill checkout --rehearse").json()["text"]
    assert "*checkout* has no `staging:` target in the catalog" in answer
    assert "a rehearsal never touches production" in answer
    assert h.bot.deps.repo.list_rollbacks() == []
    (refused,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.refused")
    assert refused.detail["why"] == "no staging: target in the catalog"


def test_only_responders_rehearse(h: Harness, staging_sim: KubeSimulator) -> None:
    answer = h.slash("drill checkout --rehearse", user_id="U0APPROVER1").json()["text"]
    assert "Only responders of *checkout* may rehearse" in answer
    assert h.bot.deps.repo.list_rollbacks() == []
    assert staging_sim.writes == []


def test_to_chooses_the_revision_rehearsed(h: Harness, kube: KubernetesClient) -> None:
    answer = h.slash("drill checkout --rehearse --to checkout:v1").json()["text"]
    assert "revision 3 (checkout:v3) back to 1 (checkout:v1)" in answer
    settle(h)
    assert "to 1 (checkout:v1), verified" in report(h)["text"]
    assert kube.deployment(STAGING, "checkout-api").images == {"app": "shop/checkout:v3"}
    unknown = h.slash("drill checkout --rehearse --to 9").json()["text"]
    assert "No rehearsal of *checkout* was started" in unknown
    assert "no revision 9" in unknown


def test_drill_without_rehearse_is_the_readiness_drill_and_rolls_nothing_back(
    h: Harness, staging_sim: KubeSimulator
) -> None:
    answer = h.slash("drill checkout").json()["text"]
    assert "Readiness drill of *checkout*" in answer and "nothing will be changed" in answer
    assert h.bot.deps.repo.list_rollbacks() == [] and staging_sim.writes == []


def test_a_staging_target_that_cannot_be_read_is_refused_with_the_reason(
    make_harness: Any,
    kube: KubernetesClient,
    prometheus: PrometheusSimulator,
    staging_sim: KubeSimulator,
) -> None:
    block = "{context: staging, namespace: shop-staging, deployment: missing-api}"
    h: Harness = make_harness(
        catalog_yaml(checkout(prometheus, block)), prometheus_url=prometheus.url, kube=kube
    )
    answer = h.slash("drill checkout --rehearse").json()["text"]
    assert "No rehearsal of *checkout* was started: cannot plan the rollback in staging" in answer
    assert "deployment missing-api" in answer and "not found" in answer
    assert "Nothing was changed." in answer
    assert h.bot.deps.repo.list_rollbacks() == [] and staging_sim.writes == []
