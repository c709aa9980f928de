"""``workload: {kind: Rollout}`` in rollback.yaml: what check-config accepts, what it refuses
(with file:line), and the plan a Rollout service gets."""

from __future__ import annotations

import pytest

from bot.catalog.load import parse_catalog
from bot.catalog.yaml_lines import CatalogError

HEAD = "defaults:\n  channel: C0DEPLOYS\nservices:\n  checkout:\n    deployment: checkout-api\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "rollback.yaml")
    return caught.value.errors


def line_of(text: str, marker: str) -> int:
    (line,) = [n for n, ln in enumerate(text.splitlines(), 1) if marker in ln]
    return line


def test_the_default_workload_is_a_deployment() -> None:
    service = parse_catalog(HEAD).services["checkout"]
    assert service.workload_kind == "Deployment"
    assert [s.kind for s in service.plan().steps] == ["snapshot", "rollout_undo", "wait_rollout"]


def test_a_rollout_service_gets_abort_undo_and_wait() -> None:
    service = parse_catalog(HEAD + "    workload: {kind: Rollout}\n").services["checkout"]
    assert service.workload_kind == "Rollout"
    plan = service.plan()
    assert [(s.phase, s.kind) for s in plan.steps] == [
        ("preparation", "snapshot"),
        ("stop_traffic", "rollout_abort"),
        ("application", "rollout_undo"),
        ("application", "wait_rollout"),
    ]
    assert plan.steps[0].params["objects"] == [["Rollout", "checkout-api", "argoproj.io/v1alpha1"]]


@pytest.mark.parametrize("strategy", ["blue-green", "canary"])
def test_the_bots_blue_green_and_canary_do_not_apply_to_a_rollout(strategy: str) -> None:
    section = {
        "blue-green": "    blue_green: {service: web, stable: blue, candidate: web-green}\n",
        "canary": "    canary: {deployment: c, traffic: {name: vs}}\n",
    }[strategy]
    text = HEAD + "    workload: {kind: Rollout}\n" + f"    strategy: {strategy}\n" + section
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{line_of(text, 'strategy:')}: services.checkout:")
    assert f"strategy {strategy} does not apply to an Argo Rollout" in error
    assert "Use strategy undo" in error and "or http" in error


def test_http_and_phases_are_accepted_for_a_rollout() -> None:
    http = "    strategy: http\n    http_rollback: {url: 'https://deploy.example/rollback'}\n"
    parse_catalog(HEAD + "    workload: {kind: Rollout}\n" + http)
    phases = (
        "    workload: {kind: Rollout}\n    phases:\n      stop_traffic:\n"
        "        - {kind: rollout_abort}\n      application:\n        - {kind: wait_rollout}\n"
    )
    plan = parse_catalog(HEAD + phases).services["checkout"].plan()
    assert [s.kind for s in plan.steps] == ["rollout_abort", "wait_rollout"]


def test_rollout_abort_needs_a_rollout() -> None:
    text = HEAD + "    phases:\n      stop_traffic:\n        - {kind: rollout_abort}\n"
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{line_of(text, 'rollout_abort')}:")
    assert "needs workload: {kind: Rollout}" in error


def test_a_deployment_step_on_a_rollout_must_name_its_deployment() -> None:
    text = HEAD + (
        "    workload: {kind: Rollout}\n    phases:\n      application:\n"
        "        - {kind: set_image, container: app, image: 'x:1'}\n"
        "        - {kind: scale, deployment: worker, replicas: 0}\n"
    )
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{line_of(text, 'set_image')}:")
    assert "set_image patches an apps/v1 Deployment" in error


def test_an_unknown_workload_kind_is_an_error_with_its_line() -> None:
    text = HEAD + "    workload: {kind: StatefulSet}\n"
    (error,) = errors_of(text)
    assert error.startswith(f"rollback.yaml:{line_of(text, 'workload')}:")
    assert "Deployment" in error and "Rollout" in error
