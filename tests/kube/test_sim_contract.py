"""Contract: the same requests to bot/sim's KubeSimulator and to the real kube-apiserver.

Each case sends one request to both and compares the status code and, where the bot reads it,
the reason. The simulator must agree: a difference fails, naming what the simulator did before
it was made stricter (kept in each case as the record of what this contract found).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.sim.kube_api import KubeSimulator
from tests.kube.conftest import Cluster
from tests.kube.workloads import deployment_body

pytestmark = pytest.mark.kube

MERGE = {"Content-Type": "application/merge-patch+json"}
JSONP = {"Content-Type": "application/json-patch+json"}
DEP = "/apis/apps/v1/namespaces/{ns}/deployments"


@dataclass
class Answer:
    status: int
    reason: str
    body: dict[str, Any]


class Backend:
    def __init__(self, client: httpx.Client, namespace: str) -> None:
        self.http, self.ns = client, namespace

    def send(self, method: str, path: str, body: Any = None, headers: Any = None) -> Answer:
        r = self.http.request(
            method,
            path.format(ns=self.ns),
            content=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            data = r.json()
        except ValueError:
            data = {}
        reason = data.get("reason", "") if data.get("kind") == "Status" else ""
        return Answer(r.status_code, reason, data if isinstance(data, dict) else {})


@pytest.fixture
def backends(cluster: Cluster, namespace: str) -> Iterator[tuple[Backend, Backend]]:
    real_http = httpx.Client(
        base_url=cluster.plane.server,
        verify=ssl.create_default_context(cafile=str(cluster.plane.ca)),
        headers={"Authorization": f"Bearer {cluster.plane.admin_token}"},
    )
    with KubeSimulator() as sim, httpx.Client(base_url=sim.url) as sim_http:
        sim.seed_namespace(namespace)  # the real one was made by the namespace fixture
        real, simulated = Backend(real_http, namespace), Backend(sim_http, namespace)
        for b in (real, simulated):
            created = b.send("POST", DEP, deployment_body("checkout-api", "shop/checkout:v1"))
            assert created.status == 201, created
        yield real, simulated
    real_http.close()


def _other_with_unknown_field() -> dict[str, Any]:
    body = deployment_body("other", "x:1")
    body["spec"]["replicaz"] = 3
    return body


_JOB_WITHOUT_RESTART_POLICY = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j"},
    "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "m:1"}]}}},
}
_STALE = {
    **deployment_body("checkout-api", "x:2"),
    "metadata": {"name": "checkout-api", "resourceVersion": "1"},
}
ONE = DEP + "/checkout-api"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def _ssar(attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }


IMAGE = "/spec/template/spec/containers/0/image"

# id: (method, path, body, headers, (real status, real reason), how bot/sim differs or None)
CASES: dict[str, tuple[str, str, Any, Any, tuple[int, str], str | None]] = {
    "replicas -1": (
        "PATCH", ONE, {"spec": {"replicas": -1}}, MERGE, (422, "Invalid"),
        "accepts a negative replica count (200)",
    ),
    "replicas of the wrong type": (
        "PATCH", ONE, {"spec": {"replicas": "three"}}, MERGE, (422, "Invalid"),
        "answers 500 InternalError (a Python TypeError)",
    ),
    "scale subresource to -2": (
        "PATCH", ONE + "/scale", {"spec": {"replicas": -2}}, MERGE, (422, "Invalid"),
        "accepts a negative scale (200)",
    ),
    "empty image": (
        "PATCH", ONE, [{"op": "replace", "path": IMAGE, "value": ""}], JSONP, (422, "Invalid"),
        "accepts an empty image (200)",
    ),
    "typo'd plural": (
        "GET", "/apis/apps/v1/namespaces/{ns}/deploymentz", None, None, (404, "NotFound"),
        "serves any plural (200, empty list)",
    ),
    "retired API version": (
        "GET", "/apis/extensions/v1beta1/namespaces/{ns}/deployments", None, None,
        (404, "NotFound"), "serves extensions/v1beta1 deployments (200)",
    ),
    "namespace that does not exist": (
        "POST", "/apis/apps/v1/namespaces/nope-ns/deployments", deployment_body("x", "x:1"),
        None, (404, "NotFound"), "creates objects in any namespace (201)",
    ),
    "Job without restartPolicy": (
        "POST", "/apis/batch/v1/namespaces/{ns}/jobs", _JOB_WITHOUT_RESTART_POLICY, None,
        (422, "Invalid"), "accepts it (201)",
    ),
    "Service without ports": (
        "POST", "/api/v1/namespaces/{ns}/services",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
         "spec": {"selector": {"a": "b"}}},
        None, (422, "Invalid"), "accepts it (201)",
    ),
    "fieldManager over 128 bytes": (
        "PATCH", ONE + "?fieldManager=" + "x" * 200, {"spec": {"replicas": 2}}, MERGE,
        (422, "Invalid"), "accepts it (200)",
    ),
    "dryRun value other than All": (
        "PATCH", ONE + "?dryRun=Yes", {"spec": {"replicas": 5}}, MERGE, (422, "Invalid"),
        "answers 400 BadRequest",
    ),
    "discovery of apps/v1": (
        "GET", "/apis/apps/v1", None, None, (200, ""), "serves no discovery (404)",
    ),
    "unknown field (1.20 drops it silently)": (
        "POST", DEP, _other_with_unknown_field(), None, (201, ""), None,
    ),
    "stale resourceVersion": ("PUT", ONE, _STALE, None, (409, "Conflict"), None),
    "server-side dry run": (
        "PATCH", ONE + "?dryRun=All", {"spec": {"replicas": 5}}, MERGE, (200, ""), None,
    ),
    "JSON Patch test that fails": (
        "PATCH", ONE, [{"op": "test", "path": "/spec/replicas", "value": 7}], JSONP,
        (422, "Invalid"), None,
    ),
    "JSON Patch on a missing path": (
        "PATCH", ONE, [{"op": "replace", "path": "/spec/nope/x", "value": 7}], JSONP,
        (422, "Invalid"), None,
    ),
    "selector that no longer matches the template": (
        "PATCH", ONE, {"spec": {"selector": {"matchLabels": {"app": "other"}}}}, MERGE,
        (422, "Invalid"), None,
    ),
    "name that is not a DNS subdomain": (
        "POST", DEP, deployment_body("Bad_Name", "x:1"), None, (422, "Invalid"), None,
    ),
    "object that does not exist": ("GET", DEP + "/nope", None, None, (404, "NotFound"), None),
    "scale subresource": ("GET", ONE + "/scale", None, None, (200, ""), None),
    "SelfSubjectAccessReview": (
        "POST", SSAR, _ssar({"verb": "patch", "group": "apps", "resource": "deployments",
                             "namespace": "shop", "name": "checkout-api"}),
        None, (201, ""), None,
    ),
    "SelfSubjectAccessReview without attributes": (
        "POST", SSAR, {"apiVersion": "authorization.k8s.io/v1",
                       "kind": "SelfSubjectAccessReview", "spec": {}},
        None, (422, "Invalid"), None,
    ),
    "unsupported patch content type": (
        "PATCH", ONE, {"spec": {"replicas": 2}}, {"Content-Type": "text/plain"},
        (415, "UnsupportedMediaType"), None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_simulator_answers_as_the_real_api_server(
    backends: tuple[Backend, Backend], case: str
) -> None:
    method, path, body, headers, expected, difference = CASES[case]
    real, sim = backends
    answer = real.send(method, path, body, headers)
    assert (answer.status, answer.reason) == expected, answer.body.get("message")
    simulated = sim.send(method, path, body, headers)
    found = f" (the contract first found: bot/sim {difference})" if difference else ""
    assert (simulated.status, simulated.reason) == expected, (
        f"{simulated.body.get('message')}{found}"
    )


def test_dry_run_and_unknown_fields_leave_the_same_object(
    backends: tuple[Backend, Backend],
) -> None:
    """What the bot reads back: a dry run changes nothing; 1.20 drops an unknown field."""
    for b in backends:
        before = b.send("GET", ONE).body
        dry = b.send("PATCH", ONE + "?dryRun=All", {"spec": {"replicas": 5}}, MERGE).body
        assert dry["spec"]["replicas"] == 5
        after = b.send("GET", ONE).body
        assert after["spec"]["replicas"] == before["spec"]["replicas"] == 2
        # (not resourceVersion: the deployment controller keeps writing the status)
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
    real, sim = backends
    for b in backends:
        b.send("POST", DEP, _other_with_unknown_field())
    assert "replicaz" not in real.send("GET", DEP + "/other").body["spec"]
    assert "replicaz" not in sim.send("GET", DEP + "/other").body["spec"]  # dropped (a Warning)


def test_a_self_subject_access_review_answers_in_the_same_shape(
    backends: tuple[Backend, Backend], namespace: str
) -> None:
    """What the drill reads: status.allowed (the admin may; the simulator without rules too)."""
    attributes = {"verb": "create", "group": "batch", "resource": "jobs", "namespace": namespace}
    for b in backends:
        answer = b.send("POST", SSAR, _ssar(attributes))
        assert answer.status == 201 and answer.body["kind"] == "SelfSubjectAccessReview"
        assert answer.body["status"]["allowed"] is True
        assert answer.body["spec"]["resourceAttributes"] == attributes
