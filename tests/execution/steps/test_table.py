"""The table of step kinds is complete: every kind the catalog accepts has its rules, a run and
a dry-run description, and that description says what the step would do (not just its kind)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import parse_catalog
from bot.execution.steps.base import DryRun
from bot.execution.steps.table import STEPS
from bot.rollback.plan import STEP_KINDS, STEP_RULES, StepSpec, step
from bot.sim.kube_api import KubeSimulator
from tests.conftest import catalog_yaml, service_yaml
from tests.execution.steps.conftest import TRAFFIC, create_virtual_service

NS = "shop"
JOB = {
    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}
}
# Parameters for one step of every kind, as a catalog plan would give them.
SAMPLES: dict[str, dict[str, Any]] = {
    "snapshot": {"objects": [["Deployment", "checkout-api"], ["Service", "board"]]},
    "rollout_undo": {"deployment": "checkout-api"},
    "set_image": {"deployment": "checkout-api", "container": "app", "image": "shop/checkout:v1"},
    "switch_selector": {"service": "board", "selector": {"version": "blue"}},
    "scale": {"deployment": "checkout-api", "replicas": 0},
    "restart": {"deployment": "checkout-api"},
    "rollout_abort": {"deployment": "checkout-ro"},
    "shift_traffic": {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 50},
    "run_job": {"job": JOB, "job_name": "migrate-back"},
    "wait_rollout": {"deployment": "checkout-api"},
    "http_check": {"url": "https://user:pw@status.example/health?token=abc"},
    "http_request": {"url": "https://deploy.example/rollback"},
    "prometheus_gate": {"query": "error_rate", "below": 0.05},
    "wait": {"seconds": 30},
    "manual_gate": {"prompt": "DBA ready?"},
}


def test_every_kind_the_catalog_accepts_is_in_the_table_with_every_field() -> None:
    assert set(STEPS) == set(STEP_RULES) == set(STEP_KINDS)
    for name, kind in STEPS.items():
        assert kind.name == name
        assert kind.rules is STEP_RULES[name]
        assert kind.title and kind.title != name
        assert kind.timeout_seconds > 0
        assert not kind.required & kind.optional, name
        assert callable(kind.run) and callable(kind.describe)


def test_every_kind_has_a_sample_here() -> None:
    """A new kind needs a sample below, so its dry-run description gets tested too."""
    assert set(SAMPLES) == set(STEPS)
    for name, params in SAMPLES.items():
        rules = STEP_RULES[name]
        assert rules.required <= set(params) <= rules.required | rules.optional, name


@pytest.fixture
def dry() -> Iterator[DryRun]:
    with KubeSimulator() as sim:
        sim.seed_deployment(NS, "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        sim.seed_service(NS, "board", {"app": "board", "version": "green"})
        sim.seed_rollout(NS, "checkout-ro", images=["shop/checkout:v1", "shop/checkout:v2"])
        create_virtual_service(
            sim,
            NS,
            {"destination": {"host": "board"}, "weight": 50},
            {"destination": {"host": "board-canary"}, "weight": 50},
        )
        kube = KubernetesClient(api_client_for=lambda _ctx: sim.api_client())
        service = parse_catalog(catalog_yaml(service_yaml("checkout", None))).services["checkout"]
        yield DryRun(kube, service, KubeTarget(None, NS))
        kube.close()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_dry_run_describes_what_each_kind_would_do(dry: DryRun, name: str) -> None:
    spec: StepSpec = step("application", name, STEP_RULES[name].title, **SAMPLES[name])
    if name == "rollout_abort":  # an Argo Rollout's step: the service runs a Rollout
        rollout = service_yaml("checkout", None, workload="{kind: Rollout}")
        dry = replace(dry, service=parse_catalog(catalog_yaml(rollout)).services["checkout"])
    text = STEPS[name].describe(dry, spec)
    assert text.strip() not in ("", name, STEP_RULES[name].title)
    assert "pw" not in text and "abc" not in text  # no credentials, whatever the kind
