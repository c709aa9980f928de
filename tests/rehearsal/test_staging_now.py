"""What the rehearsal report says staging runs now, read against the roll-forward's own steps,
and the exact commands that put back what is not where the rehearsal started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.catalog.load import Service, parse_catalog
from bot.rehearsal.staging_now import staging_now
from bot.sim.kube_api import KubeSimulator
from storage.models import RollbackStep
from tests.conftest import catalog_yaml
from tests.execution.steps.conftest import TRAFFIC, create_virtual_service

KUBECTL = "kubectl --context staging -n shop-staging"
TARGET = KubeTarget("staging", "shop-staging")


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as s:
        s.seed_deployment("shop-staging", "board", images=["b:1"])
        s.seed_deployment("shop-staging", "board-canary", images=["b:2", "b:3"], replicas=0)
        create_virtual_service(
            s,
            "shop-staging",
            {"destination": {"host": "board", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "board", "subset": "canary"}, "weight": 0},
        )
        yield s


@pytest.fixture
def twin() -> Service:
    text = catalog_yaml(
        "  board:\n    namespace: shop\n    deployment: board\n    strategy: canary\n"
        "    canary: {deployment: board-canary, traffic: {name: board}}\n"
        "    staging: {context: staging, namespace: shop-staging}\n"
    )
    found = parse_catalog(text).target_of("board@staging")
    assert found is not None
    return found


def forward(kind: str, status: str = "pending", **params: Any) -> RollbackStep:
    return RollbackStep(
        rollback_id=1,
        phase="cleanup",
        position=0,
        name=kind,
        kind=kind,
        status=status,
        detail={"params": params},
    )


def test_a_canary_left_off_gets_its_scale_wait_and_weight_commands_in_order(
    sim: KubeSimulator, twin: Service
) -> None:
    kube = KubernetesClient(api_client_for=lambda _ctx: sim.api_client())
    steps = [
        forward("scale", deployment="board-canary", replicas=2, expect_replicas=0),
        forward("wait_rollout", deployment="board-canary", min_available=1),
        forward("shift_traffic", traffic=TRAFFIC, to_percent=25, expect_percent=0),
        forward("set_image", deployment="board-canary", container="app", image="b:2"),
        forward("http_request", url="http://deploy.staging/forward?token=s3cret", method="PUT"),
    ]
    now = staging_now(kube.reading_once(), twin, steps)
    assert now.is_back is False
    patch = (
        '[{"op":"add","path":"/spec/http/0/route/1/weight","value":25},'
        '{"op":"add","path":"/spec/http/0/route/0/weight","value":75}]'
    )
    assert now.fixes == (
        f"{KUBECTL} scale deployment/board-canary --replicas=2",
        f"{KUBECTL} rollout status deployment/board-canary",
        f"{KUBECTL} patch virtualservice.networking.istio.io board --type=json -p '{patch}'",
        f"{KUBECTL} set image deployment/board-canary app=b:2",
        f"{KUBECTL} rollout status deployment/board-canary",
    )  # the staging API's roll-forward is not listed: its rollback endpoint was never called
    assert now.lines == (
        "board-canary has 0 replicas",
        "VirtualService board sends 0 % to the canary, 100 % to stable",
        "board-canary app runs b:3",
    )


def test_back_where_it_started_needs_no_command(sim: KubeSimulator, twin: Service) -> None:
    kube = KubernetesClient(api_client_for=lambda _ctx: sim.api_client())
    steps = [
        forward("scale", "succeeded", deployment="board-canary", replicas=0),
        forward("shift_traffic", "succeeded", traffic=TRAFFIC, to_percent=0),
    ]
    now = staging_now(kube.reading_once(), twin, steps)
    assert (now.is_back, now.fixes) == (True, ())


def test_a_roll_forward_call_not_made_is_said_without_its_credentials(
    sim: KubeSimulator, twin: Service
) -> None:
    kube = KubernetesClient(api_client_for=lambda _ctx: sim.api_client())
    rollback = forward("http_request", "succeeded", url="http://deploy.staging/rollback")
    rollback.phase, rollback.detail = "application", {"params": {}, "sent": True}
    steps = [rollback, forward("http_request", "failed", url="http://d.staging/f?token=s3cret")]
    now = staging_now(kube.reading_once(), twin, steps)
    assert now.is_back is False
    assert now.fixes == ("POST http://d.staging/f?token=*** (the staging API's roll-forward)",)


def test_the_weight_command_works_when_the_canary_weight_is_absent(
    sim: KubeSimulator, twin: Service
) -> None:
    """A real API server drops a weight of 0: the command must set a member that is not there."""
    with sim.api_client() as api:
        CustomObjectsApi(api).delete_namespaced_custom_object(
            "networking.istio.io", "v1beta1", "shop-staging", "virtualservices", "board"
        )
    create_virtual_service(
        sim,
        "shop-staging",
        {"destination": {"host": "board", "subset": "stable"}, "weight": 100},
        {"destination": {"host": "board", "subset": "canary"}},
    )
    kube = KubernetesClient(api_client_for=lambda _ctx: sim.api_client())
    steps = [forward("shift_traffic", traffic=TRAFFIC, to_percent=25, expect_percent=0)]
    (command,) = staging_now(kube.reading_once(), twin, steps).fixes
    ops = json.loads(command.split(" -p '")[1].rstrip("'"))
    kube.patch_object(TARGET, TRAFFIC["api_version"], TRAFFIC["kind"], TRAFFIC["name"], ops)
    obj = kube.read_object(TARGET, TRAFFIC["api_version"], TRAFFIC["kind"], TRAFFIC["name"])
    assert [r.get("weight") for r in obj["spec"]["http"][0]["route"]] == [75, 25]
