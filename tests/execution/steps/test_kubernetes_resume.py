"""Resuming a rollout undo after a crash: never twice, never skipped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget
from bot.execution.steps.kubernetes.objects import rollout_undo
from bot.sim.kube_api import KubeSimulator

HERE = KubeTarget(None, "shop")


@pytest.fixture
def cluster() -> Iterator[KubeSimulator]:
    with KubeSimulator() as sim:
        sim.seed_deployment("shop", "checkout-api", images=["shop/checkout:v1", "shop/checkout:v2"])
        yield sim


def planned(kube: KubernetesClient) -> dict[str, Any]:
    """What the first attempt recorded right before its patch (from the real plan)."""
    plan = kube.plan_undo(HERE, "checkout-api", None)
    return {
        "from_revision": plan.from_revision,
        "to_revision": plan.to_revision,
        "images_before": plan.images_before,
        "images_after": plan.images_after,
    }


def test_a_crash_before_the_patch_undoes_on_resume(cluster: KubeSimulator, make_ctx: Any) -> None:
    kube = KubernetesClient(api_client_for=lambda _ctx: cluster.api_client())
    record = planned(kube)  # stored, then the process died before the PATCH
    ctx, _ = make_ctx(kube=kube, previous={"undo": record})
    result = rollout_undo(ctx, {})
    assert "note" not in result  # it did the undo
    after = kube.deployment(HERE, "checkout-api")
    assert after.revision == 3 and after.images == {"app": "shop/checkout:v1"}


def test_a_crash_after_the_patch_does_not_undo_twice(cluster: KubeSimulator, make_ctx: Any) -> None:
    kube = KubernetesClient(api_client_for=lambda _ctx: cluster.api_client())
    record = planned(kube)
    kube.undo(HERE, "checkout-api", None)  # the patch went out, then the process died
    ctx, _ = make_ctx(kube=kube, previous={"undo": record})
    result = rollout_undo(ctx, {})
    assert result["note"] == "already rolled back before the restart"
    assert kube.deployment(HERE, "checkout-api").revision == 3  # no second undo


def test_same_images_but_never_patched_is_not_taken_for_done(
    cluster: KubeSimulator, make_ctx: Any
) -> None:
    """Two revisions may differ in env or resources only: images equal to the target do not
    prove the undo went out; the revision does."""
    kube = KubernetesClient(api_client_for=lambda _ctx: cluster.api_client())
    record = planned(kube)
    current = kube.deployment(HERE, "checkout-api")
    record["images_after"] = dict(current.images)  # as if the target ran the same image
    ctx, _ = make_ctx(kube=kube, previous={"undo": record})
    result = rollout_undo(ctx, {})
    assert "note" not in result
    assert kube.deployment(HERE, "checkout-api").revision == 3
