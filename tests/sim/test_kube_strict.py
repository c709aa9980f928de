"""The Kubernetes simulator refuses what a real API server refuses (issue #12, items 11-14).

Driven over HTTP: the official client where it can send the request, raw JSON (urllib) where
the typed client would refuse to build the bad body itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from bot.sim.kube_api import KubeSimulator
from bot.sim.kube_quantity import canonical_quantity

NS = "shop"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
REVISION = "deployment.kubernetes.io/revision"


class FakeClock:
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


def call(
    sim: KubeSimulator,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, Any, list[str]]:
    """(status, JSON body or text, Warning headers) of one raw request."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sim.url + path, data=data, method=method)
    request.add_header("Content-Type", content_type)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            status, raw, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), error.headers
    text = raw.decode()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return status, parsed, headers.get_all("Warning") or []


def deployment_body(name: str = "web", replicas: Any = 3, image: str = "web:1") -> Any:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def is_status(body: Any, code: int, reason: str) -> bool:
    return (
        isinstance(body, dict)
        and body.get("kind") == "Status"
        and body.get("apiVersion") == "v1"
        and body.get("status") == "Failure"
        and body.get("code") == code
        and body.get("reason") == reason
    )


# -- 11. types, values and unknown fields ---------------------------------------------------------


def test_a_string_where_an_int_belongs_is_refused_and_never_poisons_later_requests(
    sim: KubeSimulator, api: ApiClient
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    sim.seed_service(NS, "web", {"app": "web"})

    status, body, _ = call(sim, "POST", DEPLOYMENTS, deployment_body("new", replicas="three"))
    assert status == 400 and is_status(body, 400, "BadRequest")
    assert body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )

    patch = {"spec": {"replicas": "three"}}
    status, body, _ = call(
        sim, "PATCH", f"{DEPLOYMENTS}/web", patch, "application/merge-patch+json"
    )
    assert status == 422 and is_status(body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.replicas"
    assert "cannot unmarshal string" in body["message"]

    # Nothing was stored, so every later request (even of other kinds) still works.
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 3
    assert core.read_namespaced_service("web", NS).metadata.name == "web"
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["web"]


def test_negative_replicas_are_invalid_everywhere_they_can_be_written(
    sim: KubeSimulator, api: ApiClient
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    apps = client.AppsV1Api(api)
    expected = 'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be '
    expected += "greater than or equal to 0"

    for attempt in (
        lambda: apps.create_namespaced_deployment(NS, deployment_body("web2", replicas=-1)),
        lambda: apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": -1}}),
    ):
        with pytest.raises(ApiException) as raised:
            attempt()
        body = json.loads(raised.value.body)
        assert raised.value.status == 422 and is_status(body, 422, "Invalid")
        assert body["details"]["causes"] == [
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: -1: must be greater than or equal to 0",
                "field": "spec.replicas",
            }
        ]
    assert body["message"] == expected

    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    assert raised.value.status == 422
    assert json.loads(raised.value.body)["message"].startswith('Scale.autoscaling "web" is invalid')
    status, body, _ = call(
        sim, "PUT", f"{DEPLOYMENTS}/web/scale", {"kind": "Scale", "spec": {"replicas": "x"}}
    )
    assert status == 400 and "ScaleSpec.spec.replicas of type int32" in body["message"]
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 3


@pytest.mark.parametrize(
    ("replicas", "shown"),
    [(3.0, "number 3.0"), (2**31, "number 2147483648"), (True, "bool"), ([3], "array")],
)
def test_only_an_int32_decodes_as_replicas(sim: KubeSimulator, replicas: Any, shown: str) -> None:
    status, body, _ = call(sim, "POST", DEPLOYMENTS, deployment_body(replicas=replicas))
    assert status == 400
    assert body["message"].endswith(
        f"json: cannot unmarshal {shown} into Go struct field DeploymentSpec.spec.replicas "
        "of type int32"
    )
    assert sim.get_object("apps/v1", "deployments", NS, "web") is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": ""}]}}}},
            "spec.template.spec.containers[0].image",
            "Required value",
        ),
        (
            {"spec": {"strategy": {"type": "Rolling"}}},
            "spec.strategy.type",
            'Unsupported value: "Rolling": supported values: "Recreate", "RollingUpdate"',
        ),
        (
            {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}},
            "spec.strategy.rollingUpdate.maxUnavailable",
            "Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ),
        (
            {"spec": {"strategy": {"rollingUpdate": {"maxSurge": "lots"}}}},
            "spec.strategy.rollingUpdate.maxSurge",
            'Invalid value: "lots": a valid percent string must be',
        ),
    ],
)
def test_deployment_values_the_server_refuses(
    sim: KubeSimulator, change: Any, field: str, message: str
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    status, body, _ = call(
        sim, "PATCH", f"{DEPLOYMENTS}/web", change, "application/strategic-merge-patch+json"
    )
    assert status == 422 and is_status(body, 422, "Invalid")
    [cause] = body["details"]["causes"]
    assert cause["field"] == field and cause["message"].startswith(message)


def test_a_job_that_restarts_always_and_a_service_without_ports_are_invalid(
    sim: KubeSimulator,
) -> None:
    job = {
        "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "m:1"}]}}},
    }
    status, body, _ = call(sim, "POST", f"/apis/batch/v1/namespaces/{NS}/jobs", job)
    assert status == 422
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: "Always": supported values: "OnFailure", "Never"',
            "field": "spec.template.spec.restartPolicy",
        }
    ]
    status, body, _ = call(
        sim, "POST", f"/api/v1/namespaces/{NS}/services", {"metadata": {"name": "web"}}
    )
    assert (
        status == 422 and body["message"] == 'Service "web" is invalid: spec.ports: Required value'
    )


def test_unknown_fields_are_dropped_with_a_warning_or_refused_when_strict(
    sim: KubeSimulator,
) -> None:
    body = deployment_body()
    body["spec"]["foo"] = 1
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"

    status, created, warnings = call(sim, "POST", DEPLOYMENTS, body)

    assert status == 201
    assert warnings == [
        '299 - "unknown field \\"spec.foo\\""',
        '299 - "unknown field \\"spec.template.spec.containers[0].imagePullPolicyy\\""',
    ]
    assert "foo" not in created["spec"]
    stored = sim.get_object("apps/v1", "deployments", NS, "web")
    assert stored is not None and "foo" not in stored["spec"]
    assert "imagePullPolicyy" not in stored["spec"]["template"]["spec"]["containers"][0]

    status, refused, _ = call(sim, "POST", DEPLOYMENTS + "?fieldValidation=Strict", body)
    assert status == 400 and is_status(refused, 400, "BadRequest")
    assert refused["message"].endswith(
        'strict decoding error: unknown field "spec.foo", unknown field '
        '"spec.template.spec.containers[0].imagePullPolicyy"'
    )
    patch = {"spec": {"paused": True, "bar": 2}}
    status, _, warnings = call(
        sim,
        "PATCH",
        f"{DEPLOYMENTS}/web?fieldValidation=Ignore",
        patch,
        "application/merge-patch+json",
    )
    assert status == 200 and warnings == []


def test_the_official_client_surfaces_the_warning_of_a_dropped_field(
    sim: KubeSimulator, api: ApiClient
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    apps = client.AppsV1Api(api)
    _, status, headers = apps.patch_namespaced_deployment_with_http_info(
        "web", NS, {"spec": {"replica": 5}}
    )
    assert status == 200
    assert headers["Warning"] == '299 - "unknown field \\"spec.replica\\""'
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 3


def test_custom_objects_are_checked_structurally_and_keep_their_fields(
    sim: KubeSimulator,
) -> None:
    path = f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices"
    body = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "anything": {"x": 1}},
    }
    status, created, warnings = call(sim, "POST", path, body)
    assert status == 201 and created["spec"]["anything"] == {"x": 1} and warnings == []

    wrong = {**body, "apiVersion": "networking.istio.io/v1", "metadata": {"name": "other"}}
    status, refused, _ = call(sim, "POST", path, wrong)
    assert status == 400 and "does not match the expected API version" in refused["message"]
    status, refused, _ = call(sim, "POST", path, ["not", "an", "object"])
    assert status == 400


# -- 12. ReplicaSet reuse compares templates semantically ------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("0.5", "500m"),
        (0.5, "500m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("1000", "1k"),
        ("2000m", "2"),
        ("1.5e3", "1500"),
        ("1e3", "1e3"),
        (1, "1"),
        ("lots", None),
    ],
)
def test_quantities_are_stored_in_canonical_form(written: Any, canonical: str | None) -> None:
    assert canonical_quantity(written) == canonical


def test_a_go_clients_template_reuses_the_replica_set_instead_of_duplicating_it(
    sim: KubeSimulator, api: ApiClient
) -> None:
    resources = {"limits": {"cpu": "500m", "memory": "1Gi"}}
    sim.seed_deployment(NS, "web", images=["web:1", "web:2"])
    path = "/spec/template/spec/containers/0/resources"
    call(
        sim,
        "PATCH",
        f"{DEPLOYMENTS}/web",
        [{"op": "add", "path": path, "value": resources}],
        "application/json-patch+json",
    )
    apps = client.AppsV1Api(api)
    before = {rs.metadata.name for rs in apps.list_namespaced_replica_set(NS).items}
    assert len(before) == 3

    # What kubectl rollout undo sends back: the template as Go marshals it.
    stored = sim.get_object("apps/v1", "deployments", NS, "web")
    assert stored is not None
    template = json.loads(json.dumps(stored["spec"]["template"]))
    template["metadata"]["creationTimestamp"] = None
    container = template["spec"]["containers"][0]
    container["resources"] = {"limits": {"cpu": "0.5", "memory": "1024Mi"}, "requests": {}}
    container["env"] = []
    template["spec"]["nodeSelector"] = None
    status, _, _ = call(
        sim,
        "PATCH",
        f"{DEPLOYMENTS}/web",
        [{"op": "replace", "path": "/spec/template", "value": template}],
        "application/json-patch+json",
    )
    assert status == 200

    after = apps.list_namespaced_replica_set(NS).items
    assert {rs.metadata.name for rs in after} == before
    deployment = apps.read_namespaced_deployment("web", NS)
    assert deployment.metadata.annotations[REVISION] == "3"
    limits = deployment.spec.template.spec.containers[0].resources.limits
    assert limits == {"cpu": "500m", "memory": "1Gi"}


# -- 14. rollouts ----------------------------------------------------------------------------


def test_a_rolling_update_stays_available_while_new_pods_start(
    sim: KubeSimulator, api: ApiClient, clock: FakeClock
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"], replicas=4)
    sim.set_ready_delay(30)
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}},
    )

    for _ in range(3):
        status = apps.read_namespaced_deployment("web", NS).status
        conditions = {c.type: c for c in status.conditions}
        assert conditions["Available"].status == "True"
        assert conditions["Progressing"].reason == "ReplicaSetUpdated"
        assert status.available_replicas >= 3  # replicas - maxUnavailable (25 % of 4)
        clock.advance(10)
    sim.tick()
    status = apps.read_namespaced_deployment("web", NS).status
    assert status.updated_replicas == status.available_replicas == 4
    assert {c.type: c.reason for c in status.conditions}["Progressing"] == (
        "NewReplicaSetAvailable"
    )


def test_rolling_back_a_crash_looping_image_completes(
    sim: KubeSimulator, api: ApiClient, clock: FakeClock
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    sim.set_never_ready(NS, "web", image="web:2")
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    set_image = {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}
    }
    apps.patch_namespaced_deployment("web", NS, set_image)
    clock.advance(601)
    sim.tick()
    conditions = {c.type: c for c in apps.read_namespaced_deployment("web", NS).status.conditions}
    assert conditions["Progressing"].reason == "ProgressDeadlineExceeded"
    assert conditions["Available"].status == "True"  # the old pods kept serving
    crashing = [
        p for p in core.list_namespaced_pod(NS).items if p.spec.containers[0].image == "web:2"
    ]
    assert crashing and all(
        p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff" for p in crashing
    )

    back = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:1"}]}}}}
    apps.patch_namespaced_deployment("web", NS, back)
    sim.tick()

    status = apps.read_namespaced_deployment("web", NS).status
    assert {c.type: c.reason for c in status.conditions}["Progressing"] == (
        "NewReplicaSetAvailable"
    )
    assert status.updated_replicas == status.ready_replicas == 3
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(NS).items}
    assert images == {"web:1"}


def test_never_ready_for_a_whole_deployment_still_blocks_every_template(
    sim: KubeSimulator, api: ApiClient, clock: FakeClock
) -> None:
    sim.seed_deployment(NS, "web", images=["web:1", "web:2"])
    sim.set_never_ready(NS, "web")
    apps = client.AppsV1Api(api)
    back = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:1"}]}}}}
    apps.patch_namespaced_deployment("web", NS, back)
    clock.advance(601)
    sim.tick()
    conditions = {c.type: c for c in apps.read_namespaced_deployment("web", NS).status.conditions}
    assert conditions["Progressing"].reason == "ProgressDeadlineExceeded"


# -- 13. discovery, served resources, namespaces -------------------------------------------------


def test_discovery_documents_describe_what_is_served(sim: KubeSimulator, api: ApiClient) -> None:
    assert call(sim, "GET", "/api")[1]["versions"] == ["v1"]
    groups = client.ApisApi(api).get_api_versions()
    names = [group.name for group in groups.groups]
    assert {"apps", "batch", "networking.k8s.io", "networking.istio.io"} <= set(names)
    apps_group = next(group for group in groups.groups if group.name == "apps")
    assert apps_group.preferred_version.group_version == "apps/v1"

    resources = client.AppsV1Api(api).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    deployments = by_name["deployments"]
    assert (deployments.kind, deployments.namespaced, deployments.short_names) == (
        "Deployment",
        True,
        ["deploy"],
    )
    assert {"get", "list", "create", "patch", "update", "delete"} <= set(deployments.verbs)
    assert by_name["deployments/scale"].kind == "Scale"
    assert by_name["deployments/scale"].group == "autoscaling"
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["namespaces"].namespaced is False and core["services"].short_names == ["svc"]
    batch = call(sim, "GET", "/apis/batch/v1")[1]
    assert [r["name"] for r in batch["resources"] if "/" not in r["name"]] == [
        "jobs",
        "cronjobs",
    ]


@pytest.mark.parametrize(
    "path",
    [
        f"/apis/apps/v1/namespaces/{NS}/deploymnets",  # a typo'd plural
        f"/apis/batch/v1beta1/namespaces/{NS}/jobs",  # a retired version
        f"/apis/extensions/v1beta1/namespaces/{NS}/deployments",  # a retired group
        f"/apis/example.com/v1/namespaces/{NS}/widgets",  # a CRD never installed
        f"/apis/apps/v1/namespaces/{NS}/deployments/web/rollback",  # no such subresource
        "/apis/nope",
        "/apis/apps/v2",
        "/api/v2/namespaces",
    ],
)
def test_what_the_cluster_does_not_serve_is_a_404_status(sim: KubeSimulator, path: str) -> None:
    sim.seed_deployment(NS, "web", images=["web:1"])
    for method, body in (("GET", None), ("POST", deployment_body("x"))):
        status, answer, _ = call(sim, method, path, body)
        assert status == 404 and is_status(answer, 404, "NotFound")
        assert answer["message"] == "the server could not find the requested resource"
    assert sim.get_object("apps/v1", "deployments", NS, "x") is None


def test_an_installed_crd_is_served_and_discovered(sim: KubeSimulator) -> None:
    path = f"/apis/example.com/v1/namespaces/{NS}/widgets"
    assert call(sim, "GET", path)[0] == 404
    sim.install_crd("example.com", ["v1"], "widgets", "Widget")
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    status, created, _ = call(sim, "POST", path, body)
    assert status == 201 and created["kind"] == "Widget"
    resources = call(sim, "GET", "/apis/example.com/v1")[1]["resources"]
    assert [(r["name"], r["kind"]) for r in resources] == [("widgets", "Widget")]


def test_objects_live_only_in_namespaces_that_exist(sim: KubeSimulator, api: ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment("nowhere", deployment_body())
    body = json.loads(raised.value.body)
    assert raised.value.status == 404 and body["message"] == 'namespaces "nowhere" not found'
    assert body["details"] == {"name": "nowhere", "kind": "namespaces"}

    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", NS} <= names and "nowhere" not in names
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="nowhere")))
    apps.create_namespaced_deployment("nowhere", deployment_body())
    assert apps.list_namespaced_deployment("nowhere").items[0].metadata.name == "web"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("dryRun=Yes", 'dryRun: Unsupported value: []string{"Yes"}: supported values: "All"'),
        ("fieldManager=" + "x" * 129, "fieldManager: Too long: may not be longer than 128"),
    ],
)
def test_write_options_the_server_refuses_are_invalid_and_change_nothing(
    sim: KubeSimulator, query: str, words: str
) -> None:
    assert call(sim, "POST", DEPLOYMENTS, deployment_body())[0] == 201
    status, body, _ = call(
        sim,
        "PATCH",
        f"{DEPLOYMENTS}/web?{query}",
        {"spec": {"replicas": 5}},
        "application/merge-patch+json",
    )
    assert status == 422 and is_status(body, 422, "Invalid")
    assert body["message"] == f'PatchOptions.meta.k8s.io "" is invalid: {words}'
    assert call(sim, "GET", f"{DEPLOYMENTS}/web")[1]["spec"]["replicas"] == 3
