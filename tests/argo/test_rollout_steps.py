"""The Kubernetes step kinds on a Rollout service, one by one against the simulated cluster:
the pinned template, a resumed attempt, the abort step, and waiting on the phase."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from bot.adapters.http import HttpClient
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.values import KubeTarget, UndoPlan
from bot.catalog.load import parse_catalog
from bot.execution.steps.base import StepContext, StepFailed
from bot.execution.steps.kubernetes.objects import rollout_undo
from bot.execution.steps.kubernetes.rollouts import rollout_abort
from bot.execution.steps.kubernetes.waits import wait_rollout
from bot.sim.kube_api import KubeSimulator
from tests.conftest import catalog_yaml, service_yaml

NS, NAME = "shop", "checkout-api"
IMAGES = ["shop/checkout:v1", "shop/checkout:v2", "shop/checkout:v3"]


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as started:
        started.seed_rollout(NS, NAME, images=IMAGES)
        yield started


@pytest.fixture
def kube(sim: KubeSimulator) -> Iterator[KubernetesClient]:
    client = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=lambda s: None)
    yield client
    client.close()


Made = tuple[StepContext, dict[str, Any], list[str]]


@pytest.fixture
def context(kube: KubernetesClient) -> Iterator[Callable[..., Made]]:
    """Step contexts on the bot's client for a service of ``kind``, resuming ``previous``."""
    with HttpClient() as http:

        def make(kind: str = "Rollout", previous: dict[str, Any] | None = None) -> Made:
            return rollout_step_context(kube, http, kind, previous)

        yield make


def rollout_step_context(
    kube: KubernetesClient,
    http: HttpClient,
    kind: str,
    previous: dict[str, Any] | None,
    namespace: str = NS,
) -> Made:
    """A step context for service checkout (a ``kind`` workload) in ``namespace``."""
    remembered: dict[str, Any] = {}
    notes: list[str] = []
    text = catalog_yaml(service_yaml("checkout", None, workload=f"{{kind: {kind}}}"))
    ctx = StepContext(
        rollback_id=1,
        position=1,
        service=parse_catalog(text).services["checkout"],
        target=KubeTarget(None, namespace),
        kube=kube,
        http=http,
        prometheus=None,
        clock=lambda: datetime(2026, 12, 4, tzinfo=UTC),
        wait=lambda s: None,
        remember=remembered.update,
        previous=dict(previous or {}),
        timeout_seconds=5,
        note=notes.append,
    )
    return ctx, remembered, notes


def set_image(sim: KubeSimulator, image: str) -> None:
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", NS, "rollouts", NAME),
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}],
        _content_type="application/json-patch+json",
    )
    sim.tick()


def test_a_pinned_undo_refuses_when_the_release_changed(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    ctx, _, _ = context()
    before = sim.resource_version
    with pytest.raises(StepFailed, match="no longer the release that was checked"):
        rollout_undo(ctx, {"deployment": NAME, "to_revision": 2, "expect_template": "0" * 16})
    assert sim.resource_version == before


def test_a_rollout_with_a_workload_ref_is_refused_before_anything_is_written(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    """undo would patch a template into a Rollout that takes its template from a Deployment
    (spec.workloadRef): Argo Rollouts calls that an invalid spec and stops. Refused, saying
    where the release lives and what to do."""
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", NS, "rollouts", NAME),
        [
            {
                "op": "add",
                "path": "/spec/workloadRef",
                "value": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout-src"},
            }
        ],
        _content_type="application/json-patch+json",
    )
    ctx, _, _ = context()
    before = sim.resource_version
    with pytest.raises(StepFailed) as refused:
        rollout_undo(ctx, {"deployment": NAME})
    assert 'takes its pod template from Deployment "checkout-src" (spec.workloadRef)' in str(
        refused.value
    )
    assert "restore it there" in str(refused.value)
    assert sim.resource_version == before


def test_a_resumed_undo_is_not_sent_twice(context: Callable[..., Made], sim: KubeSimulator) -> None:
    ctx, remembered, _ = context()
    done = rollout_undo(ctx, {"deployment": NAME})
    sim.tick()
    again, _, _ = context(previous=remembered)
    before = len(sim.requests)
    assert rollout_undo(again, {"deployment": NAME})["note"] == (
        "already rolled back before the restart"
    )
    assert done["undo"]["to_revision"] == 2
    assert not [m for m, _ in sim.requests[before:] if m == "PATCH"]


def test_the_abort_step_patches_once_and_only_mid_update(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    ctx, remembered, notes = context()
    assert rollout_abort(ctx, {"deployment": NAME})["aborted"] is False  # fully promoted
    set_image(sim, "shop/checkout:v4")
    ctx, remembered, notes = context()
    assert rollout_abort(ctx, {"deployment": NAME}) == {"aborted": True, "revision": 4}
    assert remembered == {"aborted": True, "revision": 4}
    assert "update to revision 4 aborted" in notes[0]
    resumed, _, _ = context(previous=remembered)
    before = len(sim.requests)
    assert rollout_abort(resumed, {"deployment": NAME}) == {"aborted": True, "revision": 4}
    assert [m for m, _ in sim.requests[before:]] == ["GET"]  # aborted already: no second patch


def test_a_resumed_abort_whose_patch_never_went_out_sends_it(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    set_image(sim, "shop/checkout:v4")
    crashed = {"aborted": True, "revision": 4}  # remembered, then the process died
    resumed, _, _ = context(previous=crashed)
    assert rollout_abort(resumed, {"deployment": NAME})["aborted"] is True
    sim.tick()
    assert kube.rollout_phase(KubeTarget(None, NS), NAME).is_failed  # Degraded: aborted


def test_the_abort_step_refuses_a_deployment_service(context: Callable[..., Made]) -> None:
    ctx, _, _ = context(kind="Deployment")
    with pytest.raises(StepFailed, match="is a Deployment"):
        rollout_abort(ctx, {"deployment": NAME})


def test_waiting_fails_on_degraded_with_the_controllers_message(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    set_image(sim, "shop/checkout:v4")
    kube.abort_rollout(KubeTarget(None, NS), NAME)
    sim.tick()
    ctx, _, _ = context()
    with pytest.raises(StepFailed) as failed:
        wait_rollout(ctx, {"deployment": NAME})
    assert "The rollout is in a degraded state with message: RolloutAborted: Rollout aborted" in (
        str(failed.value)
    )


def test_abort_then_undo_of_a_blue_green_update_waiting_for_promotion(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    strategy = {"blueGreen": {"activeService": "pay", "autoPromotionEnabled": False}}
    sim.seed_rollout(NS, "pay", images=["shop/pay:v1", "shop/pay:v2"], strategy=strategy)
    CustomObjectsApi(sim.api_client()).patch_namespaced_custom_object(
        *("argoproj.io", "v1alpha1", NS, "rollouts", "pay"),
        [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "shop/pay:v3",
            }
        ],
        _content_type="application/json-patch+json",
    )
    sim.tick()
    t = KubeTarget(None, NS)
    assert kube.rollout_phase(t, "pay").message == 'rollout "pay": Paused - BlueGreenPause'
    ctx, _, _ = context()
    assert rollout_abort(ctx, {"deployment": "pay"})["aborted"] is True
    sim.tick()
    assert kube.rollout_phase(t, "pay").is_failed  # Degraded: aborted, v2 stays active
    ctx, _, _ = context()
    undone = rollout_undo(ctx, {"deployment": "pay"})
    assert undone["undo"]["images_after"] == {"app": "shop/pay:v2"}
    sim.tick()
    ctx, _, _ = context()
    assert 'rollout "pay" is Healthy' in wait_rollout(ctx, {"deployment": "pay"})["status"]
    assert kube.rollout_info(t, "pay").revision == 4


def _recorded(undo: UndoPlan) -> dict[str, Any]:
    """What an undo's first attempt stores before it sends its patch."""
    return {**dataclasses.asdict(undo), "deployment": undo.deployment}


@pytest.mark.parametrize("leg", ["rollback", "roll-forward"])
def test_a_resumed_rollout_undo_still_checks_where_it_starts(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator, leg: str
) -> None:
    """Stopped after its record was stored but before its patch, then someone deploys to
    staging: the resumed undo refuses instead of rolling their release back."""
    here = KubeTarget(None, NS)
    back, _, _ = kube.rollout_preview_undo(here, NAME, lambda listed, current: None)
    if leg == "roll-forward":
        rollout_undo(context()[0], {"deployment": NAME, "to_revision": back.to_revision})
        sim.tick()
    undo, _, _ = kube.rollout_preview_undo(
        here, NAME, lambda listed, current: back.from_revision if leg != "rollback" else None
    )
    params = {
        "deployment": NAME,
        "to_revision": undo.to_revision,
        "expect_template": undo.to_template,
        "expect_from_template": undo.from_template,
    }
    resumed, _, _ = context(previous={"undo": _recorded(undo)})
    set_image(sim, "shop/checkout:v9")  # someone deploys to staging meanwhile
    version = sim.resource_version

    with pytest.raises(StepFailed, match="not the release it ran when the rehearsal was planned"):
        rollout_undo(resumed, params)

    assert sim.resource_version == version


def test_a_resumed_rollout_undo_whose_patch_went_out_goes_through(
    context: Callable[..., Made], kube: KubernetesClient, sim: KubeSimulator
) -> None:
    """The patch went out before the stop: the Rollout no longer starts where the pin says,
    and that is this undo's own change, so it is done, not refused (nor sent again)."""
    undo, _, _ = kube.rollout_preview_undo(KubeTarget(None, NS), NAME, lambda listed, current: None)
    params = {
        "deployment": NAME,
        "to_revision": undo.to_revision,
        "expect_template": undo.to_template,
        "expect_from_template": undo.from_template,
    }
    ctx, _, _ = context()
    rollout_undo(ctx, params)  # sent; no controller pass yet
    resumed, _, _ = context(previous={"undo": _recorded(undo)})
    before = len(sim.requests)

    assert rollout_undo(resumed, params)["undo"]["to_template"] == undo.to_template
    assert not [m for m, _ in sim.requests[before:] if m == "PATCH"]
