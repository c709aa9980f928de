"""Plans: built-in plans per strategy, catalog plans, the point of no return."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.catalog.load import PlanError, load_catalog, parse_catalog
from bot.catalog.spec import ServiceSpec
from bot.catalog.yaml_lines import CatalogError
from bot.rollback.plan import DEFAULT_STEP_TIMEOUT_SECONDS, PHASES, STEP_RULES, custom_plan

EXAMPLE = Path(__file__).parents[2] / "rollback.example.yaml"
HEAD = "defaults:\n  channel: C0DEPLOYS\nservices:\n  svc:\n    deployment: svc-api\n"


def kinds(service: str) -> list[tuple[str, str]]:
    plan = load_catalog(EXAMPLE).services[service].plan()
    return [(s.phase, s.kind) for s in plan.steps]


def test_undo_plan_snapshots_undoes_waits_and_verifies() -> None:
    assert kinds("checkout") == [
        ("preparation", "snapshot"),
        ("application", "rollout_undo"),
        ("application", "wait_rollout"),
        ("verification", "http_check"),
        ("verification", "prometheus_gate"),
    ]


def test_undo_to_a_revision_names_it() -> None:
    plan = load_catalog(EXAMPLE).services["search"].plan("41")
    undo = plan.steps[1]
    assert undo.params["to_revision"] == "41"
    assert "revision 41" in undo.name


def test_blue_green_switches_the_selector_then_scales_the_candidate_down() -> None:
    plan = load_catalog(EXAMPLE).services["storefront"].plan()
    switch = next(s for s in plan.steps if s.kind == "switch_selector")
    assert switch.params == {"service": "storefront", "selector": {"version": "blue"}}
    assert [s.kind for s in plan.steps][-1] == "scale"
    assert plan.steps[-1].params == {"deployment": "storefront-green", "replicas": 0}


def test_blue_green_requires_pods_in_the_stable_colour_before_switching() -> None:
    """kubectl counts 0 replicas as rolled out: the readiness check asks for an available pod."""
    plan = load_catalog(EXAMPLE).services["storefront"].plan()
    kinds = [s.kind for s in plan.steps]
    ready = plan.steps[kinds.index("wait_rollout")]
    assert kinds.index("wait_rollout") < kinds.index("switch_selector")
    assert ready.params == {"deployment": "storefront-blue", "min_available": 1}


def test_a_catalog_plan_may_ask_a_rollout_for_available_pods() -> None:
    catalog = parse_catalog(
        HEAD + "    phases:\n      application:\n"
        "        - {kind: wait_rollout, deployment: svc-api, min_available: 2}\n"
    )
    (wait,) = catalog.services["svc"].plan().steps
    assert wait.params == {"deployment": "svc-api", "min_available": 2}


def test_canary_shifts_traffic_with_a_gate_then_scales_the_canary_down() -> None:
    plan = load_catalog(EXAMPLE).services["boardroom"].plan()
    shift = next(s for s in plan.steps if s.kind == "shift_traffic")
    assert shift.params["to_percent"] == 0 and shift.params["step_percent"] == 25
    assert shift.params["gate_query"] and shift.params["gate_below"] == 0.05
    assert (plan.steps[-1].kind, plan.steps[-1].params["replicas"]) == ("scale", 0)


def test_http_strategy_calls_the_rollback_endpoint() -> None:
    assert kinds("mvp") == [("application", "http_request"), ("verification", "http_check")]


def test_custom_phases_run_in_runbook_order_and_mark_the_point_of_no_return() -> None:
    plan = load_catalog(EXAMPLE).services["billing"].plan()
    order = [PHASES.index(s.phase) for s in plan.steps]
    assert order == sorted(order)
    assert plan.point_of_no_return is not None
    assert plan.point_of_no_return.name == "Downgrade schema to v2.0.5"
    assert plan.point_of_no_return.timeout_seconds == 900


def test_strategy_without_its_section_is_an_error_and_a_clear_refusal() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(HEAD + "    strategy: blue-green\n")
    assert caught.value.errors == [
        "rollback.yaml:6: services.svc: strategy blue-green needs a blue_green: section"
        " (or phases:), see rollback.example.yaml"
    ]
    # a Service built past the catalog check (e.g. in code) is still refused at plan time
    spec = ServiceSpec(deployment="svc-api", strategy="blue-green")
    service = replace(parse_catalog(HEAD).services["svc"], spec=spec)
    with pytest.raises(PlanError, match="no blue_green: section"):
        service.plan()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{kind: teleport}", "unknown step kind 'teleport'"),
        ("{kind: scale}", "step kind 'scale' needs replicas"),
        ("{kind: wait, seconds: 1, minutes: 2}", "step kind 'wait' does not take minutes"),
    ],
)
def test_catalog_steps_are_checked(step: str, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(HEAD + f"    phases:\n      cleanup:\n        - {step}\n")
    (error,) = caught.value.errors
    assert error.startswith("rollback.yaml:8: services.svc.phases.cleanup.0")
    assert message in error


def test_a_catalog_step_without_name_or_timeout_takes_its_kinds_rules() -> None:
    plan = custom_plan(
        "custom",
        {
            "database": [{"kind": "run_job", "job": {}}],
            "application": [{"kind": "manual_gate"}, {"kind": "wait", "seconds": 5}],
        },
    )
    assert [(s.name, s.timeout_seconds) for s in plan.steps] == [
        ("Run a Job", 1800.0),
        ("Manual gate", 3600.0),
        ("Wait", DEFAULT_STEP_TIMEOUT_SECONDS),
    ]
    assert STEP_RULES["wait"].required == {"seconds"}
