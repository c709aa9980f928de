"""A rehearsal's steps are pinned to the staging read when it was planned (``expect_*``): when
staging changed in between, the step refuses and changes nothing, instead of putting back (or
taking away) something else; a step already done, or resumed, still goes through."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from bot.adapters.kube.client import KubernetesClient, image_pin_changed
from bot.adapters.kube.values import PIN_CHANGED, KubeError, KubeTarget, UndoPlan
from bot.catalog.load import parse_catalog
from bot.execution.steps.base import StepFailed
from bot.execution.steps.kubernetes.objects import rollout_undo, scale, set_image, switch_selector
from bot.execution.steps.kubernetes.traffic import shift_traffic
from bot.rehearsal.plan import plan_rehearsal
from bot.sim.kube_api import KubeSimulator
from tests.execution.steps.conftest import TRAFFIC, create_virtual_service

HERE = KubeTarget(None, "shop")


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as s:
        s.seed_deployment("shop", "web-green", images=["web:1", "web:2"], replicas=3)
        s.seed_service("shop", "web", {"app": "web", "version": "green"})
        yield s


def board_split(sim: KubeSimulator, canary_percent: int) -> None:
    """board's VirtualService in shop: the canary gets ``canary_percent``, stable the rest."""
    create_virtual_service(
        sim,
        "shop",
        {"destination": {"host": "board", "subset": "stable"}, "weight": 100 - canary_percent},
        {"destination": {"host": "board", "subset": "canary"}, "weight": canary_percent},
    )


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
    # what the pin expects is there: it goes through
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
    board_split(sim, 10)
    before = len(sim.writes)
    ctx, _ = make_ctx(kube=kube)
    back = {"traffic": TRAFFIC, "to_percent": 25, "step_percent": 100, "expect_percent": 0}
    with pytest.raises(StepFailed, match="canary weight is 10 % in staging, not 0 %"):
        shift_traffic(ctx, back)
    assert len(sim.writes) == before
    # a gradual shift resumed after a restart (its record stored) finds a weight on its way
    gradual = {**back, "to_percent": 0, "step_percent": 5, "expect_percent": 25}
    resumed, _ = make_ctx(kube=kube, previous={"shift_from": 25})
    assert shift_traffic(resumed, gradual)["canary_percent"] == 0
    with pytest.raises(StepFailed, match="canary weight is 0 % in staging, not 40 %"):
        shift_traffic(ctx, {**gradual, "to_percent": 25, "expect_percent": 40})
    assert shift_traffic(ctx, {**back, "expect_percent": 0})["canary_percent"] == 25


def test_a_target_someone_else_reached_is_refused_without_the_step_s_own_record(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    """Staging already at the target, but the bot never wrote it: the rollback step would do
    nothing and the roll-forward would undo that person's change. Resumed (record stored), the
    same state is this step's own write and goes through."""
    board_split(sim, 0)
    before = len(sim.writes)
    fresh, rec = make_ctx(kube=kube)
    cases: list[tuple[Any, dict[str, Any], str, dict[str, Any]]] = [
        (
            switch_selector,
            {
                "service": "web",
                "selector": {"version": "green"},
                "expect_selector": {"version": "blue"},
            },
            "Service web's selector is version=green in staging, not version=blue",
            {"selector_before": {"app": "web", "version": "blue"}},
        ),
        (
            scale,
            {"deployment": "web-green", "replicas": 3, "expect_replicas": 0},
            "the replica count of web-green is 3 in staging, not 0",
            {"replicas_before": 0},
        ),
        (
            set_image,
            {
                "deployment": "web-green",
                "container": "app",
                "image": "web:2",
                "expect_image": "web:1",
            },
            "container app is web:2 in staging, not web:1",
            {"image_before": "web:1"},
        ),
        (
            shift_traffic,
            {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 100, "expect_percent": 25},
            "the canary weight is 0 % in staging, not 25 %",
            {"shift_from": 25},
        ),
    ]
    for run, params, refusal, record in cases:
        with pytest.raises(StepFailed, match=refusal) as refused:
            run(fresh, params)
        assert "Check staging and start a new rehearsal" in str(refused.value)
        resumed, _ = make_ctx(kube=kube, previous=record)
        run(resumed, params)  # its own write, before a restart: done
    # the refused attempts wrote nothing (a resumed scale re-sends its own count)
    assert [w for w in sim.writes[before:] if not w[1].endswith("/scale")] == []
    assert kube.service_selector(HERE, "web")["version"] == "green"
    assert kube.deployment(HERE, "web-green").images == {"app": "web:2"}
    assert rec.remembered == {}  # no record stored by a refused step


def test_conditional_writes_refuse_a_change_made_after_the_step_s_own_read(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """The adapter writes a pinned value only over what the caller pinned: checked again at the
    write (and after a 409), and sent with the write (a JSON Patch test, a resourceVersion)."""
    seeded = len(sim.writes)
    with pytest.raises(KubeError, match="the replica count of deployment web-green is 3, not 2"):
        kube.scale(HERE, "web-green", 0, expect=2)
    with pytest.raises(KubeError, match="container app is web:2, not web:1") as image:
        kube.set_image(HERE, "web-green", "app", "web:1", expect="web:1")
    assert image.value.reason == PIN_CHANGED
    with pytest.raises(KubeError, match="the selector of Service web is app=web,version=green"):
        kube.switch_selector(HERE, "web", {"app": "web", "version": "blue"}, expect={"app": "x"})
    assert len(sim.writes) == seeded
    # a conflict (the Scale's resourceVersion moved): read again, pin checked again, then written
    sim.inject("PATCH", "/deployments/web-green/scale", 409)
    assert kube.scale(HERE, "web-green", 0, expect=3) == (3, 0)
    assert kube.set_image(HERE, "web-green", "app", "web:1", expect="web:2") == ("web:2", "web:1")
    assert kube.switch_selector(
        HERE, "web", {"app": "web", "version": "blue"}, expect={"app": "web", "version": "green"}
    ) == ({"app": "web", "version": "green"}, {"app": "web", "version": "blue"})


def test_a_pinned_step_says_the_change_and_what_to_do(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    ctx, _ = make_ctx(kube=kube)
    with pytest.raises(StepFailed) as refused:
        set_image(
            ctx, {"deployment": "web-green", "container": "db", "image": "x", "expect_image": "y"}
        )
    assert str(refused.value).startswith("deployment web-green has no container db in staging")
    assert "Check staging and start a new rehearsal" in str(refused.value)


def test_a_pinned_shift_stops_when_someone_moves_the_weight_mid_shift(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    board_split(sim, 50)
    ctx, _ = make_ctx(kube=kube)
    moved: list[float] = []

    def someone_moves_it(seconds: float) -> None:  # between the step's passes
        moved.append(seconds)
        ops = [
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 20},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 80},
        ]
        kube.patch_object(HERE, TRAFFIC["api_version"], TRAFFIC["kind"], TRAFFIC["name"], ops)

    ctx = replace(ctx, wait=someone_moves_it)
    params = {"traffic": TRAFFIC, "to_percent": 0, "step_percent": 25, "expect_percent": 50}
    with pytest.raises(StepFailed) as stopped:
        shift_traffic(ctx, params)
    assert str(stopped.value).startswith(
        "VirtualService board: the canary weight is 80 % in staging, not the 25 % this step just"
        " set (someone changed staging meanwhile)"
    )
    assert len(moved) == 1  # one pass, then it stopped: no fight until the timeout


def test_a_write_the_server_refuses_is_not_called_a_change_in_staging(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """A 422 of the API server's own (an invalid image) while the pinned image is still there
    is that error, not "someone changed staging": a new rehearsal would fail the same way."""
    version = sim.resource_version
    with pytest.raises(KubeError) as refused:
        kube.set_image(HERE, "web-green", "app", "", expect="web:2")
    assert refused.value.status == 422
    assert refused.value.reason != PIN_CHANGED, refused.value
    assert sim.resource_version == version  # refused: nothing stored


def test_a_deploy_to_staging_after_the_plan_stops_a_deployment_s_undo(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    """The undo is pinned to the release it starts from as well as to its target: a release
    made in staging after the rehearsal was planned is not rolled back (nor, later, replaced by
    the roll-forward)."""
    undo, _, _ = kube.preview_undo(HERE, "web-green", lambda listed, current: None)
    params = {
        "deployment": "web-green",
        "to_revision": undo.to_revision,
        "expect_template": undo.to_template,
        "expect_from_template": undo.from_template,
    }
    kube.set_image(HERE, "web-green", "app", "web:3")  # someone deploys to staging meanwhile
    version = sim.resource_version
    ctx, _ = make_ctx(kube=kube)

    with pytest.raises(StepFailed, match="not the release it ran when the rehearsal was planned"):
        rollout_undo(ctx, params)

    assert sim.resource_version == version


def test_a_deployment_rehearsal_pins_where_each_undo_starts() -> None:
    """Both undos of a rehearsal (back, then forward) carry the release they start from."""
    with KubeSimulator() as staging:
        staging.seed_deployment("shop", "web-green", images=["web:1", "web:2"])
        kube = KubernetesClient(api_client_for=lambda _c: staging.api_client(), sleep=lambda s: 0)
        service = parse_catalog(
            "defaults: {channel: C0DEPLOYS}\nservices:\n  web:\n    namespace: prod\n"
            "    deployment: web-green\n    staging: {namespace: shop}\n"
        ).services["web"]
        twin = service.staging_twin()
        assert twin is not None
        r = plan_rehearsal(kube, service, twin, None)
    assert r.undo is not None
    starts = [s.params["expect_from_template"] for s in r.plan.steps if s.kind == "rollout_undo"]
    assert starts == [r.undo.from_template, r.undo.to_template]


def recorded(undo: UndoPlan) -> dict[str, Any]:
    """What an undo's first attempt stores (``ctx.remember``) before it sends its patch."""
    return {
        "deployment": undo.deployment,
        "from_revision": undo.from_revision,
        "to_revision": undo.to_revision,
        "images_before": undo.images_before,
        "images_after": undo.images_after,
        "from_template": undo.from_template,
        "to_template": undo.to_template,
    }


@pytest.mark.parametrize("leg", ["rollback", "roll-forward"])
def test_a_resumed_deployment_undo_still_checks_where_it_starts(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any, leg: str
) -> None:
    """Stopped after its record was stored but before its patch, then someone deploys to
    staging: the resumed undo refuses instead of rolling their release back."""
    back, _, _ = kube.preview_undo(HERE, "web-green", lambda listed, current: None)
    if leg == "roll-forward":
        ctx, _ = make_ctx(kube=kube)
        rollout_undo(ctx, {"deployment": "web-green", "to_revision": back.to_revision})
        sim.tick()
    undo, _, _ = kube.preview_undo(
        HERE, "web-green", lambda listed, current: back.from_revision if leg != "rollback" else None
    )
    params = {
        "deployment": "web-green",
        "to_revision": undo.to_revision,
        "expect_template": undo.to_template,
        "expect_from_template": undo.from_template,
    }
    resumed, _ = make_ctx(kube=kube, previous={"undo": recorded(undo)})
    kube.set_image(HERE, "web-green", "app", "web:3")  # someone deploys to staging meanwhile
    sim.tick()
    version = sim.resource_version

    with pytest.raises(StepFailed, match="not the release it ran when the rehearsal was planned"):
        rollout_undo(resumed, params)

    assert sim.resource_version == version
    assert kube.deployment(HERE, "web-green").images == {"app": "web:3"}


def test_a_container_removed_under_a_pinned_image_write_is_said_so() -> None:
    assert str(image_pin_changed("web-green", "app", "web:2", None)) == (
        "deployment web-green has no container app any more (it ran web:2)"
    )
    changed = image_pin_changed("web-green", "app", "web:2", "web:3")
    assert (
        str(changed)
        == "the image of deployment web-green container app changed from web:2 to web:3"
    )
    assert changed.reason == PIN_CHANGED


def test_a_scale_without_resource_version_is_refused_with_what_to_do(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    """Without the Scale's resourceVersion the pinned write cannot be conditional: nothing is
    sent, and the refusal says what to check and how to scale by hand."""
    scale = {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web-green"}}
    sim.inject("GET", "/deployments/web-green/scale", 200, body={**scale, "spec": {"replicas": 3}})
    version = sim.resource_version

    with pytest.raises(KubeError) as refused:
        kube.scale(HERE, "web-green", 0, expect=3)

    assert str(refused.value) == (
        "deployment shop/web-green scale: the API server sent no resourceVersion, so the pinned"
        " write cannot be made conditional; nothing was changed. Check what answers for the API"
        " server of the current context (a proxy that drops metadata?), then start again; or"
        " scale it by hand (`kubectl scale deployment/web-green -n shop --replicas=0`)"
    )
    assert sim.resource_version == version


def test_a_roll_forward_whose_start_moved_says_what_it_expected_and_how_to_restore(
    sim: KubeSimulator, kube: KubernetesClient, make_ctx: Any
) -> None:
    """Someone deploys to staging between the rehearsal's rollback and its roll-forward: the
    roll-forward refuses, names the release the rollback left (revision, images) and gives the
    command that puts back where the rehearsal started."""
    service = parse_catalog(
        "defaults: {channel: C0DEPLOYS}\nservices:\n  web:\n    namespace: prod\n"
        "    deployment: web-green\n    staging: {namespace: shop}\n"
    ).services["web"]
    twin = service.staging_twin()
    assert twin is not None
    undos = [
        s for s in plan_rehearsal(kube, service, twin, None).plan.steps if s.kind == "rollout_undo"
    ]
    ctx, _ = make_ctx(kube=kube)
    rollout_undo(ctx, undos[0].params)
    sim.tick()
    kube.set_image(HERE, "web-green", "app", "web:3")  # someone deploys to staging meanwhile
    sim.tick()
    version = sim.resource_version

    with pytest.raises(StepFailed) as refused:
        rollout_undo(ctx, undos[1].params)

    assert str(refused.value) == (
        "deployment web-green runs revision 4 (app=web:3) in staging, not the template of"
        " revision 1 (app=web:1) the rehearsal's rollback put there (someone deployed or rolled"
        " back meanwhile); nothing was changed, so staging is still rolled back, not where the"
        " rehearsal started. Check that release, then restore the start with `kubectl -n shop"
        " rollout undo deployment/web-green --to-revision=2`."
    )
    assert sim.resource_version == version
