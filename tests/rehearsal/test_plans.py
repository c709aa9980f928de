"""A rehearsal's plan for each strategy, from a staging state read before it: the service's own
rollback pointed at staging with its writes pinned, then the roll-forward of what it changed in
reverse order — and the refusals when it would change nothing or cannot be rolled forward."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.catalog.load import Service, parse_catalog
from bot.catalog.spec import PlanStep
from bot.rehearsal.forward import ROLL_FORWARD, ROLL_FORWARD_PHASE, StagingState
from bot.rehearsal.plan import plan_rehearsal, rehearsal_of, rollback_steps
from bot.rollback.plan import StepSpec
from bot.rollback.safety import Refusal
from bot.sim.kube_api import KubeSimulator

CATALOG = textwrap.dedent(
    """\
    defaults:
      channel: C0DEPLOYS
      context: prod
      sla_minutes: 15
    services:
      web:
        namespace: shop
        deployment: web-blue
        strategy: blue-green
        health_url: http://web.prod/health
        signals: {error_rate: 'sum(rate(web_errors[5m]))'}
        responders: [U0ONCALL1]
        blue_green: {service: web, stable: blue, candidate: web-green}
        staging: {context: staging, namespace: shop-staging, health_url: 'http://web.staging/health'}
      board:
        namespace: shop
        deployment: board
        strategy: canary
        health_url: http://board.prod/health
        signals: {error_rate: 'sum(rate(board_errors[5m]))'}
        responders: [U0ONCALL1]
        canary: {deployment: board-canary, step_percent: 25, traffic: {name: board}}
        staging: {context: staging, namespace: shop-staging}
      mvp:
        namespace: shop
        deployment: mvp-api
        strategy: http
        responders: [U0ONCALL1]
        http_rollback: {url: 'http://deploy.prod/rollback', status_url: 'http://deploy.prod/status'}
        staging:
          context: staging
          http: {url: 'http://deploy.staging/rollback', status_url: 'http://deploy.staging/status',
                 forward_url: 'http://deploy.staging/forward', forward_method: PUT}
      cart:
        namespace: shop
        deployment: cart-api
        responders: [U0ONCALL1]
        staging: {context: staging, namespace: shop-staging, deployment: cart-staging}
        phases:
          preparation:
            - {kind: snapshot, objects: [[Deployment, cart-api]]}
          application:
            - {kind: set_image, deployment: cart-api, container: app, image: 'cart:v1'}
            - {kind: restart, deployment: cart-api}
            - {kind: wait_rollout, deployment: cart-api}
          verification:
            - {kind: http_check, url: 'http://cart.prod/health'}
            - {kind: prometheus_gate, query: 'cart_errors', below: 0.05}
    """
)
VS = "VirtualService/board"


def services() -> dict[str, Service]:
    return dict(parse_catalog(CATALOG).services)


def rows(steps: tuple[StepSpec, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """(phase, kind, params); a roll-forward step (marked in its params) as phase ``forward``."""
    return [
        (
            "forward" if s.params.get(ROLL_FORWARD) else s.phase,
            s.kind,
            {k: v for k, v in s.params.items() if k != ROLL_FORWARD},
        )
        for s in steps
    ]


COLOURS = {
    "web-blue": {"app": "web", "version": "blue"},
    "web-green": {"app": "web", "version": "green"},
}


def plan_of(name: str, state: StagingState) -> Any:
    svc = services()[name]
    twin = svc.staging_twin()
    assert twin is not None
    canary = twin.spec.canary.deployment if twin.spec.canary else None
    state = replace(state, labels=state.labels or COLOURS, canary=state.canary or canary)
    return rehearsal_of(svc.spec.strategy, twin, list(twin.plan().steps), state)


def test_blue_green_switches_to_stable_then_back_to_the_candidate_once_it_is_ready() -> None:
    state = StagingState(
        selectors={"web": {"app": "web", "version": "green"}}, replicas={"web-green": 3}
    )
    r = plan_of("web", state)
    kinds = [(phase, kind) for phase, kind, _ in rows(r.plan.steps)]
    assert kinds == [
        ("preparation", "snapshot"),
        ("preparation", "wait_rollout"),  # the stable colour has a ready pod
        ("stop_traffic", "switch_selector"),
        ("cleanup", "scale"),  # the rollback's own cleanup, in its own phase and place
        ("verification", "http_check"),
        ("forward", "scale"),
        ("forward", "wait_rollout"),  # the candidate is ready BEFORE traffic goes back to it
        ("forward", "switch_selector"),
        ("forward", "http_check"),
    ]
    p = [params for _, _, params in rows(r.plan.steps)]
    # the rollback, pinned to what staging had
    assert p[2] == {
        "service": "web",
        "selector": {"version": "blue"},
        "expect_selector": {"version": "green"},
    }
    assert p[3] == {"deployment": "web-green", "replicas": 0, "expect_replicas": 3}
    # the roll-forward, pinned to what the rollback set
    assert p[5] == {"deployment": "web-green", "replicas": 3, "expect_replicas": 0}
    assert p[6] == {"deployment": "web-green", "min_available": 1}
    assert p[7] == {
        "service": "web",
        "selector": {"version": "green"},
        "expect_selector": {"version": "blue"},
    }
    # staging's health URL only: production's is never checked, its Prometheus never asked
    assert p[4] == p[8] == {"url": "http://web.staging/health"}
    assert "http://web.prod/health" not in str(r.plan) and "web_errors" not in str(r.plan)
    assert r.changes == ("Service web version=green → version=blue", "web-green 3 → 0 replicas")
    assert r.plan.strategy == "blue-green" and r.undo is None


def test_blue_green_is_refused_when_staging_already_selects_the_stable_colour() -> None:
    state = StagingState(
        selectors={"web": {"app": "web", "version": "blue"}}, replicas={"web-green": 3}
    )
    with pytest.raises(Refusal, match="already selects version=blue") as refused:
        plan_of("web", state)
    assert "Deploy a candidate colour to staging first" in str(refused.value)


def test_a_candidate_with_no_replica_while_it_gets_the_traffic_is_refused() -> None:
    """The roll-forward would send traffic back to a colour without pods."""
    state = StagingState(
        selectors={"web": {"app": "web", "version": "green"}}, replicas={"web-green": 0}
    )
    with pytest.raises(Refusal) as refused:
        plan_of("web", state)
    assert str(refused.value).startswith(
        "web-green has 0 replicas in staging while Service web selects it"
        " (app=web,version=green): scale it up first"
    )


def test_a_canary_with_no_replica_while_it_gets_traffic_is_refused() -> None:
    with pytest.raises(Refusal, match="board-canary has 0 replicas in staging while"):
        plan_of("board", StagingState(weights={VS: 25}, replicas={"board-canary": 0}))


def test_a_switch_back_to_a_colour_the_plan_does_not_name_is_refused() -> None:
    state = StagingState(
        selectors={"web": {"app": "web", "version": "green"}},
        replicas={"web-green": 3},
        labels={"web-blue": COLOURS["web-blue"]},
    )
    with pytest.raises(Refusal, match="cannot tell which Deployment Service web sends traffic"):
        plan_of("web", state)


def test_steps_that_change_nothing_are_pinned_too() -> None:
    state = StagingState(
        selectors={"web": {"app": "web", "version": "green"}},
        replicas={"web-green": 3, "web-blue": 2},
    )
    svc = services()["web"]
    twin = svc.staging_twin()
    assert twin is not None
    steps = [*twin.plan().steps]
    steps.insert(1, replace(steps[4], params={"deployment": "web-blue", "replicas": 2}))
    r = rehearsal_of("blue-green", twin, steps, replace(state, labels=COLOURS))
    assert r.plan.steps[1].params == {"deployment": "web-blue", "replicas": 2, "expect_replicas": 2}


def test_canary_shifts_to_zero_without_the_production_gate_and_back_to_its_weight() -> None:
    state = StagingState(weights={VS: 25}, replicas={"board-canary": 1})
    r = plan_of("board", state)
    kinds = [(phase, kind) for phase, kind, _ in rows(r.plan.steps)]
    assert kinds == [
        ("preparation", "snapshot"),
        ("stop_traffic", "shift_traffic"),
        ("cleanup", "scale"),
        ("forward", "scale"),
        ("forward", "wait_rollout"),
        ("forward", "shift_traffic"),
    ]  # no staging health_url: no health check
    shift, back = r.plan.steps[1].params, r.plan.steps[5].params
    assert shift["to_percent"] == 0 and shift["expect_percent"] == 25
    assert shift["gate_query"] is None  # production's error rate never gates staging
    assert back["to_percent"] == 25 and back["expect_percent"] == 0
    assert back["step_percent"] == 100 and "gate_query" not in back
    assert rows(r.plan.steps)[4][2] == {"deployment": "board-canary", "min_available": 1}
    assert r.changes == ("VirtualService/board canary 25 % → 0 %", "board-canary 1 → 0 replicas")


def test_canary_is_refused_with_no_weight_on_the_canary() -> None:
    with pytest.raises(Refusal, match="sends 0 % to the canary already"):
        plan_of("board", StagingState(weights={VS: 0}, replicas={"board-canary": 1}))


def test_http_calls_the_staging_api_and_never_production_s() -> None:
    svc = services()["mvp"]
    twin = svc.staging_twin()
    assert twin is not None and twin.spec.http_rollback is not None
    assert twin.spec.http_rollback.url == "http://deploy.staging/rollback"
    r = plan_rehearsal(None, svc, twin, None)  # type: ignore[arg-type]  # reads no cluster
    assert [
        (s.phase, s.kind, s.params.get("url"), s.params.get("method")) for s in r.plan.steps
    ] == [
        ("application", "http_request", "http://deploy.staging/rollback", "POST"),
        ("verification", "http_check", "http://deploy.staging/status", None),
        ("cleanup", "http_request", "http://deploy.staging/forward", "PUT"),
        ("cleanup", "http_check", "http://deploy.staging/status", None),
    ]
    assert "deploy.prod" not in str(r.plan)


def test_custom_phases_run_in_staging_with_their_writes_rolled_forward() -> None:
    svc = services()["cart"]
    twin = svc.staging_twin()
    assert twin is not None
    state = StagingState(images={("cart-staging", "app"): "cart:v2"})
    r = rehearsal_of("undo", twin, rollback_steps(svc, twin), state)
    assert [(s.phase, s.kind, s.params.get("deployment")) for s in r.plan.steps] == [
        ("preparation", "snapshot", None),
        ("application", "set_image", "cart-staging"),
        ("application", "restart", "cart-staging"),
        ("application", "wait_rollout", "cart-staging"),
        ("cleanup", "set_image", "cart-staging"),
        ("cleanup", "wait_rollout", "cart-staging"),
    ]  # production's http_check and prometheus_gate are gone (no staging health_url here)
    assert r.plan.steps[0].params["objects"] == [["Deployment", "cart-staging"]]
    assert r.plan.steps[1].params["expect_image"] == "cart:v2"
    assert rows(r.plan.steps)[4][2] == {
        "deployment": "cart-staging",
        "container": "app",
        "image": "cart:v2",
        "expect_image": "cart:v1",
    }
    assert r.notes == ("Restart: a restart changes no release, nothing to roll forward",)


def test_custom_phases_that_change_nothing_are_refused() -> None:
    svc = services()["cart"]
    twin = svc.staging_twin()
    assert twin is not None
    state = StagingState(images={("cart-staging", "app"): "cart:v1"})
    with pytest.raises(Refusal, match="rolling back would change nothing in staging"):
        rehearsal_of("undo", twin, rollback_steps(svc, twin), state)


def test_to_applies_only_to_a_rollout_undo() -> None:
    svc = services()["web"]
    twin = svc.staging_twin()
    assert twin is not None
    with pytest.raises(Refusal, match="`--to` picks the revision a rollout undo goes back to"):
        plan_rehearsal(None, svc, twin, "3")  # type: ignore[arg-type]  # refused before reading


def test_a_step_that_cannot_be_rolled_forward_refuses_the_rehearsal() -> None:
    svc = services()["cart"]
    assert svc.spec.phases is not None
    job = PlanStep.model_validate({"kind": "http_request", "url": "http://deploy/rollback"})
    phases = {**svc.spec.phases, "database": [job]}
    svc = replace(svc, spec=svc.spec.model_copy(update={"phases": phases}))
    twin = svc.staging_twin()
    assert twin is not None
    with pytest.raises(Refusal, match="step http_request cannot be rolled forward") as refused:
        plan_rehearsal(None, svc, twin, None)  # type: ignore[arg-type]  # refused before reading
    assert "(phase database). Remove that step from cart's phases:" in str(refused.value)


def test_custom_phases_keep_the_production_order_and_phases_in_staging() -> None:
    text = CATALOG + textwrap.indent(
        textwrap.dedent(
            """\
            bg:
              namespace: shop
              deployment: web-blue
              responders: [U0ONCALL1]
              staging: {context: staging, namespace: shop-staging}
              phases:
                preparation:
                  - {kind: scale, deployment: web-blue, replicas: 3}
                  - {kind: wait_rollout, deployment: web-blue, min_available: 1}
                traffic_restoration:
                  - {kind: switch_selector, service: web, selector: {version: blue}}
                verification:
                  - {kind: manual_gate, prompt: 'blue serving fine?'}
                cleanup:
                  - {kind: scale, deployment: web-green, replicas: 0}
            """
        ),
        "  ",
    )
    svc = parse_catalog(text).services["bg"]
    twin = svc.staging_twin()
    assert twin is not None
    state = StagingState(
        selectors={"web": {"app": "web", "version": "green"}},
        replicas={"web-blue": 0, "web-green": 3},
        labels=COLOURS,
    )
    r = rehearsal_of("undo", twin, rollback_steps(svc, twin), state)
    assert [(phase, kind) for phase, kind, _ in rows(r.plan.steps)] == [
        ("preparation", "scale"),
        ("preparation", "wait_rollout"),
        ("traffic_restoration", "switch_selector"),
        ("verification", "manual_gate"),
        ("cleanup", "scale"),  # green goes to 0 only after the switch to blue, as in production
        ("forward", "scale"),
        ("forward", "wait_rollout"),
        ("forward", "switch_selector"),
        ("forward", "scale"),
    ]
    assert all(s.phase == ROLL_FORWARD_PHASE for s in r.plan.steps[5:])  # shown as cleanup


TWO_UNDOS = textwrap.dedent(
    """\
    defaults: {channel: C0DEPLOYS, sla_minutes: 15}
    services:
      shop:
        namespace: shop
        deployment: api
        responders: [U0ONCALL1]
        staging: {namespace: shop-staging}
        phases:
          application:
            - {kind: rollout_undo, deployment: api}
            - {kind: rollout_undo, deployment: worker}
    """
)


def test_two_undos_are_each_pinned_to_their_own_deployment() -> None:
    svc = parse_catalog(TWO_UNDOS).services["shop"]
    twin = svc.staging_twin()
    assert twin is not None
    with KubeSimulator() as sim:
        sim.seed_deployment("shop-staging", "api", images=["api:1", "api:2"])
        sim.seed_deployment("shop-staging", "worker", images=["w:1", "w:2", "w:3"])
        kube = KubernetesClient(api_client_for=lambda c: sim.api_client(), sleep=lambda s: None)
        r = plan_rehearsal(kube, svc, twin, None)
    undos = [
        (ph, p["deployment"], p["to_revision"])
        for ph, k, p in rows(r.plan.steps)
        if k == "rollout_undo"
    ]
    assert undos == [
        ("application", "api", 1),
        ("application", "worker", 2),
        ("forward", "worker", 3),
        ("forward", "api", 2),
    ]
    assert r.changes == ("api revision 2 (api:2) → 1", "worker revision 3 (w:3) → 2")
    assert "api revision 2 (api:2) → 1; worker revision 3 (w:3) → 2" in r.what


def test_a_plan_writing_the_same_thing_twice_is_refused() -> None:
    svc = services()["cart"]
    assert svc.spec.phases is not None
    again = PlanStep.model_validate(
        {"kind": "set_image", "deployment": "cart-api", "container": "app", "image": "cart:v0"}
    )
    phases = {**svc.spec.phases, "cleanup": [again]}
    svc = replace(svc, spec=svc.spec.model_copy(update={"phases": phases}))
    twin = svc.staging_twin()
    assert twin is not None
    state = StagingState(images={("cart-staging", "app"): "cart:v2"})
    with pytest.raises(Refusal) as refused:
        rehearsal_of("undo", twin, rollback_steps(svc, twin), state)
    assert "writes the pod template of deployment cart-staging again after" in str(refused.value)
    assert "Rehearse a plan that writes it once" in str(refused.value)


def test_a_snapshot_renames_only_the_deployment() -> None:
    svc = services()["cart"]
    assert svc.spec.phases is not None
    snap = PlanStep.model_validate(
        {"kind": "snapshot", "objects": [["Deployment", "cart-api"], ["Service", "cart-api"]]}
    )
    phases = {**svc.spec.phases, "preparation": [snap]}
    svc = replace(svc, spec=svc.spec.model_copy(update={"phases": phases}))
    twin = svc.staging_twin()
    assert twin is not None
    (first, *_) = rollback_steps(svc, twin)
    assert first.params["objects"] == [["Deployment", "cart-staging"], ["Service", "cart-api"]]
