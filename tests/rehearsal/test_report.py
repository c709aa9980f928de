"""The rehearsal report: timings against the SLA, a failure said with its step and what staging
runs now — from a real failed rehearsal (the staging rollout never becomes ready) and from rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import parse_catalog
from bot.rehearsal.report import (
    report_text,
    seconds_text,
    sla_verdict,
    started_from,
    timings,
    undos_back,
    undos_of,
)
from bot.sim.kube_api import KubeSimulator
from storage.models import Rollback, RollbackStep
from tests.conftest import Harness, catalog_yaml, service_yaml
from tests.rehearsal.test_durable import SimClock, until
from tests.rehearsal.test_plans import TWO_UNDOS

T0 = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
UNDO = {
    "deployment": "checkout-api",
    "from_revision": 3,
    "to_revision": 2,
    "images_before": {"app": "shop/checkout:v3"},
    "images_after": {"app": "shop/checkout:v2"},
}


def step(
    position: int, phase: str, kind: str, start: float, end: float | None, **kw: Any
) -> RollbackStep:
    return RollbackStep(
        rollback_id=1,
        phase=phase,
        position=position,
        name=kw.pop("name", kind),
        kind=kind,
        status=kw.pop("status", "succeeded"),
        started_at=T0 + timedelta(seconds=start),
        finished_at=T0 + timedelta(seconds=end) if end is not None else None,
        detail=kw.pop("detail", {}),
    )


def rehearsal(status: str) -> Rollback:
    return Rollback(
        id=1,
        service="checkout@staging",
        status=status,
        kind="rehearsal",
        strategy="undo",
        requested_by="U0ONCALL1",
        created_at=T0,
    )


def test_a_slow_rollback_is_said_to_breach_the_sla() -> None:
    steps = [
        step(0, "preparation", "snapshot", 0, 1),
        step(1, "application", "rollout_undo", 1, 2, detail={"undo": UNDO}),
        step(2, "application", "wait_rollout", 2, 961),
        step(3, "cleanup", "rollout_undo", 961, 962),
        step(4, "cleanup", "wait_rollout", 962, 1000),
    ]
    t = timings(steps)
    assert (t.rollback, t.roll_forward) == (961.0, 39.0)
    text = report_text(
        rehearsal("succeeded"), steps, t, sla_minutes=15, state="checkout-api: …", is_back=True
    )
    assert "Rehearsal #1 of checkout in staging succeeded* — asked by <@U0ONCALL1>" in text
    assert (
        "Rollback from revision 3 (checkout:v3) to 2 (checkout:v2), verified: 16 min 01 s" in text
    )
    assert "*over the 15 min SLA* (107 % of it): a production rollback this slow" in text
    assert "Roll-forward to revision 3, verified: 39 s." in text
    assert "not* back" not in text


def test_sla_words() -> None:
    assert sla_verdict(42, 15) == "within the 15 min SLA (5 % of it)"
    assert sla_verdict(3, 15) == "within the 15 min SLA (under 1 % of it)"
    assert seconds_text(61.4) == "1 min 01 s" and seconds_text(0.4) == "0 s"


def test_a_failed_rehearsal_says_where_it_stopped_and_that_staging_is_not_back(
    make_harness: Any,
) -> None:
    clock = SimClock()
    with KubeSimulator(clock=clock) as staging, KubeSimulator() as prod:
        staging.seed_deployment(
            "shop",
            "checkout-api",
            images=["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"],
        )
        staging.set_never_ready("shop", "checkout-api", image="shop/checkout:v2")
        clusters = {"staging": staging, "prod": prod}
        kube = KubernetesClient(api_client_for=lambda c: clusters[str(c)].api_client())
        h: Harness = make_harness(
            catalog_yaml(
                service_yaml("checkout", None, context="prod", staging="{context: staging}")
            ),
            prometheus_url=None,
            kube=kube,
        )
        assert "Rehearsal #1" in h.slash("drill checkout --rehearse").json()["text"]
        staging.wait_for_request("PATCH", "/deployments/checkout-api")
        clock.offset += 700  # past the deployment's progressDeadlineSeconds
        staging.tick()
        until(
            lambda: bool(h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")), "the report"
        )
        (reported,) = h.bot.deps.repo.list_audit_events(kind="rehearsal.reported")
        assert reported.detail["status"] == "failed"
        assert reported.detail["is_back_at_start"] is False
        (post,) = [
            c.params["text"]
            for c in h.slack.calls_to("chat.postMessage")
            if "Production was not touched" in str(c.params.get("text"))
        ]
        assert "Rehearsal #1 of checkout in staging failed" in post
        assert "Stopped at *Wait for the rollback to roll out*:" in post
        assert 'deployment "checkout-api" exceeded its progress deadline' in post
        assert "Rollback from revision 3 (checkout:v3) to 2 (checkout:v2): did not finish" in post
        assert "Roll-forward to revision 3: did not run." in post
        assert "Staging now: checkout-api: revision 4 (app=shop/checkout:v2) 0/3 available" in post
        assert "Staging is *not* back at revision 3 (checkout:v3)" in post
        assert "`kubectl --context staging -n shop rollout undo deployment/checkout-api" in post
        assert "--to-revision=3`" in post
        assert prod.requests == []
        assert h.bot.deps.repo.list_pages(1) == []  # a failed rehearsal is no incident


def test_the_rollback_s_own_cleanup_counts_in_the_rollback_not_the_roll_forward() -> None:
    forward = {"params": {"roll_forward": True}}
    steps = [
        step(0, "stop_traffic", "switch_selector", 0, 1),
        step(1, "cleanup", "scale", 1, 5),  # the rollback's own cleanup: green to 0
        step(2, "verification", "http_check", 5, 6),
        step(3, "cleanup", "scale", 6, 7, detail=forward),
        step(4, "cleanup", "wait_rollout", 7, 20, detail=forward),
        step(5, "cleanup", "switch_selector", 20, 21, detail=forward),
    ]
    t = timings(steps)
    assert (t.rollback, t.roll_forward) == (6.0, 15.0)


def test_a_rehearsal_stored_before_the_roll_forward_marker_reads_as_before() -> None:
    steps = [  # then, the rollback's cleanup was stored as application, the roll-forward cleanup
        step(0, "application", "rollout_undo", 0, 2, detail={"undo": UNDO}),
        step(1, "cleanup", "rollout_undo", 2, 3, detail={"undo": {"from_revision": 9}}),
        step(2, "cleanup", "wait_rollout", 3, 10),
    ]
    t = timings(steps)
    assert (t.rollback, t.roll_forward) == (2.0, 8.0)
    assert started_from(steps) == UNDO


def test_every_undo_is_checked_on_its_own_deployment() -> None:
    """Two undos (api, worker): api is back, worker is not. The report names worker's command,
    never a rollout undo of the service's own deployment."""
    twin = parse_catalog(TWO_UNDOS).services["shop"].staging_twin()
    assert twin is not None
    api = {**UNDO, "deployment": "api", "images_before": {"app": "api:2"}, "from_revision": 2}
    worker = {**UNDO, "deployment": "worker", "images_before": {"app": "w:3"}, "from_revision": 3}
    steps = [
        step(0, "application", "rollout_undo", 0, 1, detail={"undo": api, "params": {}}),
        step(1, "application", "rollout_undo", 1, 2, detail={"undo": worker, "params": {}}),
        step(2, "cleanup", "rollout_undo", 2, 3, detail={"params": {"roll_forward": True}}),
        step(
            3,
            "cleanup",
            "rollout_undo",
            3,
            None,
            status="failed",
            detail={"params": {"roll_forward": True}},
        ),
    ]
    assert undos_of(steps) == [api, worker]
    with KubeSimulator() as sim:
        sim.seed_deployment("shop-staging", "api", images=["api:1", "api:2"])
        sim.seed_deployment("shop-staging", "worker", images=["w:1", "w:2"])  # not back at w:3
        kube = KubernetesClient(api_client_for=lambda c: sim.api_client(), sleep=lambda s: None)
        is_back, not_back = undos_back(kube, twin, undos_of(steps))
    assert (is_back, not_back) == (False, [worker])
    text = report_text(
        rehearsal("failed"),
        steps,
        timings(steps),
        sla_minutes=15,
        state=None,
        is_back=is_back,
        twin=twin,
        not_back=not_back,
    )
    assert "rollout undo deployment/worker` --to-revision=3" not in text  # one backtick pair
    assert "rollout undo deployment/worker --to-revision=3`" in text
    assert "deployment/api" not in text


def test_what_staging_now_could_not_read_is_said() -> None:
    steps = [step(0, "stop_traffic", "switch_selector", 0, 1)]
    text = report_text(
        rehearsal("succeeded"),
        steps,
        timings(steps),
        sla_minutes=15,
        state=None,
        is_back=None,
        unread=['Switch web back to version=green: services "web" not found'],
    )
    assert (
        ':grey_question: Could not check Switch web back to version=green: services "web" not'
        " found: check it by hand before the next deploy or test relies on it."
    ) in text
