"""The simulator's authorizer: SelfSubjectAccessReview from the rule list (in discovery, in the
API server's shape), and the 403 for a request the rules do not allow."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from bot.sim.kube_access import AccessRule
from bot.sim.kube_api import KubeSimulator

SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    with KubeSimulator() as s:
        s.seed_deployment("shop", "web", images=["web:1"])
        yield s


def review(sim: KubeSimulator, **attributes: str) -> dict[str, object]:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = httpx.post(sim.url + SSAR, json=body)
    assert answer.status_code == 201, answer.text
    status: dict[str, object] = answer.json()["status"]
    return status


def test_it_is_in_discovery_as_create_only(sim: KubeSimulator) -> None:
    listing = httpx.get(sim.url + "/apis/authorization.k8s.io/v1").json()
    (entry,) = listing["resources"]
    assert entry["name"] == "selfsubjectaccessreviews" and entry["verbs"] == ["create"]
    assert entry["namespaced"] is False
    groups = [g["name"] for g in httpx.get(sim.url + "/apis").json()["groups"]]
    assert "authorization.k8s.io" in groups
    assert httpx.get(sim.url + SSAR).status_code == 405


def test_without_rules_everything_is_allowed(sim: KubeSimulator) -> None:
    assert review(sim, verb="delete", group="apps", resource="deployments")["allowed"] is True


def test_the_first_matching_rule_decides(sim: KubeSimulator) -> None:
    sim.set_access_rules(
        [
            AccessRule(("patch",), ("apps",), ("deployments",), ("shop",), ("web",)),
            AccessRule(("patch",), ("apps",), ("deployments/scale",), effect="deny"),
        ]
    )
    allowed = review(
        sim, verb="patch", group="apps", resource="deployments", namespace="shop", name="web"
    )
    assert allowed["allowed"] is True and "rule 1" in str(allowed["reason"])
    other = review(sim, verb="patch", group="apps", resource="deployments", namespace="x")
    assert other == {"allowed": False}  # RBAC's "no opinion": not allowed, no reason
    denied = review(
        sim, verb="patch", group="apps", resource="deployments", subresource="scale", name="web"
    )
    assert denied["allowed"] is False and denied["denied"] is True


def test_a_review_without_attributes_is_invalid(sim: KubeSimulator) -> None:
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}
    answer = httpx.post(sim.url + SSAR, json=body)
    assert answer.status_code == 422 and answer.json()["reason"] == "Invalid"


def test_a_request_the_rules_do_not_allow_is_forbidden(sim: KubeSimulator) -> None:
    sim.set_access_rules([AccessRule(("get",), ("apps",), ("deployments",))])
    with sim.api_client() as api:
        apps = k8s.AppsV1Api(api)
        assert apps.read_namespaced_deployment("web", "shop").metadata.name == "web"
        with pytest.raises(ApiException) as raised:
            apps.patch_namespaced_deployment(
                "web", "shop", {"spec": {"replicas": 2}}, dry_run="All"
            )
    assert raised.value.status == 403
    assert json.loads(str(raised.value.body))["message"] == (
        'deployments.apps "web" is forbidden:'
        ' User "system:serviceaccount:rollback-bot:rollback-bot" cannot patch resource'
        ' "deployments" in API group "apps" in the namespace "shop"'
    )
    sim.set_access_rules(None)
    with sim.api_client() as api:
        k8s.AppsV1Api(api).patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 2}})
