"""The Kubernetes simulator, driven only through the official client (kubernetes 37)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from bot.sim.kube_api import KubeSimulator

NS = "shop"
REVISION = "deployment.kubernetes.io/revision"


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
        started.seed_namespace(NS)
        yield started


@pytest.fixture
def api(sim: KubeSimulator) -> Iterator[ApiClient]:
    with sim.api_client() as api_client:
        yield api_client


@pytest.fixture
def apps(api: ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def deployment(
    name: str, image: str = "web:1", labels: dict[str, str] | None = None, replicas: int = 3
) -> client.V1Deployment:
    labels = labels or {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
            ),
        ),
    )


def status_body(error: ApiException) -> dict[str, Any]:
    """ApiException.body is text in v37: the Status object as the server sent it."""
    assert isinstance(error.body, str)
    body: dict[str, Any] = json.loads(error.body)
    return body


def set_image(image: str) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]


def replica_sets_by_revision(apps: client.AppsV1Api, name: str) -> dict[int, Any]:
    listed = apps.list_namespaced_replica_set(NS, label_selector=f"app={name}")
    return {int(rs.metadata.annotations[REVISION]): rs for rs in listed.items}


def condition(dep: client.V1Deployment, kind: str) -> Any:
    return next(c for c in dep.status.conditions if c.type == kind)


# -- CRUD and errors ---------------------------------------------------------------------------


def test_deployment_crud_round_trip(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment("web"))
    assert created.metadata.resource_version
    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    assert created.spec.strategy.rolling_update.max_surge == "25%"  # server-side defaults

    read = apps.read_namespaced_deployment("web", NS)
    assert read.status.observed_generation == 1  # the controller ran before the read
    read.spec.replicas = 5
    replaced = apps.replace_namespaced_deployment("web", NS, read)
    assert replaced.metadata.generation == 2
    assert int(replaced.metadata.resource_version) > int(read.metadata.resource_version)
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["web"]

    deleted = apps.delete_namespaced_deployment("web", NS)
    assert isinstance(deleted, dict)  # v37: delete calls answer plain dicts
    assert deleted["status"] == "Success"
    assert deleted["details"] == {
        "name": "web",
        "group": "apps",
        "kind": "deployments",
        "uid": created.metadata.uid,
    }
    assert apps.list_namespaced_replica_set(NS).items == []  # garbage-collected with it


def test_missing_object_is_a_not_found_status(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment("ghost", NS)

    assert raised.value.status == 404
    assert raised.value.reason == "Not Found"
    assert status_body(raised.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "ghost" not found',
        "reason": "NotFound",
        "details": {"name": "ghost", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


def test_creating_an_existing_name_is_already_exists(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment(NS, deployment("web"))

    assert raised.value.status == 409
    body = status_body(raised.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'deployments.apps "web" already exists'

    service = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
    )
    core.create_namespaced_service(NS, service)
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_service(NS, service)
    assert status_body(raised.value)["message"] == 'services "web" already exists'


def test_replace_with_a_stale_resource_version_is_a_conflict(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    stale = apps.read_namespaced_deployment("web", NS)
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})

    stale.spec.replicas = 2
    with pytest.raises(ApiException) as raised:
        apps.replace_namespaced_deployment("web", NS, stale)

    assert raised.value.status == 409
    assert raised.value.reason == "Conflict"
    assert status_body(raised.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on deployments.apps "web": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 409,
    }
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4


def test_concurrent_writers_retrying_on_conflict_lose_no_update(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))

    def bump(_: int) -> None:
        """Read, modify, replace; on 409 Conflict re-read and try again."""
        while True:
            current = apps.read_namespaced_deployment("web", NS)
            annotations = current.metadata.annotations or {}
            annotations["count"] = str(int(annotations.get("count", "0")) + 1)
            current.metadata.annotations = annotations
            try:
                apps.replace_namespaced_deployment("web", NS, current)
                return
            except ApiException as error:
                assert error.status == 409

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(bump, range(16)))

    assert apps.read_namespaced_deployment("web", NS).metadata.annotations["count"] == "16"


def test_failed_json_patch_test_is_unprocessable(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    current = apps.read_namespaced_deployment("web", NS)
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": "0"}

    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment("web", NS, [guard, *set_image("web:2")])

    assert raised.value.status == 422
    body = status_body(raised.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == "the server rejected our request due to an error in our request"
    after = apps.read_namespaced_deployment("web", NS)
    assert after.metadata.resource_version == current.metadata.resource_version
    guard["value"] = current.metadata.resource_version
    patched = apps.patch_namespaced_deployment("web", NS, [guard, *set_image("web:2")])
    assert patched.spec.template.spec.containers[0].image == "web:2"


def test_invalid_deployment_is_rejected_with_causes(apps: client.AppsV1Api) -> None:
    body = deployment("web")
    body.spec.template.metadata.labels = {"app": "other"}

    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment(NS, body)

    assert raised.value.status == 422
    status = status_body(raised.value)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith('Deployment.apps "web" is invalid: ')
    assert status["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


def test_a_no_op_write_keeps_the_resource_version(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    read = apps.read_namespaced_deployment("web", NS)

    patched = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})

    assert patched.metadata.resource_version == read.metadata.resource_version


# -- selectors, lists, namespaces ----------------------------------------------------------------


def test_label_and_field_selectors(apps: client.AppsV1Api) -> None:
    for name, labels in {
        "web": {"app": "web", "env": "prod", "tier": "front"},
        "api": {"app": "api", "env": "staging", "tier": "back"},
        "db": {"app": "db", "env": "prod", "tier": "db"},
        "canary": {"app": "web-canary", "env": "dev", "tier": "front", "canary": "true"},
    }.items():
        apps.create_namespaced_deployment(NS, deployment(name, labels=labels))

    def names(**selectors: str) -> list[str]:
        listed = apps.list_namespaced_deployment(NS, **selectors)
        return [d.metadata.name for d in listed.items]

    assert names(label_selector="app=web") == ["web"]
    assert names(label_selector="env=prod,tier!=db") == ["web"]
    assert names(label_selector="env in (prod,staging)") == ["api", "db", "web"]
    assert names(label_selector="env notin (prod), !canary") == ["api"]
    assert names(label_selector="canary") == ["canary"]
    assert names(field_selector="metadata.name=db") == ["db"]
    assert names(field_selector="metadata.name!=db", label_selector="env=prod") == ["web"]


def test_lists_are_paginated_with_limit_and_continue(apps: client.AppsV1Api) -> None:
    for name in ("a", "b", "c"):
        apps.create_namespaced_deployment(NS, deployment(name))

    first = apps.list_namespaced_deployment(NS, limit=2)
    rest = apps.list_namespaced_deployment(NS, limit=2, _continue=first.metadata._continue)

    assert [d.metadata.name for d in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 1
    assert [d.metadata.name for d in rest.items] == ["c"]
    assert rest.metadata._continue is None


def test_namespaces_exist_once_used(sim: KubeSimulator, core: client.CoreV1Api) -> None:
    sim.seed_service(NS, "web", {"app": "web"})

    namespace = core.read_namespace(NS)

    assert namespace.status.phase == "Active"
    assert namespace.metadata.labels == {"kubernetes.io/metadata.name": NS}
    with pytest.raises(ApiException) as raised:
        core.read_namespace("nowhere")
    assert status_body(raised.value)["message"] == 'namespaces "nowhere" not found'


def test_version_and_cluster_wide_lists(
    sim: KubeSimulator, api: ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    sim.seed_deployment("other", "api", images=["api:1"], replicas=1)

    assert client.VersionApi(api).get_code().git_version.startswith("v1.37")
    listed = apps.list_deployment_for_all_namespaces()
    assert [(d.metadata.namespace, d.metadata.name) for d in listed.items] == [
        ("other", "api"),
        (NS, "web"),
    ]
    assert len(core.list_pod_for_all_namespaces().items) == 4
    assert {NS, "other", "default"} <= {n.metadata.name for n in core.list_namespace().items}


# -- services and patch flavours -----------------------------------------------------------------


def test_json_patch_replaces_a_service_selector_whole(
    sim: KubeSimulator, core: client.CoreV1Api
) -> None:
    sim.seed_service(NS, "web", {"app": "web", "track": "blue"})

    merged = core.patch_namespaced_service("web", NS, {"spec": {"selector": {"track": "green"}}})
    assert merged.spec.selector == {"app": "web", "track": "green"}  # strategic merge keeps keys

    replace = [{"op": "replace", "path": "/spec/selector", "value": {"app": "web-v2"}}]
    replaced = core.patch_namespaced_service("web", NS, replace)

    assert replaced.spec.selector == {"app": "web-v2"}
    assert core.read_namespaced_service("web", NS).spec.selector == {"app": "web-v2"}
    assert replaced.spec.cluster_ip.startswith("10.96.")


def test_merge_patch_removes_keys_with_null(sim: KubeSimulator, core: client.CoreV1Api) -> None:
    sim.seed_service(NS, "web", {"app": "web", "track": "blue"})

    patched = core.patch_namespaced_service(
        "web",
        NS,
        {"spec": {"selector": {"track": None}}},
        _content_type="application/merge-patch+json",
    )

    assert patched.spec.selector == {"app": "web"}


def test_strategic_merge_patches_containers_by_name(apps: client.AppsV1Api) -> None:
    body = deployment("web")
    body.spec.template.spec.containers.append(client.V1Container(name="proxy", image="envoy:1"))
    apps.create_namespaced_deployment(NS, body)

    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:9"}]}}}}
    patched = apps.patch_namespaced_deployment("web", NS, patch)

    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"app": "web:9", "proxy": "envoy:1"}


def test_server_side_dry_run_stores_nothing(sim: KubeSimulator, apps: client.AppsV1Api) -> None:
    would_be = apps.create_namespaced_deployment(NS, deployment("new"), dry_run="All")
    assert would_be.metadata.name == "new"
    assert would_be.metadata.uid
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment("new", NS)
    assert raised.value.status == 404

    sim.seed_deployment(NS, "web", images=["web:1"])
    before = apps.read_namespaced_deployment("web", NS)
    preview = apps.patch_namespaced_deployment("web", NS, set_image("web:2"), dry_run="All")
    assert preview.spec.template.spec.containers[0].image == "web:2"
    assert preview.metadata.generation == before.metadata.generation + 1
    before.spec.replicas = 1
    apps.replace_namespaced_deployment("web", NS, before, dry_run="All")
    apps.delete_namespaced_deployment("web", NS, dry_run="All")

    after = apps.read_namespaced_deployment("web", NS)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.spec.template.spec.containers[0].image == "web:1"
    assert after.spec.replicas == 3
    assert len(replica_sets_by_revision(apps, "web")) == 1
    assert ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web?dryRun=All") in sim.requests


# -- the deployment controller -----------------------------------------------------------------


def test_seeded_deployment_has_one_replica_set_per_release(
    sim: KubeSimulator, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1", "web:2", "web:3"])

    dep = apps.read_namespaced_deployment("web", NS)
    by_revision = replica_sets_by_revision(apps, "web")

    assert dep.metadata.annotations[REVISION] == "3"
    assert {r: rs.spec.template.spec.containers[0].image for r, rs in by_revision.items()} == {
        1: "web:1",
        2: "web:2",
        3: "web:3",
    }
    assert {r: rs.spec.replicas for r, rs in by_revision.items()} == {1: 0, 2: 0, 3: 3}
    current = by_revision[3]
    pod_hash = current.metadata.labels["pod-template-hash"]
    assert current.metadata.name == f"web-{pod_hash}"
    assert current.spec.selector.match_labels == {"app": "web", "pod-template-hash": pod_hash}
    owner = current.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == ("Deployment", dep.metadata.uid, True)
    assert (dep.status.updated_replicas, dep.status.available_replicas) == (3, 3)
    assert condition(dep, "Progressing").reason == "NewReplicaSetAvailable"
    assert condition(dep, "Available").status == "True"

    pods = core.list_namespaced_pod(NS, label_selector=f"app=web,pod-template-hash={pod_hash}")
    assert len(pods.items) == 3
    assert all(p.metadata.name.startswith(f"{current.metadata.name}-") for p in pods.items)
    assert all(p.status.phase == "Running" for p in pods.items)
    assert all(p.status.container_statuses[0].image == "web:3" for p in pods.items)


def test_image_change_creates_a_replica_set_with_the_next_revision(
    sim: KubeSimulator, apps: client.AppsV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])

    patched = apps.patch_namespaced_deployment("web", NS, set_image("web:2"))
    assert patched.metadata.generation == 2
    assert patched.status.observed_generation == 1  # the controller has not seen it yet

    dep = apps.read_namespaced_deployment("web", NS)
    by_revision = replica_sets_by_revision(apps, "web")
    assert dep.status.observed_generation == 2
    assert dep.metadata.annotations[REVISION] == "2"
    assert by_revision[2].spec.template.spec.containers[0].image == "web:2"
    assert (by_revision[1].spec.replicas, by_revision[2].spec.replicas) == (0, 3)


def test_rollback_reuses_the_old_replica_set_with_a_bumped_revision(
    sim: KubeSimulator, apps: client.AppsV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1", "web:2"])
    previous = replica_sets_by_revision(apps, "web")[1]
    # What kubectl rollout undo sends: the old template without pod-template-hash.
    template = ApiClient().sanitize_for_serialization(previous.spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]

    apps.patch_namespaced_deployment(
        "web", NS, [{"op": "replace", "path": "/spec/template", "value": template}]
    )

    by_revision = replica_sets_by_revision(apps, "web")
    assert sorted(by_revision) == [2, 3]
    reused = by_revision[3]
    assert reused.metadata.uid == previous.metadata.uid
    assert reused.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert reused.spec.replicas == 3
    assert by_revision[2].spec.replicas == 0
    dep = apps.read_namespaced_deployment("web", NS)
    assert dep.metadata.annotations[REVISION] == "3"
    assert dep.status.available_replicas == 3


def test_paused_deployment_does_not_roll(sim: KubeSimulator, apps: client.AppsV1Api) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": True}})

    apps.patch_namespaced_deployment("web", NS, set_image("web:2"))

    dep = apps.read_namespaced_deployment("web", NS)
    assert sorted(replica_sets_by_revision(apps, "web")) == [1]
    assert dep.metadata.annotations[REVISION] == "1"
    assert condition(dep, "Progressing").reason == "DeploymentPaused"
    assert condition(dep, "Progressing").status == "Unknown"

    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": False}})
    assert sorted(replica_sets_by_revision(apps, "web")) == [1, 2]


def test_status_converges_after_the_ready_delay(
    sim: KubeSimulator, clock: FakeClock, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    sim.set_ready_delay(30)
    apps.patch_namespaced_deployment("web", NS, set_image("web:2"))

    # a rolling update: one surge pod of web:2, the three web:1 pods keep serving
    rolling = apps.read_namespaced_deployment("web", NS)
    assert rolling.status.updated_replicas == 1
    assert rolling.status.replicas == 4
    assert rolling.status.available_replicas == 3
    assert rolling.status.unavailable_replicas == 1
    assert condition(rolling, "Progressing").reason == "ReplicaSetUpdated"
    assert condition(rolling, "Available").status == "True"
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    ready = sorted(
        (p.spec.containers[0].image, c.status)
        for p in pods
        for c in p.status.conditions
        if c.type == "Ready"
    )
    assert ready == [("web:1", "True")] * 3 + [("web:2", "False")]

    clock.advance(29)
    sim.tick()
    assert apps.read_namespaced_deployment("web", NS).status.updated_replicas == 1

    clock.advance(2)
    sim.tick()
    done = apps.read_namespaced_deployment("web", NS)
    assert done.status.available_replicas == 3
    assert condition(done, "Progressing").reason == "NewReplicaSetAvailable"
    assert condition(done, "Available").status == "True"


def test_ready_delay_given_at_construction(clock: FakeClock) -> None:
    with KubeSimulator(clock=clock, ready_delay_seconds=5) as sim, sim.api_client() as api:
        sim.seed_namespace(NS)
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment(NS, deployment("web"))
        assert apps.read_namespaced_deployment("web", NS).status.available_replicas is None

        clock.advance(5)

        assert apps.read_namespaced_deployment("web", NS).status.available_replicas == 3


def test_never_ready_deployment_exceeds_its_progress_deadline(
    sim: KubeSimulator, clock: FakeClock, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    sim.set_never_ready(NS, "web")
    apps.patch_namespaced_deployment("web", NS, {"spec": {"progressDeadlineSeconds": 1}})
    apps.patch_namespaced_deployment("web", NS, set_image("web:2"))

    clock.advance(0.5)
    sim.tick()
    assert condition(apps.read_namespaced_deployment("web", NS), "Progressing").status == "True"

    clock.advance(1)
    sim.tick()
    dep = apps.read_namespaced_deployment("web", NS)
    progressing = condition(dep, "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    assert progressing.message.endswith("has timed out progressing.")
    assert dep.status.available_replicas is None
    [pod, *_] = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"

    sim.set_never_ready(NS, "web", is_never_ready=False)  # heals without a forced tick()
    healed = apps.read_namespaced_deployment("web", NS)
    assert condition(healed, "Progressing").reason == "NewReplicaSetAvailable"


def test_scale_subresource(sim: KubeSimulator, apps: client.AppsV1Api) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])

    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (3, 3, "app=web")

    patched = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 5
    assert replica_sets_by_revision(apps, "web")[1].spec.replicas == 5

    scale.spec.replicas = 1  # stale resourceVersion
    with pytest.raises(ApiException) as raised:
        apps.replace_namespaced_deployment_scale("web", NS, scale)
    assert status_body(raised.value)["reason"] == "Conflict"

    fresh = apps.read_namespaced_deployment_scale("web", NS)
    fresh.spec.replicas = 2
    assert apps.replace_namespaced_deployment_scale("web", NS, fresh).spec.replicas == 2


# -- jobs ----------------------------------------------------------------------------------------


def job(name: str) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="run", image="tools:1")],
                )
            )
        ),
    )


def test_jobs_complete_or_fail_as_told(
    sim: KubeSimulator, clock: FakeClock, api: ApiClient
) -> None:
    batch = client.BatchV1Api(api)
    sim.set_job_outcome(NS, "migrate-", "failed", after_seconds=10)

    batch.create_namespaced_job(NS, job("smoke-1"))
    batch.create_namespaced_job(NS, job("migrate-1"))

    smoke = batch.read_namespaced_job("smoke-1", NS)
    assert smoke.status.succeeded == 1
    assert [(c.type, c.status) for c in smoke.status.conditions][-1] == ("Complete", "True")
    running = batch.read_namespaced_job("migrate-1", NS)
    assert running.status.active == 1
    assert running.status.conditions is None

    clock.advance(10)
    sim.tick()
    failed = batch.read_namespaced_job("migrate-1", NS)
    [failed_condition] = [c for c in failed.status.conditions if c.type == "Failed"]
    assert (failed_condition.status, failed_condition.reason) == ("True", "BackoffLimitExceeded")
    assert failed.status.failed == 7  # backoffLimit 6 + 1
    assert failed.status.active is None
    assert [j.metadata.name for j in batch.list_namespaced_job(NS).items] == [
        "migrate-1",
        "smoke-1",
    ]
    assert batch.delete_namespaced_job("smoke-1", NS)["status"] == "Success"


# -- failure injection -------------------------------------------------------------------------


def test_injected_errors_are_answered_once_then_real(
    sim: KubeSimulator, apps: client.AppsV1Api
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    sim.inject("GET", r"/deployments/web$", 500)
    sim.inject("PATCH", r"/deployments/web$", 409, times=2)

    with pytest.raises(ApiException) as server_error:
        apps.read_namespaced_deployment("web", NS)
    assert server_error.value.status == 500
    assert status_body(server_error.value)["reason"] == "InternalError"
    assert apps.read_namespaced_deployment("web", NS).metadata.name == "web"

    for _ in range(2):
        with pytest.raises(ApiException) as conflict:
            apps.patch_namespaced_deployment("web", NS, set_image("web:2"))
        assert status_body(conflict.value)["message"].startswith(
            'Operation cannot be fulfilled on deployments.apps "web"'
        )
    apps.patch_namespaced_deployment("web", NS, set_image("web:2"))

    assert sim.get_object("apps/v1", "deployments", NS, "web") is not None
    assert [m for m, _ in sim.requests].count("PATCH") == 3
    assert sim.wait_for_request("PATCH", r"/deployments/web") == (
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web",
    )


def test_injected_503_with_a_custom_body(sim: KubeSimulator, core: client.CoreV1Api) -> None:
    sim.inject("*", r"/services", 503, body={"kind": "Status", "message": "etcd down"})

    with pytest.raises(ApiException) as raised:
        core.list_namespaced_service(NS)

    assert raised.value.status == 503
    assert status_body(raised.value) == {"kind": "Status", "message": "etcd down"}
    assert core.list_namespaced_service(NS).items == []


# -- generic resources -------------------------------------------------------------------------


def test_istio_virtual_service_is_json_patched(api: ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    group, version, plural = "networking.istio.io", "v1beta1", "virtualservices"
    routes = [
        {"destination": {"host": "web", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "web", "subset": "v2"}, "weight": 10},
    ]
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [{"route": routes}]},
    }
    created = custom.create_namespaced_custom_object(group, version, NS, plural, body)
    assert created["metadata"]["generation"] == 1

    patch = [
        {"op": "test", "path": "/spec/http/0/route/1/weight", "value": 10},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100},
    ]
    patched = custom.patch_namespaced_custom_object(
        group, version, NS, plural, "web", patch, _content_type="application/json-patch+json"
    )

    assert [r["weight"] for r in patched["spec"]["http"][0]["route"]] == [0, 100]
    assert patched["metadata"]["generation"] == 2
    listed = custom.list_namespaced_custom_object(group, version, NS, plural)
    assert listed["kind"] == "VirtualServiceList"
    assert [item["kind"] for item in listed["items"]] == ["VirtualService"]

    merged = custom.patch_namespaced_custom_object(
        group, version, NS, plural, "web", {"metadata": {"labels": {"owner": "bot"}}}
    )
    assert merged["metadata"]["labels"] == {"owner": "bot"}
    with pytest.raises(ApiException) as raised:
        custom.patch_namespaced_custom_object(
            group,
            version,
            NS,
            plural,
            "web",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert raised.value.status == 415
    assert custom.delete_namespaced_custom_object(group, version, NS, plural, "web")
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(group, version, NS, plural, "web")
    message = status_body(gone.value)["message"]
    assert message == 'virtualservices.networking.istio.io "web" not found'


def test_malformed_owner_references_never_break_the_store(api: ApiClient) -> None:
    """The store indexes objects by their controller; an object whose ownerReferences are not
    well formed is refused (as the API server decodes every object's metadata, schema or not)
    or stored, never a 500 that leaves it half stored."""
    custom = client.CustomObjectsApi(api)
    group, version, plural = "networking.istio.io", "v1beta1", "virtualservices"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "VirtualService",
        "metadata": {"name": "odd", "ownerReferences": [{"uid": ["x"], "controller": True}]},
        "spec": {"hosts": ["web"]},
    }
    try:
        custom.create_namespaced_custom_object(group, version, NS, plural, body)
    except ApiException as refused:
        assert 400 <= refused.status < 500, refused.status
        return
    listed = custom.list_namespaced_custom_object(group, version, NS, plural)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["odd"]
    assert custom.delete_namespaced_custom_object(group, version, NS, plural, "odd")


def test_ingress_through_networking_v1(api: ApiClient) -> None:
    networking = client.NetworkingV1Api(api)
    backend = client.V1IngressBackend(
        service=client.V1IngressServiceBackend(
            name="web", port=client.V1ServiceBackendPort(number=80)
        )
    )
    networking.create_namespaced_ingress(
        NS,
        client.V1Ingress(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1IngressSpec(default_backend=backend),
        ),
    )

    patched = networking.patch_namespaced_ingress(
        "web", NS, [{"op": "replace", "path": "/spec/defaultBackend/service/name", "value": "v2"}]
    )

    assert patched.kind == "Ingress"
    assert patched.spec.default_backend.service.name == "v2"
    assert [i.metadata.name for i in networking.list_namespaced_ingress(NS).items] == ["web"]


def test_writes_record_their_field_manager_and_user_agent(
    sim: KubeSimulator, apps: client.AppsV1Api, api: ApiClient
) -> None:
    api.user_agent = "someone/1.0"
    apps.create_namespaced_deployment(NS, deployment("new"), field_manager="someone")
    apps.read_namespaced_deployment("new", NS)
    apps.patch_namespaced_deployment("new", NS, set_image("web:2"))

    assert sim.writes == [
        ("POST", "/apis/apps/v1/namespaces/shop/deployments", "someone", "someone/1.0"),
        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/new", None, "someone/1.0"),
    ]


def test_a_finished_job_is_removed_after_its_ttl(
    sim: KubeSimulator, clock: FakeClock, api: ApiClient
) -> None:
    batch = client.BatchV1Api(api)
    spec = {
        "ttlSecondsAfterFinished": 100,
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x"}]}
        },
    }
    body = client.V1Job.model_validate({"metadata": {"name": "short"}, "spec": spec})
    batch.create_namespaced_job(NS, body)
    sim.tick()
    assert batch.read_namespaced_job("short", NS).status.succeeded == 1

    clock.advance(99)
    sim.tick()
    assert sim.get_object("batch/v1", "jobs", NS, "short") is not None
    clock.advance(1)
    sim.tick()
    assert sim.get_object("batch/v1", "jobs", NS, "short") is None


# -- controller cost: an idle cluster costs nothing, ownership is indexed ----------------------


def test_an_idle_cluster_runs_no_controller_pass_and_a_write_runs_until_settled(
    sim: KubeSimulator, apps: client.AppsV1Api
) -> None:
    """A pass goes over every object (with 100 deployments it took 360 ms, and the background
    loop ran one every 50 ms: a whole core, taken from the bot in benchmarks): it runs only
    when something was written or falls due, and again until a pass writes nothing."""
    sim.seed_deployment(NS, "web", images=["web:1", "web:2"])
    settled = sim.resource_version  # runs what the seeding left to do
    passes = sim.controller_passes

    for _ in range(5):  # reads, and the loop's own checks, find nothing to do
        apps.read_namespaced_deployment("web", NS)
        assert sim.resource_version == settled
    assert sim.controller_passes == passes

    apps.patch_namespaced_deployment("web", NS, set_image("web:3"))
    version = sim.resource_version  # the rollout: new ReplicaSet, scaled, statuses rolled up
    dep = apps.read_namespaced_deployment("web", NS)
    assert dep.metadata.annotations[REVISION] == "3"
    assert (dep.status.updated_replicas, dep.status.available_replicas) == (3, 3)
    after_rollout = sim.controller_passes
    assert after_rollout > passes
    assert sim.resource_version == version  # the last pass wrote nothing: rest again
    assert sim.controller_passes == after_rollout


def test_deleting_a_deployment_orphans_or_collects_only_its_own_replica_sets(
    sim: KubeSimulator, apps: client.AppsV1Api
) -> None:
    """Ownership is looked up by index: propagationPolicy=Orphan keeps a Deployment's
    ReplicaSets without their owner (and its controller stops scaling them), a Background
    delete takes another Deployment's along, and neither touches the other's."""
    sim.seed_deployment(NS, "web", images=["web:1", "web:2"])
    sim.seed_deployment(NS, "api", images=["api:1", "api:2"])

    apps.delete_namespaced_deployment(
        "web", NS, body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    apps.delete_namespaced_deployment("api", NS)
    assert sim.resource_version  # reading it lets the controllers run

    web = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    assert sorted(rs.spec.template.spec.containers[0].image for rs in web) == ["web:1", "web:2"]
    assert all(not rs.metadata.owner_references for rs in web)
    assert {rs.spec.replicas for rs in web} == {0, 3}  # as they were: nobody scales orphans
    assert apps.list_namespaced_replica_set(NS, label_selector="app=api").items == []
