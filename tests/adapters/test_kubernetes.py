"""The Kubernetes adapter: kubectl's rules on model objects, then the SDK against the simulator."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from bot.adapters.kube.api_errors import error_from_api
from bot.adapters.kube.client import KubernetesClient
from bot.adapters.kube.kubectl import (
    equal_ignore_hash,
    job_state_of,
    label_selector_string,
    rollout_status_of,
    select_revision,
    undo_annotations,
    undo_patch,
)
from bot.adapters.kube.values import JobState, KubeError, KubeTarget, RolloutStatus, UndoPlan
from bot.sim.kube_api import KubeSimulator
from tests.conftest import closed_port_url

# ── model builders ────────────────────────────────────────────────────────────────────────────


def template(image: str, *, hash_label: str | None = None, **extra: Any) -> dict[str, Any]:
    labels = {"app": "checkout"} | ({"pod-template-hash": hash_label} if hash_label else {})
    container = {"name": "app", "image": image} | extra
    return {"metadata": {"labels": labels}, "spec": {"containers": [container]}}


def deployment(
    image: str = "shop/checkout:3",
    *,
    revision: int = 3,
    paused: bool = False,
    annotations: dict[str, str] | None = None,
    replicas: int = 3,
    status: dict[str, Any] | None = None,
    generation: int = 1,
) -> k8s.V1Deployment:
    notes = {"deployment.kubernetes.io/revision": str(revision)} | (annotations or {})
    model = k8s.V1Deployment.from_dict(
        {
            "metadata": {
                "name": "checkout-api",
                "namespace": "shop",
                "uid": "dep-uid",
                "generation": generation,
                "annotations": notes,
            },
            "spec": {
                "replicas": replicas,
                "paused": paused,
                "selector": {"matchLabels": {"app": "checkout"}},
                "template": template(image),
            },
            "status": status if status is not None else {"observedGeneration": generation},
        }
    )
    assert model is not None
    return model


def replicaset(
    revision: int | str | None, image: str, annotations: dict[str, str] | None = None
) -> k8s.V1ReplicaSet:
    notes = dict(annotations or {})
    if revision is not None:
        notes["deployment.kubernetes.io/revision"] = str(revision)
    model = k8s.V1ReplicaSet.from_dict(
        {
            "metadata": {"name": f"checkout-api-{revision}", "annotations": notes},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "template": template(image, hash_label=f"h{revision}"),
            },
        }
    )
    assert model is not None
    return model


HISTORY = [replicaset(1, "shop/checkout:1"), replicaset(3, "shop/checkout:3")]
HISTORY += [replicaset(2, "shop/checkout:2")]  # the API does not list them in order


# ── revision selection (rollback.go deploymentRevision) ───────────────────────────────────────


def revision_of_rs(rs: k8s.V1ReplicaSet) -> str:
    assert rs.metadata is not None and rs.metadata.annotations is not None
    return rs.metadata.annotations["deployment.kubernetes.io/revision"]


def test_previous_revision_is_the_second_highest() -> None:
    assert revision_of_rs(select_revision(deployment(), HISTORY, None)) == "2"
    assert revision_of_rs(select_revision(deployment(), HISTORY, 0)) == "2"


def test_a_named_revision_is_found_wherever_it_is() -> None:
    assert revision_of_rs(select_revision(deployment(), HISTORY, 1)) == "1"


@pytest.mark.parametrize("wanted", [7, -1])
def test_an_unknown_revision_is_refused_in_kubectl_words(wanted: int) -> None:
    with pytest.raises(KubeError) as caught:
        select_revision(deployment(), HISTORY, wanted)
    assert str(caught.value) == f"unable to find specified revision {wanted} in history"
    assert caught.value.status is None and caught.value.reason == "RevisionNotFound"


def test_a_single_revision_is_no_history() -> None:
    with pytest.raises(KubeError) as caught:
        select_revision(deployment(), [replicaset(1, "shop/checkout:1")], None)
    assert str(caught.value) == 'no rollout history found for deployment "checkout-api"'


def test_unparsable_revisions_are_skipped_and_missing_ones_count_as_zero() -> None:
    candidates = [replicaset("x", "bad"), replicaset(None, "unlabelled"), replicaset(5, "five")]
    chosen = select_revision(deployment(), candidates, None)
    assert chosen.metadata is not None and chosen.metadata.name == "checkout-api-None"


# ── template comparison (equalIgnoreHash) and the undo patch ──────────────────────────────────


def pod_template(**kw: Any) -> k8s.V1PodTemplateSpec:
    model = k8s.V1PodTemplateSpec.from_dict(template("shop/checkout:2", **kw))
    assert model is not None
    return model


def test_templates_equal_ignoring_the_pod_template_hash() -> None:
    assert equal_ignore_hash(pod_template(hash_label="abc"), pod_template())


def test_empty_and_missing_lists_are_the_same_template() -> None:
    assert equal_ignore_hash(pod_template(env=[]), pod_template())


def test_a_different_image_or_env_is_a_different_template() -> None:
    other = k8s.V1PodTemplateSpec.from_dict(template("shop/checkout:3"))
    assert not equal_ignore_hash(pod_template(), other)
    assert not equal_ignore_hash(pod_template(env=[{"name": "A", "value": "1"}]), pod_template())


def test_undo_patch_is_kubectls_json_patch_without_the_hash_label() -> None:
    dep = deployment(annotations={"team": "payments", "kubernetes.io/change-cause": "deploy 3"})
    rs = replicaset(2, "shop/checkout:2", {"kubernetes.io/change-cause": "deploy 2"})
    patch = undo_patch(dep, rs)
    assert [op["path"] for op in patch] == ["/spec/template", "/metadata/annotations"]
    assert {op["op"] for op in patch} == {"replace"}
    assert patch[0]["value"]["metadata"]["labels"] == {"app": "checkout"}
    assert patch[0]["value"]["spec"]["containers"][0]["image"] == "shop/checkout:2"


def test_undo_annotations_keep_the_deployments_bookkeeping_and_restore_the_rest() -> None:
    dep = deployment(
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "kubernetes.io/change-cause": "deploy 3",
            "team": "payments",
        }
    )
    rs = replicaset(
        2,
        "shop/checkout:2",
        {
            "kubernetes.io/change-cause": "deploy 2",
            "deployment.kubernetes.io/desired-replicas": "3",
        },
    )
    assert undo_annotations(dep, rs) == {
        "deployment.kubernetes.io/revision": "3",  # the controller bumps it, as with kubectl
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "kubernetes.io/change-cause": "deploy 2",  # the RS carries its revision's annotations
    }


# ── rollout status (rollout_status.go) ────────────────────────────────────────────────────────

WAIT = 'Waiting for deployment "checkout-api" rollout to finish: '
STATUS_CASES = [
    (
        {"observedGeneration": 1},
        2,
        False,
        False,
        "Waiting for deployment spec update to be observed...",
    ),
    (
        {
            "observedGeneration": 2,
            "updatedReplicas": 1,
            "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ],
        },
        2,
        False,
        True,
        'deployment "checkout-api" exceeded its progress deadline',
    ),
    (
        {"observedGeneration": 2, "updatedReplicas": 1, "replicas": 4},
        2,
        False,
        False,
        WAIT + "1 out of 3 new replicas have been updated...",
    ),
    (
        {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4, "availableReplicas": 3},
        2,
        False,
        False,
        WAIT + "1 old replicas are pending termination...",
    ),
    (
        {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2},
        2,
        False,
        False,
        WAIT + "2 of 3 updated replicas are available...",
    ),
    (
        {
            "observedGeneration": 3,
            "updatedReplicas": 3,
            "replicas": 3,
            "availableReplicas": 3,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ],
        },
        2,
        True,
        False,
        'deployment "checkout-api" successfully rolled out',
    ),
]


@pytest.mark.parametrize(("status", "generation", "complete", "failed", "message"), STATUS_CASES)
def test_rollout_status_follows_kubectl(
    status: dict[str, Any], generation: int, complete: bool, failed: bool, message: str
) -> None:
    result = rollout_status_of(deployment(status=status, generation=generation))
    assert (result.is_complete, result.is_failed, result.message) == (complete, failed, message)


def test_the_deadline_is_only_believed_once_the_generation_is_observed() -> None:
    stale = {
        "observedGeneration": 1,
        "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    }
    assert not rollout_status_of(deployment(status=stale, generation=2)).is_failed


# ── selectors, jobs, errors ───────────────────────────────────────────────────────────────────


def test_label_selector_string_covers_set_based_requirements() -> None:
    selector = k8s.V1LabelSelector.from_dict(
        {
            "matchLabels": {"app": "checkout", "tier": "web"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector is not None
    assert (
        label_selector_string(selector) == "!legacy,app=checkout,tier=web,track in (canary,stable)"
    )


def job(conditions: list[dict[str, str]], **status: int) -> k8s.V1Job:
    model = k8s.V1Job.from_dict(
        {"metadata": {"name": "smoke"}, "status": {"conditions": conditions, **status}}
    )
    assert model is not None
    return model


def test_job_states() -> None:
    assert job_state_of(job([], active=1)).phase == "running"
    assert (
        job_state_of(job([], active=1)).message
        == 'job "smoke" running: 1 active, 0 succeeded, 0 failed'
    )
    complete = job([{"type": "Complete", "status": "True"}], succeeded=1)
    assert (job_state_of(complete).phase, job_state_of(complete).message) == (
        "complete",
        'job "smoke" completed',
    )
    failed = job(
        [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    )
    assert job_state_of(failed).phase == "failed"
    assert job_state_of(failed).message == (
        'job "smoke" failed: BackoffLimitExceeded: Job has reached the specified backoff limit'
    )
    pending_failure = job([{"type": "FailureTarget", "status": "True"}], active=1)
    assert job_state_of(pending_failure).phase == "running"


def api_exception(status: int, body: str | None) -> ApiException:
    exc = ApiException(status=status, reason="whatever the proxy said")
    exc.body = body
    return exc


def test_errors_carry_the_status_message_not_a_repr() -> None:
    body = (
        '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,'
        '"message":"deployments.apps \\"checkout-api\\" is forbidden: User \\"bot\\" cannot patch"}'
    )
    error = error_from_api(api_exception(403, body))
    assert (error.status, error.reason) == (403, "Forbidden")
    assert str(error) == 'deployments.apps "checkout-api" is forbidden: User "bot" cannot patch'


def test_not_found_names_the_object_and_namespace() -> None:
    error = error_from_api(
        api_exception(404, '{"kind":"Status","reason":"NotFound","message":"x"}'),
        'deployment "checkout-api" not found in namespace "shop"',
    )
    assert str(error) == 'deployment "checkout-api" not found in namespace "shop"'


@pytest.mark.parametrize(
    ("status", "body", "reason", "words"),
    [
        (
            503,
            None,
            "ServiceUnavailable",
            "the Kubernetes API answered HTTP 503 Service Unavailable",
        ),
        (502, "<html><body>Bad gateway</body></html>", "Bad Gateway", "HTTP 502 Bad Gateway"),
        (500, "etcdserver: request timed out\n", "InternalError", "etcdserver: request timed out"),
    ],
)
def test_errors_without_a_status_body_are_still_words(
    status: int, body: str | None, reason: str, words: str
) -> None:
    error = error_from_api(api_exception(status, body))
    assert error.reason == reason
    assert words in str(error) and "<" not in str(error) and "\n" not in str(error)


# ── against the Kubernetes API simulator, through the real SDK ────────────────────────────────

NS = "shop"
APP = "checkout-api"
IMAGES = ["shop/checkout:1", "shop/checkout:2", "shop/checkout:3"]
HERE = KubeTarget(None, NS)
DEPLOYMENT_PATH = rf"/deployments/{APP}$"


class FakeClock:
    """Seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[KubeSimulator]:
    with KubeSimulator(clock=clock) as started:
        started.seed_deployment(NS, APP, images=IMAGES)
        yield started


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def kube(sim: KubeSimulator, sleeps: list[float]) -> Iterator[KubernetesClient]:
    adapter = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), sleep=sleeps.append)
    yield adapter
    adapter.close()


def calls(sim: KubeSimulator, method: str, path_regex: str) -> list[str]:
    """The requests (path and query) whose path, query left out, matches `path_regex`."""
    pattern = re.compile(path_regex)
    return [
        path
        for verb, path in sim.requests
        if verb == method and pattern.search(path.partition("?")[0])
    ]


def pause(kube: KubernetesClient) -> None:
    patch = [{"op": "add", "path": "/spec/paused", "value": True}]
    kube.patch_object(HERE, "apps/v1", "Deployment", APP, patch)


# rollout undo, as kubectl does it


def test_undo_goes_back_to_the_previous_revision_by_reusing_its_replicaset(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    before = {r.number: r.replicaset for r in kube.history(HERE, APP)}

    templates = {r.number: r.template for r in kube.history(HERE, APP)}
    plan = kube.undo(HERE, APP, None)

    assert plan == UndoPlan(
        deployment=APP,
        from_revision=3,
        to_revision=2,
        images_before={"app": IMAGES[2]},
        images_after={"app": IMAGES[1]},
        is_noop=False,
        from_template=templates[3],
        to_template=templates[2],
    )
    assert len(set(templates.values())) == 3  # one fingerprint per release
    sim.tick()
    after = {r.number: r.replicaset for r in kube.history(HERE, APP)}
    assert after == {1: before[1], 3: before[3], 4: before[2]}  # reused, revision bumped
    # a release keeps its fingerprint under its new number: that is how the bot knows it
    assert {r.number: r.template for r in kube.history(HERE, APP)}[4] == templates[2]
    info = kube.deployment(HERE, APP)
    assert (info.revision, info.images) == (4, {"app": IMAGES[1]})
    [patch] = calls(sim, "PATCH", DEPLOYMENT_PATH)
    assert "dryRun" not in patch


def test_a_second_undo_returns_to_where_the_first_started(kube: KubernetesClient) -> None:
    kube.undo(HERE, APP, None)
    plan = kube.undo(HERE, APP, None)  # kubectl: the second-highest revision is now 3
    assert (plan.to_revision, plan.images_after) == (3, {"app": IMAGES[2]})
    assert kube.deployment(HERE, APP).images == {"app": IMAGES[2]}


def test_undo_to_a_given_revision(kube: KubernetesClient) -> None:
    plan = kube.undo(HERE, APP, 1)
    assert (plan.from_revision, plan.to_revision) == (3, 1)
    assert kube.deployment(HERE, APP).images == {"app": IMAGES[0]}


def test_undo_to_an_unknown_revision_changes_nothing(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    with pytest.raises(KubeError, match=r"^unable to find specified revision 7 in history$"):
        kube.undo(HERE, APP, 7)
    assert calls(sim, "PATCH", DEPLOYMENT_PATH) == []


def test_undo_without_history(sim: KubeSimulator, kube: KubernetesClient) -> None:
    sim.seed_deployment(NS, "fresh", images=["fresh:1"])
    with pytest.raises(KubeError) as caught:
        kube.plan_undo(HERE, "fresh", None)
    assert str(caught.value) == 'no rollout history found for deployment "fresh"'


def test_a_paused_deployment_is_not_rolled_back(sim: KubeSimulator, kube: KubernetesClient) -> None:
    pause(kube)
    with pytest.raises(KubeError) as caught:
        kube.undo(HERE, APP, None)
    assert str(caught.value) == (
        "you cannot rollback a paused deployment; resume it first with "
        f"'kubectl rollout resume deployment/{APP}' and try again"
    )
    assert caught.value.reason == "Paused"
    assert len(calls(sim, "PATCH", DEPLOYMENT_PATH)) == 1  # the pause, nothing after it


def test_undo_to_the_current_revision_is_skipped(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    plan = kube.undo(HERE, APP, 3)
    assert plan.is_noop and plan.images_before == plan.images_after
    assert calls(sim, "PATCH", DEPLOYMENT_PATH) == []


def test_dry_run_undo_asks_the_server_and_changes_nothing(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    plan = kube.undo(HERE, APP, None, dry_run=True)
    sim.tick()
    assert plan.to_revision == 2
    [patch] = calls(sim, "PATCH", DEPLOYMENT_PATH)
    assert "dryRun=All" in patch
    info = kube.deployment(HERE, APP)
    assert (info.revision, info.images) == (3, {"app": IMAGES[2]})
    assert [r.number for r in kube.history(HERE, APP)] == [1, 2, 3]


def test_history_only_counts_replicasets_the_deployment_controls(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    # same labels, other owner: kubectl's IsControlledBy filter keeps it out
    sim.seed_deployment(NS, "impostor", images=["x:1", "x:2"], labels={"app": APP})
    assert [r.images["app"] for r in kube.history(HERE, APP)] == IMAGES


# rollout status


def test_rollout_status_waits_for_available_replicas(
    sim: KubeSimulator, clock: FakeClock, kube: KubernetesClient
) -> None:
    sim.set_ready_delay(30)
    kube.undo(HERE, APP, None)
    sim.tick()
    waiting = kube.rollout_status(HERE, APP)
    assert not waiting.is_complete and not waiting.is_failed
    assert waiting.message == (  # a rolling update: one surge pod, the old ones still serving
        f'Waiting for deployment "{APP}" rollout to finish: '
        "1 out of 3 new replicas have been updated..."
    )
    state = kube.release_state(HERE, APP)
    assert [
        (r.revision, r.images, r.replicas, r.available, r.is_current) for r in state.releases
    ] == [
        (4, {"app": IMAGES[1]}, 1, 0, True),
        (3, {"app": IMAGES[2]}, 3, 3, False),
    ]
    assert (state.revision, state.replicas) == (4, 3)
    clock.advance(31)
    sim.tick()
    done = kube.rollout_status(HERE, APP)
    assert done == RolloutStatus(True, False, f'deployment "{APP}" successfully rolled out')
    assert [(r.revision, r.available) for r in kube.release_state(HERE, APP).releases] == [(4, 3)]


def test_a_never_ready_rollout_exceeds_its_progress_deadline(
    sim: KubeSimulator, clock: FakeClock, kube: KubernetesClient
) -> None:
    sim.set_never_ready(NS, APP)
    deadline = [{"op": "add", "path": "/spec/progressDeadlineSeconds", "value": 60}]
    kube.patch_object(HERE, "apps/v1", "Deployment", APP, deadline)
    kube.set_image(HERE, APP, "app", "shop/checkout:4")
    clock.advance(30)
    sim.tick()
    assert not kube.rollout_status(HERE, APP).is_failed
    clock.advance(31)
    sim.tick()
    failed = kube.rollout_status(HERE, APP)
    assert failed == RolloutStatus(
        False, True, f'deployment "{APP}" exceeded its progress deadline'
    )


# set image, scale, restart


def test_set_image(sim: KubeSimulator, kube: KubernetesClient) -> None:
    assert kube.set_image(HERE, APP, "app", "shop/checkout:4") == (IMAGES[2], "shop/checkout:4")
    sim.tick()
    assert kube.deployment(HERE, APP).revision == 4
    assert kube.set_image(HERE, APP, "app", "shop/checkout:4") == ("shop/checkout:4",) * 2
    assert len(calls(sim, "PATCH", DEPLOYMENT_PATH)) == 1  # the second one had nothing to do


def test_set_image_of_an_unknown_container(kube: KubernetesClient) -> None:
    with pytest.raises(KubeError) as caught:
        kube.set_image(HERE, APP, "sidecar", "envoy:2")
    assert str(caught.value) == f'unable to find container named "sidecar" in deployment "{APP}"'


def test_scale_through_the_scale_subresource(sim: KubeSimulator, kube: KubernetesClient) -> None:
    assert kube.scale(HERE, APP, 5) == (3, 5)
    assert calls(sim, "PATCH", rf"/deployments/{APP}/scale")
    assert kube.deployment(HERE, APP).replicas == 5
    assert kube.scale(HERE, APP, 1, dry_run=True) == (5, 1)
    assert kube.deployment(HERE, APP).replicas == 5


def test_restart_stamps_the_pod_template(sim: KubeSimulator, kube: KubernetesClient) -> None:
    kube.restart(HERE, APP, at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    sim.tick()
    template = kube.read_object(HERE, "apps/v1", "Deployment", APP)["spec"]["template"]
    stamp = template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert stamp == "2024-05-01T12:00:00Z"
    assert kube.deployment(HERE, APP).revision == 4  # a new ReplicaSet, as with kubectl


def test_a_paused_deployment_is_not_restarted(kube: KubernetesClient) -> None:
    pause(kube)
    with pytest.raises(KubeError, match="can't restart paused deployment"):
        kube.restart(HERE, APP, at=datetime(2024, 5, 1, tzinfo=UTC))


# service selector switch


def test_switch_selector_replaces_the_whole_selector(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    sim.seed_service(NS, "checkout", {"app": APP, "track": "blue"})
    assert kube.service_selector(HERE, "checkout") == {"app": APP, "track": "blue"}

    before, after = kube.switch_selector(HERE, "checkout", {"app": f"{APP}-green"})

    assert (before, after) == ({"app": APP, "track": "blue"}, {"app": f"{APP}-green"})
    assert kube.service_selector(HERE, "checkout") == {"app": f"{APP}-green"}  # no stale keys


def test_switch_selector_dry_run_changes_nothing(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    sim.seed_service(NS, "checkout", {"app": APP})
    assert kube.switch_selector(HERE, "checkout", {"app": "x"}, dry_run=True)[1] == {"app": "x"}
    assert kube.service_selector(HERE, "checkout") == {"app": APP}


def test_a_selector_changed_meanwhile_fails_the_switch(
    sim: KubeSimulator, kube: KubernetesClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.seed_service(NS, "checkout", {"app": APP, "track": "blue"})
    other = KubernetesClient(api_client_for=lambda ctx: sim.api_client())
    # the race needs a write between our read and our patch: wedge another client's switch there
    read = kube._read_service

    def read_then_someone_else_switches(t: KubeTarget, name: str) -> Any:
        service = read(t, name)
        if other.service_selector(t, name)["track"] == "blue":
            other.switch_selector(t, name, {"app": APP, "track": "red"})
        return service

    monkeypatch.setattr(kube, "_read_service", read_then_someone_else_switches)
    with pytest.raises(KubeError) as caught:
        kube.switch_selector(HERE, "checkout", {"app": APP, "track": "green"})
    assert (caught.value.status, caught.value.reason) == (422, "SelectorChanged")
    assert str(caught.value) == (
        'the selector of service "checkout" changed while switching it: expected '
        f"app={APP},track=blue, found app={APP},track=red (wanted app={APP},track=green)"
    )
    assert other.service_selector(HERE, "checkout")["track"] == "red"


# jobs

SMOKE_SPEC = {
    "backoffLimit": 0,
    "template": {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "smoke", "image": "curlimages/curl:8", "args": ["-f", "x"]}],
        }
    },
}


def test_a_job_runs_then_completes(
    sim: KubeSimulator, clock: FakeClock, kube: KubernetesClient
) -> None:
    sim.set_job_outcome(NS, "smoke-", "complete", after_seconds=10)
    kube.create_job(HERE, "smoke-1", SMOKE_SPEC, labels={"rollback": "42"})
    # re-run after a crash: already there, with our identity, is fine
    kube.create_job(HERE, "smoke-1", SMOKE_SPEC, labels={"rollback": "42"})
    sim.tick()
    assert kube.job_state(HERE, "smoke-1").phase == "running"
    clock.advance(10)
    sim.tick()
    assert kube.job_state(HERE, "smoke-1") == JobState("complete", 'job "smoke-1" completed')
    job = kube.read_object(HERE, "batch/v1", "Job", "smoke-1")
    assert job["metadata"]["labels"] == {"rollback": "42"}


def test_a_job_of_the_same_name_from_elsewhere_is_never_adopted(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    kube.create_job(HERE, "db-downgrade", SMOKE_SPEC, labels={"rollback-bot/rollback": "3"})
    kube.create_job(HERE, "db-downgrade", SMOKE_SPEC, labels={"rollback-bot/rollback": "3"})
    with pytest.raises(KubeError) as refused:  # rollback 4 must not take 3's job as its own
        kube.create_job(HERE, "db-downgrade", SMOKE_SPEC, labels={"rollback-bot/rollback": "4"})
    assert refused.value.status == 409
    assert "was not created by this step (its labels: rollback-bot/rollback=3," in str(
        refused.value
    )
    assert f"kubectl -n {NS} delete job db-downgrade" in str(refused.value)


def test_a_job_without_an_identity_is_never_created_or_adopted(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    with pytest.raises(KubeError, match="no identity labels"):
        kube.create_job(HERE, "anonymous", SMOKE_SPEC, labels={})
    assert calls(sim, "POST", "/jobs") == []


def test_a_failed_job_says_why(sim: KubeSimulator, kube: KubernetesClient) -> None:
    sim.set_job_outcome(NS, "smoke-", "failed")
    kube.create_job(HERE, "smoke-2", SMOKE_SPEC, labels={"rollback": "1"})
    sim.tick()
    state = kube.job_state(HERE, "smoke-2")
    assert state.phase == "failed"
    assert "BackoffLimitExceeded" in state.message


def test_an_invalid_job_spec_is_refused_before_any_request(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    with pytest.raises(KubeError, match=r'^job "bad": spec.template.spec.containers.0.name'):
        bad = {"template": {"spec": {"containers": [{"image": "x"}]}}}
        kube.create_job(HERE, "bad", bad, labels={"rollback": "1"})
    assert calls(sim, "POST", "/jobs") == []


# snapshots and generic JSON Patches

VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "checkout"},
    "spec": {
        "hosts": ["checkout"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "checkout", "subset": "stable"}, "weight": 100},
                    {"destination": {"host": "checkout", "subset": "canary"}, "weight": 0},
                ]
            }
        ],
    },
}


def test_virtual_service_snapshot_and_weight_patch(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    with sim.api_client() as api:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            "networking.istio.io", "v1beta1", NS, "virtualservices", VIRTUAL_SERVICE
        )
    vs = ("networking.istio.io/v1beta1", "VirtualService", "checkout")

    snapshot = kube.read_object(HERE, *vs)
    assert snapshot["spec"] == VIRTUAL_SERVICE["spec"]
    yaml.safe_dump(snapshot)  # plain data, ready for the review document

    weights = [
        {"op": "test", "path": "/spec/http/0/route/1/weight", "value": 0},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100},
    ]
    patched = kube.patch_object(HERE, *vs, weights)
    assert [r["weight"] for r in patched["spec"]["http"][0]["route"]] == [0, 100]
    assert kube.read_object(HERE, *vs)["spec"]["http"][0]["route"][1]["weight"] == 100


def test_builtin_snapshots_are_plain_camel_case_dicts(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    sim.seed_service(NS, "checkout", {"app": APP})
    deployment = kube.read_object(HERE, "apps/v1", "Deployment", APP)
    service = kube.read_object(HERE, "v1", "Service", "checkout")
    [rs, *_] = kube.history(HERE, APP)
    replicaset = kube.read_object(HERE, "apps/v1", "ReplicaSet", rs.replicaset)
    assert deployment["metadata"]["resourceVersion"] and "creationTimestamp" in service["metadata"]
    assert replicaset["metadata"]["ownerReferences"][0]["controller"] is True
    assert yaml.safe_load(yaml.safe_dump(deployment)) == deployment


def test_a_missing_object_is_named_in_words(kube: KubernetesClient) -> None:
    with pytest.raises(KubeError) as caught:
        kube.deployment(HERE, "nope")
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
    assert str(caught.value) == 'deployment "nope" not found in namespace "shop"'
    with pytest.raises(KubeError, match=r'^virtualservice "gone" not found in namespace "shop"$'):
        kube.read_object(HERE, "networking.istio.io/v1beta1", "VirtualService", "gone")


# the error policy: 409 re-read, 429/5xx backoff, other 4xx at once


def test_a_conflict_is_re_read_and_retried(
    sim: KubeSimulator, kube: KubernetesClient, sleeps: list[float]
) -> None:
    sim.inject("PATCH", DEPLOYMENT_PATH, 409)
    assert kube.undo(HERE, APP, None).to_revision == 2
    assert len(calls(sim, "PATCH", DEPLOYMENT_PATH)) == 2
    assert len(calls(sim, "GET", DEPLOYMENT_PATH)) == 2  # the second attempt read afresh
    assert kube.deployment(HERE, APP).images == {"app": IMAGES[1]}


def test_conflicts_stop_after_the_retry_budget(sim: KubeSimulator) -> None:
    kube = KubernetesClient(api_client_for=lambda ctx: sim.api_client(), retries=2)
    sim.inject("PATCH", DEPLOYMENT_PATH, 409, times=5)
    with pytest.raises(KubeError) as caught:
        kube.set_image(HERE, APP, "app", "shop/checkout:9")
    assert (caught.value.status, caught.value.reason) == (409, "Conflict")
    assert len(calls(sim, "PATCH", DEPLOYMENT_PATH)) == 3


def test_server_errors_are_retried_with_exponential_backoff(
    sim: KubeSimulator, kube: KubernetesClient, sleeps: list[float]
) -> None:
    sim.inject("GET", DEPLOYMENT_PATH, 500, times=2)
    assert kube.deployment(HERE, APP).revision == 3
    assert sleeps == [0.2, 0.4]


def test_too_many_requests_honours_retry_after(
    sim: KubeSimulator, kube: KubernetesClient, sleeps: list[float]
) -> None:
    sim.inject("GET", DEPLOYMENT_PATH, 429)
    assert kube.rollout_status(HERE, APP).is_complete
    assert sleeps == [1.0]


def test_a_lasting_outage_ends_as_words(sim: KubeSimulator, sleeps: list[float]) -> None:
    kube = KubernetesClient(
        api_client_for=lambda ctx: sim.api_client(), retries=2, sleep=sleeps.append
    )
    sim.inject("GET", DEPLOYMENT_PATH, 503, times=10)
    with pytest.raises(KubeError) as caught:
        kube.deployment(HERE, APP)
    assert (caught.value.status, caught.value.reason) == (503, "ServiceUnavailable")
    assert str(caught.value) == "the server is currently unable to handle the request"
    assert sleeps == [0.2, 0.4]


def test_forbidden_fails_at_once_in_words(
    sim: KubeSimulator, kube: KubernetesClient, sleeps: list[float]
) -> None:
    sim.inject("PATCH", DEPLOYMENT_PATH, 403)
    with pytest.raises(KubeError) as caught:
        kube.set_image(HERE, APP, "app", "shop/checkout:4")
    assert (caught.value.status, caught.value.reason) == (403, "Forbidden")
    assert str(caught.value) == "forbidden: injected by KubeSimulator"
    assert sleeps == [] and len(calls(sim, "PATCH", DEPLOYMENT_PATH)) == 1


def test_undo_failures_say_which_revision(sim: KubeSimulator, kube: KubernetesClient) -> None:
    sim.inject("PATCH", DEPLOYMENT_PATH, 403)
    with pytest.raises(KubeError) as caught:
        kube.undo(HERE, APP, None)
    assert str(caught.value) == "failed restoring revision 2: forbidden: injected by KubeSimulator"


def test_an_unreachable_api_is_retried_then_reported(sleeps: list[float]) -> None:
    url = closed_port_url()
    configuration = Configuration(host=url)
    configuration.proxy = None
    kube = KubernetesClient(
        api_client_for=lambda ctx: ApiClient(configuration), retries=2, sleep=sleeps.append
    )
    with pytest.raises(KubeError) as caught:
        kube.deployment(HERE, APP)
    assert (caught.value.status, caught.value.reason) == (None, "Unreachable")
    host = url.removeprefix("http://")
    assert str(caught.value) == (
        f"Kubernetes API at {host} unreachable: connection refused or host unreachable"
    )
    assert sleeps == [0.2, 0.4]
    kube.close()


# kube contexts


def test_one_api_client_per_kube_context(sim: KubeSimulator) -> None:
    built: list[str | None] = []

    def api_client_for(context: str | None) -> ApiClient:
        built.append(context)
        return sim.api_client()

    kube = KubernetesClient(api_client_for=api_client_for)
    for context in ["prod-eu", "prod-us", "prod-eu", None, "prod-us"]:
        assert kube.deployment(KubeTarget(context, NS), APP).revision == 3
    assert built == ["prod-eu", "prod-us", None]
    kube.close()


def test_an_unknown_kube_context_is_a_config_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
        "contexts: [{name: dev, context: {cluster: dev, user: dev}}]\n"
        "clusters: [{name: dev, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: dev, user: {token: s3cr3t-token}}]\n"
    )
    kube = KubernetesClient(kubeconfig=str(kubeconfig))
    with pytest.raises(KubeError) as caught:
        kube.deployment(KubeTarget("prod", NS), APP)
    assert (caught.value.status, caught.value.reason) == (None, "ConfigError")
    assert str(caught.value).startswith('cannot load Kubernetes credentials for context "prod": ')
    assert "s3cr3t" not in str(caught.value)


# who changed it: managedFields and the audit log name the bot, not "OpenAPI-Generator"


def test_every_write_names_the_bot_as_field_manager_and_user_agent(
    sim: KubeSimulator, kube: KubernetesClient
) -> None:
    sim.seed_service(NS, "checkout", {"app": APP})
    with sim.api_client() as api:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            "networking.istio.io", "v1beta1", NS, "virtualservices", VIRTUAL_SERVICE
        )
    seeded, start = len(sim.writes), len(sim.requests)
    kube.undo(HERE, APP, None)
    kube.set_image(HERE, APP, "app", "shop/checkout:9")
    kube.scale(HERE, APP, 2)
    kube.restart(HERE, APP, at=datetime(2026, 1, 1, tzinfo=UTC))
    kube.switch_selector(HERE, "checkout", {"app": APP, "track": "stable"}, dry_run=True)
    kube.create_job(HERE, "smoke-9", SMOKE_SPEC, labels={"rollback": "9"})
    weight = [{"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0}]
    kube.patch_object(HERE, "networking.istio.io/v1beta1", "VirtualService", "checkout", weight)

    ours = sim.writes[seeded:]
    assert len(ours) == 7
    version = importlib.metadata.version("rollback-bot")
    assert {(manager, agent) for _, _, manager, agent in ours} == {
        ("rollback-bot", f"rollback-bot/{version}")
    }
    # reads too: an audit log tells all of the bot's requests apart
    assert set(sim.user_agents[start:]) == {f"rollback-bot/{version}"}
