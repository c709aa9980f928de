"""A rehearsal's steps are pinned to the staging read when it was planned (``expect_*``): when
staging changed in between, the step refuses and changes nothing, instead of putting back (or
taking away) something else; a step already done, or resumed, still goes through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.objects import scale, set_image, switch_selector
from bot.execution.steps.kubernetes.traffic import shift_traffic
from bot.sim.kube_api import KubeSimulator
from tests.execution.steps.conftest import TRAFFIC, create_virtual_service

HERE = KubeTarget(None, "shop")


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as s:
        s.seed_deployment("shop", "web-green", images=["web:1", "web:2"], replicas=3)
        s.seed_service("shop", "web", {"app": "web", "version": "green"})
        yield s


@pytest.fixture
def kube(sim: KubeSimulator) -> KubernetesClient:
    return KubernetesClient(api_client_for=lambda _ctx: sim.api_client(), sleep=lambda s: None)


def test_switch_back_refuses_when_someone_switched_the_service_meanwhile(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    ctx, _ = make_ctx(kube=kube)
    back = {
        "service": "web",
        "selector": {"version": "green"},
        "expect_selector": {"version": "blue"},
    }
    with pytest.raises(StepFailed, match="Service web's selector is version=green") as refused:
        switch_selector(ctx, {**back, "selector": {"version": "red"}})
    assert "not version=blue as it was when the rehearsal was planned" in str(refused.value)
    assert sim.writes == []
    # what the pin expects is there (or the target already is): it goes through
    assert switch_selector(ctx, back)["selector"]["version"] == "green"
    kube.switch_selector(HERE, "web", {"app": "web", "version": "blue"})
    assert switch_selector(ctx, back)["selector"] == {"app": "web", "version": "green"}


def test_scale_back_refuses_when_the_replicas_changed_meanwhile(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    ctx, _ = make_ctx(kube=kube)
    with pytest.raises(StepFailed, match="the replica count of web-green is 3 in staging, not 0"):
        scale(ctx, {"deployment": "web-green", "replicas": 5, "expect_replicas": 0})
    assert sim.writes == [] and kube.deployment(HERE, "web-green").replicas == 3
    done = scale(ctx, {"deployment": "web-green", "replicas": 0, "expect_replicas": 3})
    assert done["replicas_after"] == 0
    # resumed after a crash: the count remembered by the first attempt stands
    ctx, _ = make_ctx(kube=kube, previous={"replicas_before": 0})
    assert (
        scale(ctx, {"deployment": "web-green", "replicas": 3, "expect_replicas": 0})[
            "replicas_after"
        ]
        == 3
    )


def test_set_image_back_refuses_when_someone_deployed_meanwhile(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    ctx, _ = make_ctx(kube=kube)
    with pytest.raises(StepFailed, match="container app is web:2 in staging, not web:9"):
        set_image(
            ctx,
            {
                "deployment": "web-green",
                "container": "app",
                "image": "web:1",
                "expect_image": "web:9",
            },
        )
    assert sim.writes == []
    ok = set_image(
        ctx,
        {"deployment": "web-green", "container": "app", "image": "web:1", "expect_image": "web:2"},
    )
    assert ok["image_after"] == "web:1"


def test_shift_back_refuses_when_the_weight_moved_meanwhile(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    create_virtual_service(
        sim,
        "shop",
        {"destination": {"host": "board", "subset": "stable"}, "weight": 90},
        {"destination": {"host": "board", "subset": "canary"}, "weight": 10},
    )
    before = len(sim.writes)
    ctx, _ = make_ctx(kube=kube)
    back = {"traffic": TRAFFIC, "to_percent": 25, "step_percent": 100, "expect_percent": 0}
    with pytest.raises(StepFailed, match="canary weight is 10 % in staging, not 0 %"):
        shift_traffic(ctx, back)
    assert len(sim.writes) == before
    # a gradual shift resumed after a restart finds a weight on its way: it goes on
    gradual = {**back, "to_percent": 0, "step_percent": 5, "expect_percent": 25}
    assert shift_traffic(ctx, gradual)["canary_percent"] == 0
    with pytest.raises(StepFailed, match="canary weight is 0 % in staging, not 40 %"):
        shift_traffic(ctx, {**gradual, "to_percent": 25, "expect_percent": 40})
    assert shift_traffic(ctx, {**back, "expect_percent": 0})["canary_percent"] == 25
